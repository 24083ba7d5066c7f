//! `weir plugin …`: look at components before they go live.

use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Print a component's world, imports, WIT version and whether this host accepts it.
    /// Takes a .wasm file or `builtin:<name>`.
    Inspect { component: String },
    /// List the plugins shipped inside this binary.
    List,
    /// Write a shipped plugin's component to a file (to inspect it, or run it by path).
    Extract {
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
}

fn bytes_of(component: &str) -> Result<Vec<u8>> {
    match component.strip_prefix("builtin:") {
        Some(name) => weir_bundled_plugins::get(name)
            .map(|b| b.to_vec())
            .with_context(|| format!("no shipped plugin {name:?}; `weir plugin list` shows them")),
        None => std::fs::read(component).with_context(|| format!("cannot read {component}")),
    }
}

pub fn run(command: PluginCommand) -> Result<ExitCode> {
    match command {
        PluginCommand::Inspect { component } => {
            let bytes = bytes_of(&component)?;
            match weir_runtime::plugin::inspect::inspect(&bytes) {
                Ok(report) => {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                    Ok(if report["accepted"] == true {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                Err(e) => {
                    eprintln!("error: {component}: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        PluginCommand::List => {
            for (name, bytes) in weir_bundled_plugins::SHIPPED {
                println!("builtin:{name}\t{} bytes", bytes.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Extract { name, out } => {
            let bytes = bytes_of(&format!("builtin:{name}"))?;
            std::fs::write(&out, bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
