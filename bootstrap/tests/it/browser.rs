//! The web pages in a real browser: Debian's Chromium, headless, through chromedriver
//! ([`crate::webdriver`]), against the `herald server` binary on a fresh PostgreSQL database.
//! Each test saves a screenshot of the page it ends on under `target/ui-screenshots/`. The bell
//! runs on a host page of another origin (`HostPage`), as a host application embeds it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, Process, TestDatabase};
use crate::webdriver::Browser;

/// A running server whose access URL is its own address, and two users of it.
pub(crate) struct Site {
    pub(crate) address: String,
    pub(crate) owner: String,
    pub(crate) member: String,
    pub(crate) member_id: String,
    _process: Process,
    database: TestDatabase,
    _data_dir: DataDir,
}

/// The server's data directory, removed when the site is dropped.
struct DataDir(std::path::PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

impl Site {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// The server with these flags added.
    pub(crate) async fn start_with(flags: &[&str]) -> Self {
        let database = TestDatabase::create().await;
        let create = |username: &str, roles: &str| {
            let (status, stdout, stderr) = support::run(
                &[
                    "users",
                    "create",
                    "--email",
                    &format!("{username}@example.com"),
                    "--username",
                    username,
                    "--name",
                    &format!("{}{}", username[..1].to_uppercase(), &username[1..]),
                    "--roles",
                    roles,
                    "--postgres-url",
                    &database.url,
                ],
                &[],
            );
            assert!(status.success(), "{stdout}\n{stderr}");
            stdout.trim().to_owned()
        };
        let owner = create("olivia", "owner");
        let member = create("mia", "member");
        // The access URL must name the port, so the port is chosen before the server starts.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let data_dir = support::temp_dir("herald-browser-test");
        let access_url = format!("http://{address}");
        let mut args = vec![
            "server",
            "--postgres-url",
            &database.url,
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--http-address",
            &address,
            "--access-url",
            &access_url,
        ];
        args.extend_from_slice(flags);
        let mut process = Process::spawn(&args);
        process.wait_for_line("HTTP API listening on", Duration::from_secs(30));
        let (status, me) = api(&address, "GET", "/api/v2/users/me", &member, None);
        assert_eq!(status, 200, "{me}");
        Self {
            member_id: me["id"].as_str().unwrap().to_owned(),
            address,
            owner,
            member,
            _process: process,
            database,
            _data_dir: DataDir(data_dir),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A one-time sign-in link for the member, minted by the owner.
    pub(crate) fn sign_in_link(&self) -> String {
        let (status, body) = api(
            &self.address,
            "POST",
            &format!("/api/v2/users/{}/sign-in-links", self.member_id),
            &self.owner,
            None,
        );
        assert_eq!(status, 201, "{body}");
        body["url"].as_str().unwrap().to_owned()
    }

    /// Sends the member a custom notification and waits until it is in their inbox (the
    /// notifier delivers it a moment later).
    fn notify_member(&self, title: &str) {
        let before = self.member_unread();
        self.send_to_member(title);
        let deadline = std::time::Instant::now() + crate::webdriver::PAGE_WAIT;
        while self.member_unread() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "{title:?} never reached the inbox"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn member_unread(&self) -> u64 {
        let (status, body) = api(
            &self.address,
            "GET",
            "/api/v2/notifications/inbox",
            &self.member,
            None,
        );
        assert_eq!(status, 200, "{body}");
        body["unread_count"].as_u64().unwrap()
    }

    /// Sends the member a custom notification (it lands in their inbox).
    fn send_to_member(&self, title: &str) {
        let (status, body) = api(
            &self.address,
            "POST",
            "/api/v2/notifications/custom",
            &self.member,
            Some(json!({"content": {"title": title, "message": "Sent by the browser test."}})),
        );
        assert_eq!(status, 204, "{body}");
    }

    pub(crate) async fn stop(self) {
        drop(self._process);
        self.database.drop_now().await;
    }
}

/// One JSON request: (status, body or `null`).
pub(crate) fn api(
    address: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Waits until the inbox page's live connection is open.
fn wait_until_live(browser: &Browser) {
    browser.find("#notifications[data-live='open']");
}

/// The unread count the page shows.
fn unread(browser: &Browser) -> String {
    browser.text_of("#unread-count")
}

fn wait_for_unread(browser: &Browser, count: &str) {
    browser.wait_for(&format!("an unread count of {count}"), || {
        (unread(browser) == count).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_link_opens_the_inbox_where_notifications_arrive_live_and_are_marked_read() {
    let site = Site::start().await;
    let browser = Browser::start("inbox");

    let link = site.sign_in_link();
    browser.goto(&link);
    browser.wait_for("the inbox after the sign-in link", || {
        browser.url().ends_with("/inbox").then_some(())
    });
    assert_eq!(unread(&browser), "0");
    assert!(browser.source().contains("No notifications yet."));

    // Live: the page is not reloaded, yet the notification appears and the count follows.
    browser.run("window.notReloaded = true;");
    wait_until_live(&browser);
    site.notify_member("Build 42 finished");
    wait_for_unread(&browser, "1");
    let title = browser.text_of("#notifications li.unread .title");
    assert_eq!(title, "Build 42 finished");
    assert_eq!(browser.run("return window.notReloaded === true;"), true);

    // Mark read (the form the live script added).
    browser.click(&browser.find("#notifications li.unread button"));
    browser.wait_for("the notification marked read", || {
        browser.all("#notifications li.read").first().cloned()
    });
    assert_eq!(unread(&browser), "0");
    wait_until_live(&browser);

    // Mark all read, after two more (these arrive live too).
    site.notify_member("Deploy to staging done");
    site.notify_member("Weekly report ready");
    wait_for_unread(&browser, "2");
    browser.click(&browser.find("#mark-all-read"));
    browser.wait_for("every notification read", || {
        (browser.all("#notifications li.unread").is_empty()
            && browser.all("#notifications li.read").len() == 3)
            .then_some(())
    });
    assert_eq!(unread(&browser), "0");

    // Mark one unread again, then the unread filter shows it alone.
    browser.click(&browser.find("#notifications li.read button"));
    wait_for_unread(&browser, "1");
    browser.click(&browser.find(".filters a[href='/inbox?filter=unread']"));
    browser.wait_for("the unread filter", || {
        (browser.url().ends_with("filter=unread") && browser.all("#notifications li").len() == 1)
            .then_some(())
    });
    browser.click(&browser.find(".filters a[href='/inbox']"));
    browser.wait_for("all notifications again", || {
        (browser.all("#notifications li").len() == 3).then_some(())
    });
    browser.screenshot();

    // The link was used: following it again is refused.
    browser.goto(&link);
    browser.wait_for("the refusal of a used link", || {
        browser
            .source()
            .contains("Sign-in link not valid")
            .then_some(())
    });
    browser.screenshot_named("sign-in-link-used");
    drop(browser);
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_form_signs_in_and_a_form_without_its_csrf_token_is_refused() {
    let site = Site::start().await;
    let browser = Browser::start_sized("sign-in", 390, 700);
    browser.goto(&site.url("/inbox"));
    browser.wait_for("the sign-in page", || {
        browser.url().ends_with("/sign-in").then_some(())
    });
    browser.screenshot();
    browser.type_into(&browser.find("#token"), &site.member);
    browser.click(&browser.find("form.card button[type=submit]"));
    browser.wait_for("the inbox after signing in", || {
        browser.url().ends_with("/inbox").then_some(())
    });
    site.notify_member("A notification on a phone");
    browser.goto(&site.url("/inbox"));
    assert_eq!(unread(&browser), "1");
    browser.screenshot_named("inbox-phone");

    // The mark-all form, its CSRF token removed, is refused with a 403 page.
    browser.run(
        "document.querySelector('form[action=\"/inbox/read-all\"] input[name=csrf]').remove();",
    );
    browser.click(&browser.find("#mark-all-read"));
    browser.wait_for("the refusal of the form", || {
        browser.source().contains("Form refused").then_some(())
    });
    browser.screenshot_named("csrf-refused");
    browser.goto(&site.url("/inbox"));
    assert_eq!(unread(&browser), "1", "the refused form changed nothing");

    // Sign out: the inbox leads to the sign-in page again.
    browser.click(&browser.find("form[action='/sign-out'] button"));
    browser.wait_for("the sign-in page after signing out", || {
        browser.url().ends_with("/sign-in").then_some(())
    });
    browser.goto(&site.url("/inbox"));
    browser.wait_for("the sign-in page for a signed-out browser", || {
        browser.url().ends_with("/sign-in").then_some(())
    });
    drop(browser);
    site.stop().await;
}

/// A host application's page on another origin (`localhost`, where Herald is on `127.0.0.1`,
/// and another port): a tiny server answering every request with one HTML page.
struct HostPage {
    origin: String,
    listener: TcpListener,
}

impl HostPage {
    fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        Self {
            origin: format!("http://localhost:{port}"),
            listener,
        }
    }

    /// Serves `html` until the test ends; the page's URL.
    fn serve(self, html: String) -> String {
        std::thread::spawn(move || {
            for stream in self.listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
            }
        });
        format!("{}/", self.origin)
    }
}

/// What the bell's shadow root holds at `css`, as `property` (JavaScript).
fn bell_property(browser: &Browser, css: &str, property: &str) -> Value {
    browser.run(&format!(
        "var el = document.querySelector('herald-inbox').shadowRoot.querySelector('{css}'); \
         return el ? el.{property} : null;"
    ))
}

fn wait_for_bell_label(browser: &Browser, label: &str) {
    browser.wait_for(&format!("the bell labelled {label:?}"), || {
        (bell_property(browser, ".bell", "getAttribute('aria-label')") == label).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bell_on_a_host_page_of_another_origin_shows_the_unread_count_live() {
    let host = HostPage::bind();
    let site = Site::start_with(&["--web-allowed-origins", &host.origin.clone()]).await;
    site.notify_member("Workspace dev-3 is ready");
    let page = host.serve(format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Acme Cloud</title>
<script src="{herald}/assets/herald-inbox.js" defer></script>
<style>
  body {{ margin: 0; font: 15px system-ui, sans-serif; background: #f6f8fa; color: #1f2328; }}
  header {{ display: flex; align-items: center; justify-content: space-between; padding: 8px 24px;
           background: #24292f; color: #fff; }}
  header nav a {{ color: #d0d7de; margin-right: 18px; text-decoration: none; }}
  main {{ padding: 24px; }}
</style></head>
<body>
<header><strong>Acme Cloud</strong>
  <div style="display: flex; align-items: center"><nav><a href="#">Workspaces</a><a href="#">Templates</a></nav>
  <herald-inbox herald-url="{herald}"></herald-inbox></div>
</header>
<script>document.querySelector("herald-inbox").token = "{token}";</script>
<main><h1>Workspaces</h1><p>The bell in the top bar is Herald's, served from another origin.</p></main>
</body></html>"##,
        herald = site.url(""),
        token = site.member,
    ));
    let browser = Browser::start("bell");
    // The page sets the token as a property before the deferred script defines the element,
    // as the README shows.
    browser.goto(&page);
    browser.find("herald-inbox[data-live='open']");

    // The count of what was there before the page opened, in the bell's accessible name.
    wait_for_bell_label(&browser, "Notifications, 1 unread");
    assert_eq!(bell_property(&browser, ".badge", "textContent"), "1");
    assert_eq!(
        browser.run("return document.querySelector('herald-inbox').hasAttribute('token');"),
        false,
        "the token stays off the element's attributes"
    );

    // Live: the page is not reloaded, yet the count follows a new notification.
    browser.run("window.notReloaded = true;");
    site.notify_member("Build 42 finished");
    wait_for_bell_label(&browser, "Notifications, 2 unread");
    assert_eq!(bell_property(&browser, ".badge", "textContent"), "2");
    assert_eq!(browser.run("return window.notReloaded === true;"), true);

    // The drop-down lists the newest first; the bell says it is open.
    browser.click(&browser.find_in_shadow("herald-inbox", ".bell"));
    let first = browser.find_in_shadow("herald-inbox", ".panel li.unread .title");
    assert_eq!(browser.text(&first), "Build 42 finished");
    assert_eq!(
        bell_property(&browser, ".bell", "getAttribute('aria-expanded')"),
        "true"
    );
    browser.screenshot();

    // Mark read from the drop-down.
    browser.click(&browser.find_in_shadow("herald-inbox", ".panel li.unread .mark-read"));
    wait_for_bell_label(&browser, "Notifications, 1 unread");
    assert_eq!(
        site.member_unread(),
        1,
        "marked read in Herald, not only on the page"
    );

    // Escape closes the drop-down and gives the focus back to the bell.
    browser.press(crate::webdriver::ESCAPE);
    browser.wait_for("the drop-down closed", || {
        (bell_property(&browser, ".panel", "hidden") == true).then_some(())
    });
    assert_eq!(
        bell_property(&browser, ".bell", "getAttribute('aria-expanded')"),
        "false"
    );
    assert_eq!(
        browser.run(
            "return document.querySelector('herald-inbox').shadowRoot.activeElement.className;"
        ),
        "bell"
    );
    browser.screenshot_named("bell-closed");
    drop(browser);
    site.stop().await;
}

/// Custom Notification and Workspace Deleted, as the catalogue names them.
const CUSTOM_NOTIFICATION: &str = "39b1e189-c857-4b0c-877a-511144c18516";
const WORKSPACE_DELETED: &str = "f517da0b-cdc9-410f-ab89-a86107c420ed";

/// The `aria-checked` of the settings page's switch with this id.
fn switch_state(browser: &Browser, id: &str) -> Value {
    browser.run(&format!(
        "return document.getElementById('{id}').getAttribute('aria-checked');"
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preference_switched_off_on_the_settings_page_skips_the_next_event() {
    let site = Site::start().await;
    let browser = Browser::start("settings");
    browser.goto(&site.sign_in_link());
    browser.wait_for("the inbox after the sign-in link", || {
        browser.url().ends_with("/inbox").then_some(())
    });
    browser.click(&browser.find("a[href='/settings/notifications']"));
    let switch = format!("switch-{CUSTOM_NOTIFICATION}-inbox");
    browser.wait_for("the settings page", || {
        browser.all(&format!("#{switch}")).first().cloned()
    });
    assert_eq!(switch_state(&browser, &switch), "true");
    browser.screenshot_named("settings-page");

    // Keyboard: focus the switch and press Enter, as a person without a mouse would.
    browser.run(&format!("document.getElementById('{switch}').focus();"));
    browser.type_into(&browser.find(&format!("#{switch}")), "\u{E007}");
    browser.wait_for("the switch turned off", || {
        (browser.url().contains("saved=") && switch_state(&browser, &switch) == "false")
            .then_some(())
    });
    assert!(browser.source().contains("you will no longer receive it"));
    browser.screenshot();

    // The owner's next custom notification to the member is skipped for it, and the inbox
    // stays empty.
    let (status, body) = api(
        &site.address,
        "POST",
        "/api/v2/notifications/custom",
        &site.owner,
        Some(json!({
            "content": {"title": "Maintenance", "message": "Tonight at 22:00."},
            "user_ids": [site.member_id],
        })),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["message_ids"], json!([]), "{body}");
    assert_eq!(
        body["skipped"],
        json!([{"user_id": site.member_id, "reason": "disabled"}]),
        "{body}"
    );
    assert_eq!(site.member_unread(), 0);

    // Switched on again, the next one arrives.
    browser.click(&browser.find(&format!("#{switch}")));
    browser.wait_for("the switch turned on", || {
        (switch_state(&browser, &switch) == "true").then_some(())
    });
    site.notify_member("Back on");
    drop(browser);
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emails_disabled_link_signs_in_then_turns_the_template_off_once_confirmed() {
    let site = Site::start().await;
    let browser = Browser::start_sized("settings-disabled-link", 390, 844);
    let link = format!("/settings/notifications?disabled={WORKSPACE_DELETED}");
    browser.goto(&site.url(&link));
    browser.wait_for("the sign-in page", || {
        browser.url().contains("/sign-in?next=").then_some(())
    });
    browser.type_into(&browser.find("#token"), &site.member);
    browser.click(&browser.find("form.card button[type=submit]"));
    browser.wait_for("the settings page asking to confirm", || {
        browser.all("#confirm-disable").first().cloned()
    });
    assert!(browser.url().ends_with(&link), "{}", browser.url());
    let highlighted = browser.all(".setting.highlighted");
    assert_eq!(highlighted.len(), 1);
    assert_eq!(
        browser.run("return document.querySelector('.setting.highlighted').id;"),
        format!("template-{WORKSPACE_DELETED}")
    );
    let all = format!("switch-{WORKSPACE_DELETED}-all");
    assert_eq!(
        switch_state(&browser, &all),
        "true",
        "nothing off before confirming"
    );
    browser.screenshot_named("settings-disabled-link-confirm");

    browser.click(&browser.find("#confirm-disable"));
    browser.wait_for("the template turned off", || {
        (switch_state(&browser, &all) == "false").then_some(())
    });
    assert_eq!(
        switch_state(&browser, &format!("switch-{WORKSPACE_DELETED}-inbox")),
        "false"
    );
    assert!(browser.source().contains("you will no longer receive it"));
    browser.screenshot();

    // An id that names no notification: the page says so.
    browser.goto(&site.url("/settings/notifications?disabled=not-a-template"));
    browser.wait_for("the message about the link", || {
        browser
            .source()
            .contains("is not the id of a notification")
            .then_some(())
    });
    assert!(browser.all("#confirm-disable").is_empty());
    browser.screenshot_named("settings-disabled-unknown");
    drop(browser);
    site.stop().await;
}
