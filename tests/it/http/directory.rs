//! Authentication, `/users/…` and tokens.

use axum::http::{Method, StatusCode};
use herald_domain::UserId;
use serde_json::json;

use super::support::App;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_are_401_with_a_json_body() {
    let app = App::start().await;

    let none = app
        .raw(Method::GET, "/api/v2/users/me", None, Vec::new())
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    app.raw(
        Method::GET,
        "/api/v2/users/me",
        Some("not-a-token"),
        Vec::new(),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    // Not a bearer scheme at all.
    let basic = axum::http::Request::builder()
        .uri("/api/v2/users/me")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), basic)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_token_is_401() {
    let app = App::start().await;
    app.get("/api/v2/users/me", &app.member)
        .await
        .expect(StatusCode::OK);

    app.send(
        Method::DELETE,
        &format!("/api/v2/users/{}", app.member.user.id),
        &app.owner,
        json!(null),
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    app.get("/api/v2/users/me", &app.member)
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_users_token_is_403() {
    let app = App::start().await;
    let suspended = json!({
        "email": "member@example.com", "username": "member",
        "roles": ["member"], "status": "suspended",
    });
    app.put(
        &format!("/api/v2/users/{}", app.member.user.id),
        &app.owner,
        suspended,
    )
    .await
    .expect(StatusCode::OK);

    app.get("/api/v2/users/me", &app.member)
        .await
        .expect(StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_me_is_the_callers_directory_entry() {
    let app = App::start().await;

    let me = app
        .get("/api/v2/users/me", &app.member)
        .await
        .expect(StatusCode::OK)
        .json();

    assert_eq!(
        me,
        json!({
            "id": app.member.user.id,
            "email": "member@example.com",
            "username": "member",
            "name": "",
            "roles": ["member"],
            "status": "active",
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_and_user_admins_upsert_read_and_delete_users() {
    let app = App::start().await;
    let id = UserId::random();
    let path = format!("/api/v2/users/{id}");
    let ann = json!({
        "email": "ann@example.com",
        "username": "ann",
        "name": "Ann Example",
        "roles": ["template-admin", "member"],
        "status": "active",
    });

    let stored = app
        .put(&path, &app.admin, ann.clone())
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(stored["id"], json!(id));
    assert_eq!(stored["roles"], json!(["template-admin", "member"]));
    assert_eq!(stored["name"], "Ann Example");

    let suspended = json!({
        "email": "ann@example.com", "username": "ann", "name": "Ann",
        "roles": ["member"], "status": "suspended",
    });
    app.put(&path, &app.owner, suspended)
        .await
        .expect(StatusCode::OK);
    let read = app
        .get(&path, &app.owner)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(read["status"], "suspended");
    assert_eq!(read["roles"], json!(["member"]));

    app.send(Method::DELETE, &path, &app.admin, json!(null))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get(&path, &app.owner)
        .await
        .expect(StatusCode::NOT_FOUND);
    app.send(Method::DELETE, &path, &app.owner, json!(null))
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_cannot_manage_users_and_admins_cannot_make_owners() {
    let app = App::start().await;
    let path = format!("/api/v2/users/{}", UserId::random());
    let body = |roles: serde_json::Value| json!({"email": "x@example.com", "username": "x", "roles": roles});

    app.put(&path, &app.member, body(json!(["member"])))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.get(&format!("/api/v2/users/{}", app.other.user.id), &app.member)
        .await
        .expect(StatusCode::FORBIDDEN);
    app.put(&path, &app.admin, body(json!(["owner"])))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.put(
        &format!("/api/v2/users/{}", app.owner.user.id),
        &app.admin,
        body(json!(["member"])),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.send(
        Method::DELETE,
        &format!("/api/v2/users/{}", app.owner.user.id),
        &app.admin,
        json!(null),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_user_input_is_a_400_naming_the_field_and_a_taken_username_is_a_409() {
    let app = App::start().await;
    let path = format!("/api/v2/users/{}", UserId::random());

    let bad_email = app
        .put(&path, &app.owner, json!({"email": "nope", "username": "x"}))
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(bad_email["field"], "email", "{bad_email}");
    let bad_role = app
        .put(
            &path,
            &app.owner,
            json!({"email": "x@example.com", "username": "x", "roles": ["king"]}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(bad_role["field"], "roles", "{bad_role}");
    let wrong_type = app
        .put(
            &path,
            &app.owner,
            json!({"email": "x@example.com", "username": "x", "roles": "owner"}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(wrong_type["field"], "roles", "{wrong_type}");
    let unknown = app
        .put(
            &path,
            &app.owner,
            json!({"email": "x@example.com", "username": "x", "role": ["owner"]}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert!(
        unknown["detail"].as_str().unwrap().contains("role"),
        "{unknown}"
    );

    app.put(
        &path,
        &app.owner,
        json!({"email": "someone@example.com", "username": "member"}),
    )
    .await
    .expect(StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_create_their_own_tokens_and_owners_anyones() {
    let app = App::start().await;

    let own = app
        .post(
            &format!("/api/v2/users/{}/tokens", app.member.user.id),
            &app.member,
            json!(null),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    let token = own["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 43, "{token}");
    let me = app
        .raw(Method::GET, "/api/v2/users/me", Some(&token), Vec::new())
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(me["id"], json!(app.member.user.id));

    app.post(
        &format!("/api/v2/users/{}/tokens", app.other.user.id),
        &app.owner,
        json!(null),
    )
    .await
    .expect(StatusCode::CREATED);
    app.post(
        &format!("/api/v2/users/{}/tokens", app.other.user.id),
        &app.member,
        json!(null),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.post(
        &format!("/api/v2/users/{}/tokens", app.other.user.id),
        &app.admin,
        json!(null),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    app.post(
        &format!("/api/v2/users/{}/tokens", UserId::random()),
        &app.owner,
        json!(null),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_names_the_caller_in_user_paths() {
    let app = App::start().await;

    let token = app
        .post("/api/v2/users/me/tokens", &app.member, json!(null))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let me = app
        .raw(
            Method::GET,
            "/api/v2/users/me",
            Some(token["token"].as_str().unwrap()),
            Vec::new(),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(me["id"], json!(app.member.user.id));
    let preferences = app
        .get("/api/v2/users/me/notifications/preferences", &app.member)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(preferences, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_without_a_token() {
    let app = App::start().await;
    let health = app
        .raw(Method::GET, "/healthz", None, Vec::new())
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(health["status"], "ok");
    let ready = app
        .raw(Method::GET, "/readyz", None, Vec::new())
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(ready["status"], "ready");
}
