use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use herald_domain::TemplateId;

use super::StoreError;

/// What [`ReportLog::claim`] found, and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportClaim {
    /// The report had never run: its time is now recorded, and nothing is due.
    FirstRun,
    /// The report last ran at `last`, less than a period ago: nothing changed.
    NotDue { last: DateTime<Utc> },
    /// Another caller (another replica) is claiming this report right now: nothing changed.
    Busy,
    /// The report last ran at `last`, a period or more ago: its time is now `now`, and this
    /// caller, alone, sends it.
    Claimed { last: DateTime<Utc> },
}

/// When each periodic report (a notification template such as "Report: Workspace Builds
/// Failed") last ran, shared by every replica, so a report goes out once per period.
///
/// Implementations MUST, in `claim`, read and update a report's time as one atomic step that
/// one caller at a time takes across every replica sharing the store (a concurrent caller gets
/// [`ReportClaim::Busy`] or sees the time the other recorded): no time kept → record `now`,
/// [`ReportClaim::FirstRun`]; kept time + `period` after `now` → [`ReportClaim::NotDue`];
/// else record `now` and answer [`ReportClaim::Claimed`] with the time it replaced. Two
/// claims of the same report within `period` of each other never both answer `Claimed`; the
/// time is durable (it survives a restart).
///
/// # Errors
/// [`StoreError`] when the store fails; nothing was recorded then.
#[async_trait]
pub trait ReportLog: Send + Sync + std::fmt::Debug {
    async fn claim(
        &self,
        report: TemplateId,
        now: DateTime<Utc>,
        period: Duration,
    ) -> Result<ReportClaim, StoreError>;
}
