//! What the Jobs service publishes when something changes: the thing's
//! `notify` and `notify-next` messages, and AWS's job and job execution
//! events for rules and fleet dashboards.

use super::model::{ExecStatus, Execution, Job, ThingJobs};
use super::Notice;
use serde_json::{json, Map, Value};

/// The ARN a thing has in events (Weir runs in one account and region of
/// its own; rules written for AWS that read `thingArn` keep working).
pub fn thing_arn(thing: &str) -> String {
    format!("arn:aws:iot:local:000000000000:thing/{thing}")
}

/// `numberOf…Things` of a status in jobProcessDetails.
pub fn count_field(status: ExecStatus) -> &'static str {
    match status {
        ExecStatus::Queued => "numberOfQueuedThings",
        ExecStatus::InProgress => "numberOfInProgressThings",
        ExecStatus::Succeeded => "numberOfSucceededThings",
        ExecStatus::Failed => "numberOfFailedThings",
        ExecStatus::Rejected => "numberOfRejectedThings",
        ExecStatus::TimedOut => "numberOfTimedOutThings",
        ExecStatus::Canceled => "numberOfCanceledThings",
        ExecStatus::Removed => "numberOfRemovedThings",
    }
}

/// The pending jobs of a thing by status, as `notify` and
/// GetPendingJobExecutions list them.
pub fn pending(things: &ThingJobs) -> (Vec<Value>, Vec<Value>) {
    let queued = things
        .with_status(ExecStatus::Queued)
        .map(Execution::summary)
        .collect();
    let in_progress = things
        .with_status(ExecStatus::InProgress)
        .map(Execution::summary)
        .collect();
    (queued, in_progress)
}

fn pending_ids(things: &ThingJobs) -> Vec<&str> {
    things
        .executions
        .iter()
        .filter(|e| !e.status.is_terminal())
        .map(|e| e.job_id.as_str())
        .collect()
}

/// `notify` when the thing's pending list gained or lost a job;
/// `notify-next` when its next job is another one (without `execution`
/// when none is left). `document` gives a job's document.
pub fn thing_changed(
    thing: &str,
    before: &ThingJobs,
    after: &ThingJobs,
    now: i64,
    document: impl Fn(&str) -> Option<Value>,
) -> Vec<Notice> {
    let mut out = Vec::new();
    if pending_ids(before) != pending_ids(after) {
        let (queued, in_progress) = pending(after);
        let mut jobs = Map::new();
        if !queued.is_empty() {
            jobs.insert("QUEUED".into(), Value::Array(queued));
        }
        if !in_progress.is_empty() {
            jobs.insert("IN_PROGRESS".into(), Value::Array(in_progress));
        }
        out.push(Notice {
            topic: format!("$aws/things/{thing}/jobs/notify"),
            doc: json!({"timestamp": now, "jobs": jobs}),
        });
    }
    let next_before = before.next().map(|e| e.job_id.as_str());
    let next_after = after.next();
    if next_before != next_after.map(|e| e.job_id.as_str()) {
        let doc = match next_after {
            Some(e) => json!({
                "timestamp": now,
                "execution": e.data(thing, document(&e.job_id).as_ref()),
            }),
            None => json!({"timestamp": now}),
        };
        out.push(Notice {
            topic: format!("$aws/things/{thing}/jobs/notify-next"),
            doc,
        });
    }
    out
}

/// `$aws/events/jobExecution/<job>/<status>`: an execution reached a
/// terminal status.
pub fn execution_event(thing: &str, exec: &Execution, now: i64) -> Notice {
    let operation = exec.status.operation();
    Notice {
        topic: format!("$aws/events/jobExecution/{}/{operation}", exec.job_id),
        doc: json!({
            "eventType": "JOB_EXECUTION",
            "eventId": uuid::Uuid::new_v4().to_string(),
            "timestamp": now,
            "operation": operation,
            "jobId": exec.job_id,
            "thingArn": thing_arn(thing),
            "thingName": thing,
            "status": exec.status.as_str(),
            "statusDetails": exec.status_details,
            "versionNumber": exec.version_number,
        }),
    }
}

/// Target lists longer than this are left out of job events (`targetCount`
/// is always there).
const MAX_EVENT_TARGETS: usize = 1000;

/// `$aws/events/job/<job>/<operation>` (`completed`, `canceled`).
pub fn job_event(
    job: &Job,
    operation: &str,
    process_details: Value,
    targets: &[String],
    now: i64,
) -> Notice {
    let mut doc = json!({
        "eventType": "JOB",
        "eventId": uuid::Uuid::new_v4().to_string(),
        "timestamp": now,
        "operation": operation,
        "jobId": job.job_id,
        "status": job.status,
        "targetSelection": "SNAPSHOT",
        "targetCount": job.target_count,
        "createdAt": job.created_at,
        "lastUpdatedAt": job.last_updated_at,
        "jobProcessDetails": process_details,
    });
    if let Some(obj) = doc.as_object_mut() {
        if let Some(d) = &job.description {
            obj.insert("description".into(), json!(d));
        }
        if let Some(c) = job.completed_at {
            obj.insert("completedAt".into(), json!(c));
        }
        if targets.len() <= MAX_EVENT_TARGETS {
            let arns: Vec<String> = targets.iter().map(|t| thing_arn(t)).collect();
            obj.insert("targets".into(), json!(arns));
        }
    }
    Notice {
        topic: format!("$aws/events/job/{}/{operation}", job.job_id),
        doc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests_support::exec;

    fn things(execs: &[(&str, ExecStatus)]) -> ThingJobs {
        ThingJobs {
            executions: execs.iter().map(|(j, s)| exec(j, *s)).collect(),
        }
    }

    #[test]
    fn a_new_job_notifies_and_becomes_next() {
        let before = things(&[]);
        let after = things(&[("fw", ExecStatus::Queued)]);
        let out = thing_changed("t1", &before, &after, 9, |_| Some(json!({"op": "x"})));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].topic, "$aws/things/t1/jobs/notify");
        assert_eq!(out[0].doc["jobs"]["QUEUED"][0]["jobId"], "fw");
        assert!(out[0].doc["jobs"].get("IN_PROGRESS").is_none());
        assert_eq!(out[1].topic, "$aws/things/t1/jobs/notify-next");
        assert_eq!(out[1].doc["execution"]["jobDocument"]["op"], "x");
        assert_eq!(out[1].doc["execution"]["thingName"], "t1");
    }

    #[test]
    fn starting_the_next_job_tells_nobody() {
        let before = things(&[("fw", ExecStatus::Queued)]);
        let after = things(&[("fw", ExecStatus::InProgress)]);
        assert!(thing_changed("t1", &before, &after, 9, |_| None).is_empty());
    }

    #[test]
    fn finishing_the_last_job_sends_an_empty_next() {
        let before = things(&[("fw", ExecStatus::InProgress)]);
        let after = things(&[("fw", ExecStatus::Succeeded)]);
        let out = thing_changed("t1", &before, &after, 9, |_| None);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].doc, json!({"timestamp": 9, "jobs": {}}));
        assert_eq!(out[1].doc, json!({"timestamp": 9}));
    }

    #[test]
    fn execution_events_name_the_status() {
        let n = execution_event("t1", &exec("fw", ExecStatus::TimedOut), 3);
        assert_eq!(n.topic, "$aws/events/jobExecution/fw/timed_out");
        assert_eq!(n.doc["status"], "TIMED_OUT");
        assert_eq!(n.doc["thingArn"], "arn:aws:iot:local:000000000000:thing/t1");
    }
}
