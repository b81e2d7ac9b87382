//! Periodic reports over facts a host reports (DESIGN §10.5): the workspace builds it records
//! (`Reports::record_build`), and the weekly "Report: Workspace Builds Failed"
//! (`Reports::run_failed_builds`) that the scheduler (`scheduler`) runs on every replica.
//!
//! A run claims the report in the [`ReportLog`] first: the time check and its update are one
//! atomic step under a lock shared by the replicas, so of replicas running at once one sends
//! and the others find it busy or not due. The very first run only records its time. A claimed
//! run then queues, per workspace template with a failed build in the last 7 days, one event
//! of the report (to every template admin, the template's audience), its data the template's
//! part of [`failed_builds_report`]. The claim comes before the queueing, so a run that fails
//! halfway loses that week's remaining reports rather than ever sending one twice within the
//! period.

mod failed_builds;
mod scheduler;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use herald_domain::catalogue::REPORT_WORKSPACE_BUILDS_FAILED;
use herald_domain::{Build, Role, UserId};
use serde_json::json;
use uuid::Uuid;

pub use self::failed_builds::{
    FailedBuild, MAX_FAILED_BUILDS_PER_VERSION, TemplateReport, VersionReport, failed_builds_report,
};
pub use self::scheduler::{REPORT_CHECK_INTERVAL, ReportScheduler};
use crate::Error;
use crate::events::{EnqueueResult, Event, Events};
use crate::ports::{BuildStore, Clock, ReportClaim, ReportLog, UserDirectory};

/// How often a report goes out, and how far back it looks.
pub const REPORT_PERIOD: Duration = Duration::days(7);

/// How the report's data names [`REPORT_PERIOD`] (`data.report_frequency`).
pub const REPORT_FREQUENCY: &str = "week";

/// What one run of a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportRun {
    /// The report had never run: its time is recorded, nothing is sent.
    FirstRun,
    /// The report ran less than a period ago; it is due at `next`.
    NotDue { next: DateTime<Utc> },
    /// Another replica is running it right now.
    Busy,
    /// This run sent the report: one entry per workspace template with a failed build.
    Ran(Vec<SentReport>),
}

/// One workspace template's report in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReport {
    /// The host's workspace template.
    pub template_id: Uuid,
    pub template_name: String,
    pub outcome: ReportOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Queued to the template admins (the messages, and who was skipped and why).
    Queued(EnqueueResult),
    /// Not queued, for a reason that is no failure.
    Skipped(ReportSkip),
    /// Not queued: the store refused it (logged).
    Failed(Error),
}

/// Why a template's report was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportSkip {
    /// Nobody holds the template-admin role: the report has no audience.
    NoTemplateAdmins,
}

impl ReportSkip {
    pub const fn as_str(self) -> &'static str {
        match self {
            ReportSkip::NoTemplateAdmins => "no template admins",
        }
    }
}

/// Builds as a host reports them, and the reports made of them.
#[derive(Debug, Clone)]
pub struct Reports {
    builds: Arc<dyn BuildStore>,
    log: Arc<dyn ReportLog>,
    directory: Arc<dyn UserDirectory>,
    events: Events,
    clock: Arc<dyn Clock>,
}

impl Reports {
    pub fn new(
        builds: Arc<dyn BuildStore>,
        log: Arc<dyn ReportLog>,
        directory: Arc<dyn UserDirectory>,
        events: Events,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            builds,
            log,
            directory,
            events,
            clock,
        }
    }

    /// Keeps a workspace build for the report (the same workspace and build number again
    /// replaces it); purged with the messages after 7 days.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down (nothing was kept).
    pub async fn record_build(&self, build: &Build) -> Result<(), Error> {
        self.builds.record(build).await?;
        Ok(())
    }

    /// Runs "Report: Workspace Builds Failed" if it is due (see the module doc).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the report log, the builds or the directory cannot be read;
    /// a template's report the store refuses is [`ReportOutcome::Failed`] instead, the others
    /// still queued.
    pub async fn run_failed_builds(&self) -> Result<ReportRun, Error> {
        let now = self.clock.now();
        let last = match self
            .log
            .claim(REPORT_WORKSPACE_BUILDS_FAILED, now, REPORT_PERIOD)
            .await?
        {
            ReportClaim::FirstRun => {
                tracing::info!(
                    %now,
                    "notifications: first run of the failed-builds report: recorded its time, the first report goes out in a week"
                );
                return Ok(ReportRun::FirstRun);
            }
            ReportClaim::NotDue { last } => {
                return Ok(ReportRun::NotDue {
                    next: last + REPORT_PERIOD,
                });
            }
            ReportClaim::Busy => return Ok(ReportRun::Busy),
            ReportClaim::Claimed { last } => last,
        };
        let since = now - REPORT_PERIOD;
        let builds: Vec<Build> = self
            .builds
            .since(since)
            .await?
            .into_iter()
            .filter(|build| build.created_at <= now)
            .collect();
        let reports = failed_builds_report(&builds, &self.usernames(&builds).await?);
        let admins = self
            .directory
            .with_any_role(&BTreeSet::from([Role::TemplateAdmin]))
            .await?;
        let mut sent = Vec::with_capacity(reports.len());
        for report in reports {
            let outcome = if admins.is_empty() {
                tracing::warn!(
                    template = %report.name,
                    reason = ReportSkip::NoTemplateAdmins.as_str(),
                    "notifications: failed-builds report not sent: nobody holds the template-admin role"
                );
                ReportOutcome::Skipped(ReportSkip::NoTemplateAdmins)
            } else {
                match self.events.enqueue(report_event(&report)).await {
                    Ok(result) => ReportOutcome::Queued(result),
                    Err(err) => {
                        tracing::error!(
                            template = %report.name,
                            error = %err,
                            "notifications: could not queue this week's failed-builds report"
                        );
                        ReportOutcome::Failed(err)
                    }
                }
            };
            sent.push(SentReport {
                template_id: report.template_id,
                template_name: report.name,
                outcome,
            });
        }
        tracing::info!(
            templates = sent.len(),
            %since,
            previous_run = %last,
            "notifications: ran the failed-builds report"
        );
        Ok(ReportRun::Ran(sent))
    }

    /// The usernames of the owners of `builds`' failed builds.
    async fn usernames(&self, builds: &[Build]) -> Result<HashMap<UserId, String>, Error> {
        let owners: BTreeSet<UserId> = builds
            .iter()
            .filter(|build| build.failed())
            .map(|build| build.owner_id)
            .collect();
        if owners.is_empty() {
            return Ok(HashMap::new());
        }
        let owners: Vec<UserId> = owners.into_iter().collect();
        Ok(self
            .directory
            .get_many(&owners)
            .await?
            .into_iter()
            .map(|user| (user.id, user.username.to_string()))
            .collect())
    }
}

/// The event of one template's report: its part of the data in the catalogue's shape, its
/// names as labels too.
fn report_event(report: &TemplateReport) -> Event {
    let mut event = Event::new(REPORT_WORKSPACE_BUILDS_FAILED);
    event
        .labels
        .insert("template_name".to_owned(), report.name.clone());
    event.labels.insert(
        "template_display_name".to_owned(),
        report.display_name.clone(),
    );
    event.data = Some(json!({
        "report_frequency": REPORT_FREQUENCY,
        "templates": [report],
    }));
    event.created_by = "reports".to_owned();
    event
}
