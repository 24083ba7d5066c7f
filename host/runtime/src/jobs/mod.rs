//! AWS IoT Jobs: remote operations (a firmware update, a reboot, a config
//! change) sent to things and tracked per thing.
//!
//! - The operator's side ([`control`], `weir jobs …` through the admin
//!   socket): create a job (a JSON document for a list of things or a
//!   thing group), list and describe jobs and their executions, cancel.
//! - The device's side ([`device_api`]): AWS's MQTT API on
//!   `$aws/things/<thing>/jobs/…` (GetPendingJobExecutions,
//!   StartNextPendingJobExecution, DescribeJobExecution,
//!   UpdateJobExecution), answered to the requesting connection on
//!   `…/accepted` or `…/rejected`, as AWS's Device SDKs expect.
//! - What changes tells the fleet ([`notify`]): `…/jobs/notify` and
//!   `…/jobs/notify-next` to the thing's subscribers, and AWS's job events
//!   (`$aws/events/job/<job>/…`, `$aws/events/jobExecution/<job>/…`) to
//!   subscribers and rules.
//!
//! State lives in the host's key-value store: one record per job
//! (`$jobs`) and its target list (`$job-targets`), one per thing with its
//! executions (`$job-executions`: the pending ones and the last 100 done),
//! and the step timers of executions in progress (`$job-timers`). One lock
//! serializes changes; jobs are control traffic, not telemetry.

pub mod control;
pub mod device_api;
pub mod model;
pub mod notify;

use crate::identity::IdentityService;
use crate::store::KvStore;
use model::{ExecStatus, Execution, Job, JobStatus, ThingJobs};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

pub use control::JobOp;

const JOBS: &str = "$jobs";
const TARGETS: &str = "$job-targets";
const THINGS: &str = "$job-executions";
const TIMERS: &str = "$job-timers";

/// A message the service publishes: to the broker's subscribers and to
/// the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub topic: String,
    pub doc: Value,
}

/// The jobs of one instance (or of a data directory, offline).
pub struct JobsService {
    kv: Arc<KvStore>,
    /// Serializes every change; holds the step timers, soonest first.
    timers: Mutex<BTreeSet<Timer>>,
    /// The fleet registry, when there is one: job targets must be things
    /// in it, and thing groups are resolved through it.
    identity: Option<Arc<IdentityService>>,
}

/// An execution's step deadline (epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    deadline: i64,
    thing: String,
    job_id: String,
}

/// Held while changing jobs: the step timers, and the store access that
/// is only safe under the lock.
pub(crate) struct Locked<'a> {
    service: &'a JobsService,
    timers: MutexGuard<'a, BTreeSet<Timer>>,
    /// Epoch seconds of this change.
    pub now: i64,
    pub notices: Vec<Notice>,
    /// Jobs read during this change: a job made for 100,000 things is
    /// read once, not once per thing.
    jobs: RefCell<HashMap<String, Option<Job>>>,
}

impl JobsService {
    /// Open the jobs kept in `kv`, with their pending step timers.
    pub fn open(kv: Arc<KvStore>, identity: Option<Arc<IdentityService>>) -> JobsService {
        let mut timers = BTreeSet::new();
        for key in kv.keys(TIMERS).unwrap_or_default() {
            let deadline = kv
                .get(TIMERS, &key)
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<i64>().ok());
            if let (Some(deadline), Some((thing, job_id))) = (deadline, key.split_once('/')) {
                timers.insert(Timer {
                    deadline,
                    thing: thing.to_string(),
                    job_id: job_id.to_string(),
                });
            }
        }
        JobsService {
            kv,
            timers: Mutex::new(timers),
            identity,
        }
    }

    pub(crate) fn lock(&self, now_ms: i64) -> Locked<'_> {
        Locked {
            service: self,
            timers: self.timers.lock().unwrap_or_else(|p| p.into_inner()),
            now: now_ms.div_euclid(1000),
            notices: Vec::new(),
            jobs: RefCell::new(HashMap::new()),
        }
    }

    /// Time out the executions whose step timer ran out by `now_ms`; the
    /// notices to publish.
    pub fn expire(&self, now_ms: i64) -> Vec<Notice> {
        let mut l = self.lock(now_ms);
        loop {
            let due = match l.timers.first() {
                Some(t) if t.deadline <= l.now => t.clone(),
                _ => break,
            };
            l.timers.remove(&due);
            self.kv
                .delete(TIMERS, &format!("{}/{}", due.thing, due.job_id));
            let mut things = l.thing(&due.thing);
            let before = things.clone();
            let Some(exec) = things.find_mut(&due.job_id) else {
                continue;
            };
            if exec.status != ExecStatus::InProgress || exec.step_deadline != Some(due.deadline) {
                continue;
            }
            exec.status = ExecStatus::TimedOut;
            exec.step_deadline = None;
            exec.last_updated_at = l.now;
            exec.version_number += 1;
            let exec = exec.clone();
            tracing::info!(thing = %due.thing, job_id = %due.job_id, "job execution timed out (step timer)");
            l.save_thing(&due.thing, &before, &mut things);
            l.finished(&due.thing, &exec);
        }
        l.notices
    }
}

impl Locked<'_> {
    fn kv(&self) -> &KvStore {
        &self.service.kv
    }

    pub fn job(&self, job_id: &str) -> Option<Job> {
        if let Some(job) = self.jobs.borrow().get(job_id) {
            return job.clone();
        }
        let job = self.kv().get(JOBS, job_id).ok().flatten().and_then(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| {
                    tracing::error!(job_id, error = %e, "unreadable job record; treating the job as absent");
                })
                .ok()
        });
        self.jobs
            .borrow_mut()
            .insert(job_id.to_string(), job.clone());
        job
    }

    pub fn jobs(&self) -> Vec<Job> {
        let keys = self.kv().keys(JOBS).unwrap_or_default();
        keys.iter().filter_map(|k| self.job(k)).collect()
    }

    pub fn save_job(&self, job: &Job) {
        match serde_json::to_vec(job) {
            Ok(bytes) => self.kv().set(JOBS, &job.job_id, bytes),
            Err(e) => tracing::error!(job_id = %job.job_id, error = %e, "cannot encode a job"),
        }
        self.jobs
            .borrow_mut()
            .insert(job.job_id.clone(), Some(job.clone()));
    }

    /// The things a job was made for.
    pub fn targets(&self, job_id: &str) -> Vec<String> {
        self.kv()
            .get(TARGETS, job_id)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn save_targets(&self, job_id: &str, targets: &[String]) {
        match serde_json::to_vec(targets) {
            Ok(bytes) => self.kv().set(TARGETS, job_id, bytes),
            Err(e) => tracing::error!(job_id, error = %e, "cannot encode a job's targets"),
        }
    }

    pub fn thing(&self, thing: &str) -> ThingJobs {
        let Some(bytes) = self.kv().get(THINGS, thing).ok().flatten() else {
            return ThingJobs::default();
        };
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::error!(thing, error = %e, "unreadable job executions record; starting it afresh");
            ThingJobs::default()
        })
    }

    /// Store a thing's executions and tell it what changed since `before`
    /// (`notify` when its pending list gained or lost a job, `notify-next`
    /// when its next job is another), and keep its step timers.
    pub fn save_thing(&mut self, thing: &str, before: &ThingJobs, after: &mut ThingJobs) {
        after.trim_history();
        match serde_json::to_vec(&*after) {
            Ok(bytes) => self.kv().set(THINGS, thing, bytes),
            Err(e) => tracing::error!(thing, error = %e, "cannot encode job executions"),
        }
        for exec in &after.executions {
            let old = before.find(&exec.job_id).and_then(|e| e.step_deadline);
            if old == exec.step_deadline {
                continue;
            }
            let key = format!("{thing}/{}", exec.job_id);
            if let Some(deadline) = old {
                self.timers.remove(&Timer {
                    deadline,
                    thing: thing.to_string(),
                    job_id: exec.job_id.clone(),
                });
            }
            match exec.step_deadline {
                Some(deadline) => {
                    self.timers.insert(Timer {
                        deadline,
                        thing: thing.to_string(),
                        job_id: exec.job_id.clone(),
                    });
                    self.kv()
                        .set(TIMERS, &key, deadline.to_string().into_bytes());
                }
                None => self.kv().delete(TIMERS, &key),
            }
        }
        let now = self.now;
        let documents = |job_id: &str| self.job(job_id).map(|j| j.document);
        let notices = notify::thing_changed(thing, before, after, now, documents);
        self.notices.extend(notices);
    }

    /// An execution reached a terminal status: its event, and the job's
    /// completion when it was the last.
    pub fn finished(&mut self, thing: &str, exec: &Execution) {
        self.notices
            .push(notify::execution_event(thing, exec, self.now));
        let Some(mut job) = self.job(&exec.job_id) else {
            return;
        };
        job.remaining = job.remaining.saturating_sub(1);
        job.last_updated_at = self.now;
        if job.remaining == 0 && job.status == JobStatus::InProgress {
            job.status = JobStatus::Completed;
            job.completed_at = Some(self.now);
            let targets = self.targets(&job.job_id);
            let details = self.process_details(&job, &targets);
            self.notices.push(notify::job_event(
                &job,
                "completed",
                details,
                &targets,
                self.now,
            ));
        }
        self.save_job(&job);
    }

    /// AWS's jobProcessDetails: how many of the job's things are in each
    /// status.
    pub fn process_details(&self, job: &Job, targets: &[String]) -> Value {
        let mut counts = std::collections::BTreeMap::<&'static str, u64>::new();
        for status in [
            ExecStatus::Queued,
            ExecStatus::InProgress,
            ExecStatus::Succeeded,
            ExecStatus::Failed,
            ExecStatus::Rejected,
            ExecStatus::TimedOut,
            ExecStatus::Canceled,
            ExecStatus::Removed,
        ] {
            counts.insert(notify::count_field(status), 0);
        }
        for thing in targets {
            if let Some(e) = self.thing(thing).find(&job.job_id) {
                *counts.entry(notify::count_field(e.status)).or_default() += 1;
            }
        }
        serde_json::to_value(counts).unwrap_or_default()
    }

    /// The registry, when there is one.
    pub fn identity(&self) -> Option<&IdentityService> {
        self.service.identity.as_deref()
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A moment all tests use (ms).
    pub const T0: i64 = 1_764_300_000_000;

    /// An execution queued at second 5, at version 1.
    pub fn exec(job: &str, status: ExecStatus) -> Execution {
        Execution {
            job_id: job.into(),
            status,
            status_details: Default::default(),
            queued_at: 5,
            started_at: None,
            last_updated_at: 5,
            version_number: 1,
            execution_number: 1,
            step_deadline: None,
        }
    }

    /// A create request.
    pub fn create_op(id: &str, targets: &[&str], group: Option<&str>, document: Value) -> JobOp {
        JobOp::Create {
            job_id: id.into(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            thing_group: group.map(str::to_string),
            document,
            description: None,
        }
    }

    /// Carry out `op` at T0, which must succeed; the answer.
    pub fn ok(s: &JobsService, op: JobOp) -> Value {
        s.apply(&op, T0).expect("operation done").0
    }

    /// `weir jobs describe <id>`.
    pub fn describe(s: &JobsService, id: &str) -> Value {
        ok(s, JobOp::Describe { job_id: id.into() })
    }

    /// A directory removed when the test ends.
    pub struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A service on a fresh store in a temporary directory.
    pub fn service() -> (JobsService, Dir) {
        let dir = std::env::temp_dir().join(format!("weir-jobs-{}", uuid::Uuid::new_v4()));
        let kv = KvStore::open(&dir.join("state.redb")).expect("open store");
        (JobsService::open(Arc::new(kv), None), Dir(dir))
    }

    /// The same with a fleet registry holding `things` (name, groups).
    pub fn service_with_registry(things: &[(&str, &[&str])]) -> (JobsService, Dir) {
        let dir = std::env::temp_dir().join(format!("weir-jobs-{}", uuid::Uuid::new_v4()));
        let identity_dir = dir.join("identity");
        weir_identity::FleetCa::init(&identity_dir, "test fleet", &[]).expect("CA");
        let identity = IdentityService::open(&identity_dir, Default::default()).expect("identity");
        for (name, groups) in things {
            identity
                .registry
                .put_thing(&weir_identity::registry::Thing {
                    name: name.to_string(),
                    thing_type: None,
                    attributes: Default::default(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                    created_at_ms: 0,
                    version: 1,
                })
                .expect("thing");
        }
        let kv = KvStore::open(&dir.join("state.redb")).expect("open store");
        (
            JobsService::open(Arc::new(kv), Some(Arc::new(identity))),
            Dir(dir),
        )
    }
}
