//! What a job and a job execution are, as stored and as AWS's Jobs API
//! shows them (field names, status words, timestamps in epoch seconds).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A job execution's status, in AWS's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecStatus {
    Queued,
    InProgress,
    Succeeded,
    Failed,
    Rejected,
    TimedOut,
    Canceled,
    Removed,
}

impl ExecStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Queued => "QUEUED",
            ExecStatus::InProgress => "IN_PROGRESS",
            ExecStatus::Succeeded => "SUCCEEDED",
            ExecStatus::Failed => "FAILED",
            ExecStatus::Rejected => "REJECTED",
            ExecStatus::TimedOut => "TIMED_OUT",
            ExecStatus::Canceled => "CANCELED",
            ExecStatus::Removed => "REMOVED",
        }
    }

    /// A status a device may set with UpdateJobExecution.
    pub fn from_device(word: &str) -> Option<ExecStatus> {
        match word {
            "IN_PROGRESS" => Some(ExecStatus::InProgress),
            "SUCCEEDED" => Some(ExecStatus::Succeeded),
            "FAILED" => Some(ExecStatus::Failed),
            "REJECTED" => Some(ExecStatus::Rejected),
            _ => None,
        }
    }

    /// Pending executions are the device's to work on; the others are done.
    pub fn is_terminal(self) -> bool {
        !matches!(self, ExecStatus::Queued | ExecStatus::InProgress)
    }

    /// The word of `$aws/events/jobExecution/<job>/<operation>`.
    pub fn operation(self) -> String {
        self.as_str().to_ascii_lowercase()
    }
}

/// A job's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    InProgress,
    Completed,
    Canceled,
}

/// A job: a document for a set of things, made with `weir jobs create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub document: Value,
    /// How many things it was created for (the list is kept apart, so
    /// that reading a job does not read 100,000 names). A thing group is
    /// resolved to its members when the job is made (AWS's SNAPSHOT).
    pub target_count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thing_group: Option<String>,
    pub status: JobStatus,
    pub created_at: i64,
    pub last_updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
    /// Executions not yet in a terminal status: the job completes at 0.
    pub remaining: usize,
}

/// One thing's execution of one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub job_id: String,
    pub status: ExecStatus,
    #[serde(default)]
    pub status_details: BTreeMap<String, String>,
    pub queued_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    pub last_updated_at: i64,
    pub version_number: u64,
    pub execution_number: u64,
    /// When an IN_PROGRESS execution times out (epoch seconds), from the
    /// device's `stepTimeoutInMinutes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_deadline: Option<i64>,
}

/// Every execution one thing has (pending and done), in queue order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ThingJobs {
    pub executions: Vec<Execution>,
}

/// Done executions a thing keeps (the oldest go first); pending ones are
/// always kept.
pub const DONE_KEPT_PER_THING: usize = 100;

impl ThingJobs {
    /// Forget the oldest done executions beyond [`DONE_KEPT_PER_THING`].
    pub fn trim_history(&mut self) {
        let done = self
            .executions
            .iter()
            .filter(|e| e.status.is_terminal())
            .count();
        let mut excess = done.saturating_sub(DONE_KEPT_PER_THING);
        if excess == 0 {
            return;
        }
        self.executions.retain(|e| {
            if excess > 0 && e.status.is_terminal() {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }

    pub fn find(&self, job_id: &str) -> Option<&Execution> {
        self.executions.iter().find(|e| e.job_id == job_id)
    }

    pub fn find_mut(&mut self, job_id: &str) -> Option<&mut Execution> {
        self.executions.iter_mut().find(|e| e.job_id == job_id)
    }

    /// The execution the device should work on next: the oldest one in
    /// progress, else the oldest queued one.
    pub fn next(&self) -> Option<&Execution> {
        self.executions
            .iter()
            .find(|e| e.status == ExecStatus::InProgress)
            .or_else(|| {
                self.executions
                    .iter()
                    .find(|e| e.status == ExecStatus::Queued)
            })
    }

    pub fn with_status(&self, status: ExecStatus) -> impl Iterator<Item = &Execution> {
        self.executions.iter().filter(move |e| e.status == status)
    }
}

impl Execution {
    /// AWS's JobExecutionSummary.
    pub fn summary(&self) -> Value {
        let mut v = json!({
            "jobId": self.job_id,
            "queuedAt": self.queued_at,
            "lastUpdatedAt": self.last_updated_at,
            "versionNumber": self.version_number,
            "executionNumber": self.execution_number,
        });
        if let (Some(s), Some(obj)) = (self.started_at, v.as_object_mut()) {
            obj.insert("startedAt".into(), json!(s));
        }
        v
    }

    /// AWS's JobExecutionState.
    pub fn state(&self) -> Value {
        json!({
            "status": self.status.as_str(),
            "statusDetails": self.status_details,
            "versionNumber": self.version_number,
        })
    }

    /// AWS's JobExecution (JobExecutionData), with the job's document
    /// when given.
    pub fn data(&self, thing: &str, document: Option<&Value>) -> Value {
        let mut obj = Map::new();
        obj.insert("jobId".into(), json!(self.job_id));
        obj.insert("thingName".into(), json!(thing));
        if let Some(doc) = document {
            obj.insert("jobDocument".into(), doc.clone());
        }
        obj.insert("status".into(), json!(self.status.as_str()));
        obj.insert("statusDetails".into(), json!(self.status_details));
        obj.insert("queuedAt".into(), json!(self.queued_at));
        if let Some(s) = self.started_at {
            obj.insert("startedAt".into(), json!(s));
        }
        obj.insert("lastUpdatedAt".into(), json!(self.last_updated_at));
        obj.insert("versionNumber".into(), json!(self.version_number));
        obj.insert("executionNumber".into(), json!(self.execution_number));
        Value::Object(obj)
    }
}

/// Job ids and thing names: 1–64 (job) or 1–128 (thing) of `[a-zA-Z0-9_-]`
/// (things also allow `:`), as AWS's.
pub fn is_valid_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests_support::exec;

    #[test]
    fn next_prefers_in_progress_then_oldest_queued() {
        let mut t = ThingJobs::default();
        t.executions.push(exec("a", ExecStatus::Succeeded));
        t.executions.push(exec("b", ExecStatus::Queued));
        t.executions.push(exec("c", ExecStatus::Queued));
        assert_eq!(t.next().map(|e| e.job_id.as_str()), Some("b"));
        t.executions.push(exec("d", ExecStatus::InProgress));
        assert_eq!(t.next().map(|e| e.job_id.as_str()), Some("d"));
    }

    #[test]
    fn history_keeps_pending_and_the_latest_done() {
        let mut t = ThingJobs::default();
        t.executions.push(exec("old", ExecStatus::Succeeded));
        t.executions.push(exec("pending", ExecStatus::Queued));
        for i in 0..DONE_KEPT_PER_THING {
            t.executions
                .push(exec(&format!("d{i}"), ExecStatus::Failed));
        }
        t.trim_history();
        assert_eq!(t.executions.len(), DONE_KEPT_PER_THING + 1);
        assert!(t.find("old").is_none());
        assert!(t.find("pending").is_some());
        assert!(t.find("d0").is_some());
    }

    #[test]
    fn statuses_use_aws_words() {
        assert_eq!(
            serde_json::to_value(ExecStatus::InProgress).ok(),
            Some(json!("IN_PROGRESS"))
        );
        assert_eq!(ExecStatus::TimedOut.operation(), "timed_out");
        assert_eq!(ExecStatus::from_device("QUEUED"), None);
        assert!(ExecStatus::Rejected.is_terminal());
        assert!(!ExecStatus::Queued.is_terminal());
    }

    #[test]
    fn job_ids() {
        assert!(is_valid_job_id("fw-update_2"));
        assert!(!is_valid_job_id(""));
        assert!(!is_valid_job_id("a/b"));
        assert!(!is_valid_job_id(&"x".repeat(65)));
    }
}
