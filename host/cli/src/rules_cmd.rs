//! `weir rules check` and `weir rules eval`: try rules before they go live.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use weir_sql::{Message, Payload, Statement};

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Check a rules directory (or one rule file): every problem, with file:line:col.
    Check { path: PathBuf },
    /// Evaluate one statement against one message and print the output.
    /// Exit status: 0 output printed, 1 no match, 2 invalid statement or payload.
    Eval {
        #[arg(long)]
        sql: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value = "weir-cli")]
        client_id: String,
        #[arg(long)]
        payload: String,
        /// Receive time in ms (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
    },
}

pub fn run(command: RulesCommand) -> Result<ExitCode> {
    match command {
        RulesCommand::Check { path } => check(path),
        RulesCommand::Eval {
            sql,
            topic,
            client_id,
            payload,
            timestamp,
        } => eval(&sql, &topic, &client_id, &payload, timestamp),
    }
}

fn check(path: PathBuf) -> Result<ExitCode> {
    let files: Vec<(PathBuf, String)> = if path.is_dir() {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| std::fs::read_to_string(&p).map(|t| (p, t)))
            .collect::<std::io::Result<_>>()?
    } else {
        let mut files = vec![(path.clone(), std::fs::read_to_string(&path)?)];
        // A single rule is checked against the plugins declared beside it.
        let decls = path
            .parent()
            .map(|d| d.join(weir_runtime::rules::PLUGINS_FILE))
            .filter(|p| p.exists() && *p != path);
        if let Some(decls) = decls {
            files.push((decls.clone(), std::fs::read_to_string(&decls)?));
        }
        files
    };
    match weir_runtime::rules::compile_files(&files) {
        Ok(set) => {
            println!("ok: {} rule(s), {} plugin declaration(s)", set.rules.len(), set.plugins.decls.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{}\n", p.report);
            }
            eprintln!("{} problem(s)", problems.len());
            Ok(ExitCode::from(1))
        }
    }
}

fn eval(sql: &str, topic: &str, client_id: &str, payload: &str, timestamp: Option<i64>) -> Result<ExitCode> {
    let statement = match Statement::parse(sql) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", e.render("<sql>", sql));
            return Ok(ExitCode::from(2));
        }
    };
    let json: Option<serde_json::Value> = serde_json::from_str(payload).ok();
    if json.is_none() && statement.reads_payload() {
        eprintln!("error: the payload is not valid JSON and the statement reads it");
        return Ok(ExitCode::from(2));
    }
    let message = Message {
        topic,
        client_id,
        payload: match &json {
            Some(v) => Payload::Json(v),
            None => Payload::Binary(payload.as_bytes()),
        },
        timestamp_ms: timestamp.unwrap_or_else(weir_runtime::clock::now_ms),
        principal: None,
        trace_id: None,
        lookup: None,
    };
    match statement.eval(&message) {
        Ok(Some(v)) => {
            println!("{}", serde_json::to_string(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => Ok(ExitCode::from(1)),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
