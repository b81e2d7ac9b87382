//! `/deployment/notifications` over HTTP (DESIGN §10.6): owners only (anyone else gets a 403
//! page), each form needs the session's CSRF token and changes what the API would, and the
//! delivery settings never show a secret.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use herald_application::Limits;
use herald_application::ports::{MessageFilter, SystemClock};
use herald_domain::{TemplateKind, catalogue};
use herald_smtp::{SmtpConfig, SmtpDispatcher};
use herald_webhook::{WebhookConfig, WebhookSecret};

use super::support::{App, nowhere_webhook};
use super::web::{field, page, redirects_to, signed_in};

const PATH: &str = "/deployment/notifications";

/// The deployment page's CSRF token for this (owner's) session.
async fn csrf_token(app: &App, cookie: &str) -> String {
    let reply = page(app, Method::GET, PATH, Some(cookie), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    field(&reply.text(), "csrf")
}

async fn paused(app: &App) -> bool {
    app.services.settings().notifier_paused().await.unwrap()
}

async fn override_of(app: &App, template: herald_domain::TemplateId) -> Option<&'static str> {
    let view = app.services.templates().get(template).await.unwrap();
    view.template.method_override.map(|m| m.as_str())
}

async fn queued(app: &App) -> usize {
    app.services
        .messages()
        .list(MessageFilter::default())
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_owners_the_catalogue_delivery_and_messages_and_refuses_anyone_else() {
    let app = App::start().await;
    let without_session = page(&app, Method::GET, PATH, None, None).await;
    redirects_to(&without_session, "/sign-in");

    let owner = signed_in(&app, &app.owner).await;
    let shown = page(&app, Method::GET, PATH, Some(&owner), None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text());
    let html = shown.text();
    for template in app
        .services
        .templates()
        .list(TemplateKind::System)
        .await
        .unwrap()
    {
        assert!(
            html.contains(&format!("id=\"template-{}\"", template.template.id)),
            "{} has no method form",
            template.template.name
        );
    }
    assert!(
        html.contains("Workspace Events"),
        "groups are shown: {html}"
    );
    assert!(html.contains("Pause delivery"), "{html}");
    assert!(html.contains("No messages yet."), "{html}");
    assert!(
        html.contains("href=\"/deployment/notifications\""),
        "owners get the nav link"
    );

    for user in [&app.member, &app.admin] {
        let cookie = signed_in(&app, user).await;
        let refused = page(&app, Method::GET, PATH, Some(&cookie), None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
        assert!(
            refused.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "a 403 page, not JSON"
        );
        assert!(
            refused.text().contains("for owners only"),
            "{}",
            refused.text()
        );
        let inbox = page(&app, Method::GET, "/inbox", Some(&cookie), None).await;
        assert!(
            !inbox.text().contains("href=\"/deployment/notifications\""),
            "no nav link for anyone else"
        );

        // Their forms are refused too, even with their own session's token.
        let csrf = field(&inbox.text(), "csrf");
        for (path, form) in [
            (
                format!("{PATH}/pause"),
                vec![("csrf", csrf.as_str()), ("paused", "true")],
            ),
            (format!("{PATH}/test"), vec![("csrf", csrf.as_str())]),
            (
                format!("{PATH}/templates/{}/method", catalogue::WORKSPACE_DELETED),
                vec![("csrf", csrf.as_str()), ("method", "inbox")],
            ),
        ] {
            let reply = page(&app, Method::POST, &path, Some(&cookie), Some(&form)).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        }
    }
    assert!(!paused(&app).await);
    assert_eq!(queued(&app).await, 0);
    assert_eq!(override_of(&app, catalogue::WORKSPACE_DELETED).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_forms_need_the_sessions_csrf_token_and_change_what_the_api_changes() {
    let app = App::start().await;
    let owner = signed_in(&app, &app.owner).await;
    let other_owner_session = signed_in(&app, &app.owner).await;
    let csrf = csrf_token(&app, &owner).await;
    let others_csrf = csrf_token(&app, &other_owner_session).await;
    let template = catalogue::WORKSPACE_DELETED;
    let method_path = format!("{PATH}/templates/{template}/method");

    for refused in [None, Some(""), Some(others_csrf.as_str())] {
        for (path, mut form) in [
            (format!("{PATH}/pause"), vec![("paused", "true")]),
            (format!("{PATH}/test"), vec![]),
            (method_path.clone(), vec![("method", "inbox")]),
        ] {
            if let Some(token) = refused {
                form.push(("csrf", token));
            }
            let reply = page(&app, Method::POST, &path, Some(&owner), Some(&form)).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path} {refused:?}");
            assert!(reply.text().contains("csrf"), "{}", reply.text());
        }
    }
    assert!(!paused(&app).await);
    assert_eq!(queued(&app).await, 0);
    assert_eq!(override_of(&app, template).await, None);

    // Pause, then resume.
    let pause = page(
        &app,
        Method::POST,
        &format!("{PATH}/pause"),
        Some(&owner),
        Some(&[("csrf", &csrf), ("paused", "true")]),
    )
    .await;
    redirects_to(&pause, "/deployment/notifications?done=paused#delivery");
    assert!(paused(&app).await);
    let shown = page(
        &app,
        Method::GET,
        "/deployment/notifications?done=paused",
        Some(&owner),
        None,
    )
    .await
    .text();
    assert!(shown.contains("Resume delivery"), "{shown}");
    assert!(shown.contains("Delivery paused"), "{shown}");
    let resume = page(
        &app,
        Method::POST,
        &format!("{PATH}/pause"),
        Some(&owner),
        Some(&[("csrf", &csrf), ("paused", "false")]),
    )
    .await;
    redirects_to(&resume, "/deployment/notifications?done=resumed#delivery");
    assert!(!paused(&app).await);

    // Override a template's method, then reset it to the default.
    let set = |form: Vec<(&'static str, String)>| {
        let (app, owner, path) = (&app, &owner, &method_path);
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            page(app, Method::POST, path, Some(owner), Some(&form)).await
        }
    };
    let saved = set(vec![("csrf", csrf.clone()), ("method", "inbox".into())]).await;
    redirects_to(
        &saved,
        &format!("/deployment/notifications?done=method#template-{template}"),
    );
    assert_eq!(override_of(&app, template).await, Some("inbox"));
    let again = set(vec![("csrf", csrf.clone()), ("method", "inbox".into())]).await;
    redirects_to(
        &again,
        &format!("/deployment/notifications?done=method-unchanged#template-{template}"),
    );
    let reset = set(vec![
        ("csrf", csrf.clone()),
        ("method", "inbox".into()),
        ("reset", "1".into()),
    ])
    .await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER);
    assert_eq!(override_of(&app, template).await, None);

    // Bad input: a 400 page naming the field.
    let bad = set(vec![("csrf", csrf.clone()), ("method", "pigeon".into())]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    assert!(bad.text().contains("method:"), "{}", bad.text());
    let missing = set(vec![("csrf", csrf.clone())]).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    for query in ["?status=lost", "?limit=0", "?limit=many"] {
        let reply = page(
            &app,
            Method::GET,
            &format!("{PATH}{query}"),
            Some(&owner),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            reply.text().contains(&query[1..query.find('=').unwrap()]),
            "{}",
            reply.text()
        );
    }

    // The test notification, then listed among the messages.
    let test = page(
        &app,
        Method::POST,
        &format!("{PATH}/test"),
        Some(&owner),
        Some(&[("csrf", &csrf)]),
    )
    .await;
    let queued_now = queued(&app).await;
    assert!(queued_now > 0);
    redirects_to(
        &test,
        &format!("/deployment/notifications?done=test-{queued_now}-0#messages"),
    );
    let listed = page(&app, Method::GET, PATH, Some(&owner), None)
        .await
        .text();
    assert_eq!(
        listed
            .matches("<td class=\"template-cell\">Test Notification</td>")
            .count(),
        queued_now,
        "{listed}"
    );
    let filtered = page(
        &app,
        Method::GET,
        &format!("{PATH}?status=sent"),
        Some(&owner),
        None,
    )
    .await
    .text();
    assert!(filtered.contains("No sent messages."), "{filtered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_settings_never_show_a_password_or_secret() {
    const PASSWORD: &str = "smtp-pa55word-never-shown";
    const SECRET: &str = "webhook-signing-secret-never-shown";
    const URL_TOKEN: &str = "T0KEN-in-the-webhook-path";
    let smtp = SmtpConfig {
        from: "Herald <herald@example.com>".into(),
        smarthost: "127.0.0.1:2525".into(),
        auth_username: Some("herald-mailer".into()),
        auth_password: Some(PASSWORD.into()),
        ..SmtpConfig::default()
    };
    let smtp = SmtpDispatcher::new(
        smtp.validate().unwrap(),
        "https://herald.example.com",
        "Herald",
        herald_application::unsubscribe::UnsubscribeKey::generate().unwrap(),
    );
    let webhook = WebhookConfig {
        endpoint: format!("https://hooks.example.com/services/{URL_TOKEN}"),
        secret: Some(WebhookSecret::parse(SECRET).unwrap()),
        timeout: Duration::from_secs(5),
        ..nowhere_webhook()
    };
    let app = App::start_delivering(
        Limits::default(),
        Arc::new(SystemClock),
        webhook,
        vec![Arc::new(smtp)],
    )
    .await;
    let owner = signed_in(&app, &app.owner).await;
    let html = page(&app, Method::GET, PATH, Some(&owner), None)
        .await
        .text();

    assert!(
        html.contains("127.0.0.1:2525"),
        "the smarthost is shown: {html}"
    );
    assert!(
        html.contains("https://hooks.example.com/… (path hidden)"),
        "{html}"
    );
    assert_eq!(html.matches("set (hidden)").count(), 2, "{html}");
    for secret in [PASSWORD, SECRET, URL_TOKEN] {
        assert!(!html.contains(secret), "{secret} is on the page");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_messages_show_a_page_at_a_time_newest_first_with_the_filter_kept() {
    let app = App::start().await;
    // 13 events, each a webhook and an inbox message: 26, one more than a page.
    for n in 0..13 {
        let event = serde_json::json!({
            "template_id": catalogue::WORKSPACE_DELETED,
            "user_id": app.member.user.id,
            "labels": {"name": format!("ws-{n}"), "reason": "tidy", "initiator": "owner"},
            "created_by": "tests",
        });
        app.post("/api/v2/notifications/events", &app.owner, event)
            .await
            .expect(StatusCode::ACCEPTED);
    }
    let newest = app
        .services
        .messages()
        .list(MessageFilter::default())
        .await
        .unwrap()[0]
        .id;
    let owner = signed_in(&app, &app.owner).await;
    let rows = |html: &str| html.matches("<tr data-id=").count();

    let first = page(&app, Method::GET, PATH, Some(&owner), None)
        .await
        .text();
    assert_eq!(rows(&first), 25);
    assert!(
        first.find("<tr data-id=").unwrap()
            == first.find(&format!("<tr data-id=\"{newest}\"")).unwrap(),
        "newest first"
    );
    assert!(
        first.contains("href=\"/deployment/notifications?limit=50#messages\""),
        "{first}"
    );

    let more = page(
        &app,
        Method::GET,
        &format!("{PATH}?limit=50"),
        Some(&owner),
        None,
    )
    .await
    .text();
    assert_eq!(rows(&more), 26);
    assert!(!more.contains("id=\"show-more\""), "everything is shown");

    let pending = page(
        &app,
        Method::GET,
        &format!("{PATH}?status=pending"),
        Some(&owner),
        None,
    )
    .await
    .text();
    assert_eq!(rows(&pending), 25);
    assert!(
        pending.contains("href=\"/deployment/notifications?status=pending&amp;limit=50#messages\""),
        "{pending}"
    );
    assert!(
        pending.contains("<option value=\"pending\" selected>"),
        "{pending}"
    );
}
