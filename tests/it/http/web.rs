//! The web pages' session and CSRF rules (DESIGN §10.6), over HTTP: sign-in links are minted
//! by owners and user admins, sign in once within 10 minutes; sessions are HttpOnly,
//! SameSite=Strict (Secure on an https access URL) cookies that end with sign-out, their
//! expiry, and the user's tokens revoked; every form needs its CSRF token.

use std::sync::Arc;

use axum::http::{Method, Request, StatusCode, header};
use herald_application::Limits;
use herald_application::ports::InboxStore as _;
use herald_application::web_sessions::{SESSION_TTL, SIGN_IN_LINK_TTL};
use herald_domain::{InboxNotification, catalogue};
use herald_memory::ManualClock;
use herald_tests::sample;
use serde_json::Value;

use super::support::{App, Caller, Reply};

/// A browser-like request: the cookie header, and a form body when given.
pub(super) async fn page(
    app: &App,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<&[(&str, &str)]>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let body = match form {
        Some(fields) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields.iter().copied())
                .finish()
        }
        None => String::new(),
    };
    app.send_request(request, body.into_bytes()).await
}

/// The `Set-Cookie` header of `name`, whole.
pub(super) fn set_cookie(reply: &Reply, name: &str) -> String {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set: {:?}", reply.headers))
}

/// `name=value` of a `Set-Cookie` header, as a browser sends it back.
pub(super) fn sent_back(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// The `value` of the first `<input name="{name}">` of a page.
pub(super) fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} field: {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

async fn mint(app: &App, minter: &Caller, user: &Caller) -> Reply {
    app.post(
        &format!("/api/v2/users/{}/sign-in-links", user.user.id),
        minter,
        Value::Null,
    )
    .await
}

/// Signs `user` in with a link the owner mints: the session cookie as the browser sends it.
pub(super) async fn signed_in(app: &App, user: &Caller) -> String {
    let url = mint(app, &app.owner, user)
        .await
        .expect(StatusCode::CREATED)
        .json()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = url.strip_prefix("https://herald.example.com").unwrap();
    let reply = page(app, Method::GET, path, None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    sent_back(&set_cookie(&reply, "herald_session"))
}

/// The inbox page's CSRF token for this session.
async fn csrf_token(app: &App, cookie: &str) -> String {
    let inbox = page(app, Method::GET, "/inbox", Some(cookie), None).await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.text());
    field(&inbox.text(), "csrf")
}

pub(super) fn redirects_to(reply: &Reply, location: &str) {
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert_eq!(reply.headers[header::LOCATION], location);
}

async fn notify(app: &App, user: &Caller, minutes: i64) -> InboxNotification {
    let n = sample::inbox_notification_of(
        user.user.id,
        catalogue::WORKSPACE_DELETED,
        sample::t0() + chrono::Duration::minutes(minutes),
        vec![],
    );
    assert!(app.store.insert(&n).await.unwrap());
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_link_is_minted_by_admins_and_signs_in_once_with_a_strict_cookie() {
    let app = App::start().await;
    mint(&app, &app.member, &app.other)
        .await
        .expect(StatusCode::FORBIDDEN);
    mint(&app, &app.admin, &app.member)
        .await
        .expect(StatusCode::CREATED);
    let reply = mint(&app, &app.owner, &app.member)
        .await
        .expect(StatusCode::CREATED);
    let url = reply.json()["url"].as_str().unwrap().to_owned();
    let path = url
        .strip_prefix("https://herald.example.com/sign-in/link?token=")
        .map(|token| format!("/sign-in/link?token={token}"))
        .unwrap_or_else(|| panic!("not on the access URL: {url}"));

    let first = page(&app, Method::GET, &path, None, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let cookie = set_cookie(&first, "herald_session");
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(first.text().contains("url=/inbox"), "{}", first.text());
    let inbox = page(&app, Method::GET, "/inbox", Some(&sent_back(&cookie)), None).await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(inbox.text().contains("member"), "{}", inbox.text());

    let again = page(&app, Method::GET, &path, None, None).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.text().contains("already used"), "{}", again.text());
    assert!(again.headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_expires_after_ten_minutes_and_a_session_after_its_ttl() {
    let clock = Arc::new(ManualClock::new(sample::t0()));
    let app = App::start_with(Limits::default(), clock.clone()).await;
    let cookie = signed_in(&app, &app.member).await;

    let url = mint(&app, &app.owner, &app.member).await.json()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(SIGN_IN_LINK_TTL);
    let path = url.strip_prefix("https://herald.example.com").unwrap();
    let late = page(&app, Method::GET, path, None, None).await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED);

    let alive = page(&app, Method::GET, "/inbox", Some(&cookie), None).await;
    assert_eq!(
        alive.status,
        StatusCode::OK,
        "the session outlives the link"
    );
    clock.advance(SESSION_TTL - SIGN_IN_LINK_TTL);
    let expired = page(&app, Method::GET, "/inbox", Some(&cookie), None).await;
    redirects_to(&expired, "/sign-in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_form_signs_in_only_with_its_csrf_token_and_a_live_token() {
    let app = App::start().await;
    let form = page(&app, Method::GET, "/sign-in", None, None).await;
    assert_eq!(form.status, StatusCode::OK);
    let form_cookie = sent_back(&set_cookie(&form, "herald_sign_in"));
    let token = field(&form.text(), "csrf");

    let without = page(
        &app,
        Method::POST,
        "/sign-in",
        Some(&form_cookie),
        Some(&[("token", &app.member.token)]),
    )
    .await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    let no_cookie = page(
        &app,
        Method::POST,
        "/sign-in",
        None,
        Some(&[("csrf", &token), ("token", &app.member.token)]),
    )
    .await;
    assert_eq!(no_cookie.status, StatusCode::FORBIDDEN);

    let wrong = page(
        &app,
        Method::POST,
        "/sign-in",
        Some(&form_cookie),
        Some(&[("csrf", &token), ("token", "herald_not-a-token")]),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text().contains("token:"), "{}", wrong.text());

    let signed = page(
        &app,
        Method::POST,
        "/sign-in",
        Some(&form_cookie),
        Some(&[("csrf", &token), ("token", &app.member.token)]),
    )
    .await;
    redirects_to(&signed, "/inbox");
    let session = sent_back(&set_cookie(&signed, "herald_session"));
    let inbox = page(&app, Method::GET, "/inbox", Some(&session), None).await;
    assert_eq!(inbox.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_forms_need_the_sessions_csrf_token() {
    let app = App::start().await;
    let first = notify(&app, &app.member, 0).await;
    notify(&app, &app.member, 1).await;
    let cookie = signed_in(&app, &app.member).await;
    let other_cookie = signed_in(&app, &app.other).await;
    let csrf = csrf_token(&app, &cookie).await;
    let others_csrf = csrf_token(&app, &other_cookie).await;
    let unread = || async {
        app.services
            .inbox()
            .unread_count(app.member.user.id)
            .await
            .unwrap()
    };

    for refused in [None, Some(""), Some(others_csrf.as_str())] {
        let mut form = vec![("back", "/inbox")];
        if let Some(token) = refused {
            form.push(("csrf", token));
        }
        let reply = page(
            &app,
            Method::POST,
            "/inbox/read-all",
            Some(&cookie),
            Some(&form),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{refused:?}");
        assert!(reply.text().contains("csrf"), "{}", reply.text());
    }
    assert_eq!(unread().await, 2);

    let one = page(
        &app,
        Method::POST,
        &format!("/inbox/{}/read", first.id),
        Some(&cookie),
        Some(&[
            ("csrf", &csrf),
            ("is_read", "true"),
            ("back", "/inbox?filter=unread"),
        ]),
    )
    .await;
    redirects_to(&one, "/inbox?filter=unread");
    assert_eq!(unread().await, 1);

    let all = page(
        &app,
        Method::POST,
        "/inbox/read-all",
        Some(&cookie),
        Some(&[("csrf", &csrf), ("back", "https://elsewhere.example")]),
    )
    .await;
    redirects_to(&all, "/inbox");
    assert_eq!(unread().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_and_revoked_tokens_end_sessions() {
    let app = App::start().await;
    let cookie = signed_in(&app, &app.member).await;
    let token = csrf_token(&app, &cookie).await;
    let refused = page(&app, Method::POST, "/sign-out", Some(&cookie), Some(&[])).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let out = page(
        &app,
        Method::POST,
        "/sign-out",
        Some(&cookie),
        Some(&[("csrf", &token)]),
    )
    .await;
    redirects_to(&out, "/sign-in");
    assert!(set_cookie(&out, "herald_session").contains("Max-Age=0"));
    redirects_to(
        &page(&app, Method::GET, "/inbox", Some(&cookie), None).await,
        "/sign-in",
    );

    let cookie = signed_in(&app, &app.member).await;
    let other = signed_in(&app, &app.other).await;
    app.services
        .tokens()
        .revoke_all(app.member.user.id)
        .await
        .unwrap();
    redirects_to(
        &page(&app, Method::GET, "/inbox", Some(&cookie), None).await,
        "/sign-in",
    );
    let still = page(&app, Method::GET, "/inbox", Some(&other), None).await;
    assert_eq!(still.status, StatusCode::OK);

    // Deleting the user through the API ends theirs too.
    app.send(
        Method::DELETE,
        &format!("/api/v2/users/{}", app.other.user.id),
        &app.owner,
        Value::Null,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    redirects_to(
        &page(&app, Method::GET, "/inbox", Some(&other), None).await,
        "/sign-in",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_without_a_session_lead_to_sign_in() {
    let app = App::start().await;
    redirects_to(
        &page(&app, Method::GET, "/inbox", None, None).await,
        "/sign-in",
    );
    redirects_to(
        &page(
            &app,
            Method::GET,
            "/inbox",
            Some("herald_session=junk"),
            None,
        )
        .await,
        "/sign-in",
    );
    let events = page(&app, Method::GET, "/inbox/events", None, None).await;
    assert_eq!(events.status, StatusCode::UNAUTHORIZED);
    let bad_link = page(&app, Method::GET, "/sign-in/link?token=nope", None, None).await;
    assert_eq!(bad_link.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_page_loads_more_and_escapes_what_it_shows() {
    let app = App::start().await;
    let mut stored = Vec::new();
    for minute in 0..30 {
        stored.push(notify(&app, &app.member, minute).await);
    }
    let mut hostile = sample::inbox_notification_of(
        app.other.user.id,
        catalogue::WORKSPACE_DELETED,
        sample::t0(),
        vec![],
    );
    hostile.title = "<script>alert(1)</script>".to_owned();
    assert!(app.store.insert(&hostile).await.unwrap());
    let cookie = signed_in(&app, &app.member).await;

    let first = page(&app, Method::GET, "/inbox", Some(&cookie), None).await;
    let html = first.text();
    assert_eq!(html.matches("<li class=\"notification").count(), 25);
    assert!(html.contains(&format!("data-id=\"{}\"", stored[29].id)));
    assert!(!html.contains(&format!("data-id=\"{}\"", stored[4].id)));
    let more = format!("/inbox?before={}", stored[5].id);
    assert!(html.contains(&format!("href=\"{more}\"")), "{html}");

    let second = page(&app, Method::GET, &more, Some(&cookie), None)
        .await
        .text();
    assert_eq!(second.matches("<li class=\"notification").count(), 5);
    assert!(second.contains(&format!("data-id=\"{}\"", stored[0].id)));
    assert!(!second.contains("load-more"), "{second}");
    // Someone else's notification never shows.
    assert!(!html.contains("alert(1)") && !second.contains("alert(1)"));

    let other = signed_in(&app, &app.other).await;
    let theirs = page(&app, Method::GET, "/inbox", Some(&other), None)
        .await
        .text();
    assert!(
        theirs.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{theirs}"
    );
    assert!(!theirs.contains("<script>alert"), "{theirs}");

    let bad = page(&app, Method::GET, "/inbox?before=nope", Some(&cookie), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("before"), "{}", bad.text());
}
