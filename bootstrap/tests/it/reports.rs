//! `herald server` takes build results and runs the failed-builds report scheduler: on start
//! it records the report's first run (the first report goes out a week later).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use herald_domain::catalogue;
use serde_json::json;
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use crate::running::{Api, Server, create_user};
use crate::support::TestDatabase;

#[tokio::test(flavor = "multi_thread")]
async fn a_running_server_keeps_reported_builds_and_records_the_reports_first_run() {
    let db = TestDatabase::create().await;
    let token = create_user(&db.url, "owner", "owner");
    let server = Server::start(&db.url, &[]);
    let api = Api::new(&server.url, &token);

    let (status, body) = api
        .post(
            "/builds",
            &json!({
                "workspace_id": "0b9a5c3e-7f0e-4c61-9b1e-2d8f6a4c1e01",
                "workspace_name": "dev-box",
                "owner_id": "5f1d9c4e-3a3b-4b8e-9a51-0c6f4c1e2d7a",
                "template_id": "7c2e1d4f-5a6b-4c8d-9e0f-1a2b3c4d5e6f",
                "template_name": "docker",
                "template_version": "v1.2.0",
                "build_number": 17,
                "transition": "start",
                "status": "failed",
                "initiator": "manual",
                "created_at": "2026-12-01T09:30:00Z",
            }),
        )
        .await;
    assert_eq!(status, 204, "{body}");

    let mut connection = PgConnection::connect(&db.url).await.unwrap();
    let builds: i64 = sqlx::query_scalar("SELECT count(*) FROM workspace_builds")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(builds, 1);
    // The scheduler's first check runs as the server starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recorded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM report_log WHERE template_id = $1")
                .bind(catalogue::REPORT_WORKSPACE_BUILDS_FAILED.as_uuid())
                .fetch_one(&mut connection)
                .await
                .unwrap();
        if recorded == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the report's first run was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    connection.close().await.ok();
    server.stop();
    db.drop_now().await;
}
