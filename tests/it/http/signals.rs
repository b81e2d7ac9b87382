//! Host signals through the API over PostgreSQL (DESIGN §10.5): `POST /resources/usage` and
//! `PUT /tasks/{id}/state`, their answers, and bad input refused naming the field.

use axum::http::StatusCode;
use herald_application::ports::MessageQueue as _;
use herald_domain::catalogue::{
    TASK_IDLE, TASK_WORKING, WORKSPACE_OUT_OF_DISK, WORKSPACE_OUT_OF_MEMORY,
};
use herald_domain::{MessageId, UserId};
use serde_json::{Value, json};
use uuid::Uuid;

use super::support::App;

const USAGE: &str = "/api/v2/resources/usage";

fn memory_report(workspace: Uuid, owner: UserId, used: u64) -> Value {
    json!({
        "workspace_id": workspace,
        "workspace_name": "dev-box",
        "owner_id": owner,
        "agent": "main",
        "memory": {"used": used, "total": 1000, "threshold_percent": 90},
    })
}

fn volume_report(workspace: Uuid, owner: UserId, volumes: &[(&str, u64)]) -> Value {
    let volumes: Vec<Value> = volumes
        .iter()
        .map(|(path, used)| json!({"path": path, "used": used, "total": 100, "threshold_percent": 80}))
        .collect();
    json!({
        "workspace_id": workspace,
        "workspace_name": "dev-box",
        "owner_id": owner,
        "agent": "main",
        "volumes": volumes,
    })
}

async fn volumes_of(app: &App, id: &Value) -> Vec<String> {
    let id = MessageId::from_uuid(id.as_str().unwrap().parse().unwrap());
    let message = app.store.get(id).await.unwrap().unwrap();
    message.payload.data.unwrap()["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|volume| volume["path"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_over_its_threshold_is_announced_once_until_it_has_been_back_under() {
    let app = App::start().await;
    let (workspace, owner) = (Uuid::new_v4(), app.member.user.id);
    let report = |used| memory_report(workspace, owner, used);

    let under = app
        .post(USAGE, &app.owner, report(500))
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(
        under,
        json!({"memory": "under", "volumes": [], "notifications": []})
    );

    let crossed = app
        .post(USAGE, &app.owner, report(900))
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(crossed["memory"], "crossed", "{crossed}");
    let notice = &crossed["notifications"][0];
    assert_eq!(
        notice["template_id"],
        json!(WORKSPACE_OUT_OF_MEMORY),
        "{crossed}"
    );
    // Webhook (the default) and the inbox, to the workspace's owner.
    assert_eq!(
        notice["message_ids"].as_array().unwrap().len(),
        2,
        "{crossed}"
    );
    assert_eq!(notice["skipped"], json!([]));
    let id = MessageId::from_uuid(notice["message_ids"][0].as_str().unwrap().parse().unwrap());
    let message = app.store.get(id).await.unwrap().unwrap();
    assert_eq!(message.recipient, owner);
    assert_eq!(message.payload.labels["threshold"], "90%");

    let still = app
        .post(USAGE, &app.owner, report(990))
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(still["memory"], "still_over", "{still}");
    assert_eq!(still["notifications"], json!([]));

    app.post(USAGE, &app.owner, report(100))
        .await
        .expect(StatusCode::ACCEPTED);
    let again = app
        .post(USAGE, &app.owner, report(900))
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(again["memory"], "crossed", "{again}");
    assert_eq!(
        again["notifications"][0]["message_ids"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_notification_lists_only_the_volumes_that_went_over() {
    let app = App::start().await;
    let (workspace, owner) = (Uuid::new_v4(), app.member.user.id);

    let first = app
        .post(
            USAGE,
            &app.owner,
            volume_report(
                workspace,
                owner,
                &[("/home", 85), ("/tmp", 10), ("/data", 99)],
            ),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(
        first["volumes"],
        json!([
            {"path": "/home", "state": "crossed"},
            {"path": "/tmp", "state": "under"},
            {"path": "/data", "state": "crossed"},
        ])
    );
    let [notice] = first["notifications"].as_array().unwrap().as_slice() else {
        panic!("one notification expected: {first}");
    };
    assert_eq!(notice["template_id"], json!(WORKSPACE_OUT_OF_DISK));
    assert_eq!(
        volumes_of(&app, &notice["message_ids"][0]).await,
        vec!["/home", "/data"]
    );

    let next = app
        .post(
            USAGE,
            &app.owner,
            volume_report(
                workspace,
                owner,
                &[("/home", 90), ("/tmp", 95), ("/data", 99)],
            ),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    let notice = &next["notifications"][0];
    assert_eq!(
        volumes_of(&app, &notice["message_ids"][0]).await,
        vec!["/tmp"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reports_of_one_crossing_announce_it_once() {
    let app = App::start().await;
    let (workspace, owner) = (Uuid::new_v4(), app.member.user.id);

    let replies = futures_util::future::join_all(
        (0..8).map(|_| app.post(USAGE, &app.owner, memory_report(workspace, owner, 950))),
    )
    .await;

    let mut crossed = 0;
    for reply in replies {
        let body = reply.expect(StatusCode::ACCEPTED).json();
        if body["memory"] == "crossed" {
            crossed += 1;
            assert_eq!(body["notifications"].as_array().unwrap().len(), 1);
        } else {
            assert_eq!(body["memory"], "still_over", "{body}");
            assert_eq!(body["notifications"], json!([]));
        }
    }
    assert_eq!(crossed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_states_are_announced_on_a_change_only() {
    let app = App::start().await;
    let owner = app.member.user.id;
    app.put(
        &format!("/api/v2/users/{owner}/notifications/preferences"),
        &app.member,
        json!({"template_disabled_map": {TASK_WORKING.to_string(): false, TASK_IDLE.to_string(): false}}),
    )
    .await
    .expect(StatusCode::OK);
    let path = format!("/api/v2/tasks/{}/state", Uuid::new_v4());
    let report = |state: &str| json!({"owner_id": owner, "task_name": "fix-the-build", "workspace_name": "dev-box", "state": state});

    let first = app
        .put(&path, &app.owner, report("working"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        first,
        json!({"previous": null, "state": "working", "notification": null, "quiet": "first_working"})
    );
    let repeat = app
        .put(&path, &app.owner, report("working"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(repeat["quiet"], "unchanged", "{repeat}");
    assert_eq!(repeat["previous"], "working", "{repeat}");

    let idle = app
        .put(&path, &app.owner, report("idle"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(idle["previous"], "working", "{idle}");
    assert_eq!(idle["quiet"], Value::Null, "{idle}");
    assert_eq!(idle["notification"]["template_id"], json!(TASK_IDLE));
    assert_eq!(
        idle["notification"]["message_ids"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{idle}"
    );

    let working = app
        .put(&path, &app.owner, report("working"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(working["notification"]["template_id"], json!(TASK_WORKING));

    let complete = app
        .put(&path, &app.owner, report("complete"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(complete["quiet"], "not_announced", "{complete}");
    assert_eq!(complete["notification"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signals_are_refused_naming_the_field_and_only_owners_may_report() {
    let app = App::start().await;
    let (workspace, owner) = (Uuid::new_v4(), app.member.user.id);
    let with = |mut body: Value, key: &str, value: Value| {
        body[key] = value;
        body
    };
    let without = |mut body: Value, key: &str| {
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let memory = memory_report(workspace, owner, 500);
    let memory_with = |used: Value, total: Value, threshold: Value| {
        with(
            memory.clone(),
            "memory",
            json!({"used": used, "total": total, "threshold_percent": threshold}),
        )
    };
    for (body, field) in [
        (
            memory_with(json!(-1), json!(1000), json!(90)),
            "memory.used",
        ),
        (
            memory_with(json!(1001), json!(1000), json!(90)),
            "memory.used",
        ),
        (memory_with(json!(1), json!(0), json!(90)), "memory.total"),
        (
            memory_with(json!(1), json!(1000), json!(101)),
            "memory.threshold_percent",
        ),
        (
            memory_with(json!(1), json!(1000), json!(-5)),
            "memory.threshold_percent",
        ),
        (
            with(memory.clone(), "memory", json!({"used": 1, "total": 2})),
            "memory.threshold_percent",
        ),
        (
            volume_report(workspace, owner, &[("/home", 150)]),
            "volumes[0].used",
        ),
        (without(memory.clone(), "workspace_id"), "workspace_id"),
        (without(memory.clone(), "owner_id"), "owner_id"),
        (without(memory.clone(), "agent"), "agent"),
        (without(memory.clone(), "memory"), "memory"),
        (
            with(memory.clone(), "workspace_id", json!("nope")),
            "workspace_id",
        ),
        (
            with(memory.clone(), "owner_id", json!(Uuid::new_v4())),
            "owner_id",
        ),
    ] {
        let reply = app
            .post(USAGE, &app.owner, body.clone())
            .await
            .expect(StatusCode::BAD_REQUEST)
            .json();
        assert_eq!(reply["field"], field, "{body} → {reply}");
    }

    let path = format!("/api/v2/tasks/{}/state", Uuid::new_v4());
    let task = json!({"owner_id": owner, "task_name": "t", "workspace_name": "w", "state": "idle"});
    for (body, field) in [
        (with(task.clone(), "state", json!("busy")), "state"),
        (without(task.clone(), "state"), "state"),
        (without(task.clone(), "task_name"), "task_name"),
        (
            with(task.clone(), "workspace_name", json!(" ")),
            "workspace_name",
        ),
    ] {
        let reply = app
            .put(&path, &app.owner, body.clone())
            .await
            .expect(StatusCode::BAD_REQUEST)
            .json();
        assert_eq!(reply["field"], field, "{body} → {reply}");
    }
    let bad_id = app
        .put("/api/v2/tasks/not-a-uuid/state", &app.owner, task.clone())
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(bad_id["field"], "id", "{bad_id}");

    app.post(USAGE, &app.member, memory_report(workspace, owner, 950))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.put(&path, &app.admin, task)
        .await
        .expect(StatusCode::FORBIDDEN);
    // Nothing above was recorded: the first good report still crosses.
    let crossed = app
        .post(USAGE, &app.owner, memory_report(workspace, owner, 950))
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(crossed["memory"], "crossed", "{crossed}");
}
