//! `/deployment/notifications` in a real browser (headless Chromium, [`crate::webdriver`])
//! against the `herald server` binary: the owner changes a template's method, pauses and
//! resumes delivery, sends a test notification and follows it in the troubleshooting list; a
//! member is refused the page. Each test saves a screenshot under `target/ui-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::browser::{Site, api};
use crate::webdriver::Browser;

const PAGE: &str = "/deployment/notifications";

/// Signs in with an API token through the sign-in form.
fn sign_in_with_token(browser: &Browser, site: &Site, token: &str) {
    browser.goto(&site.url("/sign-in"));
    browser.type_into(&browser.find("#token"), token);
    browser.click(&browser.find("form.card button[type=submit]"));
    browser.wait_for("the inbox after signing in", || {
        browser.url().ends_with("/inbox").then_some(())
    });
}

/// The trimmed text of the first element matching `css` now, `""` without one: one script
/// call, so a page being replaced after a form was sent cannot leave a stale element behind.
fn text_now(browser: &Browser, css: &str) -> String {
    let script = format!(
        "const e = document.querySelector({}); return e ? e.textContent.trim() : '';",
        serde_json::Value::from(css)
    );
    browser.run(&script).as_str().unwrap_or_default().to_owned()
}

/// The `li` of the template named `name`.
fn template_row(name: &str) -> String {
    format!("li.template[data-name='{name}']")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_changes_a_method_pauses_and_sends_a_test_seen_among_the_messages() {
    let site = Site::start().await;
    let browser = Browser::start_sized("deployment", 1100, 3400);
    sign_in_with_token(&browser, &site, &site.owner);

    // The owner's nav leads to the page.
    browser.click(&browser.find("header a[href='/deployment/notifications']"));
    browser.wait_for("the deployment page", || {
        browser.url().ends_with(PAGE).then_some(())
    });
    assert!(text_now(&browser, "#delivery-state").starts_with("Running"));

    // Override Workspace Deleted's method with the inbox, by keyboard-reachable controls.
    let row = template_row("Workspace Deleted");
    assert!(browser.all(&format!("{row} .tag")).is_empty());
    browser.click(&browser.find(&format!("{row} select option[value='inbox']")));
    browser.click(&browser.find(&format!("{row} button[type=submit]")));
    browser.wait_for("the method saved", || {
        (text_now(&browser, "#notice") == "Method saved.").then_some(())
    });
    assert_eq!(text_now(&browser, &format!("{row} .tag")), "override");
    assert_eq!(text_now(&browser, &format!("{row} .effective")), "Inbox");
    let (status, template) = api(
        &site.address,
        "GET",
        "/api/v2/notifications/templates/system",
        &site.owner,
        None,
    );
    assert_eq!(status, 200);
    let deleted = template
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Workspace Deleted")
        .unwrap();
    assert_eq!(deleted["method"], "inbox", "the API sees the override");

    // Reset it to the deployment default.
    browser.click(&browser.find(&format!("{row} button[name=reset]")));
    browser.wait_for("the override reset", || {
        browser.all(&format!("{row} .tag")).is_empty().then_some(())
    });

    // Pause, then resume.
    browser.click(&browser.find("#pause-toggle"));
    browser.wait_for("delivery paused", || {
        text_now(&browser, "#delivery-state")
            .starts_with("Paused")
            .then_some(())
    });
    assert_eq!(text_now(&browser, "#pause-toggle"), "Resume delivery");
    browser.click(&browser.find("#pause-toggle"));
    browser.wait_for("delivery resumed", || {
        text_now(&browser, "#delivery-state")
            .starts_with("Running")
            .then_some(())
    });

    // Send a test: the notice says so, and the message is listed, then sent by the notifier.
    browser.click(&browser.find("#send-test"));
    browser.wait_for("the test's notice", || {
        text_now(&browser, "#notice")
            .starts_with("Test notification queued: 1 message ")
            .then_some(())
    });
    assert_eq!(
        text_now(&browser, "#message-list tbody tr .template-cell"),
        "Test Notification"
    );
    browser.wait_for("the test notification sent", || {
        browser.goto(&site.url(&format!("{PAGE}?status=sent")));
        (text_now(
            &browser,
            "#message-list tr[data-status='sent'] .template-cell",
        ) == "Test Notification")
            .then_some(())
    });
    browser.goto(&site.url(PAGE));
    browser.find("#message-list");
    browser.screenshot();
    drop(browser);

    // On a phone: the messages table scrolls sideways within its own region.
    let phone = Browser::start_sized("deployment-phone", 390, 1000);
    sign_in_with_token(&phone, &site, &site.owner);
    phone.goto(&site.url(&format!("{PAGE}#messages")));
    phone.find("#message-list");
    let page_width = phone.run("return document.documentElement.scrollWidth;");
    let window_width = phone.run("return window.innerWidth;");
    assert_eq!(
        page_width, window_width,
        "the page itself never scrolls sideways"
    );
    phone.screenshot();
    drop(phone);
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_is_refused_the_deployment_page() {
    let site = Site::start().await;
    let browser = Browser::start_sized("deployment-refused", 390, 700);
    browser.goto(&site.sign_in_link());
    browser.wait_for("the inbox after the sign-in link", || {
        browser.url().ends_with("/inbox").then_some(())
    });
    assert!(
        browser
            .all("header a[href='/deployment/notifications']")
            .is_empty(),
        "members get no link to the page"
    );
    browser.goto(&site.url(PAGE));
    browser.wait_for("the refusal", || {
        browser.source().contains("for owners only").then_some(())
    });
    assert_eq!(text_now(&browser, "h1"), "Not allowed");
    assert!(browser.all("#send-test").is_empty());
    browser.screenshot();
    drop(browser);
    site.stop().await;
}
