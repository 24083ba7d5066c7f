//! The threads that storage writes run on, below the engine's priority.
//!
//! Writing a batch to the embedded time-series store or the Parquet
//! archive, or flushing plugin state to the key-value store, is throughput
//! work: minutes of backlog can wait a few milliseconds. An alert cannot.
//! On a small machine both compete for the same cores, and a redb commit
//! running beside the engine's workers showed up as tens of milliseconds on
//! publish → alert. So the writes run on a small pool of threads that lower
//! their own scheduling priority (nice 10, Linux; elsewhere they run at
//! normal priority): when the engine needs a core it gets it, and the
//! writes use whatever is left (a nice-10 thread still gets about a tenth
//! of a busy core). Under sustained overload the storage outboxes fill, the
//! gate closes and ingestion slows, so the writes are never starved for
//! long.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

/// The nice value of the pool's threads.
pub const NICE: i32 = 10;

/// Threads in the pool: two, so the time-series and archive writes (its
/// main users, with the key-value flush and periodic storage jobs) do not
/// wait for each other.
const THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

fn pool() -> &'static Mutex<mpsc::Sender<Job>> {
    static POOL: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("weir-storage-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            // A panicking job drops its result sender (its
                            // caller sees `None`); the thread carries on.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a storage thread");
            }
        }
        Mutex::new(tx)
    })
}

/// Lower the calling thread's priority to [`NICE`] (Linux, where the nice
/// value is per thread). Failure only costs latency, so it is logged.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority has no memory-safety preconditions; `who = 0`
        // is the calling thread on Linux.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
        if rc != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot lower the priority of a storage thread"
            );
        }
    }
}

/// Run `f` on the pool and wait for its result. `None` if the pool could not
/// run it (no thread, or `f` panicked).
pub async fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    let sent = match pool().lock() {
        Ok(sender) => sender.send(job),
        Err(poisoned) => poisoned.into_inner().send(job),
    };
    sent.ok()?;
    rx.await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the calling thread.
    #[cfg(target_os = "linux")]
    fn nice() -> i32 {
        // SAFETY: getpriority has no preconditions (errno is not checked:
        // -1 is a valid nice value but not one this test expects).
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[tokio::test]
    async fn jobs_run_on_lowered_threads_and_return_their_result() {
        let (name, niceness) = run(|| {
            let name = std::thread::current().name().map(String::from);
            #[cfg(target_os = "linux")]
            let n = nice();
            #[cfg(not(target_os = "linux"))]
            let n = NICE;
            (name, n)
        })
        .await
        .expect("ran");
        assert!(name.is_some_and(|n| n.starts_with("weir-storage-")));
        assert!(niceness >= NICE, "nice {niceness}");
        // The caller's own priority is untouched.
        #[cfg(target_os = "linux")]
        assert!(nice() < NICE);
        // A panicking job is reported as not run, and the pool keeps working.
        assert!(run(|| -> u8 { panic!("boom") }).await.is_none());
        assert_eq!(run(|| 7).await, Some(7));
    }
}
