//! Host signals (DESIGN §10.5): the host reports facts, Herald decides when they become
//! notifications, as the reference system does with the events it generates itself.
//!
//! [`Signals`] is the use case; one file per kind of fact:
//! - `resources`: a workspace agent's memory and volume usage ([`Signals::report_usage`]) →
//!   Workspace Out Of Memory / Out Of Disk when a resource crosses its threshold;
//! - `tasks`: a task's state ([`Signals::set_task_state`]) → Task Working / Task Idle on a
//!   change of state (the rules are `herald_domain::signals::task_notice`).
//!
//! The last state of each resource and task is kept in the store every replica shares
//! ([`ResourceStateStore`], [`TaskStateStore`]), whose moves are atomic, so a crossing or a
//! change is announced once however reports spread over replicas. Announcements go through
//! [`Events`], like any event: the catalogue's templates, the recipients' preferences, the
//! deployment's methods. A move is recorded before its notification is queued: if queueing
//! then fails, a resource's crossing is recorded back as under (best effort), so the next
//! report over the threshold announces it; a task's change is not announced again.

mod resources;
mod tasks;

use std::sync::Arc;

use herald_domain::{TemplateId, UserId};
use serde::Serialize;

pub use self::resources::{
    ResourceOutcome, UsageInput, UsageOutcome, UsageReport, VolumeInput, VolumeOutcome,
};
pub use self::tasks::{TaskInput, TaskOutcome, TaskReport};
use crate::Error;
use crate::events::{EnqueueResult, Events};
use crate::ports::{Clock, ResourceStateStore, TaskStateStore, UserDirectory};

/// The ports the signals drive besides enqueueing.
#[derive(Debug, Clone)]
pub struct SignalPorts {
    pub directory: Arc<dyn UserDirectory>,
    pub resources: Arc<dyn ResourceStateStore>,
    pub tasks: Arc<dyn TaskStateStore>,
    pub clock: Arc<dyn Clock>,
}

/// The host-signal use cases.
#[derive(Debug, Clone)]
pub struct Signals {
    ports: SignalPorts,
    events: Events,
}

/// A notification a signal queued: its template, and what the enqueue did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub template_id: TemplateId,
    pub result: EnqueueResult,
}

/// The most characters of a name a signal carries (workspace, agent, task, volume path).
pub const MAX_NAME_CHARS: usize = 256;

impl Signals {
    pub fn new(ports: SignalPorts, events: Events) -> Self {
        Self { ports, events }
    }

    /// Refuses an owner the directory does not know, before anything is recorded.
    async fn known_owner(&self, owner: UserId) -> Result<(), Error> {
        match self.ports.directory.get(owner).await? {
            Some(_) => Ok(()),
            None => Err(Error::invalid("owner_id", format!("no user {owner}"))),
        }
    }
}

/// A name as a signal carries it: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control
/// characters.
fn name(field: &str, raw: &str) -> Result<String, Error> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}
