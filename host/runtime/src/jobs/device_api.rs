//! The Jobs service's device MQTT API, as AWS IoT's:
//!
//! | publish on `$aws/things/<thing>/jobs/…` | operation |
//! |---|---|
//! | `get` | GetPendingJobExecutions |
//! | `start-next` | StartNextPendingJobExecution |
//! | `<jobId>/get` (`$next` for the next one) | DescribeJobExecution |
//! | `<jobId>/update` | UpdateJobExecution |
//!
//! The answer goes on the request topic plus `/accepted` or `/rejected`,
//! to the requesting connection only (as on AWS, where these answers do
//! not pass through the broker). Errors carry AWS's codes: `InvalidTopic`,
//! `InvalidJson`, `InvalidRequest`, `InvalidStateTransition`,
//! `ResourceNotFound`, `VersionMismatch`; timestamps are epoch seconds.

use super::model::{ExecStatus, Execution};
use super::{JobsService, Locked, Notice};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const PREFIX: &str = "$aws/things/";
/// AWS's limit on `clientToken`.
const MAX_CLIENT_TOKEN: usize = 64;
/// AWS's range for `stepTimeoutInMinutes` (one minute to a week).
const STEP_TIMEOUT_MINUTES: std::ops::RangeInclusive<i64> = 1..=10_080;

/// One request, parsed from its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation<'a> {
    GetPending,
    StartNext,
    Describe(&'a str),
    Update(&'a str),
    /// Under `…/jobs/` but no operation: answered `InvalidTopic`.
    Unknown,
}

/// `(thing, operation)` of a request topic, or `None` when `topic` is not
/// a Jobs request (the answer and notify topics are not requests).
pub fn parse(topic: &str) -> Option<(&str, Operation<'_>)> {
    let rest = topic.strip_prefix(PREFIX)?;
    let (thing, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("jobs/")?;
    if thing.is_empty() {
        return None;
    }
    let op = match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["get"] => Operation::GetPending,
        ["start-next"] => Operation::StartNext,
        [job, "get"] if !job.is_empty() => Operation::Describe(job),
        [job, "update"] if !job.is_empty() => Operation::Update(job),
        ["notify"] | ["notify-next"] => return None,
        [.., "accepted"] | [.., "rejected"] => return None,
        _ => Operation::Unknown,
    };
    Some((thing, op))
}

/// Is `topic` a Jobs request the host answers itself?
pub fn is_request(topic: &str) -> bool {
    parse(topic).is_some()
}

/// The answer to one request, and what it changed for others.
#[derive(Debug)]
pub struct Handled {
    /// `(topic, payload)` for the requesting connection.
    pub reply: (String, Vec<u8>),
    pub notices: Vec<Notice>,
}

/// A rejected request, in AWS's ErrorResponse shape.
struct Rejection {
    code: &'static str,
    message: String,
    state: Option<Value>,
}

impl Rejection {
    /// With the execution's state, as AWS sends for `VersionMismatch` and
    /// `InvalidStateTransition`.
    fn with_state(self, exec: &Execution) -> Rejection {
        Rejection {
            state: Some(exec.state()),
            ..self
        }
    }
}

fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
        state: None,
    }
}

impl JobsService {
    /// Answer the request published on `topic`; `None` when it is not a
    /// Jobs request.
    pub fn handle(&self, topic: &str, payload: &[u8], now_ms: i64) -> Option<Handled> {
        let (thing, op) = parse(topic)?;
        let mut l = self.lock(now_ms);
        let request = request_body(payload);
        let token = request
            .as_ref()
            .ok()
            .and_then(|r| r.get("clientToken"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let result = request.and_then(|r| {
            if token.as_ref().is_some_and(|t| t.len() > MAX_CLIENT_TOKEN) {
                return Err(reject(
                    "InvalidRequest",
                    format!("clientToken is longer than {MAX_CLIENT_TOKEN} characters"),
                ));
            }
            match op {
                Operation::GetPending => Ok(get_pending(&l, thing)),
                Operation::StartNext => start_next(&mut l, thing, &r),
                Operation::Describe(job) => describe(&l, thing, job, &r),
                Operation::Update(job) => update(&mut l, thing, job, &r),
                Operation::Unknown => Err(reject(
                    "InvalidTopic",
                    format!("{topic} is not a Jobs API operation"),
                )),
            }
        });
        let (suffix, mut body) = match result {
            Ok(body) => ("accepted", body),
            Err(r) => {
                let mut body = json!({"code": r.code, "message": r.message});
                if let (Some(state), Some(obj)) = (r.state, body.as_object_mut()) {
                    obj.insert("executionState".into(), state);
                }
                ("rejected", body)
            }
        };
        if let Some(obj) = body.as_object_mut() {
            obj.insert("timestamp".into(), json!(l.now));
            if let Some(t) = token {
                obj.insert("clientToken".into(), json!(t));
            }
        }
        Some(Handled {
            reply: (format!("{topic}/{suffix}"), body.to_string().into_bytes()),
            notices: std::mem::take(&mut l.notices),
        })
    }
}

/// The request's JSON object; an empty payload is `{}`.
fn request_body(payload: &[u8]) -> Result<Map<String, Value>, Rejection> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(reject(
            "InvalidRequest",
            "the request must be a JSON object",
        )),
        Err(e) => Err(reject(
            "InvalidJson",
            format!("the request is not valid JSON: {e}"),
        )),
    }
}

fn get_pending(l: &Locked<'_>, thing: &str) -> Value {
    let (queued, in_progress) = super::notify::pending(&l.thing(thing));
    json!({"inProgressJobs": in_progress, "queuedJobs": queued})
}

/// `statusDetails`: a map of strings, or absent.
fn status_details(r: &Map<String, Value>) -> Result<Option<BTreeMap<String, String>>, Rejection> {
    let Some(v) = r.get("statusDetails") else {
        return Ok(None);
    };
    let Value::Object(m) = v else {
        return Err(reject("InvalidRequest", "statusDetails must be an object"));
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let Value::String(s) = v else {
            return Err(reject(
                "InvalidRequest",
                format!("statusDetails.{k} must be a string"),
            ));
        };
        out.insert(k.clone(), s.clone());
    }
    Ok(Some(out))
}

/// The step deadline a `stepTimeoutInMinutes` sets, if given.
fn step_deadline(r: &Map<String, Value>, now: i64) -> Result<Option<i64>, Rejection> {
    match r.get("stepTimeoutInMinutes") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(m) if STEP_TIMEOUT_MINUTES.contains(&m) => Ok(Some(now + m * 60)),
            _ => Err(reject(
                "InvalidRequest",
                "stepTimeoutInMinutes must be a whole number of minutes from 1 to 10080",
            )),
        },
    }
}

fn not_found(thing: &str, job: &str) -> Rejection {
    reject(
        "ResourceNotFound",
        format!("no job execution of job {job} for thing {thing}"),
    )
}

fn start_next(l: &mut Locked<'_>, thing: &str, r: &Map<String, Value>) -> Result<Value, Rejection> {
    let details = status_details(r)?;
    let deadline = step_deadline(r, l.now)?;
    let before = l.thing(thing);
    let mut after = before.clone();
    let Some(next_id) = after.next().map(|e| e.job_id.clone()) else {
        return Ok(json!({}));
    };
    let now = l.now;
    let exec = after
        .find_mut(&next_id)
        .ok_or_else(|| not_found(thing, &next_id))?;
    let mut changed = false;
    if exec.status == ExecStatus::Queued {
        exec.status = ExecStatus::InProgress;
        exec.started_at = Some(now);
        changed = true;
    }
    if let Some(d) = details {
        exec.status_details = d;
        changed = true;
    }
    if deadline.is_some() {
        exec.step_deadline = deadline;
        changed = true;
    }
    if changed {
        exec.last_updated_at = now;
        exec.version_number += 1;
    }
    let exec = exec.clone();
    if changed {
        l.save_thing(thing, &before, &mut after);
    }
    let document = l.job(&exec.job_id).map(|j| j.document);
    Ok(json!({"execution": exec.data(thing, document.as_ref())}))
}

fn describe(
    l: &Locked<'_>,
    thing: &str,
    job: &str,
    r: &Map<String, Value>,
) -> Result<Value, Rejection> {
    let things = l.thing(thing);
    let exec = if job == "$next" {
        match things.next() {
            Some(e) => e,
            None => return Ok(json!({})),
        }
    } else {
        things.find(job).ok_or_else(|| not_found(thing, job))?
    };
    check_execution_number(r, exec, thing, job)?;
    let include_document = r
        .get("includeJobDocument")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let document = include_document
        .then(|| l.job(&exec.job_id).map(|j| j.document))
        .flatten();
    Ok(json!({"execution": exec.data(thing, document.as_ref())}))
}

fn check_execution_number(
    r: &Map<String, Value>,
    exec: &Execution,
    thing: &str,
    job: &str,
) -> Result<(), Rejection> {
    match r.get("executionNumber").and_then(Value::as_u64) {
        Some(n) if n != exec.execution_number => Err(not_found(thing, job)),
        _ => Ok(()),
    }
}

fn update(
    l: &mut Locked<'_>,
    thing: &str,
    job: &str,
    r: &Map<String, Value>,
) -> Result<Value, Rejection> {
    let status = match r.get("status") {
        Some(Value::String(s)) => ExecStatus::from_device(s).ok_or_else(|| {
            reject(
                "InvalidRequest",
                format!("status {s:?} cannot be set by a device (IN_PROGRESS, SUCCEEDED, FAILED or REJECTED)"),
            )
        })?,
        Some(_) => return Err(reject("InvalidRequest", "status must be a string")),
        None => return Err(reject("InvalidRequest", "Missing required node: status")),
    };
    let details = status_details(r)?;
    let deadline = step_deadline(r, l.now)?;
    let before = l.thing(thing);
    let mut after = before.clone();
    let now = l.now;
    let exec = after.find_mut(job).ok_or_else(|| not_found(thing, job))?;
    check_execution_number(r, exec, thing, job)?;
    if let Some(expected) = r.get("expectedVersion") {
        if expected.as_u64() != Some(exec.version_number) {
            return Err(reject(
                "VersionMismatch",
                format!(
                    "expected version {expected}, the execution is at version {}",
                    exec.version_number
                ),
            )
            .with_state(exec));
        }
    }
    if exec.status.is_terminal() {
        return Err(reject(
            "InvalidStateTransition",
            format!(
                "the job execution is already {} and cannot change to {}",
                exec.status.as_str(),
                status.as_str()
            ),
        )
        .with_state(exec));
    }
    if exec.started_at.is_none() {
        exec.started_at = Some(now);
    }
    exec.status = status;
    if let Some(d) = details {
        exec.status_details = d;
    }
    exec.step_deadline = if status.is_terminal() {
        None
    } else {
        deadline.or(exec.step_deadline)
    };
    exec.last_updated_at = now;
    exec.version_number += 1;
    let exec = exec.clone();
    l.save_thing(thing, &before, &mut after);
    if status.is_terminal() {
        l.finished(thing, &exec);
    }
    let mut body = Map::new();
    if r.get("includeJobExecutionState").and_then(Value::as_bool) == Some(true) {
        body.insert("executionState".into(), exec.state());
    }
    if r.get("includeJobDocument").and_then(Value::as_bool) == Some(true) {
        if let Some(job) = l.job(&exec.job_id) {
            body.insert("jobDocument".into(), job.document);
        }
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{create_op, service, T0};
    use super::*;

    fn ask(s: &JobsService, topic: &str, body: Value) -> (String, Value) {
        let h = s
            .handle(topic, body.to_string().as_bytes(), T0 + 1000)
            .expect("a jobs request");
        let v = serde_json::from_slice(&h.reply.1).expect("json answer");
        (h.reply.0, v)
    }

    fn create(s: &JobsService, id: &str, targets: &[&str]) -> Vec<Notice> {
        let op = create_op(id, targets, None, json!({"operation": "reboot", "job": id}));
        s.apply(&op, T0).expect("created").1
    }

    #[test]
    fn topics() {
        assert_eq!(
            parse("$aws/things/t/jobs/get"),
            Some(("t", Operation::GetPending))
        );
        assert_eq!(
            parse("$aws/things/t/jobs/start-next"),
            Some(("t", Operation::StartNext))
        );
        assert_eq!(
            parse("$aws/things/t/jobs/j1/get"),
            Some(("t", Operation::Describe("j1")))
        );
        assert_eq!(
            parse("$aws/things/t/jobs/$next/get"),
            Some(("t", Operation::Describe("$next")))
        );
        assert_eq!(
            parse("$aws/things/t/jobs/j1/update"),
            Some(("t", Operation::Update("j1")))
        );
        assert_eq!(
            parse("$aws/things/t/jobs/j1/delete"),
            Some(("t", Operation::Unknown))
        );
        assert_eq!(parse("$aws/things/t/jobs/notify"), None);
        assert_eq!(parse("$aws/things/t/jobs/notify-next"), None);
        assert_eq!(parse("$aws/things/t/jobs/get/accepted"), None);
        assert_eq!(parse("$aws/things/t/shadow/get"), None);
        assert_eq!(parse("dt/t/jobs/get"), None);
    }

    #[test]
    fn a_device_runs_its_jobs_in_order() {
        let (s, _dir) = service();
        let notices = create(&s, "j1", &["t1", "t2"]);
        let topics: Vec<&str> = notices.iter().map(|n| n.topic.as_str()).collect();
        assert!(
            topics.contains(&"$aws/things/t1/jobs/notify-next"),
            "{topics:?}"
        );
        assert!(topics.contains(&"$aws/things/t2/jobs/notify"), "{topics:?}");
        create(&s, "j2", &["t1"]);

        let (topic, pending) = ask(&s, "$aws/things/t1/jobs/get", json!({"clientToken": "c1"}));
        assert_eq!(topic, "$aws/things/t1/jobs/get/accepted");
        assert_eq!(pending["clientToken"], "c1");
        assert_eq!(pending["timestamp"], T0 / 1000 + 1);
        assert_eq!(pending["queuedJobs"][0]["jobId"], "j1");
        assert_eq!(pending["queuedJobs"][1]["jobId"], "j2");

        let (_, next) = ask(
            &s,
            "$aws/things/t1/jobs/start-next",
            json!({"statusDetails": {"step": "download"}}),
        );
        let e = &next["execution"];
        assert_eq!(e["jobId"], "j1");
        assert_eq!(e["status"], "IN_PROGRESS");
        assert_eq!(e["versionNumber"], 2);
        assert_eq!(e["statusDetails"]["step"], "download");
        assert_eq!(e["jobDocument"]["operation"], "reboot");

        let (topic, stale) = ask(
            &s,
            "$aws/things/t1/jobs/j1/update",
            json!({"status": "SUCCEEDED", "expectedVersion": 1}),
        );
        assert_eq!(topic, "$aws/things/t1/jobs/j1/update/rejected");
        assert_eq!(stale["code"], "VersionMismatch");
        assert_eq!(stale["executionState"]["versionNumber"], 2);

        let h = s
            .handle(
                "$aws/things/t1/jobs/j1/update",
                json!({"status": "SUCCEEDED", "expectedVersion": 2, "includeJobExecutionState": true}).to_string().as_bytes(),
                T0 + 2000,
            )
            .expect("handled");
        let done: Value = serde_json::from_slice(&h.reply.1).expect("json");
        assert_eq!(h.reply.0, "$aws/things/t1/jobs/j1/update/accepted");
        assert_eq!(done["executionState"]["status"], "SUCCEEDED");
        assert!(done.get("jobDocument").is_none());
        let topics: Vec<&str> = h.notices.iter().map(|n| n.topic.as_str()).collect();
        assert!(
            topics.contains(&"$aws/events/jobExecution/j1/succeeded"),
            "{topics:?}"
        );
        let next = h
            .notices
            .iter()
            .find(|n| n.topic.ends_with("notify-next"))
            .expect("next changed");
        assert_eq!(next.doc["execution"]["jobId"], "j2");
        // t2 has not finished: the job is not complete yet.
        assert!(
            !topics.iter().any(|t| t.starts_with("$aws/events/job/")),
            "{topics:?}"
        );

        let (_, again) = ask(
            &s,
            "$aws/things/t1/jobs/j1/update",
            json!({"status": "FAILED"}),
        );
        assert_eq!(again["code"], "InvalidStateTransition");
        assert_eq!(again["executionState"]["status"], "SUCCEEDED");

        let (_, next) = ask(
            &s,
            "$aws/things/t1/jobs/$next/get",
            json!({"includeJobDocument": false}),
        );
        assert_eq!(next["execution"]["jobId"], "j2");
        assert!(next["execution"].get("jobDocument").is_none());

        // t2 rejects j1: the last execution, so the job completes.
        let h = s
            .handle(
                "$aws/things/t2/jobs/j1/update",
                br#"{"status":"REJECTED","statusDetails":{"why":"busy"}}"#,
                T0 + 3000,
            )
            .expect("handled");
        let completed = h
            .notices
            .iter()
            .find(|n| n.topic == "$aws/events/job/j1/completed")
            .expect("job completed event");
        assert_eq!(
            completed.doc["jobProcessDetails"]["numberOfSucceededThings"],
            1
        );
        assert_eq!(
            completed.doc["jobProcessDetails"]["numberOfRejectedThings"],
            1
        );
        assert_eq!(completed.doc["status"], "COMPLETED");
    }

    #[test]
    fn bad_requests_get_aws_codes() {
        let (s, _dir) = service();
        create(&s, "j1", &["t1"]);
        let bad = |topic: &str, payload: &[u8]| -> Value {
            let h = s.handle(topic, payload, T0).expect("handled");
            assert!(h.reply.0.ends_with("/rejected"), "{}", h.reply.0);
            serde_json::from_slice(&h.reply.1).expect("json")
        };
        assert_eq!(
            bad("$aws/things/t1/jobs/get", b"{nope")["code"],
            "InvalidJson"
        );
        assert_eq!(
            bad("$aws/things/t1/jobs/get", b"[1]")["code"],
            "InvalidRequest"
        );
        assert_eq!(
            bad("$aws/things/t1/jobs/j1/update", b"{}")["code"],
            "InvalidRequest"
        );
        assert_eq!(
            bad("$aws/things/t1/jobs/j1/update", br#"{"status":"QUEUED"}"#)["code"],
            "InvalidRequest"
        );
        assert_eq!(
            bad(
                "$aws/things/t1/jobs/j1/update",
                br#"{"status":"IN_PROGRESS","statusDetails":{"n":1}}"#
            )["code"],
            "InvalidRequest"
        );
        assert_eq!(
            bad(
                "$aws/things/t1/jobs/j1/update",
                br#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":0}"#
            )["code"],
            "InvalidRequest"
        );
        assert_eq!(
            bad("$aws/things/t1/jobs/nope/get", b"")["code"],
            "ResourceNotFound"
        );
        assert_eq!(
            bad(
                "$aws/things/t9/jobs/j1/update",
                br#"{"status":"SUCCEEDED"}"#
            )["code"],
            "ResourceNotFound"
        );
        assert_eq!(
            bad("$aws/things/t1/jobs/j1/get", br#"{"executionNumber":7}"#)["code"],
            "ResourceNotFound"
        );
        assert_eq!(
            bad("$aws/things/t1/jobs/j1/cancel", b"")["code"],
            "InvalidTopic"
        );
        let long = format!(r#"{{"clientToken":"{}"}}"#, "x".repeat(65));
        assert_eq!(
            bad("$aws/things/t1/jobs/get", long.as_bytes())["code"],
            "InvalidRequest"
        );
        // An empty get is a get, and nothing pending is an empty answer.
        let h = s
            .handle("$aws/things/t5/jobs/start-next", b"", T0)
            .expect("handled");
        assert_eq!(h.reply.0, "$aws/things/t5/jobs/start-next/accepted");
        let v: Value = serde_json::from_slice(&h.reply.1).expect("json");
        assert!(v.get("execution").is_none(), "{v}");
    }

    #[test]
    fn a_step_timer_times_the_execution_out() {
        let (s, _dir) = service();
        create(&s, "j1", &["t1"]);
        ask(
            &s,
            "$aws/things/t1/jobs/start-next",
            json!({"stepTimeoutInMinutes": 2}),
        );
        assert!(s.expire(T0 + 60_000).is_empty(), "not yet");
        // A new timer replaces the old one.
        ask(
            &s,
            "$aws/things/t1/jobs/j1/update",
            json!({"status": "IN_PROGRESS", "stepTimeoutInMinutes": 5}),
        );
        assert!(
            s.expire(T0 + 200_000).is_empty(),
            "the first timer was replaced"
        );
        let notices = s.expire(T0 + 1000 + 5 * 60_000);
        let topics: Vec<&str> = notices.iter().map(|n| n.topic.as_str()).collect();
        assert!(
            topics.contains(&"$aws/events/jobExecution/j1/timed_out"),
            "{topics:?}"
        );
        assert!(
            topics.contains(&"$aws/events/job/j1/completed"),
            "{topics:?}"
        );
        let (_, e) = ask(&s, "$aws/things/t1/jobs/j1/get", json!({}));
        assert_eq!(e["execution"]["status"], "TIMED_OUT");
        // Timers survive a restart of the service on the same store.
        create(&s, "j2", &["t1"]);
        ask(
            &s,
            "$aws/things/t1/jobs/start-next",
            json!({"stepTimeoutInMinutes": 1}),
        );
        let reopened = JobsService::open(s.kv.clone(), None);
        assert_eq!(
            reopened.expire(T0 + 1000 + 61_000).len(),
            4,
            "timed out, job completed, notify, notify-next"
        );
    }
}
