//! The operator's side of Jobs (`weir jobs …`, through the admin socket or
//! on the data directory offline): create, list, describe, cancel, and
//! the executions of a job or a thing.

use super::model::{is_valid_job_id, ExecStatus, Execution, Job, JobStatus};
use super::{JobsService, Locked, Notice};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// AWS's limit on a job document.
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024;

/// One operator request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobOp {
    /// Queue `document` for every target thing (and every member of
    /// `thing_group`, resolved now).
    Create {
        job_id: String,
        #[serde(default)]
        targets: Vec<String>,
        thing_group: Option<String>,
        document: Value,
        description: Option<String>,
    },
    List,
    /// The job, with how many of its things are in each status.
    Describe {
        job_id: String,
    },
    /// The executions of a job, or of a thing.
    Executions {
        job_id: Option<String>,
        thing: Option<String>,
    },
    /// Cancel a job: its queued executions are canceled; with `force`,
    /// those in progress too.
    Cancel {
        job_id: String,
        #[serde(default)]
        force: bool,
    },
}

impl JobsService {
    /// Carry out `op`; the answer for the operator and the notices to
    /// publish.
    pub fn apply(&self, op: &JobOp, now_ms: i64) -> Result<(Value, Vec<Notice>), String> {
        let mut l = self.lock(now_ms);
        let answer = match op {
            JobOp::Create {
                job_id,
                targets,
                thing_group,
                document,
                description,
            } => create(
                &mut l,
                job_id,
                targets,
                thing_group.as_deref(),
                document,
                description,
            )?,
            JobOp::List => json!(l
                .jobs()
                .iter()
                .map(|j| json!({
                    "jobId": j.job_id,
                    "status": j.status,
                    "targets": j.target_count,
                    "createdAt": j.created_at,
                    "lastUpdatedAt": j.last_updated_at,
                    "completedAt": j.completed_at,
                }))
                .collect::<Vec<_>>()),
            JobOp::Describe { job_id } => {
                let job = known(&l, job_id)?;
                let mut v = serde_json::to_value(&job).map_err(|e| e.to_string())?;
                if let Some(obj) = v.as_object_mut() {
                    let targets = l.targets(job_id);
                    obj.remove("remaining");
                    obj.insert("targetSelection".into(), json!("SNAPSHOT"));
                    obj.insert(
                        "jobProcessDetails".into(),
                        l.process_details(&job, &targets),
                    );
                    obj.insert("targets".into(), json!(targets));
                }
                v
            }
            JobOp::Executions { job_id, thing } => {
                executions(&l, job_id.as_deref(), thing.as_deref())?
            }
            JobOp::Cancel { job_id, force } => cancel(&mut l, job_id, *force)?,
        };
        Ok((answer, std::mem::take(&mut l.notices)))
    }
}

fn known(l: &Locked<'_>, job_id: &str) -> Result<Job, String> {
    l.job(job_id).ok_or_else(|| format!("no job {job_id:?}"))
}

/// The things a job is for: the named ones and the group's members, each
/// once, checked against the registry when there is one.
fn resolve_targets(
    l: &Locked<'_>,
    targets: &[String],
    group: Option<&str>,
) -> Result<Vec<String>, String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for t in targets {
        if !weir_identity::registry::is_valid_thing_name(t) {
            return Err(format!(
                "{t:?} is not a thing name (1-128 of a-z A-Z 0-9 : _ -)"
            ));
        }
        if let Some(identity) = l.identity() {
            match identity.registry.thing(t) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(format!(
                        "no thing {t:?} in the registry (`weir things list`)"
                    ))
                }
                Err(e) => return Err(format!("registry: {e}")),
            }
        }
        if seen.insert(t.clone()) {
            out.push(t.clone());
        }
    }
    if let Some(group) = group {
        let identity = l.identity().ok_or(
            "thing groups need the fleet registry: run `weir ca init` and create things first",
        )?;
        let things = identity
            .registry
            .things()
            .map_err(|e| format!("registry: {e}"))?;
        let members: Vec<String> = things
            .into_iter()
            .filter(|t| t.groups.iter().any(|g| g == group))
            .map(|t| t.name)
            .collect();
        if members.is_empty() {
            return Err(format!("thing group {group:?} has no things"));
        }
        for m in members {
            if seen.insert(m.clone()) {
                out.push(m);
            }
        }
    }
    if out.is_empty() {
        return Err("a job needs targets: --targets <thing,…> or --thing-group <group>".into());
    }
    Ok(out)
}

fn create(
    l: &mut Locked<'_>,
    job_id: &str,
    targets: &[String],
    group: Option<&str>,
    document: &Value,
    description: &Option<String>,
) -> Result<Value, String> {
    if !is_valid_job_id(job_id) {
        return Err(format!(
            "{job_id:?} is not a job id (1-64 of a-z A-Z 0-9 _ -)"
        ));
    }
    if !document.is_object() {
        return Err("the job document must be a JSON object".into());
    }
    let size = document.to_string().len();
    if size > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "the job document is {size} bytes; the limit is {MAX_DOCUMENT_BYTES}"
        ));
    }
    if l.job(job_id).is_some() {
        return Err(format!("a job {job_id:?} already exists"));
    }
    let targets = resolve_targets(l, targets, group)?;
    let job = Job {
        job_id: job_id.to_string(),
        description: description.clone(),
        document: document.clone(),
        target_count: targets.len(),
        thing_group: group.map(str::to_string),
        status: JobStatus::InProgress,
        created_at: l.now,
        last_updated_at: l.now,
        completed_at: None,
        remaining: targets.len(),
    };
    // The job first: the notify-next of each thing carries its document.
    l.save_targets(job_id, &targets);
    l.save_job(&job);
    for thing in &targets {
        let before = l.thing(thing);
        let mut after = before.clone();
        // A job id is never reused, but an execution left by a job whose
        // record was lost must not be duplicated.
        after.executions.retain(|e| e.job_id != job_id);
        after.executions.push(Execution {
            job_id: job_id.to_string(),
            status: ExecStatus::Queued,
            status_details: BTreeMap::new(),
            queued_at: l.now,
            started_at: None,
            last_updated_at: l.now,
            version_number: 1,
            execution_number: 1,
            step_deadline: None,
        });
        l.save_thing(thing, &before, &mut after);
    }
    tracing::info!(job_id, targets = targets.len(), "job created");
    Ok(json!({
        "jobId": job_id,
        "status": job.status,
        "targets": targets,
        "createdAt": job.created_at,
    }))
}

fn executions(l: &Locked<'_>, job_id: Option<&str>, thing: Option<&str>) -> Result<Value, String> {
    match (job_id, thing) {
        (Some(job_id), Some(thing)) => {
            let job = known(l, job_id)?;
            let things = l.thing(thing);
            let exec = things
                .find(job_id)
                .ok_or_else(|| format!("thing {thing:?} has no execution of job {job_id:?}"))?;
            Ok(exec.data(thing, Some(&job.document)))
        }
        (Some(job_id), None) => {
            known(l, job_id)?;
            Ok(json!(l
                .targets(job_id)
                .iter()
                .filter_map(|t| l.thing(t).find(job_id).map(|e| e.data(t, None)))
                .collect::<Vec<_>>()))
        }
        (None, Some(thing)) => Ok(json!(l
            .thing(thing)
            .executions
            .iter()
            .map(|e| e.data(thing, None))
            .collect::<Vec<_>>())),
        (None, None) => Err("name a job, a thing, or both".into()),
    }
}

fn cancel(l: &mut Locked<'_>, job_id: &str, force: bool) -> Result<Value, String> {
    let mut job = known(l, job_id)?;
    if job.status != JobStatus::InProgress {
        return Err(format!(
            "job {job_id:?} is already {}",
            serde_json::to_value(job.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ));
    }
    job.status = JobStatus::Canceled;
    job.last_updated_at = l.now;
    l.save_job(&job);
    let mut canceled = 0;
    let mut left_running = 0;
    let targets = l.targets(job_id);
    for thing in &targets {
        let before = l.thing(thing);
        let mut after = before.clone();
        let now = l.now;
        let Some(exec) = after.find_mut(job_id) else {
            continue;
        };
        match exec.status {
            ExecStatus::Queued => {}
            ExecStatus::InProgress if force => {}
            ExecStatus::InProgress => {
                left_running += 1;
                continue;
            }
            _ => continue,
        }
        exec.status = ExecStatus::Canceled;
        exec.step_deadline = None;
        exec.last_updated_at = now;
        exec.version_number += 1;
        let exec = exec.clone();
        l.save_thing(thing, &before, &mut after);
        l.finished(thing, &exec);
        canceled += 1;
    }
    // `finished` kept the job's count of executions still running.
    let job = known(l, job_id)?;
    let details = l.process_details(&job, &targets);
    let event = super::notify::job_event(&job, "canceled", details, &targets, l.now);
    l.notices.push(event);
    tracing::info!(job_id, canceled, left_running, force, "job canceled");
    Ok(json!({
        "jobId": job_id,
        "status": job.status,
        "executionsCanceled": canceled,
        "executionsLeftInProgress": left_running,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{create_op as op, describe, ok, service, T0};
    use super::*;

    fn create_op(id: &str, targets: &[&str]) -> JobOp {
        let doc = json!({"operation": "update", "url": "https://example.com/fw.bin"});
        let JobOp::Create {
            job_id,
            targets,
            thing_group,
            document,
            ..
        } = op(id, targets, None, doc)
        else {
            unreachable!("a create request")
        };
        JobOp::Create {
            job_id,
            targets,
            thing_group,
            document,
            description: Some("firmware 2.1".into()),
        }
    }

    fn cancel(id: &str, force: bool) -> JobOp {
        JobOp::Cancel {
            job_id: id.into(),
            force,
        }
    }

    fn executions(job: Option<&str>, thing: Option<&str>) -> JobOp {
        JobOp::Executions {
            job_id: job.map(str::to_string),
            thing: thing.map(str::to_string),
        }
    }

    #[test]
    fn create_checks_before_writing() {
        let (s, _dir) = service();
        let err = |op: JobOp| s.apply(&op, T0).expect_err("refused");
        assert!(err(create_op("bad/id", &["t1"])).contains("not a job id"));
        assert!(err(create_op("j1", &[])).contains("needs targets"));
        assert!(err(create_op("j1", &["bad thing"])).contains("not a thing name"));
        assert!(err(op("j1", &["t1"], None, json!([1]))).contains("JSON object"));
        let big = json!({"blob": "x".repeat(MAX_DOCUMENT_BYTES)});
        assert!(err(op("j1", &["t1"], None, big)).contains("limit"));
        assert!(err(op("j1", &[], Some("floor-1"), json!({}))).contains("registry"));
        // Nothing was stored by the refusals.
        assert_eq!(ok(&s, JobOp::List), json!([]));
        ok(&s, create_op("j1", &["t1", "t1", "t2"]));
        assert!(err(create_op("j1", &["t3"])).contains("already exists"));
        let described = describe(&s, "j1");
        assert_eq!(described["targets"], json!(["t1", "t2"]));
        assert_eq!(described["jobProcessDetails"]["numberOfQueuedThings"], 2);
        assert_eq!(described["description"], "firmware 2.1");
    }

    #[test]
    fn thing_groups_resolve_through_the_registry() {
        let (s, _dir) = super::super::tests_support::service_with_registry(&[
            ("p1", &["floor-1"]),
            ("p2", &["floor-1", "pumps"]),
            ("p3", &["floor-2"]),
        ]);
        let doc = || json!({"operation": "reboot"});
        let refused = s
            .apply(&op("j1", &["p9"], None, doc()), T0)
            .expect_err("unknown thing");
        assert!(
            refused.contains("no thing \"p9\" in the registry"),
            "{refused}"
        );
        let refused = s
            .apply(&op("j1", &[], Some("floor-9"), doc()), T0)
            .expect_err("empty group");
        assert!(refused.contains("has no things"), "{refused}");
        let (made, notices) = s
            .apply(&op("j1", &["p3", "p2"], Some("floor-1"), doc()), T0)
            .expect("created");
        assert_eq!(made["targets"], json!(["p3", "p2", "p1"]));
        let next = notices
            .iter()
            .filter(|n| n.topic.ends_with("/notify-next"))
            .count();
        assert_eq!(next, 3, "{notices:?}");
        let described = describe(&s, "j1");
        assert_eq!(described["thingGroup"], "floor-1");
        assert_eq!(described["targetCount"], 3);
    }

    #[test]
    fn cancel_leaves_running_executions_unless_forced() {
        let (s, _dir) = service();
        ok(&s, create_op("j1", &["t1", "t2"]));
        s.handle("$aws/things/t1/jobs/start-next", b"", T0)
            .expect("started");
        let (answer, notices) = s.apply(&cancel("j1", false), T0).expect("canceled");
        assert_eq!(answer["executionsCanceled"], 1);
        assert_eq!(answer["executionsLeftInProgress"], 1);
        let topics: Vec<&str> = notices.iter().map(|n| n.topic.as_str()).collect();
        for topic in [
            "$aws/events/jobExecution/j1/canceled",
            "$aws/things/t2/jobs/notify-next",
            "$aws/events/job/j1/canceled",
        ] {
            assert!(topics.contains(&topic), "{topic} in {topics:?}");
        }
        let execs = ok(&s, executions(Some("j1"), None));
        assert_eq!(execs[0]["status"], "IN_PROGRESS");
        assert_eq!(execs[1]["status"], "CANCELED");
        // The device still finishes the one it started; the job stays canceled.
        s.handle(
            "$aws/things/t1/jobs/j1/update",
            br#"{"status":"SUCCEEDED"}"#,
            T0,
        )
        .expect("updated");
        let described = describe(&s, "j1");
        assert_eq!(described["status"], "CANCELED");
        assert_eq!(described["jobProcessDetails"]["numberOfSucceededThings"], 1);
        let twice = s.apply(&cancel("j1", true), T0).expect_err("twice");
        assert!(twice.contains("already CANCELED"), "{twice}");

        ok(&s, create_op("j2", &["t1"]));
        s.handle("$aws/things/t1/jobs/start-next", b"", T0)
            .expect("started");
        assert_eq!(ok(&s, cancel("j2", true))["executionsCanceled"], 1);
        let execs = ok(&s, executions(None, Some("t1")));
        assert_eq!(execs[1]["status"], "CANCELED");
        let one = ok(&s, executions(Some("j2"), Some("t1")));
        assert_eq!(one["jobDocument"]["operation"], "update");
        assert!(s.apply(&executions(None, None), T0).is_err());
    }
}
