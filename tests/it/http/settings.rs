//! `/settings/notifications` over HTTP (DESIGN §10.6, §10.2): the page without a session
//! signs in and comes back (its `?disabled=` kept, other sites refused as the way back), the
//! switches' forms need the session's CSRF token and name a bad field, the page shows what
//! applies per method, and `?disabled=` turns a template off only once confirmed.

use axum::http::{Method, StatusCode};
use herald_domain::{Method as Delivery, TemplateId, catalogue};

use super::support::App;
use super::web::{field, page, redirects_to, sent_back, set_cookie, signed_in};

const SETTINGS: &str = "/settings/notifications";

/// What the member receives of `template` by each method, as the use case says.
async fn receives(app: &App, template: TemplateId) -> Vec<(Delivery, bool)> {
    let settings = app
        .services
        .preferences()
        .settings(app.member.user.id)
        .await
        .unwrap();
    let setting = settings
        .into_iter()
        .find(|setting| setting.template.id == template)
        .unwrap();
    setting.receives.into_iter().collect()
}

/// The `aria-checked` of the switch with this id on the page.
fn switch_is_on(html: &str, id: &str) -> bool {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no switch {id}: {html}"));
    let rest = &html[at..];
    let checked = rest.find("aria-checked=\"").unwrap() + 14;
    rest[checked..].starts_with("true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_without_a_session_signs_in_and_comes_back_to_it() {
    let app = App::start().await;
    let wanted = format!("{SETTINGS}?disabled={}", catalogue::WORKSPACE_DELETED);
    let encoded = format!(
        "/sign-in?next=%2Fsettings%2Fnotifications%3Fdisabled%3D{}",
        catalogue::WORKSPACE_DELETED
    );
    redirects_to(
        &page(&app, Method::GET, &wanted, None, None).await,
        &encoded,
    );
    redirects_to(
        &page(
            &app,
            Method::GET,
            SETTINGS,
            Some("herald_session=junk"),
            None,
        )
        .await,
        "/sign-in?next=%2Fsettings%2Fnotifications",
    );

    // The token form carries the page along and leads back to it.
    let form = page(&app, Method::GET, &encoded, None, None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(field(&form.text(), "next"), wanted);
    let form_cookie = sent_back(&set_cookie(&form, "herald_sign_in"));
    let csrf = field(&form.text(), "csrf");
    let signed = page(
        &app,
        Method::POST,
        "/sign-in",
        Some(&form_cookie),
        Some(&[
            ("csrf", &csrf),
            ("token", &app.member.token),
            ("next", &wanted),
        ]),
    )
    .await;
    redirects_to(&signed, &wanted);
    let session = sent_back(&set_cookie(&signed, "herald_session"));
    let back = page(&app, Method::GET, &wanted, Some(&session), None).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text());
    // Signed in already, the sign-in page goes straight on.
    redirects_to(
        &page(&app, Method::GET, &encoded, Some(&session), None).await,
        &wanted,
    );

    // Another site is never the way back.
    for elsewhere in [
        "https://elsewhere.example/",
        "//elsewhere.example/",
        "/\\elsewhere",
    ] {
        let signed = page(
            &app,
            Method::POST,
            "/sign-in",
            Some(&form_cookie),
            Some(&[
                ("csrf", &csrf),
                ("token", &app.member.token),
                ("next", elsewhere),
            ]),
        )
        .await;
        redirects_to(&signed, "/inbox");
    }

    // A sign-in link a host mints can name the page too.
    let url = app
        .post(
            &format!("/api/v2/users/{}/sign-in-links", app.member.user.id),
            &app.owner,
            serde_json::Value::Null,
        )
        .await
        .expect(StatusCode::CREATED)
        .json()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = url.strip_prefix("https://herald.example.com").unwrap();
    let link = page(
        &app,
        Method::GET,
        &format!("{path}&next=%2Fsettings%2Fnotifications"),
        None,
        None,
    )
    .await;
    assert_eq!(link.status, StatusCode::OK, "{}", link.text());
    assert!(
        link.text().contains("url=/settings/notifications\""),
        "{}",
        link.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_forms_need_the_sessions_csrf_token_and_name_a_bad_field() {
    let app = App::start().await;
    let cookie = signed_in(&app, &app.member).await;
    let other_cookie = signed_in(&app, &app.other).await;
    let csrf = field(
        &page(&app, Method::GET, SETTINGS, Some(&cookie), None)
            .await
            .text(),
        "csrf",
    );
    let others_csrf = field(
        &page(&app, Method::GET, SETTINGS, Some(&other_cookie), None)
            .await
            .text(),
        "csrf",
    );
    let template = catalogue::WORKSPACE_DELETED.to_string();

    for refused in [None, Some(""), Some(others_csrf.as_str())] {
        let mut form = vec![
            ("template", template.as_str()),
            ("method", "all"),
            ("disabled", "true"),
        ];
        if let Some(token) = refused {
            form.push(("csrf", token));
        }
        let reply = page(&app, Method::POST, SETTINGS, Some(&cookie), Some(&form)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{refused:?}");
        assert!(reply.text().contains("csrf"), "{}", reply.text());
    }
    assert!(
        receives(&app, catalogue::WORKSPACE_DELETED)
            .await
            .iter()
            .all(|(_, on)| *on)
    );

    let otp = catalogue::ONE_TIME_PASSCODE.to_string();
    for (form, named) in [
        (
            [
                ("template", "nope"),
                ("method", "all"),
                ("disabled", "true"),
            ],
            "template:",
        ),
        (
            [
                ("template", &template),
                ("method", "pigeon"),
                ("disabled", "true"),
            ],
            "method:",
        ),
        (
            [
                ("template", &template),
                ("method", "all"),
                ("disabled", "maybe"),
            ],
            "disabled:",
        ),
        (
            [("template", &otp), ("method", "smtp"), ("disabled", "true")],
            "cannot be disabled",
        ),
    ] {
        let mut form = form.to_vec();
        form.push(("csrf", &csrf));
        let reply = page(&app, Method::POST, SETTINGS, Some(&cookie), Some(&form)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{form:?}");
        assert!(reply.text().contains(named), "{named}: {}", reply.text());
    }

    let saved = page(
        &app,
        Method::POST,
        SETTINGS,
        Some(&cookie),
        Some(&[
            ("csrf", &csrf),
            ("template", &template),
            ("method", "webhook"),
            ("disabled", "true"),
        ]),
    )
    .await;
    redirects_to(
        &saved,
        &format!("{SETTINGS}?saved={template}#template-{template}"),
    );
    assert_eq!(
        receives(&app, catalogue::WORKSPACE_DELETED).await,
        [
            (Delivery::Smtp, true),
            (Delivery::Webhook, false),
            (Delivery::Inbox, true)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_each_group_and_what_applies_per_method() {
    let app = App::start().await;
    let cookie = signed_in(&app, &app.member).await;
    let deleted = catalogue::WORKSPACE_DELETED;
    let created = catalogue::WORKSPACE_CREATED;
    app.services
        .preferences()
        .update(
            app.member.user.id,
            herald_application::PreferenceUpdate {
                methods: [(deleted, [(Delivery::Webhook, true)].into_iter().collect())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let html = page(&app, Method::GET, SETTINGS, Some(&cookie), None)
        .await
        .text();
    // The catalogue's groups, in its order.
    let positions: Vec<usize> = catalogue::GROUPS
        .iter()
        .map(|group| {
            html.find(&format!(">{group}</h2>"))
                .unwrap_or_else(|| panic!("{group} missing"))
        })
        .collect();
    assert!(positions.is_sorted(), "{positions:?}");
    // The method row, else the default; the template is on while a method still gets it.
    assert!(!switch_is_on(&html, &format!("switch-{deleted}-webhook")));
    assert!(switch_is_on(&html, &format!("switch-{deleted}-inbox")));
    assert!(switch_is_on(&html, &format!("switch-{deleted}-all")));
    // This deployment sends by webhook and inbox only.
    assert!(!html.contains(&format!("switch-{deleted}-smtp")));
    // Off by default, and the passcode shown always on, with no form.
    assert!(!switch_is_on(&html, &format!("switch-{created}-all")));
    let otp = catalogue::ONE_TIME_PASSCODE;
    let otp_switch = &html[html.find(&format!("id=\"switch-{otp}-all\"")).unwrap()..];
    assert!(otp_switch[..otp_switch.find('>').unwrap()].contains("disabled"));
    assert!(!html.contains(&format!("name=\"template\" value=\"{otp}\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_link_asks_once_then_turns_the_template_off() {
    let app = App::start().await;
    let cookie = signed_in(&app, &app.member).await;
    let template = catalogue::WORKSPACE_DELETED;
    let link = format!("{SETTINGS}?disabled={template}");

    let asked = page(&app, Method::GET, &link, Some(&cookie), None).await;
    assert_eq!(asked.status, StatusCode::OK);
    let html = asked.text();
    assert!(html.contains("id=\"confirm-disable\""), "{html}");
    assert!(
        html.contains(&format!(
            "id=\"template-{template}\" class=\"setting highlighted\""
        )),
        "{html}"
    );
    // Opening the link changes nothing.
    assert!(receives(&app, template).await.iter().all(|(_, on)| *on));

    let csrf = field(&html, "csrf");
    let confirmed = page(
        &app,
        Method::POST,
        SETTINGS,
        Some(&cookie),
        Some(&[
            ("csrf", &csrf),
            ("template", &template.to_string()),
            ("method", "all"),
            ("disabled", "true"),
        ]),
    )
    .await;
    assert_eq!(confirmed.status, StatusCode::SEE_OTHER);
    assert!(receives(&app, template).await.iter().all(|(_, on)| !*on));
    let after = page(
        &app,
        Method::GET,
        &format!("{SETTINGS}?saved={template}"),
        Some(&cookie),
        None,
    )
    .await
    .text();
    assert!(after.contains("you will no longer receive it"), "{after}");
    let again = page(&app, Method::GET, &link, Some(&cookie), None)
        .await
        .text();
    assert!(again.contains("already turned off"), "{again}");
    assert!(!again.contains("confirm-disable"), "{again}");

    for (disabled, says) in [
        ("not-an-id".to_owned(), "is not the id of a notification"),
        (
            TemplateId::random().to_string(),
            "is not the id of a notification",
        ),
        (
            catalogue::ONE_TIME_PASSCODE.to_string(),
            "cannot be turned off",
        ),
    ] {
        let reply = page(
            &app,
            Method::GET,
            &format!("{SETTINGS}?disabled={disabled}"),
            Some(&cookie),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{disabled}");
        let html = reply.text();
        assert!(html.contains("disabled: "), "{html}");
        assert!(html.contains(says), "{says}: {html}");
        assert!(!html.contains("confirm-disable"), "{html}");
        // Still the page, with every switch.
        assert!(html.contains(&format!("switch-{template}-all")), "{html}");
    }
}
