//! `POST /api/v2/builds` and the weekly failed-builds report over PostgreSQL: builds reported
//! through the API make the report the template admins get, on a clock the test moves; two
//! replicas running the report at the same moment send it once; bad input is a 400 naming
//! the field.

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use herald_application::ports::{Clock as _, MessageFilter, MessageQueue};
use herald_application::{Limits, ReportOutcome, ReportRun, Reports, UserInput};
use herald_domain::catalogue::REPORT_WORKSPACE_BUILDS_FAILED;
use herald_domain::{Message, Role, User, UserId};
use herald_memory::ManualClock;
use herald_tests::fixture::within;
use herald_tests::sample;
use serde_json::{Value, json};

use super::support::App;

const WEEK: Duration = Duration::days(7);

/// The app on a manual clock, the report's first run done (it records only).
async fn app_after_first_run() -> (App, ManualClock) {
    let clock = ManualClock::default();
    let app = App::start_with(Limits::default(), Arc::new(clock.clone())).await;
    assert_eq!(
        app.services.reports().run_failed_builds().await.unwrap(),
        ReportRun::FirstRun
    );
    (app, clock)
}

async fn template_admin(app: &App, name: &str) -> User {
    let user = sample::user(name, &[Role::TemplateAdmin]);
    let input = UserInput {
        email: user.email.clone(),
        username: user.username.clone(),
        name: String::new(),
        roles: user.roles.clone(),
        status: user.status,
    };
    app.services
        .users()
        .unwrap()
        .upsert(user.id, input)
        .await
        .unwrap()
}

/// A build body as a host sends it.
fn build(owner: UserId, workspace: &str, number: u32, status: &str, at: DateTime<Utc>) -> Value {
    json!({
        "workspace_id": sample::id_of(workspace),
        "workspace_name": workspace,
        "owner_id": owner,
        "template_id": sample::id_of("docker"),
        "template_name": "docker",
        "template_display_name": "Docker",
        "template_version": "v1",
        "build_number": number,
        "transition": "start",
        "status": status,
        "initiator": "autostart",
        "created_at": at,
    })
}

async fn report_messages(app: &App) -> Vec<Message> {
    MessageQueue::list(
        &app.store,
        &MessageFilter {
            template_id: Some(REPORT_WORKSPACE_BUILDS_FAILED),
            limit: 1000,
            ..MessageFilter::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn builds_reported_through_the_api_make_the_weekly_report_of_the_template_admins() {
    let (app, clock) = app_after_first_run().await;
    let tess = template_admin(&app, "tess").await;
    let member = app.member.user.id;
    let due = clock.now() + WEEK;
    for number in 1..=12u32 {
        let at = due - Duration::hours(i64::from(24 - number));
        app.post(
            "/api/v2/builds",
            &app.owner,
            build(member, &format!("ws{number}"), number, "failed", at),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    }
    app.post(
        "/api/v2/builds",
        &app.owner,
        build(member, "ok", 1, "succeeded", due - Duration::hours(1)),
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    clock.set(due - Duration::seconds(1));
    assert!(matches!(
        app.services.reports().run_failed_builds().await.unwrap(),
        ReportRun::NotDue { .. }
    ));
    assert!(report_messages(&app).await.is_empty());

    clock.set(due);
    let run = app.services.reports().run_failed_builds().await.unwrap();
    let ReportRun::Ran(sent) = &run else {
        panic!("{run:?}")
    };
    assert!(
        matches!(&sent[0].outcome, ReportOutcome::Queued(result) if !result.message_ids.is_empty())
    );

    let messages = report_messages(&app).await;
    assert!(!messages.is_empty());
    assert!(
        messages.iter().all(|m| m.recipient == tess.id),
        "{messages:?}"
    );
    let data = messages[0].payload.data.clone().unwrap();
    let docker = &data["templates"][0];
    assert_eq!(docker["display_name"], "Docker");
    assert_eq!(docker["failed_builds"], 12);
    assert_eq!(docker["total_builds"], 13);
    let listed: Vec<u64> = docker["versions"][0]["failed_builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["build_number"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, (3..=12).rev().collect::<Vec<u64>>());
    assert_eq!(
        docker["versions"][0]["failed_builds"][0]["workspace_owner_username"],
        app.member.user.username.to_string()
    );

    // The troubleshooting listing shows the report to the owner; a week's gate holds.
    let listing = app
        .get(
            &format!("/api/v2/notifications/messages?template_id={REPORT_WORKSPACE_BUILDS_FAILED}"),
            &app.owner,
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        listing["messages"].as_array().unwrap().len(),
        messages.len()
    );
    clock.set(due + WEEK - Duration::seconds(1));
    assert!(matches!(
        app.services.reports().run_failed_builds().await.unwrap(),
        ReportRun::NotDue { .. }
    ));
    assert_eq!(report_messages(&app).await.len(), messages.len());
}

#[tokio::test]
async fn two_replicas_running_the_report_at_the_same_moment_send_it_once() {
    let (app, clock) = app_after_first_run().await;
    template_admin(&app, "tess").await;
    template_admin(&app, "tom").await;
    let due = clock.now() + WEEK;
    app.post(
        "/api/v2/builds",
        &app.owner,
        build(app.member.user.id, "dev", 1, "failed", due),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    clock.set(due);
    let replica: Reports = app
        .replica_services(Arc::new(clock.clone()))
        .await
        .reports()
        .clone();
    let here = app.services.reports().clone();

    let (one, two) = tokio::join!(here.run_failed_builds(), replica.run_failed_builds());

    let runs = [one.unwrap(), two.unwrap()];
    assert_eq!(
        runs.iter()
            .filter(|run| matches!(run, ReportRun::Ran(_)))
            .count(),
        1,
        "{runs:?}"
    );
    // Two admins, webhook and inbox each: four messages, once.
    assert_eq!(report_messages(&app).await.len(), 4);
}

#[tokio::test]
async fn a_scheduler_runs_the_due_report_when_spawned_and_of_two_replicas_one_sends_it() {
    let (app, clock) = app_after_first_run().await;
    template_admin(&app, "tess").await;
    let due = clock.now() + WEEK;
    app.post(
        "/api/v2/builds",
        &app.owner,
        build(app.member.user.id, "dev", 1, "failed", due),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    clock.set(due);
    let replica = app.replica_services(Arc::new(clock.clone())).await;

    // Each scheduler runs the report at once when spawned.
    let schedulers = [app.services.spawn_reports(), replica.spawn_reports()];
    within("the report from a scheduler", async {
        while report_messages(&app).await.len() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    for scheduler in schedulers {
        scheduler.stop().await;
    }

    assert_eq!(report_messages(&app).await.len(), 2);
}

#[tokio::test]
async fn a_bad_build_is_a_400_naming_the_field_and_only_an_owner_reports_builds() {
    let app = App::start().await;
    let owner = app.member.user.id;
    let now = sample::t0();
    let cases: [(&str, Value, &str); 8] = [
        ("status", json!("broken"), "unknown status"),
        ("initiator", json!("cron"), "unknown initiator"),
        ("transition", json!("pause"), "unknown transition"),
        ("build_number", json!(0), "between 1"),
        ("build_number", json!(-3), "between 1"),
        ("workspace_name", json!("  "), "empty"),
        ("created_at", json!("yesterday"), ""),
        ("owner_id", json!("nobody"), ""),
    ];
    for (field, value, reason) in cases {
        let mut body = build(owner, "dev", 1, "failed", now);
        body[field] = value;
        let reply = app
            .post("/api/v2/builds", &app.owner, body)
            .await
            .expect(StatusCode::BAD_REQUEST)
            .json();
        assert_eq!(reply["field"], field, "{reply}");
        assert!(
            reply["detail"].as_str().unwrap().contains(reason),
            "{field}: {reply}"
        );
    }
    let mut missing = build(owner, "dev", 1, "failed", now);
    missing.as_object_mut().unwrap().remove("status");
    let reply = app
        .post("/api/v2/builds", &app.owner, missing)
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert!(
        reply["detail"].as_str().unwrap().contains("status"),
        "{reply}"
    );

    app.post(
        "/api/v2/builds",
        &app.member,
        build(owner, "dev", 1, "failed", now),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    let kept = herald_application::ports::BuildStore::since(&app.store, now - WEEK)
        .await
        .unwrap();
    assert!(kept.is_empty(), "{kept:?}");
}
