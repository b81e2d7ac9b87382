//! Builds and the weekly "Report: Workspace Builds Failed" over the memory fakes, with a
//! manual clock: the first run records only, the report's cadence and 7-day gate, its counts,
//! the 10-per-version cap, newest first, and the skip without template admins.

use chrono::Duration;
use herald_application::ports::{Clock as _, MessageFilter, MessageQueue, PurgeOutcome};
use herald_application::{ReportOutcome, ReportRun, ReportSkip, Reports};
use herald_domain::catalogue::REPORT_WORKSPACE_BUILDS_FAILED;
use herald_domain::{Build, Message, Role, User};
use herald_tests::sample;
use serde_json::{Value, json};

use super::support::Harness;

const WEEK: Duration = Duration::days(7);

/// A webhook-only harness whose report has had its first run, and the report use case.
async fn after_first_run() -> (Harness, Reports) {
    let h = Harness::webhook_only();
    let reports = h.services.reports().clone();
    assert_eq!(
        reports.run_failed_builds().await.unwrap(),
        ReportRun::FirstRun
    );
    (h, reports)
}

async fn record(reports: &Reports, builds: &[Build]) {
    for build in builds {
        reports.record_build(build).await.unwrap();
    }
}

/// The report messages queued, oldest first.
async fn report_messages(h: &Harness) -> Vec<Message> {
    let mut messages = MessageQueue::list(
        &h.store,
        &MessageFilter {
            template_id: Some(REPORT_WORKSPACE_BUILDS_FAILED),
            limit: 1000,
            ..MessageFilter::default()
        },
    )
    .await
    .unwrap();
    messages.reverse();
    messages
}

/// The part of a report message's data about its one template.
fn template_data(message: &Message) -> Value {
    let data = message.payload.data.clone().unwrap_or(Value::Null);
    assert_eq!(data["report_frequency"], "week", "{data}");
    let templates = data["templates"].as_array().cloned().unwrap_or_default();
    assert_eq!(templates.len(), 1, "one template per report: {data}");
    templates[0].clone()
}

fn sent(run: &ReportRun) -> Vec<ReportOutcome> {
    match run {
        ReportRun::Ran(reports) => reports.iter().map(|r| r.outcome.clone()).collect(),
        other => panic!("the report did not run: {other:?}"),
    }
}

async fn admin(h: &Harness, name: &str) -> User {
    h.user(name, &[Role::TemplateAdmin]).await
}

#[tokio::test]
async fn the_first_run_only_records_its_time_even_with_failures_to_report() {
    let h = Harness::webhook_only();
    admin(&h, "tess").await;
    let owner = h.user("ann", &[]).await;
    let reports = h.services.reports();
    record(
        reports,
        &[sample::build(
            "dev",
            owner.id,
            "docker",
            "v1",
            1,
            true,
            h.clock.now(),
        )],
    )
    .await;

    assert_eq!(
        reports.run_failed_builds().await.unwrap(),
        ReportRun::FirstRun
    );
    assert!(report_messages(&h).await.is_empty());
    h.clock.advance(Duration::days(1));
    assert_eq!(
        reports.run_failed_builds().await.unwrap(),
        ReportRun::NotDue {
            next: h.clock.now() - Duration::days(1) + WEEK
        }
    );
    assert!(report_messages(&h).await.is_empty());
}

#[tokio::test]
async fn the_report_goes_out_a_week_after_the_first_run_and_then_weekly() {
    let (h, reports) = after_first_run().await;
    admin(&h, "tess").await;
    let owner = h.user("ann", &[]).await;
    let start = h.clock.now();

    h.clock.advance(WEEK - Duration::seconds(1));
    record(
        &reports,
        &[sample::build(
            "dev",
            owner.id,
            "docker",
            "v1",
            1,
            true,
            h.clock.now(),
        )],
    )
    .await;
    assert!(matches!(
        reports.run_failed_builds().await.unwrap(),
        ReportRun::NotDue { next } if next == start + WEEK
    ));
    assert!(report_messages(&h).await.is_empty());

    h.clock.advance(Duration::seconds(1));
    let run = reports.run_failed_builds().await.unwrap();
    assert_eq!(sent(&run).len(), 1);
    assert_eq!(report_messages(&h).await.len(), 1);

    // A new failure the next day waits for the next week.
    h.clock.advance(Duration::days(1));
    record(
        &reports,
        &[sample::build(
            "dev",
            owner.id,
            "docker",
            "v1",
            2,
            true,
            h.clock.now(),
        )],
    )
    .await;
    assert!(matches!(
        reports.run_failed_builds().await.unwrap(),
        ReportRun::NotDue { next } if next == start + WEEK + WEEK
    ));
    h.clock.advance(Duration::days(6));
    let run = reports.run_failed_builds().await.unwrap();
    assert_eq!(sent(&run).len(), 1);
    let messages = report_messages(&h).await;
    assert_eq!(messages.len(), 2);
    // The second report covers the last 7 days: build 2, and build 1 no more.
    assert_eq!(template_data(&messages[1])["failed_builds"], 1);
    assert_eq!(
        template_data(&messages[1])["versions"][0]["failed_builds"][0]["build_number"],
        2
    );
}

#[tokio::test]
async fn a_report_is_never_sent_twice_within_seven_days_by_two_replicas_or_a_restart() {
    let (h, reports) = after_first_run().await;
    admin(&h, "tess").await;
    let owner = h.user("ann", &[]).await;
    h.clock.advance(WEEK);
    record(
        &reports,
        &[sample::build(
            "dev",
            owner.id,
            "docker",
            "v1",
            1,
            true,
            h.clock.now(),
        )],
    )
    .await;
    // Another replica (or this one restarted): new services over the same store.
    let replica = h.replica().reports().clone();

    let (one, two) = tokio::join!(reports.run_failed_builds(), replica.run_failed_builds());
    let runs = [one.unwrap(), two.unwrap()];
    assert_eq!(
        runs.iter()
            .filter(|run| matches!(run, ReportRun::Ran(_)))
            .count(),
        1,
        "{runs:?}"
    );
    for later in [Duration::zero(), Duration::days(6) + Duration::hours(23)] {
        h.clock.set(h.clock.now() + later);
        assert!(matches!(
            replica.run_failed_builds().await.unwrap(),
            ReportRun::NotDue { .. }
        ));
    }
    assert_eq!(report_messages(&h).await.len(), 1);
}

#[tokio::test]
async fn each_template_with_a_failed_build_goes_to_every_template_admin_with_its_counts() {
    let (h, reports) = after_first_run().await;
    let tess = admin(&h, "tess").await;
    let tom = admin(&h, "tom").await;
    h.user("member", &[Role::Member]).await;
    let ann = h.user("ann", &[]).await;
    let bob = h.user("bob", &[]).await;
    let now = h.clock.now() + WEEK;
    let hour = Duration::hours(1);
    record(
        &reports,
        &[
            sample::build("dev", ann.id, "docker", "v1", 1, true, now - hour * 5),
            sample::build("dev", ann.id, "docker", "v1", 2, false, now - hour * 4),
            sample::build("lab", bob.id, "docker", "v2", 7, true, now - hour * 3),
            sample::build("lab", bob.id, "docker", "v2", 8, false, now - hour * 2),
            sample::build("k", bob.id, "k8s", "v9", 1, false, now - hour),
            // Older than a week: not counted.
            sample::build("old", ann.id, "docker", "v1", 1, true, now - WEEK - hour),
        ],
    )
    .await;
    h.clock.set(now);

    let run = reports.run_failed_builds().await.unwrap();

    let ReportRun::Ran(sent) = &run else {
        panic!("{run:?}")
    };
    assert_eq!(sent.len(), 1, "k8s had no failure: {run:?}");
    assert_eq!(sent[0].template_name, "docker");
    let messages = report_messages(&h).await;
    let mut recipients: Vec<_> = messages.iter().map(|m| m.recipient).collect();
    recipients.sort();
    let mut admins = vec![tess.id, tom.id];
    admins.sort();
    assert_eq!(recipients, admins);
    let data = template_data(&messages[0]);
    assert_eq!(
        data,
        json!({
            "name": "docker",
            "display_name": "DOCKER",
            "failed_builds": 2,
            "total_builds": 4,
            "versions": [
                {
                    "template_version_name": "v2",
                    "failed_count": 1,
                    "failed_builds": [
                        {"build_number": 7, "workspace_name": "lab", "workspace_owner_username": "bob"}
                    ]
                },
                {
                    "template_version_name": "v1",
                    "failed_count": 1,
                    "failed_builds": [
                        {"build_number": 1, "workspace_name": "dev", "workspace_owner_username": "ann"}
                    ]
                }
            ]
        })
    );
    assert_eq!(messages[0].payload.labels["template_name"], "docker");
}

#[tokio::test]
async fn a_version_lists_its_ten_newest_failures_and_counts_them_all() {
    let (h, reports) = after_first_run().await;
    admin(&h, "tess").await;
    let ann = h.user("ann", &[]).await;
    let now = h.clock.now() + WEEK;
    // Twelve failures an hour apart, recorded oldest last so order of arrival does not help.
    let builds: Vec<Build> = (1..=12u32)
        .rev()
        .map(|n| {
            let at = now - Duration::hours(i64::from(20 - n));
            sample::build(&format!("ws{n}"), ann.id, "docker", "v1", n, true, at)
        })
        .collect();
    record(&reports, &builds).await;
    h.clock.set(now);

    reports.run_failed_builds().await.unwrap();

    let data = template_data(&report_messages(&h).await[0]);
    assert_eq!(data["failed_builds"], 12);
    let version = &data["versions"][0];
    assert_eq!(version["failed_count"], 12);
    let listed: Vec<u64> = version["failed_builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["build_number"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, vec![12, 11, 10, 9, 8, 7, 6, 5, 4, 3]);
}

#[tokio::test]
async fn without_template_admins_a_report_is_skipped_with_a_reason() {
    let (h, reports) = after_first_run().await;
    h.user("owner", &[Role::Owner]).await;
    let ann = h.user("ann", &[]).await;
    h.clock.advance(WEEK);
    record(
        &reports,
        &[sample::build(
            "dev",
            ann.id,
            "docker",
            "v1",
            1,
            true,
            h.clock.now(),
        )],
    )
    .await;

    let run = reports.run_failed_builds().await.unwrap();

    assert_eq!(
        sent(&run),
        vec![ReportOutcome::Skipped(ReportSkip::NoTemplateAdmins)]
    );
    assert_eq!(ReportSkip::NoTemplateAdmins.as_str(), "no template admins");
    assert!(report_messages(&h).await.is_empty());
}

#[tokio::test]
async fn an_owner_missing_from_the_directory_is_shown_by_id() {
    let (h, reports) = after_first_run().await;
    admin(&h, "tess").await;
    let stranger = herald_domain::UserId::random();
    h.clock.advance(WEEK);
    record(
        &reports,
        &[sample::build(
            "dev",
            stranger,
            "docker",
            "v1",
            1,
            true,
            h.clock.now(),
        )],
    )
    .await;

    reports.run_failed_builds().await.unwrap();

    let data = template_data(&report_messages(&h).await[0]);
    assert_eq!(
        data["versions"][0]["failed_builds"][0]["workspace_owner_username"],
        stranger.to_string()
    );
}

#[tokio::test]
async fn purge_deletes_builds_made_more_than_seven_days_ago() {
    let h = Harness::webhook_only();
    let reports = h.services.reports();
    let ann = h.user("ann", &[]).await;
    let now = h.clock.now();
    record(
        reports,
        &[
            sample::build(
                "old",
                ann.id,
                "docker",
                "v1",
                1,
                true,
                now - WEEK - Duration::seconds(1),
            ),
            sample::build(
                "new",
                ann.id,
                "docker",
                "v1",
                1,
                true,
                now - WEEK + Duration::seconds(1),
            ),
        ],
    )
    .await;

    assert!(matches!(
        h.purger.purge().await.unwrap(),
        PurgeOutcome::Purged(_)
    ));

    let kept = herald_application::ports::BuildStore::since(&h.store, now - WEEK * 2)
        .await
        .unwrap();
    assert_eq!(
        kept.iter()
            .map(|b| b.workspace_name.as_str())
            .collect::<Vec<_>>(),
        vec!["new"]
    );
}
