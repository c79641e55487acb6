//! Core tasks and their failure: a node is never left half-alive.
//!
//! A core task (the SIP agent's transport and dispatch loops, a media
//! shard's thread, the CDR writer, the uploader, the webhook worker) runs
//! until the node stops. If one ends before that, by a panic or on its
//! own, its owner's [`CoreFailure`] says so, the owner's service returns an
//! error, and the node turns unready, drains its calls and exits non-zero
//! for its supervisor (systemd, Kubernetes) to restart it. Restarting the
//! task in place could leave state it shared half-updated; a restart of
//! the whole process cannot.
//!
//! A panic while handling one call is contained where the call's code
//! runs (its control task, its media's slot in a shard) and ends that call
//! alone; it never reaches this module.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use futures_util::FutureExt as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The first core task of one owner that stopped before it was asked to.
/// Cheap to clone; every clone reports to the same owner.
#[derive(Clone, Debug, Default)]
pub struct CoreFailure {
    failed: CancellationToken,
    first: Arc<OnceLock<&'static str>>,
}

impl CoreFailure {
    /// `part` stopped on its own (`panicked` if by a panic). The first
    /// report stands.
    pub fn report(&self, part: &'static str, panicked: bool) {
        if self.first.set(part).is_ok() {
            let how = match panicked {
                true => "panicked",
                false => "stopped on its own",
            };
            tracing::error!(part, "a core task {how}: the node stops");
        }
        self.failed.cancel();
    }

    /// Waits for a failure and names the part that failed first.
    pub async fn wait(&self) -> &'static str {
        self.failed.cancelled().await;
        self.first.get().copied().unwrap_or("a core task")
    }

    pub fn has_failed(&self) -> bool {
        self.failed.is_cancelled()
    }
}

/// Spawns `task` as core task `part`: if it ends, or panics, before
/// `stopping` is cancelled, `failure` hears of it. The handle completes
/// when the task does, however it ends.
pub fn spawn_core<F>(
    part: &'static str,
    task: F,
    stopping: CancellationToken,
    failure: CoreFailure,
) -> JoinHandle<()>
where
    F: Future + Send + 'static,
{
    tokio::spawn(async move {
        let ended = AssertUnwindSafe(task).catch_unwind().await;
        if !stopping.is_cancelled() {
            failure.report(part, ended.is_err());
        }
    })
}

/// Watches core task `part`, already spawned as `task`, as
/// [`spawn_core`] would have.
pub fn watch_core<T: Send + 'static>(
    part: &'static str,
    task: JoinHandle<T>,
    stopping: CancellationToken,
    failure: CoreFailure,
) -> JoinHandle<()> {
    spawn_core(
        part,
        async move {
            if let Err(error) = task.await
                && let Ok(panic) = error.try_into_panic()
            {
                std::panic::resume_unwind(panic);
            }
        },
        stopping,
        failure,
    )
}

/// Reports to `failure` if the thread it lives on unwinds from a panic;
/// create one at the top of a core thread.
pub struct ThreadWatch {
    pub part: &'static str,
    pub failure: CoreFailure,
}

impl Drop for ThreadWatch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.failure.report(self.part, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_task_that_panics_before_the_stop_is_reported_by_name() {
        let (stopping, failure) = (CancellationToken::new(), CoreFailure::default());
        let task = spawn_core(
            "uploader",
            async { panic!("boom") },
            stopping.clone(),
            failure.clone(),
        );
        task.await.unwrap();
        let part = tokio::time::timeout(Duration::from_secs(1), failure.wait()).await;
        assert_eq!(part.unwrap(), "uploader");
    }

    #[tokio::test]
    async fn a_task_that_returns_early_fails_and_one_stopped_on_request_does_not() {
        let (stopping, failure) = (CancellationToken::new(), CoreFailure::default());
        spawn_core("sweeper", async {}, stopping.clone(), failure.clone())
            .await
            .unwrap();
        assert!(failure.has_failed());

        let (stopping, failure) = (CancellationToken::new(), CoreFailure::default());
        let waits = stopping.clone();
        let task = spawn_core(
            "worker",
            async move { waits.cancelled().await },
            stopping.clone(),
            failure.clone(),
        );
        stopping.cancel();
        task.await.unwrap();
        assert!(!failure.has_failed());
    }

    #[tokio::test]
    async fn a_watched_task_that_panics_is_reported_and_the_first_report_stands() {
        let (stopping, failure) = (CancellationToken::new(), CoreFailure::default());
        let spawned = tokio::spawn(async { panic!("boom") });
        watch_core("cdr writer", spawned, stopping.clone(), failure.clone())
            .await
            .unwrap();
        failure.report("webhook worker", false);
        assert_eq!(failure.wait().await, "cdr writer");
    }

    #[test]
    fn a_thread_that_panics_is_reported_and_one_that_returns_is_not() {
        let failure = CoreFailure::default();
        let watched = failure.clone();
        let thread = std::thread::spawn(move || {
            let _watch = ThreadWatch {
                part: "media shard",
                failure: watched,
            };
        });
        thread.join().unwrap();
        assert!(!failure.has_failed());

        let watched = failure.clone();
        let thread = std::thread::spawn(move || {
            let _watch = ThreadWatch {
                part: "media shard",
                failure: watched,
            };
            panic!("boom");
        });
        assert!(thread.join().is_err());
        assert!(failure.has_failed());
    }
}
