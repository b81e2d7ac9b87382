//! The body of "Report: Workspace Builds Failed", a pure function of the builds of a week.
//!
//! Per workspace template with at least one failed build: how many of its builds failed out
//! of how many, and per template version (the version with the newest failure first) how many
//! failed and up to [`MAX_FAILED_BUILDS_PER_VERSION`] of those builds, newest first. The shape
//! is the catalogue's (`data.templates[…].versions[…].failed_builds[…]`).

use std::collections::{BTreeMap, HashMap};

use herald_domain::{Build, UserId};
use serde::Serialize;
use uuid::Uuid;

/// The most failed builds a report lists per template version.
pub const MAX_FAILED_BUILDS_PER_VERSION: usize = 10;

/// One workspace template's part of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateReport {
    /// The host's workspace template (not serialised: the catalogue's shape has no id).
    #[serde(skip)]
    pub template_id: Uuid,
    pub name: String,
    pub display_name: String,
    pub failed_builds: usize,
    pub total_builds: usize,
    pub versions: Vec<VersionReport>,
}

/// One template version's failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionReport {
    pub template_version_name: String,
    /// Every failure of the version, listed or not.
    pub failed_count: usize,
    /// At most [`MAX_FAILED_BUILDS_PER_VERSION`], newest first.
    pub failed_builds: Vec<FailedBuild>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedBuild {
    pub build_number: u32,
    pub workspace_name: String,
    pub workspace_owner_username: String,
}

/// The report over `builds` (those of the period), one entry per template with a failed
/// build, ordered by template name. `usernames` names the workspace owners; an owner missing
/// from it is shown by id.
pub fn failed_builds_report(
    builds: &[Build],
    usernames: &HashMap<UserId, String>,
) -> Vec<TemplateReport> {
    let mut by_template: HashMap<Uuid, Vec<&Build>> = HashMap::new();
    for build in builds {
        by_template
            .entry(build.template_id)
            .or_default()
            .push(build);
    }
    let mut reports: Vec<TemplateReport> = by_template
        .into_iter()
        .filter_map(|(template_id, mut builds)| {
            newest_first(&mut builds);
            let failed: Vec<&Build> = builds.iter().copied().filter(|b| b.failed()).collect();
            let newest = builds.first()?;
            if failed.is_empty() {
                return None;
            }
            Some(TemplateReport {
                template_id,
                name: newest.template_name.clone(),
                display_name: newest.template_display_name.clone(),
                failed_builds: failed.len(),
                total_builds: builds.len(),
                versions: versions(&failed, usernames),
            })
        })
        .collect();
    reports.sort_by(|a, b| (&a.name, a.template_id).cmp(&(&b.name, b.template_id)));
    reports
}

/// Each version's failures; `failed` is newest first, so is each version's list, and the
/// versions come in the order of their newest failure.
fn versions(failed: &[&Build], usernames: &HashMap<UserId, String>) -> Vec<VersionReport> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_version: BTreeMap<&str, Vec<&Build>> = BTreeMap::new();
    for build in failed {
        let version = build.template_version.as_str();
        by_version
            .entry(version)
            .or_insert_with(|| {
                order.push(version);
                Vec::new()
            })
            .push(build);
    }
    order
        .into_iter()
        .map(|version| {
            let builds = by_version.remove(version).unwrap_or_default();
            VersionReport {
                template_version_name: version.to_owned(),
                failed_count: builds.len(),
                failed_builds: builds
                    .iter()
                    .take(MAX_FAILED_BUILDS_PER_VERSION)
                    .map(|build| FailedBuild {
                        build_number: build.build_number,
                        workspace_name: build.workspace_name.clone(),
                        workspace_owner_username: usernames
                            .get(&build.owner_id)
                            .cloned()
                            .unwrap_or_else(|| build.owner_id.to_string()),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Newest first: by `created_at`, then by build number, then by workspace (a stable order for
/// builds reported with the same time).
fn newest_first(builds: &mut [&Build]) {
    builds.sort_by(|a, b| {
        (b.created_at, b.build_number, b.workspace_id).cmp(&(
            a.created_at,
            a.build_number,
            a.workspace_id,
        ))
    });
}
