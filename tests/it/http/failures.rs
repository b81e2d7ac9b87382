//! The API's answers when the caller or the server is not in a state to serve: the scheme's
//! case, a suspended user on every route, and the database gone (`/readyz` and the use cases'
//! `Unavailable` both 503).

use axum::body::Body;
use axum::http::{Method as HttpMethod, Request, StatusCode, header};
use herald_domain::catalogue;
use herald_http::routes::{Auth, Verb};
use herald_tests::fixture::within;
use serde_json::json;
use tower::ServiceExt as _;

use super::support::App;

/// The status of a GET of `path` with `authorization` as the header, verbatim.
async fn get_with_authorization(app: &App, path: &str, authorization: &str) -> StatusCode {
    let request = Request::builder()
        .method(HttpMethod::GET)
        .uri(path)
        .header(header::AUTHORIZATION, authorization)
        .body(Body::empty())
        .unwrap();
    app.router.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_matched_whatever_its_case() {
    let app = App::start().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let authorization = format!("{scheme} {}", app.member.token);
        assert_eq!(
            get_with_authorization(&app, "/api/v2/users/me", &authorization).await,
            StatusCode::OK,
            "{scheme}"
        );
    }
    let basic = format!("Basic {}", app.member.token);
    assert_eq!(
        get_with_authorization(&app, "/api/v2/users/me", &basic).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_user_is_refused_on_every_route_that_takes_a_token() {
    let app = App::start().await;
    let member = &app.member.user;
    let suspended = json!({
        "email": member.email.as_str(), "username": member.username,
        "roles": ["member"], "status": "suspended",
    });
    app.put(
        &format!("/api/v2/users/{}", member.id),
        &app.owner,
        suspended,
    )
    .await
    .expect(StatusCode::OK);

    let routes: Vec<_> = herald_http::routes()
        .into_iter()
        .filter(|route| route.auth == Auth::Bearer)
        .collect();
    assert!(routes.len() > 10, "{} routes take a token", routes.len());
    for route in routes {
        let path = route.path.replace("{id}", &member.id.to_string());
        let body = match route.verb {
            Verb::Get | Verb::Delete => Vec::new(),
            Verb::Put | Verb::Post => b"{}".to_vec(),
        };
        let reply = app
            .raw(route.verb.http(), &path, Some(&app.member.token), body)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{} {path}: {}",
            route.verb.as_str(),
            reply.text()
        );
        assert_eq!(reply.json()["detail"], "your account is suspended");
    }
}

/// Closes the app's store as if the database went away: from then on every statement fails
/// as unavailable. (The close itself never finishes — the LISTEN connection is still out — so
/// it runs on a task of its own; the pool is marked closed as it starts.)
async fn take_the_database_away(app: &App) {
    let store = app.store.clone();
    tokio::spawn(async move { store.close().await });
    within("the pool being closed", async {
        while !app.store.pool().is_closed() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_once_the_database_cannot_be_reached() {
    let app = App::start().await;
    app.raw(HttpMethod::GET, "/readyz", None, Vec::new())
        .await
        .expect(StatusCode::OK);

    take_the_database_away(&app).await;

    let reply = app
        .raw(HttpMethod::GET, "/readyz", None, Vec::new())
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["message"], "Not ready.");
    app.raw(HttpMethod::GET, "/healthz", None, Vec::new())
        .await
        .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_enqueued_while_the_database_is_unavailable_is_503() {
    let app = App::start().await;
    // Signed in before the outage: the token is then known without the database.
    app.get("/api/v2/users/me", &app.owner)
        .await
        .expect(StatusCode::OK);
    take_the_database_away(&app).await;

    let event = json!({
        "template_id": catalogue::WORKSPACE_DELETED,
        "user_id": app.member.user.id,
        "labels": {"name": "ws", "reason": "tidy"},
        "created_by": "tests",
    });
    let reply = app
        .post("/api/v2/notifications/events", &app.owner, event)
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
    let body = reply.json();
    assert!(
        body["message"].is_string() && body["detail"].is_string(),
        "{body}"
    );
}
