//! Workspace builds (`workspace_builds`, migration 0011) and when each periodic report last
//! ran (`report_log`).
//!
//! **A report's claim** is one transaction under `pg_try_advisory_xact_lock(REPORT_LOCK_KEY)`:
//! a replica that does not get the lock answers `Busy` at once; the one that does reads the
//! report's row and records the new time before committing, so replicas claiming at the same
//! moment never both claim it, and the time survives restarts.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use herald_application::ports::{BuildStore, ReportClaim, ReportLog, StoreError};
use herald_domain::{Build, BuildInitiator, BuildStatus, BuildTransition, TemplateId, UserId};
use uuid::Uuid;

use crate::PgStore;
use crate::error::store_error;

/// The advisory lock key report claims take (`pg_try_advisory_xact_lock`). Any 64-bit
/// constant other than [`crate::PURGE_LOCK_KEY`]; this one spells "herald r" in ASCII.
pub const REPORT_LOCK_KEY: i64 = 0x6865_7261_6c64_2072;

const BUILD_COLUMNS: &str = "workspace_id, build_number, workspace_name, owner_id, template_id, \
    template_name, template_display_name, template_version, transition, status, initiator, \
    created_at";

#[derive(sqlx::FromRow)]
struct BuildRow {
    workspace_id: Uuid,
    build_number: i64,
    workspace_name: String,
    owner_id: Uuid,
    template_id: Uuid,
    template_name: String,
    template_display_name: String,
    template_version: String,
    transition: String,
    status: String,
    initiator: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<BuildRow> for Build {
    type Error = StoreError;

    fn try_from(row: BuildRow) -> Result<Self, StoreError> {
        let corrupt = |err: herald_domain::InvalidValue| {
            StoreError::Other(format!("stored build holds a bad {err}"))
        };
        Ok(Build {
            workspace_id: row.workspace_id,
            workspace_name: row.workspace_name,
            owner_id: UserId::from(row.owner_id),
            template_id: row.template_id,
            template_name: row.template_name,
            template_display_name: row.template_display_name,
            template_version: row.template_version,
            build_number: u32::try_from(row.build_number).map_err(|_| {
                StoreError::Other(format!(
                    "stored build number {} is out of range",
                    row.build_number
                ))
            })?,
            transition: BuildTransition::parse(&row.transition).map_err(corrupt)?,
            status: BuildStatus::parse(&row.status).map_err(corrupt)?,
            initiator: BuildInitiator::parse(&row.initiator).map_err(corrupt)?,
            created_at: row.created_at,
        })
    }
}

#[async_trait]
impl BuildStore for PgStore {
    async fn record(&self, build: &Build) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO workspace_builds ({BUILD_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT ON CONSTRAINT workspace_builds_pkey DO UPDATE SET \
                 workspace_name = excluded.workspace_name, owner_id = excluded.owner_id, \
                 template_id = excluded.template_id, template_name = excluded.template_name, \
                 template_display_name = excluded.template_display_name, \
                 template_version = excluded.template_version, \
                 transition = excluded.transition, status = excluded.status, \
                 initiator = excluded.initiator, created_at = excluded.created_at"
        ))
        .bind(build.workspace_id)
        .bind(i64::from(build.build_number))
        .bind(&build.workspace_name)
        .bind(build.owner_id.as_uuid())
        .bind(build.template_id)
        .bind(&build.template_name)
        .bind(&build.template_display_name)
        .bind(&build.template_version)
        .bind(build.transition.as_str())
        .bind(build.status.as_str())
        .bind(build.initiator.as_str())
        .bind(build.created_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn since(&self, since: DateTime<Utc>) -> Result<Vec<Build>, StoreError> {
        let rows: Vec<BuildRow> = sqlx::query_as(&format!(
            "SELECT {BUILD_COLUMNS} FROM workspace_builds WHERE created_at >= $1"
        ))
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter().map(Build::try_from).collect()
    }

    async fn purge(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM workspace_builds WHERE created_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected())
    }
}

#[async_trait]
impl ReportLog for PgStore {
    async fn claim(
        &self,
        report: TemplateId,
        now: DateTime<Utc>,
        period: Duration,
    ) -> Result<ReportClaim, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // Released with the transaction; a replica that does not get it has nothing to do.
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(REPORT_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        if !locked {
            tx.rollback().await.map_err(store_error)?;
            return Ok(ReportClaim::Busy);
        }
        let last: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT last_generated_at FROM report_log WHERE template_id = $1 FOR UPDATE",
        )
        .bind(report.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let claim = match last {
            Some(last) if last + period > now => {
                // Ended here, not when dropped: a dropped transaction's rollback (and so the
                // lock's release) waits for its connection's next use, and the next claim,
                // on another connection, would find the lock still held.
                tx.rollback().await.map_err(store_error)?;
                return Ok(ReportClaim::NotDue { last });
            }
            Some(last) => ReportClaim::Claimed { last },
            None => ReportClaim::FirstRun,
        };
        sqlx::query(
            "INSERT INTO report_log (template_id, last_generated_at) VALUES ($1, $2) \
             ON CONFLICT (template_id) DO UPDATE SET last_generated_at = excluded.last_generated_at",
        )
        .bind(report.as_uuid())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(claim)
    }
}
