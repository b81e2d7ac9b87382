//! Host signals (DESIGN §10.5): facts a host reports — how full a workspace agent's memory and
//! volumes are, what state a task is in — and the pure rules that decide when such a fact
//! becomes a notification.
//!
//! A resource notifies when it crosses its threshold: from under it (or never reported) to at
//! or over it ([`Usage::is_over`]); not again until a report has found it back under. A task
//! notifies on a change of state only ([`task_notice`]):
//!
//! ```text
//! (none) ──working──▶ working      quiet: a task's first `working` is its start, not news
//! (none) ──idle─────▶ idle         Task Idle
//! idle|complete|failed ──working──▶ working   Task Working
//! working|complete|failed ──idle──▶ idle      Task Idle
//! any ──complete|failed──▶ …       quiet: the catalogue has no template for them
//! s ──s──▶ s                       quiet: the same state twice in a row
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalogue::{TASK_IDLE, TASK_WORKING};
use crate::id::uuid_id;
use crate::{InvalidValue, TemplateId};

uuid_id!(
    /// A workspace of the host application.
    WorkspaceId
);
uuid_id!(
    /// A task (an AI agent's run in a workspace) of the host application.
    TaskId
);

/// How much of a resource is used, and the share at which its owner is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    used: u64,
    total: u64,
    threshold_percent: u8,
}

impl Usage {
    /// A usage of `used` out of `total` (any unit, the same for both), told at
    /// `threshold_percent` (0 to 100).
    ///
    /// # Errors
    /// [`InvalidValue`] on `total` (zero), `used` (more than `total`) or `threshold_percent`
    /// (over 100).
    pub fn new(used: u64, total: u64, threshold_percent: u64) -> Result<Self, InvalidValue> {
        if total == 0 {
            return Err(InvalidValue::new("total", "must be more than 0"));
        }
        if used > total {
            return Err(InvalidValue::new(
                "used",
                format!("must be at most total ({total})"),
            ));
        }
        let threshold_percent = u8::try_from(threshold_percent)
            .ok()
            .filter(|percent| *percent <= 100)
            .ok_or_else(|| InvalidValue::new("threshold_percent", "must be between 0 and 100"))?;
        Ok(Self {
            used,
            total,
            threshold_percent,
        })
    }

    pub const fn used(&self) -> u64 {
        self.used
    }

    pub const fn total(&self) -> u64 {
        self.total
    }

    pub const fn threshold_percent(&self) -> u8 {
        self.threshold_percent
    }

    /// Whether the used share is at or over the threshold (exact: no rounding).
    pub fn is_over(&self) -> bool {
        u128::from(self.used) * 100 >= u128::from(self.total) * u128::from(self.threshold_percent)
    }

    /// The threshold as the templates show it (`90%`).
    pub fn threshold_label(&self) -> String {
        format!("{}%", self.threshold_percent)
    }
}

/// A resource of a workspace agent whose usage is watched.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Memory,
    /// A volume, by its mount path.
    Volume(String),
}

/// The state a host reports a task in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Working,
    Idle,
    Complete,
    Failed,
}

impl TaskState {
    pub const ALL: [TaskState; 4] = [
        TaskState::Working,
        TaskState::Idle,
        TaskState::Complete,
        TaskState::Failed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            TaskState::Working => "working",
            TaskState::Idle => "idle",
            TaskState::Complete => "complete",
            TaskState::Failed => "failed",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == raw)
            .ok_or_else(|| {
                InvalidValue::new(
                    "state",
                    format!("{raw:?} is not one of working, idle, complete, failed"),
                )
            })
    }
}

/// Why a task's new state tells nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskQuiet {
    /// A task's first report is `working`: it has just started.
    FirstWorking,
    /// The task was already in this state.
    Unchanged,
    /// `complete` and `failed` are recorded only: the catalogue has no template for them.
    NotAnnounced,
}

/// The template a task's move from `previous` (`None`: its first report) to `current` is
/// announced with, or why it is not.
///
/// # Errors
/// The [`TaskQuiet`] reason when the move is not announced.
pub fn task_notice(
    previous: Option<TaskState>,
    current: TaskState,
) -> Result<TemplateId, TaskQuiet> {
    if previous == Some(current) {
        return Err(TaskQuiet::Unchanged);
    }
    match (previous, current) {
        (None, TaskState::Working) => Err(TaskQuiet::FirstWorking),
        (_, TaskState::Working) => Ok(TASK_WORKING),
        (_, TaskState::Idle) => Ok(TASK_IDLE),
        (_, TaskState::Complete | TaskState::Failed) => Err(TaskQuiet::NotAnnounced),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn usage_is_over_from_the_threshold_on_exactly() {
        assert!(!Usage::new(899, 1000, 90).unwrap().is_over());
        assert!(Usage::new(900, 1000, 90).unwrap().is_over());
        assert!(Usage::new(0, 1000, 0).unwrap().is_over());
        assert!(!Usage::new(999, 1000, 100).unwrap().is_over());
        assert!(Usage::new(u64::MAX, u64::MAX, 100).unwrap().is_over());
    }

    #[test]
    fn usage_refuses_an_empty_total_more_used_than_total_and_thresholds_over_100() {
        assert_eq!(Usage::new(0, 0, 90).unwrap_err().field, "total");
        assert_eq!(Usage::new(11, 10, 90).unwrap_err().field, "used");
        assert_eq!(
            Usage::new(1, 10, 101).unwrap_err().field,
            "threshold_percent"
        );
        assert_eq!(
            Usage::new(1, 10, 1 << 40).unwrap_err().field,
            "threshold_percent"
        );
    }

    #[test]
    fn task_states_parse_by_name_only() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>().unwrap(), state);
        }
        assert_eq!("busy".parse::<TaskState>().unwrap_err().field, "state");
        assert!("Working".parse::<TaskState>().is_err());
    }

    #[test]
    fn a_task_is_announced_on_a_change_of_state_only() {
        use TaskState::{Complete, Failed, Idle, Working};
        assert_eq!(task_notice(None, Working), Err(TaskQuiet::FirstWorking));
        assert_eq!(task_notice(None, Idle), Ok(TASK_IDLE));
        assert_eq!(task_notice(Some(Idle), Working), Ok(TASK_WORKING));
        assert_eq!(task_notice(Some(Complete), Working), Ok(TASK_WORKING));
        assert_eq!(task_notice(Some(Working), Idle), Ok(TASK_IDLE));
        assert_eq!(
            task_notice(Some(Working), Working),
            Err(TaskQuiet::Unchanged)
        );
        assert_eq!(task_notice(Some(Idle), Idle), Err(TaskQuiet::Unchanged));
        assert_eq!(
            task_notice(Some(Working), Complete),
            Err(TaskQuiet::NotAnnounced)
        );
        assert_eq!(task_notice(None, Failed), Err(TaskQuiet::NotAnnounced));
    }
}
