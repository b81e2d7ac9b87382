//! `/notifications/unsubscribe/{token}`: the signed one-click links (RFC 8058).

use axum::http::{Method, StatusCode};
use herald_domain::{UserId, catalogue};
use serde_json::json;

use super::support::App;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_shows_a_confirmation_form_and_a_post_turns_off_that_templates_email_only() {
    let app = App::start().await;
    let token = app
        .key
        .token(app.member.user.id, catalogue::WORKSPACE_DELETED);
    let path = format!("/api/v2/notifications/unsubscribe/{token}");

    let page = app.raw(Method::GET, &path, None, Vec::new()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text();
    assert!(html.contains("Workspace Deleted"), "{html}");
    assert!(html.contains("emails"), "{html}");
    assert!(html.contains("Other channels"), "{html}");
    assert!(html.contains("<form method=\"post\""), "{html}");
    // Looking is not unsubscribing.
    let preferences = format!(
        "/api/v2/users/{}/notifications/preferences",
        app.member.user.id
    );
    let before = app.get(&preferences, &app.member).await.json();
    assert_eq!(before, json!([]));

    let done = app
        .raw(
            Method::POST,
            &path,
            None,
            b"List-Unsubscribe=One-Click".to_vec(),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let said = done.text();
    assert!(
        said.contains("You will no longer receive emails for <strong>Workspace Deleted</strong>; other channels are unchanged"),
        "{said}"
    );
    let after = app.get(&preferences, &app.member).await.json();
    assert_eq!(
        after[0]["id"],
        json!(catalogue::WORKSPACE_DELETED),
        "{after}"
    );
    assert_eq!(after[0]["disabled"], false, "{after}");
    assert_eq!(
        after[0]["methods"],
        json!({"smtp": true, "webhook": false, "inbox": false}),
        "{after}"
    );
    // Twice does no harm.
    let again = app.raw(Method::POST, &path, None, Vec::new()).await;
    assert_eq!(again.status, StatusCode::OK);

    // The next event of that template still goes by webhook and to the inbox.
    let next = app
        .post(
            "/api/v2/notifications/events",
            &app.owner,
            json!({
                "template_id": catalogue::WORKSPACE_DELETED,
                "user_id": app.member.user.id,
                "labels": {"name": "after-unsubscribing", "reason": "tidy"},
                "created_by": "tests",
            }),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(next["message_ids"].as_array().unwrap().len(), 2, "{next}");
    assert_eq!(next["skipped"], json!([]), "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_a_security_message_says_it_cannot_be_turned_off_and_changes_nothing() {
    let app = App::start().await;
    let token = app
        .key
        .token(app.member.user.id, catalogue::ONE_TIME_PASSCODE);
    let path = format!("/api/v2/notifications/unsubscribe/{token}");
    for method in [Method::GET, Method::POST] {
        let page = app.raw(method.clone(), &path, None, Vec::new()).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{method}");
        let html = page.text();
        assert!(html.contains("One-Time Passcode"), "{html}");
        assert!(
            html.contains("security messages cannot be disabled"),
            "{html}"
        );
        assert!(!html.contains("<form"), "{html}");
    }
    let preferences = format!(
        "/api/v2/users/{}/notifications/preferences",
        app.member.user.id
    );
    assert_eq!(app.get(&preferences, &app.member).await.json(), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_foreign_links_are_refused() {
    let app = App::start().await;
    let token = app
        .key
        .token(app.member.user.id, catalogue::WORKSPACE_DELETED);
    let mut tampered = token.clone().into_bytes();
    tampered[80] = if tampered[80] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let foreign = herald_application::unsubscribe::UnsubscribeKey::generate()
        .unwrap()
        .token(app.member.user.id, catalogue::WORKSPACE_DELETED);

    for bad in [tampered.as_str(), foreign.as_str(), "garbage", "%FF%FE"] {
        let path = format!("/api/v2/notifications/unsubscribe/{bad}");
        let page = app.raw(Method::GET, &path, None, Vec::new()).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}");
        app.raw(Method::POST, &path, None, Vec::new())
            .await
            .expect(StatusCode::BAD_REQUEST);
    }
    let preferences = format!(
        "/api/v2/users/{}/notifications/preferences",
        app.member.user.id
    );
    let untouched = app.get(&preferences, &app.member).await.json();
    assert_eq!(untouched, json!([]));

    // A genuine link for a user who is gone.
    let gone = app
        .key
        .token(UserId::random(), catalogue::WORKSPACE_DELETED);
    app.raw(
        Method::POST,
        &format!("/api/v2/notifications/unsubscribe/{gone}"),
        None,
        Vec::new(),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
}
