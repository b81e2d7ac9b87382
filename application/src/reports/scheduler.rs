//! The report scheduler: every replica runs one, checking whether the report is due every
//! [`REPORT_CHECK_INTERVAL`] (the first time at once); the [`ReportLog`](crate::ports::ReportLog)
//! claim makes one replica send it. The check's cadence is wall-clock (a tokio interval);
//! whether the report is due is decided by the `Clock` port, so tests call
//! [`Reports::run_failed_builds`] with a clock they move rather than waiting.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ReportOutcome, ReportRun, Reports};

/// How often a replica checks whether the report is due: a weekly report goes out at most
/// this much after its time.
pub const REPORT_CHECK_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// A running report scheduler, until [`ReportScheduler::stop`].
#[derive(Debug)]
pub struct ReportScheduler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ReportScheduler {
    /// Runs `reports` every `interval`, the first time at once, until stopped.
    pub fn spawn(reports: Reports, interval: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => log(reports.run_failed_builds().await),
                    changed = stopped.changed() => {
                        if changed.is_err() || *stopped.borrow() {
                            break;
                        }
                    }
                }
            }
        });
        Self { stop, task }
    }

    /// Stops checking; a run under way finishes first.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "notifications: the report scheduler ended abnormally");
        }
    }
}

fn log(run: Result<ReportRun, crate::Error>) {
    match run {
        Ok(ReportRun::Ran(reports)) => {
            let failed = reports
                .iter()
                .filter(|report| matches!(report.outcome, ReportOutcome::Failed(_)))
                .count();
            tracing::debug!(
                reports = reports.len(),
                failed,
                "notifications: failed-builds report run"
            );
        }
        Ok(ReportRun::NotDue { next }) => {
            tracing::debug!(%next, "notifications: the failed-builds report is not due");
        }
        Ok(ReportRun::Busy) => {
            tracing::debug!("notifications: another replica is running the failed-builds report");
        }
        Ok(ReportRun::FirstRun) => {}
        Err(err) => {
            tracing::warn!(error = %err, "notifications: could not run the failed-builds report");
        }
    }
}
