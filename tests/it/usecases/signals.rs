//! Host signals over the memory fakes (DESIGN §10.5): resource usage crossing its threshold
//! and coming back under, one volume or several, task states announced on a change only.

use chrono::TimeDelta;
use std::collections::BTreeMap;

use std::sync::Arc;

use herald_application::ports::Clock as _;
use herald_application::preferences::PreferenceUpdate;
use herald_application::signals::{
    Notice, ResourceOutcome, TaskInput, TaskReport, UsageInput, UsageReport, VolumeInput,
};
use herald_application::{DefaultMethod, Error};
use herald_domain::catalogue::{
    self, TASK_IDLE, TASK_WORKING, WORKSPACE_OUT_OF_DISK, WORKSPACE_OUT_OF_MEMORY,
};
use herald_domain::signals::{TaskId, TaskQuiet, TaskState, WorkspaceId};
use herald_domain::{Method, Role, TemplateId, User, UserId};
use herald_memory::MemoryStore;

use super::support::Harness;

const GIB: u64 = 1 << 30;

fn memory_at(owner: &User, workspace: WorkspaceId, used_percent: u64) -> UsageReport {
    UsageReport::parse(UsageInput {
        workspace_id: workspace,
        workspace_name: "dev-box".to_owned(),
        owner_id: owner.id,
        agent: "main".to_owned(),
        memory: Some((used_percent * GIB / 100, GIB, 90)),
        volumes: Vec::new(),
    })
    .unwrap()
}

fn volumes_at(owner: &User, workspace: WorkspaceId, volumes: &[(&str, u64)]) -> UsageReport {
    UsageReport::parse(UsageInput {
        workspace_id: workspace,
        workspace_name: "dev-box".to_owned(),
        owner_id: owner.id,
        agent: "main".to_owned(),
        memory: None,
        volumes: volumes
            .iter()
            .map(|(path, used_percent)| VolumeInput {
                path: (*path).to_owned(),
                used: used_percent * 10,
                total: 1000,
                threshold_percent: 90,
            })
            .collect(),
    })
    .unwrap()
}

/// The one message a notice queued, rendered as its recipient gets it: (title, body) text.
async fn rendered(h: &Harness, notice: &Notice) -> (String, String) {
    assert_eq!(notice.result.skipped, vec![], "{notice:?}");
    let [id] = notice.result.message_ids[..] else {
        panic!("one message expected: {notice:?}");
    };
    let message = h.message(id).await;
    assert_eq!(message.template_id, notice.template_id);
    let template = template(notice.template_id);
    let rendered = h
        .services
        .renderer()
        .render_message(&template, &message.payload, h.clock.now())
        .unwrap();
    (rendered.title, rendered.body)
}

fn template(id: TemplateId) -> herald_domain::Template {
    catalogue::templates()
        .into_iter()
        .find(|template| template.id == id)
        .unwrap()
}

#[tokio::test]
async fn memory_crossing_its_threshold_tells_the_owner_once_until_it_has_been_back_under() {
    let h = Harness::webhook_only();
    let owner = h.user("ada", &[Role::Member]).await;
    let workspace = WorkspaceId::random();
    let signals = h.services.signals();

    let under = signals
        .report_usage(memory_at(&owner, workspace, 50))
        .await
        .unwrap();
    assert_eq!(under.memory, Some(ResourceOutcome::Under));
    assert_eq!(under.notifications, vec![]);

    h.clock.advance(TimeDelta::seconds(60));
    let crossed = signals
        .report_usage(memory_at(&owner, workspace, 95))
        .await
        .unwrap();
    assert_eq!(crossed.memory, Some(ResourceOutcome::Crossed));
    let [notice] = &crossed.notifications[..] else {
        panic!("one notification expected: {crossed:?}");
    };
    assert_eq!(notice.template_id, WORKSPACE_OUT_OF_MEMORY);
    let message = h.message(notice.result.message_ids[0]).await;
    assert_eq!(message.recipient, owner.id);
    assert_eq!(message.payload.labels["threshold"], "90%");
    assert_eq!(message.payload.labels["workspace"], "dev-box");
    let (title, body) = rendered(&h, notice).await;
    assert_eq!(title, "Workspace \"dev-box\" is running out of memory");
    assert!(
        body.contains("has used more than 90% of its memory"),
        "{body}"
    );

    // Still over, even further: not again.
    for percent in [95, 99] {
        h.clock.advance(TimeDelta::seconds(60));
        let again = signals
            .report_usage(memory_at(&owner, workspace, percent))
            .await
            .unwrap();
        assert_eq!(again.memory, Some(ResourceOutcome::StillOver));
        assert_eq!(again.notifications, vec![]);
    }

    // Back under, then over again (the same day, the same figures): told again.
    h.clock.advance(TimeDelta::seconds(60));
    let recovered = signals
        .report_usage(memory_at(&owner, workspace, 40))
        .await
        .unwrap();
    assert_eq!(recovered.memory, Some(ResourceOutcome::Under));
    h.clock.advance(TimeDelta::seconds(60));
    let crossed_again = signals
        .report_usage(memory_at(&owner, workspace, 95))
        .await
        .unwrap();
    assert_eq!(crossed_again.memory, Some(ResourceOutcome::Crossed));
    let [notice] = &crossed_again.notifications[..] else {
        panic!("one notification expected: {crossed_again:?}");
    };
    assert_eq!(notice.result.skipped, vec![]);
    assert_eq!(notice.result.message_ids.len(), 1);

    // Another agent of the workspace has a state of its own.
    let other_agent = UsageReport::parse(UsageInput {
        agent: "gpu".to_owned(),
        ..input_of(&owner, workspace, Some((95, 100, 90)), vec![])
    })
    .unwrap();
    let other = signals.report_usage(other_agent).await.unwrap();
    assert_eq!(other.memory, Some(ResourceOutcome::Crossed));
}

fn input_of(
    owner: &User,
    workspace: WorkspaceId,
    memory: Option<(u64, u64, u64)>,
    volumes: Vec<VolumeInput>,
) -> UsageInput {
    UsageInput {
        workspace_id: workspace,
        workspace_name: "dev-box".to_owned(),
        owner_id: owner.id,
        agent: "main".to_owned(),
        memory,
        volumes,
    }
}

#[tokio::test]
async fn one_volume_over_reads_as_a_sentence_and_several_as_a_list_of_only_those_over() {
    let h = Harness::webhook_only();
    let owner = h.user("ada", &[Role::Member]).await;
    let signals = h.services.signals();

    let one = signals
        .report_usage(volumes_at(
            &owner,
            WorkspaceId::random(),
            &[("/home/coder", 95), ("/tmp", 10)],
        ))
        .await
        .unwrap();
    let [notice] = &one.notifications[..] else {
        panic!("one notification expected: {one:?}");
    };
    assert_eq!(notice.template_id, WORKSPACE_OUT_OF_DISK);
    let (title, body) = rendered(&h, notice).await;
    assert_eq!(title, "Workspace \"dev-box\" is running out of disk");
    assert!(
        body.contains(
            "Your workspace dev-box is running out of disk space: volume /home/coder is over 90% full."
        ),
        "{body}"
    );
    assert!(!body.contains("/tmp"), "{body}");
    assert!(!body.contains("- "), "{body}");

    let several = signals
        .report_usage(volumes_at(
            &owner,
            WorkspaceId::random(),
            &[("/home/coder", 91), ("/tmp", 10), ("/var/lib/docker", 100)],
        ))
        .await
        .unwrap();
    let states: Vec<_> = several
        .volumes
        .iter()
        .map(|volume| (volume.path.as_str(), volume.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("/home/coder", ResourceOutcome::Crossed),
            ("/tmp", ResourceOutcome::Under),
            ("/var/lib/docker", ResourceOutcome::Crossed),
        ]
    );
    let [notice] = &several.notifications[..] else {
        panic!("one notification expected: {several:?}");
    };
    let (_, body) = rendered(&h, notice).await;
    assert!(
        body.contains(
            "running out of disk space:\n\n- /home/coder is over 90% full\n- /var/lib/docker is over 90% full"
        ),
        "{body}"
    );
    assert!(!body.contains("/tmp"), "{body}");
}

#[tokio::test]
async fn a_volume_already_announced_is_left_out_of_the_next_volume_s_notification() {
    let h = Harness::webhook_only();
    let owner = h.user("ada", &[Role::Member]).await;
    let workspace = WorkspaceId::random();
    let signals = h.services.signals();
    signals
        .report_usage(volumes_at(
            &owner,
            workspace,
            &[("/home", 95), ("/data", 5)],
        ))
        .await
        .unwrap();

    let next = signals
        .report_usage(volumes_at(
            &owner,
            workspace,
            &[("/home", 96), ("/data", 92)],
        ))
        .await
        .unwrap();

    let [notice] = &next.notifications[..] else {
        panic!("one notification expected: {next:?}");
    };
    let message = h.message(notice.result.message_ids[0]).await;
    let data = message.payload.data.unwrap();
    let paths: Vec<_> = data["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|volume| volume["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, vec!["/data"]);
    let (_, body) = rendered(&h, notice).await;
    assert!(body.contains("volume /data is over 90% full."), "{body}");
}

#[tokio::test]
async fn memory_and_volumes_crossing_together_make_one_notification_each() {
    let h = Harness::webhook_only();
    let owner = h.user("ada", &[Role::Member]).await;
    let report = UsageReport::parse(input_of(
        &owner,
        WorkspaceId::random(),
        Some((95, 100, 90)),
        vec![VolumeInput {
            path: "/home".to_owned(),
            used: 100,
            total: 100,
            threshold_percent: 80,
        }],
    ))
    .unwrap();

    let outcome = h.services.signals().report_usage(report).await.unwrap();

    let templates: Vec<_> = outcome
        .notifications
        .iter()
        .map(|notice| notice.template_id)
        .collect();
    assert_eq!(
        templates,
        vec![WORKSPACE_OUT_OF_MEMORY, WORKSPACE_OUT_OF_DISK]
    );
    assert!(
        outcome
            .notifications
            .iter()
            .all(|notice| notice.result.message_ids.len() == 1)
    );
}

#[tokio::test]
async fn an_owner_who_turned_out_of_disk_off_is_reported_skipped_and_the_crossing_kept() {
    let h = Harness::webhook_only();
    let owner = h.user("ada", &[Role::Member]).await;
    h.preferences
        .update(
            owner.id,
            PreferenceUpdate {
                templates: BTreeMap::from([(WORKSPACE_OUT_OF_DISK, true)]),
                ..PreferenceUpdate::default()
            },
        )
        .await
        .unwrap();
    let workspace = WorkspaceId::random();

    let outcome = h
        .services
        .signals()
        .report_usage(volumes_at(&owner, workspace, &[("/home", 95)]))
        .await
        .unwrap();

    let [notice] = &outcome.notifications[..] else {
        panic!("one notification expected: {outcome:?}");
    };
    assert_eq!(notice.result.message_ids, vec![]);
    assert_eq!(
        serde_json::to_value(&notice.result.skipped).unwrap(),
        serde_json::json!([{"user_id": owner.id, "reason": "disabled"}])
    );
    let again = h
        .services
        .signals()
        .report_usage(volumes_at(&owner, workspace, &[("/home", 95)]))
        .await
        .unwrap();
    assert_eq!(again.volumes[0].state, ResourceOutcome::StillOver);
}

fn task_report(owner: &User, task: TaskId, state: &str) -> TaskReport {
    TaskReport::parse(
        task,
        TaskInput {
            owner_id: owner.id,
            task_name: "fix-the-build".to_owned(),
            workspace_name: "dev-box".to_owned(),
            state: state.to_owned(),
        },
    )
    .unwrap()
}

/// An owner who opted in to both task templates (off by default).
async fn task_owner(h: &Harness) -> User {
    let owner = h.user("ada", &[Role::Member]).await;
    h.preferences
        .update(
            owner.id,
            PreferenceUpdate {
                templates: BTreeMap::from([(TASK_WORKING, false), (TASK_IDLE, false)]),
                ..PreferenceUpdate::default()
            },
        )
        .await
        .unwrap();
    owner
}

#[tokio::test]
async fn a_task_is_announced_on_each_change_of_state_but_not_its_first_working_nor_a_repeat() {
    let h = Harness::webhook_only();
    let owner = task_owner(&h).await;
    let task = TaskId::random();
    let signals = h.services.signals();
    let mut told = Vec::new();

    for (state, previous, expected) in [
        ("working", None, Err(TaskQuiet::FirstWorking)),
        (
            "working",
            Some(TaskState::Working),
            Err(TaskQuiet::Unchanged),
        ),
        ("idle", Some(TaskState::Working), Ok(TASK_IDLE)),
        ("idle", Some(TaskState::Idle), Err(TaskQuiet::Unchanged)),
        ("working", Some(TaskState::Idle), Ok(TASK_WORKING)),
        (
            "complete",
            Some(TaskState::Working),
            Err(TaskQuiet::NotAnnounced),
        ),
        ("working", Some(TaskState::Complete), Ok(TASK_WORKING)),
        (
            "failed",
            Some(TaskState::Working),
            Err(TaskQuiet::NotAnnounced),
        ),
        ("idle", Some(TaskState::Failed), Ok(TASK_IDLE)),
    ] {
        h.clock.advance(TimeDelta::seconds(30));
        let outcome = signals
            .set_task_state(task_report(&owner, task, state))
            .await
            .unwrap();
        assert_eq!(outcome.previous, previous, "{state}: {outcome:?}");
        assert_eq!(outcome.state.as_str(), state);
        match expected {
            Ok(template) => {
                let notice = outcome.notification.as_ref().unwrap();
                assert_eq!(notice.template_id, template, "{state}");
                assert_eq!(outcome.quiet, None);
                let (title, body) = rendered(&h, notice).await;
                told.push(title);
                assert!(body.contains("fix-the-build"), "{body}");
                assert!(body.contains("dev-box"), "{body}");
            }
            Err(quiet) => {
                assert_eq!(outcome.notification, None, "{state}");
                assert_eq!(outcome.quiet, Some(quiet), "{state}");
            }
        }
    }
    assert_eq!(
        told,
        vec![
            "Task \"fix-the-build\" is idle",
            "Task \"fix-the-build\" is working",
            "Task \"fix-the-build\" is working",
            "Task \"fix-the-build\" is idle",
        ]
    );
}

#[tokio::test]
async fn a_task_first_reported_idle_is_announced_and_tasks_are_kept_apart() {
    let h = Harness::webhook_only();
    let owner = task_owner(&h).await;
    let signals = h.services.signals();
    let (one, two) = (TaskId::random(), TaskId::random());
    signals
        .set_task_state(task_report(&owner, one, "working"))
        .await
        .unwrap();

    let first_idle = signals
        .set_task_state(task_report(&owner, two, "idle"))
        .await
        .unwrap();
    let first_working = signals
        .set_task_state(task_report(&owner, TaskId::random(), "working"))
        .await
        .unwrap();

    assert_eq!(first_idle.previous, None);
    assert_eq!(
        first_idle.notification.map(|notice| notice.template_id),
        Some(TASK_IDLE)
    );
    assert_eq!(first_working.quiet, Some(TaskQuiet::FirstWorking));
}

#[tokio::test]
async fn task_notifications_are_off_by_default_so_an_owner_who_did_not_opt_in_is_skipped() {
    let h = Harness::webhook_only();
    let owner = h.user("ada", &[Role::Member]).await;
    let task = TaskId::random();
    let signals = h.services.signals();
    signals
        .set_task_state(task_report(&owner, task, "working"))
        .await
        .unwrap();

    let idle = signals
        .set_task_state(task_report(&owner, task, "idle"))
        .await
        .unwrap();

    let notice = idle.notification.unwrap();
    assert_eq!(notice.result.message_ids, vec![]);
    assert_eq!(
        serde_json::to_value(&notice.result.skipped).unwrap(),
        serde_json::json!([{"user_id": owner.id, "reason": "disabled"}])
    );
}

fn field_of(err: Error) -> String {
    match err {
        Error::Invalid { field, .. } => field,
        other => panic!("not a bad-input error: {other:?}"),
    }
}

#[test]
fn bad_usage_reports_are_refused_naming_the_field() {
    let owner = herald_tests::sample::user("ada", &[Role::Member]);
    let workspace = WorkspaceId::random();
    let volume = |path: &str, used, total, threshold_percent| VolumeInput {
        path: path.to_owned(),
        used,
        total,
        threshold_percent,
    };
    let cases = [
        (
            input_of(&owner, workspace, Some((11, 10, 90)), vec![]),
            "memory.used",
        ),
        (
            input_of(&owner, workspace, Some((0, 0, 90)), vec![]),
            "memory.total",
        ),
        (
            input_of(&owner, workspace, Some((1, 10, 101)), vec![]),
            "memory.threshold_percent",
        ),
        (input_of(&owner, workspace, None, vec![]), "memory"),
        (
            input_of(
                &owner,
                workspace,
                None,
                vec![volume("/a", 1, 10, 90), volume("", 1, 10, 90)],
            ),
            "volumes[1].path",
        ),
        (
            input_of(
                &owner,
                workspace,
                None,
                vec![volume("/a", 1, 10, 90), volume(" /a ", 1, 10, 90)],
            ),
            "volumes[1].path",
        ),
        (
            input_of(&owner, workspace, None, vec![volume("/a", 1, 10, 200)]),
            "volumes[0].threshold_percent",
        ),
        (
            input_of(&owner, workspace, None, vec![volume("/a", 20, 10, 90)]),
            "volumes[0].used",
        ),
        (
            UsageInput {
                workspace_name: "  ".to_owned(),
                ..input_of(&owner, workspace, Some((1, 10, 90)), vec![])
            },
            "workspace_name",
        ),
        (
            UsageInput {
                agent: "a\u{0}b".to_owned(),
                ..input_of(&owner, workspace, Some((1, 10, 90)), vec![])
            },
            "agent",
        ),
    ];
    for (input, field) in cases {
        let err = UsageReport::parse(input.clone()).unwrap_err();
        assert_eq!(field_of(err), field, "{input:?}");
    }
}

#[test]
fn bad_task_reports_are_refused_naming_the_field() {
    let owner = UserId::random();
    let input = |task_name: &str, workspace_name: &str, state: &str| TaskInput {
        owner_id: owner,
        task_name: task_name.to_owned(),
        workspace_name: workspace_name.to_owned(),
        state: state.to_owned(),
    };
    for (input, field) in [
        (input("t", "w", "busy"), "state"),
        (input("t", "w", ""), "state"),
        (input("", "w", "idle"), "task_name"),
        (input("t", &"w".repeat(300), "idle"), "workspace_name"),
    ] {
        let err = TaskReport::parse(TaskId::random(), input.clone()).unwrap_err();
        assert_eq!(field_of(err), field, "{input:?}");
    }
}

#[tokio::test]
async fn an_unknown_owner_is_refused_and_nothing_is_recorded() {
    let h = Harness::webhook_only();
    let stranger = herald_tests::sample::user("nobody", &[Role::Member]);
    let owner = h.user("ada", &[Role::Member]).await;
    let workspace = WorkspaceId::random();
    let signals = h.services.signals();

    let err = signals
        .report_usage(memory_at(&stranger, workspace, 95))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "owner_id");
    let task = TaskId::random();
    let err = signals
        .set_task_state(task_report(&stranger, task, "working"))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "owner_id");

    // Nothing was recorded: the workspace's memory still crosses, the task still starts.
    let crossed = signals
        .report_usage(memory_at(&owner, workspace, 95))
        .await
        .unwrap();
    assert_eq!(crossed.memory, Some(ResourceOutcome::Crossed));
    let first = signals
        .set_task_state(task_report(&owner, task, "working"))
        .await
        .unwrap();
    assert_eq!(first.previous, None);
}

#[tokio::test]
async fn a_crossing_that_could_not_be_queued_is_announced_by_the_next_report_over() {
    let queue = MemoryStore::new();
    let shared = queue.clone();
    let h = Harness::with_ports(
        DefaultMethod::Webhook,
        &[Method::Webhook],
        move |ports, _| {
            ports.queue = Arc::new(shared);
        },
    );
    let owner = h.user("ada", &[Role::Member]).await;
    let workspace = WorkspaceId::random();
    let signals = h.services.signals();

    queue.set_unavailable(true);
    let err = signals
        .report_usage(memory_at(&owner, workspace, 95))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");

    queue.set_unavailable(false);
    let next = signals
        .report_usage(memory_at(&owner, workspace, 95))
        .await
        .unwrap();
    assert_eq!(next.memory, Some(ResourceOutcome::Crossed));
    assert_eq!(next.notifications[0].result.message_ids.len(), 1);
}
