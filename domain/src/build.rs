//! Workspace builds a host reports (DESIGN §10.5): the facts the weekly "Report: Workspace
//! Builds Failed" is made of.
//!
//! A [`Build`] is made only by [`Build::parse`], which refuses an unknown status, initiator or
//! transition, blank names, a negative build number and values too long to store, naming the
//! field. The template and workspace ids are the host's own (a workspace template is not one
//! of Herald's notification templates).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{InvalidValue, UserId};

/// The longest name or version a build may carry, in characters.
pub const MAX_BUILD_TEXT_CHARS: usize = 256;

/// How a workspace build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildStatus {
    Succeeded,
    Failed,
}

impl BuildStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
        }
    }

    /// # Errors
    /// [`InvalidValue`] on `status` for anything but `succeeded` or `failed`.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        match value {
            "succeeded" => Ok(BuildStatus::Succeeded),
            "failed" => Ok(BuildStatus::Failed),
            other => Err(InvalidValue::new(
                "status",
                format!("unknown status {other:?}; expected succeeded or failed"),
            )),
        }
    }
}

/// Who started a workspace build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildInitiator {
    /// A person.
    Manual,
    /// The host's scheduler (autostart, autostop, automatic updates).
    Autostart,
}

impl BuildInitiator {
    pub const fn as_str(self) -> &'static str {
        match self {
            BuildInitiator::Manual => "manual",
            BuildInitiator::Autostart => "autostart",
        }
    }

    /// # Errors
    /// [`InvalidValue`] on `initiator` for anything but `manual` or `autostart`.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        match value {
            "manual" => Ok(BuildInitiator::Manual),
            "autostart" => Ok(BuildInitiator::Autostart),
            other => Err(InvalidValue::new(
                "initiator",
                format!("unknown initiator {other:?}; expected manual or autostart"),
            )),
        }
    }
}

/// What a workspace build did to its workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildTransition {
    Start,
    Stop,
    Delete,
}

impl BuildTransition {
    pub const fn as_str(self) -> &'static str {
        match self {
            BuildTransition::Start => "start",
            BuildTransition::Stop => "stop",
            BuildTransition::Delete => "delete",
        }
    }

    /// # Errors
    /// [`InvalidValue`] on `transition` for anything but `start`, `stop` or `delete`.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        match value {
            "start" => Ok(BuildTransition::Start),
            "stop" => Ok(BuildTransition::Stop),
            "delete" => Ok(BuildTransition::Delete),
            other => Err(InvalidValue::new(
                "transition",
                format!("unknown transition {other:?}; expected start, stop or delete"),
            )),
        }
    }
}

/// One workspace build, as the host reported it. A workspace's build is known by
/// (`workspace_id`, `build_number`): the host reporting it again replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub owner_id: UserId,
    /// The host's workspace template.
    pub template_id: Uuid,
    pub template_name: String,
    pub template_display_name: String,
    pub template_version: String,
    pub build_number: u32,
    pub transition: BuildTransition,
    pub status: BuildStatus,
    pub initiator: BuildInitiator,
    pub created_at: DateTime<Utc>,
}

/// A build as a host words it, before [`Build::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInput<'a> {
    pub workspace_id: Uuid,
    pub workspace_name: &'a str,
    pub owner_id: UserId,
    pub template_id: Uuid,
    pub template_name: &'a str,
    /// Empty: the template's name.
    pub template_display_name: &'a str,
    pub template_version: &'a str,
    pub build_number: i64,
    pub transition: &'a str,
    pub status: &'a str,
    pub initiator: &'a str,
    pub created_at: DateTime<Utc>,
}

impl Build {
    /// # Errors
    /// [`InvalidValue`] naming the field: an unknown `status`, `initiator` or `transition`; a
    /// blank `workspace_name`, `template_name` or `template_version`; a text longer than
    /// [`MAX_BUILD_TEXT_CHARS`] or holding a NUL; a `build_number` below 1 or too large.
    pub fn parse(input: &BuildInput<'_>) -> Result<Self, InvalidValue> {
        let status = BuildStatus::parse(input.status)?;
        let initiator = BuildInitiator::parse(input.initiator)?;
        let transition = BuildTransition::parse(input.transition)?;
        let workspace_name = text("workspace_name", input.workspace_name, true)?;
        let template_name = text("template_name", input.template_name, true)?;
        let template_version = text("template_version", input.template_version, true)?;
        let template_display_name =
            match text("template_display_name", input.template_display_name, false)? {
                name if name.is_empty() => template_name.clone(),
                name => name,
            };
        let build_number = u32::try_from(input.build_number)
            .ok()
            .filter(|number| *number >= 1)
            .ok_or_else(|| {
                InvalidValue::new(
                    "build_number",
                    format!("must be between 1 and {}", u32::MAX),
                )
            })?;
        Ok(Build {
            workspace_id: input.workspace_id,
            workspace_name,
            owner_id: input.owner_id,
            template_id: input.template_id,
            template_name,
            template_display_name,
            template_version,
            build_number,
            transition,
            status,
            initiator,
            created_at: input.created_at,
        })
    }

    pub fn failed(&self) -> bool {
        self.status == BuildStatus::Failed
    }
}

/// `value` trimmed, checked to be storable (and non-empty when `required`).
fn text(field: &'static str, value: &str, required: bool) -> Result<String, InvalidValue> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(InvalidValue::new(field, "must not be empty"));
    }
    if value.chars().count() > MAX_BUILD_TEXT_CHARS {
        return Err(InvalidValue::new(
            field,
            format!("must be at most {MAX_BUILD_TEXT_CHARS} characters"),
        ));
    }
    if value.contains('\0') {
        return Err(InvalidValue::new(field, "must not contain a NUL character"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn input() -> BuildInput<'static> {
        BuildInput {
            workspace_id: Uuid::nil(),
            workspace_name: "dev-box",
            owner_id: UserId::random(),
            template_id: Uuid::nil(),
            template_name: "docker",
            template_display_name: "",
            template_version: "v1",
            build_number: 3,
            transition: "start",
            status: "failed",
            initiator: "manual",
            created_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_build_without_a_display_name_shows_its_template_name() {
        let build = Build::parse(&input()).unwrap();
        assert_eq!(build.template_display_name, "docker");
        assert!(build.failed());
    }

    #[test]
    fn each_refusal_names_its_field() {
        let cases: [(&str, BuildInput<'static>); 7] = [
            (
                "status",
                BuildInput {
                    status: "broken",
                    ..input()
                },
            ),
            (
                "initiator",
                BuildInput {
                    initiator: "cron",
                    ..input()
                },
            ),
            (
                "transition",
                BuildInput {
                    transition: "pause",
                    ..input()
                },
            ),
            (
                "workspace_name",
                BuildInput {
                    workspace_name: " ",
                    ..input()
                },
            ),
            (
                "template_name",
                BuildInput {
                    template_name: "",
                    ..input()
                },
            ),
            (
                "build_number",
                BuildInput {
                    build_number: 0,
                    ..input()
                },
            ),
            (
                "build_number",
                BuildInput {
                    build_number: -4,
                    ..input()
                },
            ),
        ];
        for (field, input) in cases {
            assert_eq!(Build::parse(&input).unwrap_err().field, field);
        }
    }
}
