//! The `BuildStore` and `ReportLog` contracts: builds kept by workspace and number, read by
//! time and purged by time; a report's time claimed once per period across replicas.

use chrono::Duration;
use herald_application::ports::ReportClaim;
use herald_domain::catalogue::REPORT_WORKSPACE_BUILDS_FAILED;
use herald_domain::{BuildStatus, UserId, catalogue};
use herald_tests::fixture::Backend;
use herald_tests::sample;

const WEEK: Duration = Duration::days(7);

fn by_number(mut builds: Vec<herald_domain::Build>) -> Vec<herald_domain::Build> {
    builds.sort_by_key(|build| (build.workspace_name.clone(), build.build_number));
    builds
}

async fn a_recorded_build_is_read_back_whole_from_its_time_on(backend: Backend) {
    let ann = UserId::random();
    let build = sample::build("dev-box", ann, "docker", "v1", 3, true, sample::t0());
    backend.builds.record(&build).await.unwrap();

    assert_eq!(
        backend.builds.since(sample::t0()).await.unwrap(),
        vec![build]
    );
    assert!(
        backend
            .builds
            .since(sample::t0() + Duration::microseconds(1))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn recording_a_build_again_replaces_it(backend: Backend) {
    let ann = UserId::random();
    let first = sample::build("dev-box", ann, "docker", "v1", 3, false, sample::t0());
    let again = sample::build("dev-box", ann, "docker", "v2", 3, true, sample::t0());
    let next = sample::build("dev-box", ann, "docker", "v2", 4, true, sample::t0());
    backend.builds.record(&first).await.unwrap();
    backend.builds.record(&again).await.unwrap();
    backend.builds.record(&next).await.unwrap();

    let kept = by_number(backend.builds.since(sample::t0()).await.unwrap());
    assert_eq!(kept, vec![again, next]);
    assert_eq!(kept[0].status, BuildStatus::Failed);
}

async fn purge_deletes_only_builds_made_before_the_cutoff(backend: Backend) {
    let ann = UserId::random();
    let t0 = sample::t0();
    let old = sample::build("a", ann, "docker", "v1", 1, true, t0);
    let edge = sample::build("b", ann, "docker", "v1", 1, true, t0 + Duration::hours(1));
    let new = sample::build("c", ann, "docker", "v1", 1, true, t0 + Duration::hours(2));
    for build in [&old, &edge, &new] {
        backend.builds.record(build).await.unwrap();
    }

    assert_eq!(
        backend.builds.purge(t0 + Duration::hours(1)).await.unwrap(),
        1
    );
    assert_eq!(
        by_number(backend.builds.since(t0 - WEEK).await.unwrap()),
        vec![edge, new]
    );
}

async fn the_first_claim_only_records_the_time(backend: Backend) {
    let log = &backend.report_log;
    let t0 = sample::t0();

    assert_eq!(
        log.claim(REPORT_WORKSPACE_BUILDS_FAILED, t0, WEEK)
            .await
            .unwrap(),
        ReportClaim::FirstRun
    );
    assert_eq!(
        log.claim(REPORT_WORKSPACE_BUILDS_FAILED, t0 + Duration::days(1), WEEK)
            .await
            .unwrap(),
        ReportClaim::NotDue { last: t0 }
    );
}

async fn a_claim_is_due_a_period_after_the_last_and_records_its_own_time(backend: Backend) {
    let log = &backend.report_log;
    let t0 = sample::t0();
    log.claim(REPORT_WORKSPACE_BUILDS_FAILED, t0, WEEK)
        .await
        .unwrap();

    let almost = t0 + WEEK - Duration::seconds(1);
    assert_eq!(
        log.claim(REPORT_WORKSPACE_BUILDS_FAILED, almost, WEEK)
            .await
            .unwrap(),
        ReportClaim::NotDue { last: t0 },
        "a claim not due changes nothing"
    );
    let due = t0 + WEEK + Duration::minutes(5);
    assert_eq!(
        log.claim(REPORT_WORKSPACE_BUILDS_FAILED, due, WEEK)
            .await
            .unwrap(),
        ReportClaim::Claimed { last: t0 }
    );
    assert_eq!(
        log.claim(
            REPORT_WORKSPACE_BUILDS_FAILED,
            due + Duration::days(6),
            WEEK
        )
        .await
        .unwrap(),
        ReportClaim::NotDue { last: due }
    );
}

async fn each_report_keeps_its_own_time(backend: Backend) {
    let log = &backend.report_log;
    let t0 = sample::t0();
    log.claim(REPORT_WORKSPACE_BUILDS_FAILED, t0, WEEK)
        .await
        .unwrap();

    assert_eq!(
        log.claim(catalogue::TEMPLATE_DEPRECATED, t0 + Duration::days(1), WEEK)
            .await
            .unwrap(),
        ReportClaim::FirstRun
    );
}

async fn replicas_claiming_at_once_claim_a_due_report_once(backend: Backend) {
    let replica = backend.replica().await;
    let t0 = sample::t0();
    backend
        .report_log
        .claim(REPORT_WORKSPACE_BUILDS_FAILED, t0, WEEK)
        .await
        .unwrap();
    let due = t0 + WEEK;

    let claims = futures_util::future::join_all((0..16).map(|i| {
        let log = if i % 2 == 0 {
            backend.report_log.clone()
        } else {
            replica.report_log.clone()
        };
        async move {
            log.claim(REPORT_WORKSPACE_BUILDS_FAILED, due, WEEK)
                .await
                .unwrap()
        }
    }))
    .await;

    let claimed = claims
        .iter()
        .filter(|claim| matches!(claim, ReportClaim::Claimed { .. }))
        .count();
    assert_eq!(claimed, 1, "{claims:?}");
    // The others found it busy, or saw the time the one that claimed it recorded.
    for claim in &claims {
        assert!(
            [
                ReportClaim::Claimed { last: t0 },
                ReportClaim::NotDue { last: due },
                ReportClaim::Busy
            ]
            .contains(claim),
            "{claims:?}"
        );
    }
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_recorded_build_is_read_back_whole_from_its_time_on,
    recording_a_build_again_replaces_it,
    purge_deletes_only_builds_made_before_the_cutoff,
    the_first_claim_only_records_the_time,
    a_claim_is_due_a_period_after_the_last_and_records_its_own_time,
    each_report_keeps_its_own_time,
    replicas_claiming_at_once_claim_a_due_report_once,
}

/// PostgreSQL's claim takes the report lock: while another replica holds it, a claim is busy
/// and records nothing.
#[tokio::test]
async fn postgres_a_claim_while_another_replica_holds_the_report_lock_is_busy_and_records_nothing()
{
    use herald_application::ports::ReportLog as _;

    let database = herald_tests::postgres::TestDatabase::create().await;
    let other = database.replica().await;
    let mut holder = other.pool().acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(herald_postgres::REPORT_LOCK_KEY)
        .execute(&mut *holder)
        .await
        .unwrap();
    let t0 = sample::t0();

    assert_eq!(
        database
            .store
            .claim(REPORT_WORKSPACE_BUILDS_FAILED, t0, WEEK)
            .await
            .unwrap(),
        ReportClaim::Busy
    );

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(herald_postgres::REPORT_LOCK_KEY)
        .execute(&mut *holder)
        .await
        .unwrap();
    assert_eq!(
        database
            .store
            .claim(REPORT_WORKSPACE_BUILDS_FAILED, t0 + Duration::days(1), WEEK)
            .await
            .unwrap(),
        ReportClaim::FirstRun,
        "the busy claim recorded nothing"
    );
}
