//! Two `herald server` replicas on one database: the pause switch, the queue and the inbox are
//! shared, and every message is delivered exactly once whichever replica leases it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use herald_tests::fixture::within;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::running::{Api, Server, create_user, herald_ok};
use crate::support::TestDatabase;

/// Both replicas sign unsubscribe links with the same key.
const UNSUBSCRIBE_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const EVENTS: usize = 6;

fn replica(database_url: &str, endpoint: &str) -> Server {
    Server::start(
        database_url,
        &[
            "--notifications-method",
            "webhook",
            "--notifications-webhook-endpoint",
            endpoint,
            "--notifications-unsubscribe-key",
            UNSUBSCRIBE_KEY,
            "--notifications-fetch-interval",
            "200ms",
            "--notifications-store-sync-interval",
            "100ms",
            "--notifications-lease-count",
            "2",
            // The tests post more custom notifications a minute than a user may by default.
            "--notifications-custom-rate-limit",
            "off",
        ],
    )
}

/// The messages the API lists, by id: (method, status).
fn messages(body: &Value) -> BTreeMap<String, (String, String)> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                (
                    m["method"].as_str().unwrap().to_owned(),
                    m["status"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_the_pause_switch_and_deliver_each_message_exactly_once() {
    let db = TestDatabase::create().await;
    let owner = create_user(&db.url, "olga", "owner");
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let endpoint = format!("{}/hook", receiver.uri());
    let a = replica(&db.url, &endpoint);
    let b = replica(&db.url, &endpoint);
    let api_a = Api::new(&a.url, &owner);
    let api_b = Api::new(&b.url, &owner);

    // Pausing through A is seen by B.
    assert_eq!(
        herald_ok(&["notifications", "pause", "--url", &a.url, "--token", &owner]),
        "notifications paused\n"
    );
    assert_eq!(
        api_b.get("/notifications/settings").await["notifier_paused"],
        true
    );
    assert_eq!(
        herald_ok(&["notifications", "pause", "--url", &b.url, "--token", &owner]),
        "notifications were already paused\n"
    );

    // Events posted to A while paused stay pending, on both replicas' view of the queue.
    for i in 0..EVENTS {
        let (status, body) = api_a
            .post(
                "/notifications/custom",
                &json!({ "content": { "title": format!("Build {i} finished"), "message": "ok" } }),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }
    let queued = messages(&api_a.get("/notifications/messages").await);
    assert_eq!(queued.len(), EVENTS * 2, "{queued:?}");
    let webhook_ids: Vec<String> = queued
        .iter()
        .filter(|(_, (method, _))| method == "webhook")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(webhook_ids.len(), EVENTS, "{queued:?}");
    // Both notifiers run whole cycles with the events queued (their `/metrics` count them):
    // nothing is leased or sent.
    for server in [&a.url, &b.url] {
        let before = paused_cycles(server).await;
        within("two paused cycles after the events were queued", async {
            while paused_cycles(server).await < before + 2 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }
    let still = messages(&api_b.get("/notifications/messages").await);
    assert_eq!(still.len(), EVENTS * 2);
    assert!(
        still.values().all(|(_, status)| status == "pending"),
        "{still:?}"
    );
    assert!(receiver.received_requests().await.unwrap().is_empty());
    assert!(
        api_b.get("/notifications/inbox").await["notifications"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Resumed through B, both replicas deliver; every message ends sent.
    assert_eq!(
        herald_ok(&[
            "notifications",
            "resume",
            "--url",
            &b.url,
            "--token",
            &owner
        ]),
        "notifications resumed\n"
    );
    assert_eq!(
        api_a.get("/notifications/settings").await["notifier_paused"],
        false
    );
    let done = api_a
        .wait_for("/notifications/messages", Duration::from_secs(30), |body| {
            let all = messages(body);
            all.len() == EVENTS * 2 && all.values().all(|(_, status)| status == "sent")
        })
        .await;
    assert_eq!(messages(&done).len(), EVENTS * 2);

    // The inbox notifications, delivered by either replica, are all listed by B.
    let inbox = api_b.get("/notifications/inbox").await;
    let mut titles: Vec<String> = inbox["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    let expected: Vec<String> = (0..EVENTS).map(|i| format!("Build {i} finished")).collect();
    assert_eq!(titles, expected, "{inbox}");
    assert_eq!(inbox["unread_count"], EVENTS);

    a.stop();
    b.stop();
    // With both replicas stopped, nothing more can arrive: each webhook message arrived
    // exactly once, under its own id.
    let mut arrived: BTreeMap<String, usize> = BTreeMap::new();
    for request in receiver.received_requests().await.unwrap() {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let id = body["msg_id"].as_str().unwrap().to_owned();
        assert_eq!(
            request
                .headers
                .get("x-message-id")
                .unwrap()
                .to_str()
                .unwrap(),
            id
        );
        *arrived.entry(id).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = webhook_ids.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(arrived, expected, "each msg_id once");

    db.drop_now().await;
}

/// This replica's `GET /metrics`.
async fn metrics_text(server_url: &str) -> String {
    reqwest::get(format!("{server_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// How many cycles this replica's notifier ran with the pause switch on, from its `/metrics`.
async fn paused_cycles(server_url: &str) -> u64 {
    metrics_text(server_url)
        .await
        .lines()
        .find_map(|line| line.strip_prefix("herald_notifier_cycles_total{result=\"paused\"} "))
        .map_or(0, |count| count.parse().unwrap())
}

/// How many inbox messages this replica's notifier delivered, from its `/metrics`.
async fn inbox_deliveries(server_url: &str) -> u64 {
    metrics_text(server_url)
        .await
        .lines()
        .filter(|line| {
            line.starts_with("herald_notifier_dispatch_attempts_total{")
                && line.contains("method=\"inbox\"")
                && line.contains("result=\"sent\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inbox_watcher_on_one_replica_sees_notifications_the_other_replica_delivered() {
    let db = TestDatabase::create().await;
    let owner = create_user(&db.url, "wanda", "owner");
    let inbox_only = [
        "--notifications-unsubscribe-key",
        UNSUBSCRIBE_KEY,
        "--notifications-fetch-interval",
        "200ms",
        // Up to 40 custom notifications are posted, more a minute than a user may by default.
        "--notifications-custom-rate-limit",
        "off",
    ];
    let a = Server::start(&db.url, &inbox_only);
    let b = Server::start(&db.url, &inbox_only);
    let api_b = Api::new(&b.url, &owner);

    // A server-sent-events watcher on replica A.
    let mut watch = reqwest::Client::new()
        .get(format!("{}/api/v2/notifications/inbox/watch", a.url))
        .bearer_auth(&owner)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    let mut seen = String::new();

    // Both notifiers race for every message; post until replica B has delivered some, and
    // check that A's watcher got every one of them, whoever delivered it.
    for i in 0..40 {
        let title = format!("replicated {i}");
        let (status, body) = api_b
            .post(
                "/notifications/custom",
                &json!({"content": {"title": title, "message": "across replicas"}}),
            )
            .await;
        assert_eq!(status, 204, "{body}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !seen.contains(&format!("\"title\":\"{title}\"")) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let chunk = tokio::time::timeout(left, watch.chunk())
                .await
                .unwrap_or_else(|_| panic!("A's watcher never got {title:?}; it saw:\n{seen}"))
                .unwrap()
                .expect("the watch stream stays open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        if inbox_deliveries(&b.url).await > 0 {
            assert!(seen.contains("\"unread_count\":"), "{seen}");
            drop(watch);
            a.stop();
            b.stop();
            db.drop_now().await;
            return;
        }
    }
    panic!("replica B never delivered an inbox notification in 40 tries");
}
