//! Malformed requests: never a 5xx, never axum's plain-text rejections.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::support::App;

/// A small deterministic generator (xorshift64*), so a failure replays exactly.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Every route, with queries malformed for it: the routes reading a query get one of their
/// own parameters wrong; the others get [`ANY_QUERY`], which they ignore.
const ROUTES: &[(&str, &str, &[&str])] = &[
    ("PUT", "/api/v2/users/{id}", ANY_QUERY),
    ("GET", "/api/v2/users/{id}", ANY_QUERY),
    ("DELETE", "/api/v2/users/{id}", ANY_QUERY),
    ("POST", "/api/v2/users/{id}/tokens", ANY_QUERY),
    ("POST", "/api/v2/notifications/events", ANY_QUERY),
    ("POST", "/api/v2/notifications/events/batch", ANY_QUERY),
    ("POST", "/api/v2/builds", ANY_QUERY),
    ("PUT", "/api/v2/notifications/settings", ANY_QUERY),
    (
        "PUT",
        "/api/v2/notifications/templates/{id}/method",
        ANY_QUERY,
    ),
    (
        "PUT",
        "/api/v2/notifications/templates/{id}/digest",
        ANY_QUERY,
    ),
    ("POST", "/api/v2/notifications/custom", ANY_QUERY),
    (
        "GET",
        "/api/v2/users/{id}/notifications/preferences",
        ANY_QUERY,
    ),
    (
        "PUT",
        "/api/v2/users/{id}/notifications/preferences",
        ANY_QUERY,
    ),
    ("GET", "/api/v2/notifications/inbox", INBOX_QUERIES),
    (
        "PUT",
        "/api/v2/notifications/inbox/{id}/read-status",
        ANY_QUERY,
    ),
    ("GET", "/api/v2/notifications/messages", MESSAGES_QUERIES),
    ("GET", "/api/v2/notifications/unsubscribe/{id}", ANY_QUERY),
    ("POST", "/api/v2/notifications/unsubscribe/{id}", ANY_QUERY),
];

/// Ids no route accepts, and one well-formed id no route knows.
const BAD_IDS: &[&str] = &[
    "not-a-uuid",
    "1",
    "%00",
    "00000000-0000-0000-0000-00000000000g",
    "%F0%28%8C%BC",
    "..",
    "ME",
    "00000000-0000-4000-8000-000000000000",
];

const ANY_QUERY: &[&str] = &[
    "",
    "?templates=x",
    "?targets=,,,",
    "?read_status=%FF",
    "?starting_before=1",
    "?status=nope&limit=x",
    "?user_id=&template_id=&limit=",
    "?limit=99999999999999999999999",
];

const INBOX_QUERIES: &[&str] = &[
    "?templates=x",
    "?targets=,x,",
    "?read_status=%FF",
    "?starting_before=1",
    "?read_status=all&templates=00000000-0000-0000-0000-00000000000g",
];

const MESSAGES_QUERIES: &[&str] = &[
    "?status=nope&limit=x",
    "?user_id=%FF&template_id=&limit=",
    "?limit=99999999999999999999999",
    "?template_id=x",
    "?user_id=1",
];

fn bodies(noise: &mut Noise) -> Vec<u8> {
    let samples = [
        json!(null),
        json!(1),
        json!("string"),
        json!([1, 2, 3]),
        json!({"email": 5, "username": [], "roles": {"a": 1}}),
        json!({"template_id": "nope", "user_id": true}),
        json!({"events": "all"}),
        json!({"events": [1, null, {}]}),
        json!({"notifier_paused": "true"}),
        json!({"method": 7}),
        json!({"content": {"title": 1, "message": null}}),
        json!({"template_disabled_map": {"x": "y"}}),
        json!({"template_disabled_map": [true]}),
        json!({"is_read": 1}),
        json!({"labels": {"a": 1}, "data": 7, "targets": ["x"]}),
        json!({"unexpected": true}),
    ];
    match noise.below(5) {
        0 => {
            let len = noise.below(64);
            noise.bytes(len)
        }
        1 => b"{\"email\": \"a@b.c\", ".to_vec(),
        2 => b"{\"a\":1}{\"b\":2}".to_vec(),
        _ => serde_json::to_vec(&samples[noise.below(samples.len())]).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_malformed_requests_get_json_4xx_answers_and_no_5xx() {
    let app = App::start().await;
    let mut noise = Noise(0x5EED_1234_ABCD_0001);

    for round in 0..400 {
        let (method, template, queries) = ROUTES[noise.below(ROUTES.len())];
        let id = BAD_IDS[noise.below(BAD_IDS.len())];
        let query = queries[noise.below(queries.len())];
        let path = format!("{}{query}", template.replace("{id}", id));
        let body = bodies(&mut noise);
        let token = match noise.below(6) {
            0 => None,
            1 => Some("garbage"),
            2 => Some(app.member.token.as_str()),
            _ => Some(app.owner.token.as_str()),
        };
        let method: Method = method.parse().unwrap();
        let reply = app.raw(method.clone(), &path, token, body.clone()).await;

        assert!(
            reply.status.is_client_error(),
            "round {round}: {method} {path} with {:?} → {} {}",
            String::from_utf8_lossy(&body),
            reply.status,
            reply.text()
        );
        let html_page = path.contains("/unsubscribe/") && method == Method::GET;
        if !html_page {
            let json: serde_json::Value =
                serde_json::from_slice(&reply.body).unwrap_or_else(|_| {
                    panic!(
                        "round {round}: {method} {path} → {} is not JSON: {}",
                        reply.status,
                        reply.text()
                    )
                });
            assert!(
                json["message"].is_string() && json["detail"].is_string(),
                "{json}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_and_malformed_json_is_400() {
    let app = App::start().await;
    let huge = vec![b' '; 2 * 1024 * 1024];
    for path in [
        "/api/v2/notifications/events",
        "/api/v2/notifications/custom",
    ] {
        app.raw(Method::POST, path, Some(&app.owner.token), huge.clone())
            .await
            .expect(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let mut padded = br#"{"content": {"title": "t", "message": ""#.to_vec();
    padded.extend(std::iter::repeat_n(b'm', 1024 * 1024));
    padded.extend(br#""}}"#);
    app.raw(
        Method::POST,
        "/api/v2/notifications/custom",
        Some(&app.owner.token),
        padded,
    )
    .await
    .expect(StatusCode::PAYLOAD_TOO_LARGE);

    let broken = app
        .raw(
            Method::POST,
            "/api/v2/notifications/events",
            Some(&app.owner.token),
            b"{\"template_id\":".to_vec(),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(broken["field"], "body", "{broken}");
    let empty = app
        .raw(
            Method::PUT,
            "/api/v2/notifications/settings",
            Some(&app.owner.token),
            Vec::new(),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(empty["field"], "body", "{empty}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_answer_json() {
    let app = App::start().await;
    app.get("/api/v2/nothing/here", &app.owner)
        .await
        .expect(StatusCode::NOT_FOUND);
    app.get("/api/v1/users/me", &app.owner)
        .await
        .expect(StatusCode::NOT_FOUND);
    app.send(
        Method::DELETE,
        "/api/v2/notifications/settings",
        &app.owner,
        json!(null),
    )
    .await
    .expect(StatusCode::METHOD_NOT_ALLOWED);
    app.send(
        Method::PATCH,
        "/api/v2/notifications/events",
        &app.owner,
        json!(null),
    )
    .await
    .expect(StatusCode::METHOD_NOT_ALLOWED);
}
