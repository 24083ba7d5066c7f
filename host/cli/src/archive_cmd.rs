//! `weir archive`: the Parquet archive's Athena table.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use weir_runtime::config::ArchiveBackend;

#[derive(Subcommand)]
pub enum ArchiveCommand {
    /// Print the Athena `CREATE EXTERNAL TABLE` for the archive, with
    /// partition projection on device_type and date.
    Ddl {
        /// Table name.
        #[arg(long, default_value = "weir_readings")]
        table: String,
        /// Table location (default: `s3://<bucket>/<prefix>/` from the config's [storage.archive]).
        #[arg(long)]
        location: Option<String>,
        /// Metric columns, comma separated (default: every metric column in
        /// the local archive's files).
        #[arg(long, value_delimiter = ',')]
        metrics: Vec<String>,
        /// First date of the projection range.
        #[arg(long, default_value = "2024-01-01")]
        start_date: String,
        /// Config file (for the archive's location and directory).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Local archive directory to read metric columns from.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn run(command: ArchiveCommand) -> Result<ExitCode> {
    match command {
        ArchiveCommand::Ddl {
            table,
            location,
            metrics,
            start_date,
            config,
            dir,
        } => {
            let config = crate::load_config(config.as_deref())?;
            let archive = &config.storage.archive;
            let location = match location {
                Some(l) => l,
                None if archive.backend == ArchiveBackend::S3 => {
                    let bucket = archive.bucket.clone().unwrap_or_default();
                    let prefix = archive.prefix.trim_matches('/');
                    if prefix.is_empty() {
                        format!("s3://{bucket}/")
                    } else {
                        format!("s3://{bucket}/{prefix}/")
                    }
                }
                None => bail!(
                    "the archive is local in this config; give --location s3://<bucket>/<prefix>/ where its files are copied"
                ),
            };
            let metrics = if metrics.is_empty() {
                let root = dir.unwrap_or_else(|| weir_runtime::sinks::archive::local_root(&config));
                if root.is_dir() {
                    weir_storage::archive::metrics_in(&root).with_context(|| {
                        format!("reading metric columns under {}", root.display())
                    })?
                } else {
                    Vec::new()
                }
            } else {
                metrics
            };
            print!(
                "{}",
                weir_storage::archive::athena_ddl(&table, &location, &metrics, &start_date)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
