//! Queries to a running instance (or, when none runs, to its data directory).

use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;
use weir_runtime::admin::{query, query_offline, AdminError, Request};

pub async fn print(data_dir: &Path, request: Request) -> Result<ExitCode> {
    let answer = match query(data_dir, &request).await {
        Err(AdminError::NotRunning(_)) if !matches!(request, Request::Status) => {
            query_offline(data_dir, &request)
        }
        other => other,
    };
    match answer {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
