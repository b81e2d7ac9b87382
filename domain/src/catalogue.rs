//! The catalogue: every event Herald ships with.
//!
//! Ids are the stable public ids of the system Herald is modelled on (see
//! `shared/reference/catalogue.tsv`), so existing integrations keep working. Titles, bodies and
//! actions are Herald's own words. Template variables: `user_name` (display name),
//! `user_username`, `user_email`, `notification_name`, `labels.*`, `data.*`, and the helpers
//! `app_name`, `base_url`, `current_year`.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::{ActionTemplate, Audience, Role, Template, TemplateId, TemplateKind};

macro_rules! ids {
    ($($name:ident = $value:literal;)*) => {
        $(pub const $name: TemplateId = TemplateId::from_uuid(Uuid::from_u128($value));)*
    };
}

ids! {
    WORKSPACE_DELETED = 0xf517da0b_cdc9_410f_ab89_a86107c420ed;
    WORKSPACE_AUTOBUILD_FAILED = 0x381df2a9_c0c0_4749_420f_80a9280c66f9;
    WORKSPACE_MARKED_DORMANT = 0x0ea69165_ec14_4314_91f1_69566ac3c5a0;
    WORKSPACE_UPDATED_AUTOMATICALLY = 0xc34a0c09_0704_4cac_bd1c_0c0146811c2b;
    WORKSPACE_MARKED_FOR_DELETION = 0x51ce2fdf_c9ca_4be1_8d70_628674f9bc42;
    WORKSPACE_MANUAL_BUILD_FAILED = 0x2faeee0f_26cb_4e96_821c_85ccb9f71513;
    WORKSPACE_CREATED = 0x281fdf73_c6d6_4cbb_8ff5_888baf8a2fff;
    WORKSPACE_MANUALLY_UPDATED = 0xd089fe7b_d5c5_4c0c_aaf5_689859f7d392;
    WORKSPACE_OUT_OF_MEMORY = 0xa9d027b4_ac49_4fb1_9f6d_45af15f64e7a;
    WORKSPACE_OUT_OF_DISK = 0xf047f6a3_5713_40f7_85aa_0394cce9fa3a;
    USER_ACCOUNT_CREATED = 0x4e19c0ac_94e1_4532_9515_d1801aa283b2;
    USER_ACCOUNT_DELETED = 0xf44d9314_ad03_4bc8_95d0_5cad491da6b6;
    USER_ACCOUNT_SUSPENDED = 0xb02ddd82_4733_4d02_a2d7_c36f3598997d;
    USER_ACCOUNT_ACTIVATED = 0x9f5af851_8408_4e73_a7a1_c6502ba46689;
    YOUR_ACCOUNT_SUSPENDED = 0x6a2f0609_9b69_4d36_a989_9f5925b6cbff;
    YOUR_ACCOUNT_ACTIVATED = 0x1a6a6bea_ee0a_43e2_9e7c_eabdb53730e4;
    ONE_TIME_PASSCODE = 0x62f86a30_2330_4b61_a26d_311ff3b608cf;
    TEMPLATE_DELETED = 0x29a09665_2a4c_403f_9648_54301670e7be;
    TEMPLATE_DEPRECATED = 0xf40fae84_55a2_42cd_99fa_b41c1ca64894;
    REPORT_WORKSPACE_BUILDS_FAILED = 0x34a20db2_e9cc_4a93_b0e4_8569699d7a00;
    TASK_WORKING = 0xbd4b7168_d05e_4e19_ad0f_3593b77aa90f;
    TASK_IDLE = 0xd4a6271c_cced_4ed0_84ad_afd02a9c7799;
    TEST_NOTIFICATION = 0xc425f63e_716a_4bf4_ae24_78348f706c3f;
    CUSTOM_NOTIFICATION = 0x39b1e189_c857_4b0c_877a_511144c18516;
}

pub const WORKSPACE_EVENTS: &str = "Workspace Events";
pub const USER_EVENTS: &str = "User Events";
pub const TEMPLATE_EVENTS: &str = "Template Events";
pub const TASK_EVENTS: &str = "Task Events";
pub const NOTIFICATION_EVENTS: &str = "Notification Events";
pub const CUSTOM_EVENTS: &str = "Custom Events";
/// The catalogue's groups, in the order pages show them.
pub const GROUPS: [&str; 6] = [
    WORKSPACE_EVENTS,
    USER_EVENTS,
    TEMPLATE_EVENTS,
    TASK_EVENTS,
    NOTIFICATION_EVENTS,
    CUSTOM_EVENTS,
];

struct Spec {
    id: TemplateId,
    name: &'static str,
    group: &'static str,
    enabled_by_default: bool,
    audience: Audience,
    title: &'static str,
    body: &'static str,
    actions: &'static [(&'static str, &'static str)],
}

fn subject() -> Audience {
    Audience::Subject {
        not_when_initiator: false,
    }
}

fn roles(roles: &[Role], exclude_subject: bool) -> Audience {
    Audience::Roles {
        roles: roles.iter().copied().collect::<BTreeSet<_>>(),
        exclude_subject,
    }
}

const VIEW_WORKSPACE_BY_NAME: &[(&str, &str)] =
    &[("View workspace", "/@{{user_username}}/{{labels.name}}")];
const VIEW_WORKSPACE: &[(&str, &str)] =
    &[("View workspace", "/@{{user_username}}/{{labels.workspace}}")];
const VIEW_ACTIVE_ACCOUNTS: &[(&str, &str)] =
    &[("View accounts", "/deployment/users?filter=status%3Aactive")];
const TASK_ACTIONS: &[(&str, &str)] = &[
    ("View task", "/tasks/{{user_username}}/{{labels.workspace}}"),
    ("View workspace", "/@{{user_username}}/{{labels.workspace}}"),
];

fn specs() -> Vec<Spec> {
    vec![
        Spec {
            id: WORKSPACE_DELETED,
            name: "Workspace Deleted",
            group: WORKSPACE_EVENTS,
            enabled_by_default: true,
            audience: Audience::Subject {
                not_when_initiator: true,
            },
            title: "Workspace \"{{labels.name}}\" deleted",
            body: "Hi {{user_name}},\n\nYour workspace **{{labels.name}}** has been deleted.\n\n\
                   Reason given: {{labels.reason}}{{#if labels.initiator}} (by {{labels.initiator}}){{/if}}.",
            actions: &[
                ("View workspaces", "/workspaces"),
                ("View templates", "/templates"),
            ],
        },
        Spec {
            id: WORKSPACE_AUTOBUILD_FAILED,
            name: "Workspace Autobuild Failed",
            group: WORKSPACE_EVENTS,
            enabled_by_default: true,
            audience: subject(),
            title: "Workspace \"{{labels.name}}\" automatic build failed",
            body: "Hi {{user_name}},\n\nAn automatic build of your workspace **{{labels.name}}** failed.\n\n\
                   Reason given: {{labels.reason}}.",
            actions: VIEW_WORKSPACE_BY_NAME,
        },
        Spec {
            id: WORKSPACE_MARKED_DORMANT,
            name: "Workspace Marked as Dormant",
            group: WORKSPACE_EVENTS,
            enabled_by_default: true,
            audience: subject(),
            title: "Workspace \"{{labels.name}}\" marked as dormant",
            body: "Hi {{user_name}},\n\nYour workspace **{{labels.name}}** has been marked as dormant \
                   because of {{labels.reason}}{{#if labels.initiator}} (by {{labels.initiator}}){{/if}}.\n\n\
                   Dormant workspaces are deleted automatically after {{labels.timeTilDormant}} of \
                   inactivity. Start it before then to keep it.",
            actions: VIEW_WORKSPACE_BY_NAME,
        },
        Spec {
            id: WORKSPACE_UPDATED_AUTOMATICALLY,
            name: "Workspace Updated Automatically",
            group: WORKSPACE_EVENTS,
            enabled_by_default: true,
            audience: subject(),
            title: "Workspace \"{{labels.name}}\" updated automatically",
            body: "Hi {{user_name}},\n\nYour workspace **{{labels.name}}** was updated automatically to \
                   template version **{{labels.template_version_name}}**.\n\n\
                   What changed: {{labels.template_version_message}}",
            actions: VIEW_WORKSPACE_BY_NAME,
        },
        Spec {
            id: WORKSPACE_MARKED_FOR_DELETION,
            name: "Workspace Marked for Deletion",
            group: WORKSPACE_EVENTS,
            enabled_by_default: true,
            audience: subject(),
            title: "Workspace \"{{labels.name}}\" marked for deletion",
            body: "Hi {{user_name}},\n\nYour workspace **{{labels.name}}** has been marked for deletion \
                   because of {{labels.reason}}.\n\n\
                   It will be deleted after {{labels.timeTilDormant}} unless it is used before then.",
            actions: VIEW_WORKSPACE_BY_NAME,
        },
        Spec {
            id: WORKSPACE_MANUAL_BUILD_FAILED,
            name: "Workspace Manual Build Failed",
            group: WORKSPACE_EVENTS,
            enabled_by_default: true,
            // The reference's docs list it among the owner's events; its system sends it to the
            // template admins too (DESIGN §10.1).
            audience: Audience::SubjectAndRoles {
                roles: BTreeSet::from([Role::TemplateAdmin]),
            },
            title: "Workspace \"{{labels.name}}\" manual build failed",
            body: "Hi {{user_name}},\n\nA manual build of the workspace **{{labels.name}}**, owned by \
                   {{labels.workspace_owner_username}}, failed.\n\n\
                   Template: **{{labels.template_name}}**, version **{{labels.template_version_name}}**. \
                   The build was started by {{labels.initiator}}.",
            actions: &[(
                "View build",
                "/@{{labels.workspace_owner_username}}/{{labels.name}}/builds/{{labels.workspace_build_number}}",
            )],
        },
        Spec {
            id: WORKSPACE_CREATED,
            name: "Workspace Created",
            group: WORKSPACE_EVENTS,
            enabled_by_default: false,
            audience: subject(),
            title: "Workspace \"{{labels.workspace}}\" created",
            body: "Hi {{user_name}},\n\nYour workspace **{{labels.workspace}}** has been created from \
                   template **{{labels.template}}**, version **{{labels.version}}**.",
            actions: VIEW_WORKSPACE,
        },
        Spec {
            id: WORKSPACE_MANUALLY_UPDATED,
            name: "Workspace Manually Updated",
            group: WORKSPACE_EVENTS,
            enabled_by_default: false,
            audience: subject(),
            title: "Workspace \"{{labels.workspace}}\" updated",
            body: "Hi {{user_name}},\n\n{{labels.initiator}} updated your workspace \
                   **{{labels.workspace}}** to template **{{labels.template}}**, version \
                   **{{labels.version}}**.",
            actions: &[
                ("View workspace", "/@{{user_username}}/{{labels.workspace}}"),
                (
                    "View template version",
                    "/templates/{{labels.organization}}/{{labels.template}}/versions/{{labels.version}}",
                ),
            ],
        },
        Spec {
            id: WORKSPACE_OUT_OF_MEMORY,
            name: "Workspace Out Of Memory",
            group: WORKSPACE_EVENTS,
            enabled_by_default: true,
            audience: subject(),
            title: "Workspace \"{{labels.workspace}}\" is running out of memory",
            body: "Hi {{user_name}},\n\nYour workspace **{{labels.workspace}}** has used more than \
                   {{labels.threshold}} of its memory. Processes may be killed if it runs out.",
            actions: VIEW_WORKSPACE,
        },
        Spec {
            id: WORKSPACE_OUT_OF_DISK,
            name: "Workspace Out Of Disk",
            group: WORKSPACE_EVENTS,
            enabled_by_default: true,
            audience: subject(),
            title: "Workspace \"{{labels.workspace}}\" is running out of disk",
            // One volume is a sentence, several a list (as the reference renders it).
            body: "Hi {{user_name}},\n\nYour workspace **{{labels.workspace}}** is running out of disk \
                   space{{#if data.volumes.[1]}}:\n\n{{#each data.volumes}}- {{this.path}} is over \
                   {{this.threshold}} full\n{{/each}}{{else}}: volume **{{data.volumes.[0].path}}** is \
                   over {{data.volumes.[0].threshold}} full.{{/if}}",
            actions: VIEW_WORKSPACE,
        },
        Spec {
            id: USER_ACCOUNT_CREATED,
            name: "User account created",
            group: USER_EVENTS,
            enabled_by_default: true,
            audience: roles(&[Role::Owner, Role::UserAdmin], true),
            title: "User account \"{{labels.created_account_name}}\" created",
            body: "Hi {{user_name}},\n\n{{labels.initiator}} created the user account \
                   **{{labels.created_account_name}}** ({{labels.created_account_user_name}}).",
            actions: VIEW_ACTIVE_ACCOUNTS,
        },
        Spec {
            id: USER_ACCOUNT_DELETED,
            name: "User account deleted",
            group: USER_EVENTS,
            enabled_by_default: true,
            audience: roles(&[Role::Owner, Role::UserAdmin], true),
            title: "User account \"{{labels.deleted_account_name}}\" deleted",
            body: "Hi {{user_name}},\n\n{{labels.initiator}} deleted the user account \
                   **{{labels.deleted_account_name}}** ({{labels.deleted_account_user_name}}).",
            actions: VIEW_ACTIVE_ACCOUNTS,
        },
        Spec {
            id: USER_ACCOUNT_SUSPENDED,
            name: "User account suspended",
            group: USER_EVENTS,
            enabled_by_default: true,
            audience: roles(&[Role::Owner, Role::UserAdmin], true),
            title: "User account \"{{labels.suspended_account_name}}\" suspended",
            body: "Hi {{user_name}},\n\n{{labels.initiator}} suspended the user account \
                   **{{labels.suspended_account_name}}** ({{labels.suspended_account_user_name}}).",
            actions: &[(
                "View suspended accounts",
                "/deployment/users?filter=status%3Asuspended",
            )],
        },
        Spec {
            id: USER_ACCOUNT_ACTIVATED,
            name: "User account activated",
            group: USER_EVENTS,
            enabled_by_default: true,
            audience: roles(&[Role::Owner, Role::UserAdmin], true),
            title: "User account \"{{labels.activated_account_name}}\" activated",
            body: "Hi {{user_name}},\n\n{{labels.initiator}} activated the user account \
                   **{{labels.activated_account_name}}** ({{labels.activated_account_user_name}}).",
            actions: VIEW_ACTIVE_ACCOUNTS,
        },
        Spec {
            id: YOUR_ACCOUNT_SUSPENDED,
            name: "Your account has been suspended",
            group: USER_EVENTS,
            enabled_by_default: true,
            audience: subject(),
            title: "Your account has been suspended",
            body: "Hi {{user_name}},\n\nYour account **{{labels.suspended_account_name}}** has been \
                   suspended{{#if labels.initiator}} by {{labels.initiator}}{{/if}}. \
                   Contact an administrator if you think this is a mistake.",
            actions: &[],
        },
        Spec {
            id: YOUR_ACCOUNT_ACTIVATED,
            name: "Your account has been activated",
            group: USER_EVENTS,
            enabled_by_default: true,
            audience: subject(),
            title: "Your account has been activated",
            body: "Hi {{user_name}},\n\nYour account **{{labels.activated_account_name}}** has been \
                   activated{{#if labels.initiator}} by {{labels.initiator}}{{/if}}. Welcome back.",
            actions: &[("Open {{app_name}}", "/")],
        },
        Spec {
            id: ONE_TIME_PASSCODE,
            name: "One-Time Passcode",
            group: USER_EVENTS,
            enabled_by_default: true,
            audience: subject(),
            title: "Your one-time passcode",
            body: "Hi {{user_name}},\n\nUse this one-time passcode to reset your password: \
                   **{{labels.one_time_passcode}}**\n\n\
                   If you did not ask to reset your password, ignore this message.",
            actions: &[(
                "Reset password",
                "/reset-password/change?otp={{labels.one_time_passcode}}&email={{user_email}}",
            )],
        },
        Spec {
            id: TEMPLATE_DELETED,
            name: "Template Deleted",
            group: TEMPLATE_EVENTS,
            enabled_by_default: true,
            audience: roles(&[Role::TemplateAdmin], false),
            title: "Template \"{{labels.name}}\" deleted",
            body: "Hi {{user_name}},\n\n{{labels.initiator}} deleted the template **{{labels.name}}**.",
            actions: &[("View templates", "/templates")],
        },
        Spec {
            id: TEMPLATE_DEPRECATED,
            name: "Template Deprecated",
            group: TEMPLATE_EVENTS,
            enabled_by_default: true,
            audience: roles(&[Role::TemplateAdmin], false),
            title: "Template \"{{labels.template}}\" deprecated",
            body: "Hi {{user_name}},\n\nThe template **{{labels.template}}** in {{labels.organization}} \
                   has been deprecated. Workspaces using it keep running; new ones should use another \
                   template.\n\nMessage from the template's admins: {{labels.message}}",
            actions: &[
                (
                    "See affected workspaces",
                    "/workspaces?filter=owner%3Ame+template%3A{{labels.template}}",
                ),
                (
                    "View template",
                    "/templates/{{labels.organization}}/{{labels.template}}",
                ),
            ],
        },
        Spec {
            id: REPORT_WORKSPACE_BUILDS_FAILED,
            name: "Report: Workspace Builds Failed",
            group: TEMPLATE_EVENTS,
            enabled_by_default: true,
            audience: roles(&[Role::TemplateAdmin], false),
            title: "Workspace builds failed for templates",
            body: "Hi {{user_name}},\n\nThese templates had failed workspace builds over the last \
                   {{data.report_frequency}}:\n\n\
                   {{#each data.templates}}\
                   - **{{this.display_name}}** ({{this.name}}) failed {{this.failed_builds}} of \
                   {{this.total_builds}} builds\n\
                   {{#each this.versions}}\
                   \x20 - version {{this.template_version_name}}: {{this.failed_count}} failed\n\
                   {{#each this.failed_builds}}\
                   \x20   - [build {{this.build_number}} of {{this.workspace_owner_username}}/{{this.workspace_name}}]\
                   (<{{base_url}}/@{{this.workspace_owner_username}}/{{this.workspace_name}}/builds/{{this.build_number}}>)\n\
                   {{/each}}\
                   {{/each}}\
                   {{/each}}",
            actions: &[("View workspaces", "/workspaces")],
        },
        Spec {
            id: TASK_WORKING,
            name: "Task Working",
            group: TASK_EVENTS,
            enabled_by_default: false,
            audience: subject(),
            title: "Task \"{{labels.task}}\" is working",
            body: "Hi {{user_name}},\n\nThe task **{{labels.task}}** in workspace \
                   **{{labels.workspace}}** is working again.",
            actions: TASK_ACTIONS,
        },
        Spec {
            id: TASK_IDLE,
            name: "Task Idle",
            group: TASK_EVENTS,
            enabled_by_default: false,
            audience: subject(),
            title: "Task \"{{labels.task}}\" is idle",
            body: "Hi {{user_name}},\n\nThe task **{{labels.task}}** in workspace \
                   **{{labels.workspace}}** is idle and may be waiting for your input.",
            actions: TASK_ACTIONS,
        },
        Spec {
            id: TEST_NOTIFICATION,
            name: "Test Notification",
            group: NOTIFICATION_EVENTS,
            enabled_by_default: true,
            audience: Audience::Caller,
            title: "A test notification",
            body: "Hi {{user_name}},\n\nThis is a test notification from {{app_name}}. If you can read \
                   it, notifications reach you.",
            actions: &[(
                "View notification settings",
                "/deployment/notifications?tab=settings",
            )],
        },
        Spec {
            id: CUSTOM_NOTIFICATION,
            name: "Custom Notification",
            group: CUSTOM_EVENTS,
            enabled_by_default: true,
            audience: Audience::Caller,
            title: "{{labels.custom_title}}",
            body: "{{labels.custom_message}}",
            actions: &[],
        },
    ]
}

/// Every template Herald ships with, in catalogue order, with no method override.
pub fn templates() -> Vec<Template> {
    specs()
        .into_iter()
        .map(|spec| {
            let never_deduplicated = matches!(
                spec.group,
                TASK_EVENTS | NOTIFICATION_EVENTS | CUSTOM_EVENTS
            );
            Template {
                id: spec.id,
                name: spec.name.to_owned(),
                group: spec.group.to_owned(),
                kind: if spec.id == CUSTOM_NOTIFICATION {
                    TemplateKind::Custom
                } else {
                    TemplateKind::System
                },
                title: spec.title.to_owned(),
                body: spec.body.to_owned(),
                actions: spec
                    .actions
                    .iter()
                    .map(|(label, url)| ActionTemplate {
                        label: (*label).to_owned(),
                        url: (*url).to_owned(),
                    })
                    .collect(),
                enabled_by_default: spec.enabled_by_default,
                method_override: None,
                audience: spec.audience,
                inbox_allowed: spec.id != ONE_TIME_PASSCODE,
                deduplicate: !never_deduplicated,
                digest_window: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Transcribed from `shared/reference/catalogue.tsv`: id, name, group, enabled_by_default.
    const REFERENCE: &[(&str, &str, &str, bool)] = &[
        (
            "f517da0b-cdc9-410f-ab89-a86107c420ed",
            "Workspace Deleted",
            WORKSPACE_EVENTS,
            true,
        ),
        (
            "381df2a9-c0c0-4749-420f-80a9280c66f9",
            "Workspace Autobuild Failed",
            WORKSPACE_EVENTS,
            true,
        ),
        (
            "0ea69165-ec14-4314-91f1-69566ac3c5a0",
            "Workspace Marked as Dormant",
            WORKSPACE_EVENTS,
            true,
        ),
        (
            "c34a0c09-0704-4cac-bd1c-0c0146811c2b",
            "Workspace Updated Automatically",
            WORKSPACE_EVENTS,
            true,
        ),
        (
            "51ce2fdf-c9ca-4be1-8d70-628674f9bc42",
            "Workspace Marked for Deletion",
            WORKSPACE_EVENTS,
            true,
        ),
        (
            "2faeee0f-26cb-4e96-821c-85ccb9f71513",
            "Workspace Manual Build Failed",
            WORKSPACE_EVENTS,
            true,
        ),
        (
            "281fdf73-c6d6-4cbb-8ff5-888baf8a2fff",
            "Workspace Created",
            WORKSPACE_EVENTS,
            false,
        ),
        (
            "d089fe7b-d5c5-4c0c-aaf5-689859f7d392",
            "Workspace Manually Updated",
            WORKSPACE_EVENTS,
            false,
        ),
        (
            "a9d027b4-ac49-4fb1-9f6d-45af15f64e7a",
            "Workspace Out Of Memory",
            WORKSPACE_EVENTS,
            true,
        ),
        (
            "f047f6a3-5713-40f7-85aa-0394cce9fa3a",
            "Workspace Out Of Disk",
            WORKSPACE_EVENTS,
            true,
        ),
        (
            "4e19c0ac-94e1-4532-9515-d1801aa283b2",
            "User account created",
            USER_EVENTS,
            true,
        ),
        (
            "f44d9314-ad03-4bc8-95d0-5cad491da6b6",
            "User account deleted",
            USER_EVENTS,
            true,
        ),
        (
            "b02ddd82-4733-4d02-a2d7-c36f3598997d",
            "User account suspended",
            USER_EVENTS,
            true,
        ),
        (
            "9f5af851-8408-4e73-a7a1-c6502ba46689",
            "User account activated",
            USER_EVENTS,
            true,
        ),
        (
            "6a2f0609-9b69-4d36-a989-9f5925b6cbff",
            "Your account has been suspended",
            USER_EVENTS,
            true,
        ),
        (
            "1a6a6bea-ee0a-43e2-9e7c-eabdb53730e4",
            "Your account has been activated",
            USER_EVENTS,
            true,
        ),
        (
            "62f86a30-2330-4b61-a26d-311ff3b608cf",
            "One-Time Passcode",
            USER_EVENTS,
            true,
        ),
        (
            "29a09665-2a4c-403f-9648-54301670e7be",
            "Template Deleted",
            TEMPLATE_EVENTS,
            true,
        ),
        (
            "f40fae84-55a2-42cd-99fa-b41c1ca64894",
            "Template Deprecated",
            TEMPLATE_EVENTS,
            true,
        ),
        (
            "34a20db2-e9cc-4a93-b0e4-8569699d7a00",
            "Report: Workspace Builds Failed",
            TEMPLATE_EVENTS,
            true,
        ),
        (
            "bd4b7168-d05e-4e19-ad0f-3593b77aa90f",
            "Task Working",
            TASK_EVENTS,
            false,
        ),
        (
            "d4a6271c-cced-4ed0-84ad-afd02a9c7799",
            "Task Idle",
            TASK_EVENTS,
            false,
        ),
        (
            "c425f63e-716a-4bf4-ae24-78348f706c3f",
            "Test Notification",
            NOTIFICATION_EVENTS,
            true,
        ),
        (
            "39b1e189-c857-4b0c-877a-511144c18516",
            "Custom Notification",
            CUSTOM_EVENTS,
            true,
        ),
    ];

    #[test]
    fn catalogue_matches_the_reference_ids_names_groups_and_defaults() {
        let templates = templates();
        assert_eq!(templates.len(), REFERENCE.len());
        for (template, (id, name, group, enabled)) in templates.iter().zip(REFERENCE) {
            assert_eq!(template.id.to_string(), *id, "{name}");
            assert_eq!(template.name, *name);
            assert_eq!(template.group, *group, "{name}");
            assert_eq!(template.enabled_by_default, *enabled, "{name}");
        }
    }

    #[test]
    fn every_template_is_in_one_of_the_listed_groups() {
        for template in templates() {
            assert!(
                GROUPS.contains(&template.group.as_str()),
                "{}",
                template.name
            );
        }
    }

    #[test]
    fn ids_and_names_are_unique() {
        let templates = templates();
        let ids: HashSet<_> = templates.iter().map(|t| t.id).collect();
        let names: HashSet<_> = templates.iter().map(|t| t.name.to_lowercase()).collect();
        assert_eq!(ids.len(), templates.len());
        assert_eq!(names.len(), templates.len());
    }

    #[test]
    fn audiences_follow_the_design() {
        let by_id = |id| templates().into_iter().find(|t| t.id == id).unwrap();
        assert_eq!(
            by_id(WORKSPACE_DELETED).audience,
            Audience::Subject {
                not_when_initiator: true
            }
        );
        assert_eq!(
            by_id(WORKSPACE_MANUAL_BUILD_FAILED).audience,
            Audience::SubjectAndRoles {
                roles: BTreeSet::from([Role::TemplateAdmin])
            }
        );
        for id in [
            USER_ACCOUNT_CREATED,
            USER_ACCOUNT_DELETED,
            USER_ACCOUNT_SUSPENDED,
            USER_ACCOUNT_ACTIVATED,
        ] {
            assert_eq!(
                by_id(id).audience,
                roles(&[Role::Owner, Role::UserAdmin], true)
            );
        }
        for id in [
            TEMPLATE_DELETED,
            TEMPLATE_DEPRECATED,
            REPORT_WORKSPACE_BUILDS_FAILED,
        ] {
            assert_eq!(by_id(id).audience, roles(&[Role::TemplateAdmin], false));
        }
        assert_eq!(by_id(TEST_NOTIFICATION).audience, Audience::Caller);
        assert_eq!(by_id(CUSTOM_NOTIFICATION).audience, Audience::Caller);
        assert_eq!(by_id(CUSTOM_NOTIFICATION).kind, TemplateKind::Custom);
        assert_eq!(by_id(TASK_IDLE).audience, subject());
    }

    #[test]
    fn only_the_one_time_passcode_stays_out_of_the_inbox() {
        for template in templates() {
            assert_eq!(
                template.inbox_allowed,
                template.id != ONE_TIME_PASSCODE,
                "{}",
                template.name
            );
        }
    }

    #[test]
    fn test_custom_and_task_events_are_never_deduplicated() {
        let never: Vec<_> = templates()
            .into_iter()
            .filter(|t| !t.deduplicate)
            .map(|t| t.id)
            .collect();
        assert_eq!(
            never,
            vec![
                TASK_WORKING,
                TASK_IDLE,
                TEST_NOTIFICATION,
                CUSTOM_NOTIFICATION
            ]
        );
    }
}
