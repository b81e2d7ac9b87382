//! Cross-origin access for the embeddable bell: the origins listed in
//! `--web-allowed-origins` get CORS headers and preflight answers on the bell's routes (its
//! script and the caller's inbox routes, the live stream included); other origins, other
//! routes and a deployment listing no origin get none.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use herald_http::{AllowedOrigins, Api, PrometheusMetrics};
use tower::ServiceExt as _;

use super::support::{App, Reply};

const HOST_PAGE: &str = "https://app.example.com";
const OTHER_SITE: &str = "https://evil.example.net";

/// The app, its router letting [`HOST_PAGE`] embed the bell.
async fn app_embedding_the_bell() -> App {
    let mut app = App::start().await;
    let api = Api::new(app.services.clone(), Arc::new(PrometheusMetrics::new()))
        .unwrap()
        .with_allowed_origins(AllowedOrigins::parse([HOST_PAGE, "http://localhost:8080"]).unwrap());
    app.router = herald_http::router(api);
    app
}

fn allowed_origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|value| value.to_str().unwrap())
}

fn varies_by_origin(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VARY)
        .iter()
        .any(|value| value.to_str().unwrap().eq_ignore_ascii_case("origin"))
}

fn has_cors_headers(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| name.as_str().starts_with("access-control-"))
}

/// A GET of `path` from a page on `origin`, with `token` when given.
async fn get_from(app: &App, path: &str, token: Option<&str>, origin: &str) -> Reply {
    app.raw_with(
        Method::GET,
        path,
        token,
        &[("origin", origin.as_bytes())],
        Vec::new(),
    )
    .await
}

/// The browser's preflight before the bell's `fetch` with a bearer token.
async fn preflight(app: &App, path: &str, origin: &str, method: &str) -> Reply {
    app.raw_with(
        Method::OPTIONS,
        path,
        None,
        &[
            ("origin", origin.as_bytes()),
            ("access-control-request-method", method.as_bytes()),
            (
                "access-control-request-headers",
                b"authorization,content-type",
            ),
        ],
        Vec::new(),
    )
    .await
}

#[tokio::test]
async fn a_listed_origin_reads_the_inbox_with_a_bearer_token() {
    let app = app_embedding_the_bell().await;

    let reply = get_from(
        &app,
        "/api/v2/notifications/inbox",
        Some(app.member.token.as_str()),
        HOST_PAGE,
    )
    .await
    .expect(StatusCode::OK);

    assert_eq!(allowed_origin(&reply.headers), Some(HOST_PAGE));
    assert!(varies_by_origin(&reply.headers));
    assert!(
        !reply
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        "the bell sends a bearer token, never cookies"
    );
    assert_eq!(reply.json()["unread_count"], 0);
}

#[tokio::test]
async fn a_listed_origins_preflight_is_answered_for_the_inbox_routes() {
    let app = app_embedding_the_bell().await;

    for (path, method) in [
        ("/api/v2/notifications/inbox", "GET"),
        ("/api/v2/notifications/inbox/watch", "GET"),
        (
            "/api/v2/notifications/inbox/0190f1f4-0000-7000-8000-000000000000/read-status",
            "PUT",
        ),
        ("/api/v2/notifications/inbox/mark-all-as-read", "PUT"),
    ] {
        let reply = preflight(&app, path, HOST_PAGE, method).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(allowed_origin(&reply.headers), Some(HOST_PAGE), "{path}");
        let methods = reply.headers[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap();
        assert!(methods.contains(method), "{path}: {methods}");
        let headers = reply.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap();
        assert!(
            headers.contains("authorization") && headers.contains("content-type"),
            "{path}: {headers}"
        );
        assert!(varies_by_origin(&reply.headers), "{path}");
    }
}

#[tokio::test]
async fn the_live_stream_and_the_script_carry_the_listed_origin() {
    let app = app_embedding_the_bell().await;

    // The stream never ends by itself: only its head is read.
    let request = Request::get("/api/v2/notifications/inbox/watch")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", app.member.token),
        )
        .header(header::ACCEPT, "text/event-stream")
        .header(header::ORIGIN, "http://localhost:8080")
        .body(Body::empty())
        .unwrap();
    let stream = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(
        allowed_origin(stream.headers()),
        Some("http://localhost:8080")
    );
    drop(stream);

    let script = get_from(&app, "/assets/herald-inbox.js", None, HOST_PAGE)
        .await
        .expect(StatusCode::OK);
    assert_eq!(allowed_origin(&script.headers), Some(HOST_PAGE));
    assert!(
        script.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        script
            .text()
            .contains("customElements.define(\"herald-inbox\"")
    );
}

#[tokio::test]
async fn an_unlisted_origin_gets_no_cors_headers() {
    let app = app_embedding_the_bell().await;

    let reply = get_from(
        &app,
        "/api/v2/notifications/inbox",
        Some(app.member.token.as_str()),
        OTHER_SITE,
    )
    .await
    .expect(StatusCode::OK);
    assert!(!has_cors_headers(&reply.headers), "{:?}", reply.headers);
    assert!(
        varies_by_origin(&reply.headers),
        "a cache must not hand it a listed origin's answer"
    );

    let refused = preflight(&app, "/api/v2/notifications/inbox", OTHER_SITE, "GET").await;
    assert_ne!(refused.status, StatusCode::NO_CONTENT);
    assert!(!has_cors_headers(&refused.headers), "{:?}", refused.headers);

    // A listed origin that differs only by its port is another origin.
    let other_port = preflight(
        &app,
        "/api/v2/notifications/inbox",
        "https://app.example.com:8443",
        "GET",
    )
    .await;
    assert!(!has_cors_headers(&other_port.headers));
}

#[tokio::test]
async fn routes_outside_the_bell_get_no_cors_headers_even_for_a_listed_origin() {
    let app = app_embedding_the_bell().await;

    for path in ["/api/v2/users/me", "/inbox", "/assets/inbox.js"] {
        let reply = get_from(&app, path, Some(app.member.token.as_str()), HOST_PAGE).await;
        assert!(!has_cors_headers(&reply.headers), "{path}");
        let refused = preflight(&app, path, HOST_PAGE, "GET").await;
        assert!(!has_cors_headers(&refused.headers), "{path}");
    }
}

#[tokio::test]
async fn without_listed_origins_no_route_gets_cors_headers() {
    let app = App::start().await;

    let reply = get_from(
        &app,
        "/api/v2/notifications/inbox",
        Some(app.member.token.as_str()),
        HOST_PAGE,
    )
    .await
    .expect(StatusCode::OK);
    assert!(!has_cors_headers(&reply.headers));
    assert!(!varies_by_origin(&reply.headers));
    let refused = preflight(&app, "/api/v2/notifications/inbox", HOST_PAGE, "GET").await;
    assert!(!has_cors_headers(&refused.headers));
}
