use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use herald_application::ports::{BuildStore, ReportClaim, ReportLog, StoreError};
use herald_domain::{Build, TemplateId};

use super::MemoryStore;

/// Builds (one per workspace and build number), and when each report last ran.
#[derive(Debug, Default)]
pub(super) struct Builds {
    builds: Vec<Build>,
    report_runs: HashMap<TemplateId, DateTime<Utc>>,
}

#[async_trait]
impl BuildStore for MemoryStore {
    async fn record(&self, build: &Build) -> Result<(), StoreError> {
        self.with(|state| {
            let builds = &mut state.builds.builds;
            builds.retain(|kept| {
                (kept.workspace_id, kept.build_number) != (build.workspace_id, build.build_number)
            });
            builds.push(build.clone());
        })
    }

    async fn since(&self, since: DateTime<Utc>) -> Result<Vec<Build>, StoreError> {
        self.with(|state| {
            state
                .builds
                .builds
                .iter()
                .filter(|build| build.created_at >= since)
                .cloned()
                .collect()
        })
    }

    async fn purge(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with(|state| {
            let before = state.builds.builds.len();
            state
                .builds
                .builds
                .retain(|build| build.created_at >= cutoff);
            u64::try_from(before - state.builds.builds.len()).unwrap_or(u64::MAX)
        })
    }
}

#[async_trait]
impl ReportLog for MemoryStore {
    /// Under the store's lock: one claim at a time, so never [`ReportClaim::Busy`].
    async fn claim(
        &self,
        report: TemplateId,
        now: DateTime<Utc>,
        period: Duration,
    ) -> Result<ReportClaim, StoreError> {
        self.with(
            |state| match state.builds.report_runs.get(&report).copied() {
                None => {
                    state.builds.report_runs.insert(report, now);
                    ReportClaim::FirstRun
                }
                Some(last) if last + period > now => ReportClaim::NotDue { last },
                Some(last) => {
                    state.builds.report_runs.insert(report, now);
                    ReportClaim::Claimed { last }
                }
            },
        )
    }
}
