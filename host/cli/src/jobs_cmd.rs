//! `weir jobs …`: AWS IoT Jobs' operator side (create, list, describe,
//! executions, cancel), asked of the running instance, which tells the
//! devices at once; with none running, done on the data directory (the
//! devices find the job when they next ask for their pending jobs).

use crate::DataDirArg;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use weir_runtime::admin::Request;
use weir_runtime::jobs::JobOp;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Queue a job document for things: each gets it on
    /// `$aws/things/<thing>/jobs/notify-next` and from its Jobs API.
    Create {
        /// Job id (1-64 of a-z A-Z 0-9 _ -), never reused.
        job_id: String,
        /// Target things, comma-separated (repeatable).
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
        /// A thing group of the registry; its members now are targets.
        #[arg(long)]
        thing_group: Option<String>,
        /// The job document: a JSON file.
        #[arg(long, conflicts_with = "document_json")]
        document: Option<PathBuf>,
        /// The job document, inline JSON.
        #[arg(long)]
        document_json: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Every job, with its status.
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// A job, with how many of its things are in each status.
    Describe {
        job_id: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// The executions of a job (per thing), of a thing (per job), or one.
    Executions {
        job_id: Option<String>,
        #[arg(long)]
        thing: Option<String>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Cancel a job: queued executions are canceled, those in progress
    /// only with --force.
    Cancel {
        job_id: String,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

pub async fn jobs(command: JobsCommand) -> Result<ExitCode> {
    let (dir, op) = match command {
        JobsCommand::Create {
            job_id,
            targets,
            thing_group,
            document,
            document_json,
            description,
            dir,
        } => {
            let text = match (document, document_json) {
                (Some(path), None) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                (None, Some(json)) => json,
                _ => bail!(
                    "give the job document: --document <file.json> or --document-json '<json>'"
                ),
            };
            let document = serde_json::from_str(&text).context("the job document is not JSON")?;
            let op = JobOp::Create {
                job_id,
                targets,
                thing_group,
                document,
                description,
            };
            (dir, op)
        }
        JobsCommand::List { dir } => (dir, JobOp::List),
        JobsCommand::Describe { job_id, dir } => (dir, JobOp::Describe { job_id }),
        JobsCommand::Executions { job_id, thing, dir } => {
            if job_id.is_none() && thing.is_none() {
                bail!(
                    "name a job (weir jobs executions <job-id>), a thing (--thing <name>), or both"
                );
            }
            (dir, JobOp::Executions { job_id, thing })
        }
        JobsCommand::Cancel { job_id, force, dir } => (dir, JobOp::Cancel { job_id, force }),
    };
    crate::admin_cmd::print(&dir.resolve()?, Request::Jobs { op }).await
}
