//! A workspace agent's resource usage → Workspace Out Of Memory / Out Of Disk.
//!
//! Each resource (the memory, each volume by path) is over its threshold or not; a report
//! announces the resources it moved from not over (or never reported) to over — memory by
//! Out Of Memory, the volumes together by one Out Of Disk listing only them (one volume reads
//! as a sentence, several as a list) — and nothing for a resource already over, until a report
//! has found it back under.

use std::collections::HashSet;

use herald_domain::catalogue::{WORKSPACE_OUT_OF_DISK, WORKSPACE_OUT_OF_MEMORY};
use herald_domain::signals::{Resource, Usage, WorkspaceId};
use herald_domain::{InvalidValue, Labels, TemplateId, UserId};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Notice, Signals, name};
use crate::Error;
use crate::events::Event;

/// The most volumes one report may carry.
pub const MAX_VOLUMES: usize = 64;

/// A usage report as the host sends it, unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageInput {
    pub workspace_id: WorkspaceId,
    pub workspace_name: String,
    pub owner_id: UserId,
    pub agent: String,
    /// `(used, total, threshold_percent)`.
    pub memory: Option<(u64, u64, u64)>,
    pub volumes: Vec<VolumeInput>,
}

/// One volume of a [`UsageInput`], unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInput {
    pub path: String,
    pub used: u64,
    pub total: u64,
    pub threshold_percent: u64,
}

/// A checked usage report: names trimmed and bounded, usages within their totals, thresholds
/// 0 to 100, at least one resource, no volume path twice. Only [`UsageReport::parse`] makes
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    workspace_id: WorkspaceId,
    workspace_name: String,
    owner: UserId,
    agent: String,
    memory: Option<Usage>,
    volumes: Vec<(String, Usage)>,
}

impl UsageReport {
    /// # Errors
    /// [`Error::Invalid`] naming the field: `workspace_name`, `agent`, `memory` (neither memory
    /// nor volumes), `memory.used`, `memory.total`, `memory.threshold_percent`, `volumes`,
    /// `volumes[i].path`, `volumes[i].used`, ….
    pub fn parse(input: UsageInput) -> Result<Self, Error> {
        let workspace_name = name("workspace_name", &input.workspace_name)?;
        let agent = name("agent", &input.agent)?;
        if input.memory.is_none() && input.volumes.is_empty() {
            return Err(Error::invalid(
                "memory",
                "a report needs memory or at least one volume",
            ));
        }
        if input.volumes.len() > MAX_VOLUMES {
            return Err(Error::invalid(
                "volumes",
                format!("at most {MAX_VOLUMES} volumes"),
            ));
        }
        let within = |prefix: &str, err: InvalidValue| {
            Error::invalid(format!("{prefix}.{}", err.field), err.reason)
        };
        let memory = input
            .memory
            .map(|(used, total, threshold)| {
                Usage::new(used, total, threshold).map_err(|err| within("memory", err))
            })
            .transpose()?;
        let mut paths = HashSet::with_capacity(input.volumes.len());
        let mut volumes = Vec::with_capacity(input.volumes.len());
        for (index, volume) in input.volumes.into_iter().enumerate() {
            let field = format!("volumes[{index}]");
            let path = name(&format!("{field}.path"), &volume.path)?;
            if !paths.insert(path.clone()) {
                return Err(Error::invalid(
                    format!("{field}.path"),
                    format!("{path:?} is reported twice"),
                ));
            }
            let usage = Usage::new(volume.used, volume.total, volume.threshold_percent)
                .map_err(|err| within(&field, err))?;
            volumes.push((path, usage));
        }
        Ok(Self {
            workspace_id: input.workspace_id,
            workspace_name,
            owner: input.owner_id,
            agent,
            memory,
            volumes,
        })
    }
}

/// Where a resource stands after a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceOutcome {
    /// Under its threshold: nothing to tell.
    Under,
    /// Crossed its threshold with this report: announced.
    Crossed,
    /// Over its threshold and already announced: not again until it has been back under.
    StillOver,
}

/// A volume after a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeOutcome {
    pub path: String,
    pub state: ResourceOutcome,
}

/// What a usage report did: where each resource stands, and the notifications queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageOutcome {
    pub memory: Option<ResourceOutcome>,
    pub volumes: Vec<VolumeOutcome>,
    pub notifications: Vec<Notice>,
}

impl Signals {
    /// Records where each resource of the report stands and announces those that crossed
    /// their threshold: Out Of Memory for the memory, one Out Of Disk for the volumes that
    /// crossed (only them), to the workspace's owner.
    ///
    /// # Errors
    /// [`Error::Invalid`] on `owner_id` for an owner the directory does not know (nothing
    /// recorded); [`Error::Unavailable`] when a store is down.
    pub async fn report_usage(&self, report: UsageReport) -> Result<UsageOutcome, Error> {
        self.known_owner(report.owner).await?;
        let mut states = Vec::with_capacity(report.volumes.len() + 1);
        if let Some(memory) = &report.memory {
            states.push((Resource::Memory, memory.is_over()));
        }
        for (path, usage) in &report.volumes {
            states.push((Resource::Volume(path.clone()), usage.is_over()));
        }
        let now = self.ports.clock.now();
        let crossed: HashSet<Resource> = self
            .ports
            .resources
            .record(report.workspace_id, &report.agent, &states, now)
            .await?
            .into_iter()
            .collect();
        let outcome_of = |resource: &Resource, usage: &Usage| {
            if crossed.contains(resource) {
                ResourceOutcome::Crossed
            } else if usage.is_over() {
                ResourceOutcome::StillOver
            } else {
                ResourceOutcome::Under
            }
        };
        let memory = report
            .memory
            .as_ref()
            .map(|usage| outcome_of(&Resource::Memory, usage));
        let volumes: Vec<VolumeOutcome> = report
            .volumes
            .iter()
            .map(|(path, usage)| VolumeOutcome {
                path: path.clone(),
                state: outcome_of(&Resource::Volume(path.clone()), usage),
            })
            .collect();

        let mut events = Vec::with_capacity(2);
        if let (Some(usage), Some(ResourceOutcome::Crossed)) = (&report.memory, memory) {
            let mut event = self.usage_event(&report, WORKSPACE_OUT_OF_MEMORY);
            event
                .labels
                .insert("threshold".to_owned(), usage.threshold_label());
            event.data = Some(json!({
                "workspace_id": report.workspace_id,
                "agent": report.agent,
                "used": usage.used(),
                "total": usage.total(),
                "threshold_percent": usage.threshold_percent(),
                "crossed_at": now,
            }));
            events.push((WORKSPACE_OUT_OF_MEMORY, event));
        }
        let crossed_volumes: Vec<Value> = report
            .volumes
            .iter()
            .filter(|(path, _)| crossed.contains(&Resource::Volume(path.clone())))
            .map(|(path, usage)| {
                json!({
                    "path": path,
                    "threshold": usage.threshold_label(),
                    "used": usage.used(),
                    "total": usage.total(),
                })
            })
            .collect();
        if !crossed_volumes.is_empty() {
            let mut event = self.usage_event(&report, WORKSPACE_OUT_OF_DISK);
            event.data = Some(json!({
                "workspace_id": report.workspace_id,
                "agent": report.agent,
                "volumes": crossed_volumes,
                "crossed_at": now,
            }));
            events.push((WORKSPACE_OUT_OF_DISK, event));
        }
        if events.is_empty() {
            return Ok(UsageOutcome {
                memory,
                volumes,
                notifications: Vec::new(),
            });
        }
        let (templates, events): (Vec<TemplateId>, Vec<Event>) = events.into_iter().unzip();
        let results = match self.events.enqueue_batch(events).await {
            Ok(results) => results,
            Err(err) => {
                self.forget_crossings(&report, crossed, now).await;
                return Err(err);
            }
        };
        let notifications = templates
            .into_iter()
            .zip(results)
            .map(|(template_id, result)| Notice {
                template_id,
                result,
            })
            .collect();
        Ok(UsageOutcome {
            memory,
            volumes,
            notifications,
        })
    }

    /// An event of `template` about the report's workspace, to its owner.
    fn usage_event(&self, report: &UsageReport, template: TemplateId) -> Event {
        let mut event = Event::new(template);
        event.subject = Some(report.owner);
        event.labels = Labels::from([("workspace".to_owned(), report.workspace_name.clone())]);
        event.created_by = "resource_usage".to_owned();
        event
    }

    /// Records the crossings a failed enqueue did not announce as under again, so the next
    /// report over the threshold announces them; if the store fails too, they stay recorded
    /// (and unannounced).
    async fn forget_crossings(
        &self,
        report: &UsageReport,
        crossed: HashSet<Resource>,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let states: Vec<(Resource, bool)> = crossed.into_iter().map(|r| (r, false)).collect();
        if let Err(err) = self
            .ports
            .resources
            .record(report.workspace_id, &report.agent, &states, at)
            .await
        {
            tracing::warn!(
                workspace_id = %report.workspace_id,
                error = %err,
                "a resource crossing could not be queued nor forgotten: it will not be announced"
            );
        }
    }
}
