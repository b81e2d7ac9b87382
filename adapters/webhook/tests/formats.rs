//! The Slack and Microsoft Teams webhook formats: golden files of both bodies for every
//! catalogue template, labels carrying each format's markup arriving escaped, and both formats
//! against a real HTTP receiver (wiremock) with the same headers, signature and status handling
//! as Herald's own format.
//!
//! The golden files live in `tests/golden/{slack,teams}/<slug>.json` and are built from the
//! rendering golden files of `herald-application` (`application/tests/golden/<slug>.md`), so
//! both follow one reviewed rendering of each catalogue template; the digest forms' bodies
//! live in `tests/golden/{slack,teams}/digest/`, built from `application/tests/golden/digest/`.
//! After an intended change,
//! regenerate them with `HERALD_BLESS=1 cargo test -p herald-webhook --test formats` (or
//! `cargo xtask golden`) and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use herald_application::ports::{Delivery, DeliveryError, Dispatcher, SystemClock};
use herald_application::rendering::{RenderedMessage, Renderer};
use herald_domain::catalogue::{self, WORKSPACE_DELETED};
use herald_domain::{Action, Labels, MessageId, Method, Payload, Template, UserId};
use herald_webhook::{WebhookConfig, WebhookDispatcher, WebhookFormat, WebhookSecret};
use serde_json::Value;
use uuid::Uuid;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn payload(template: &Template, user: UserId, actions: Vec<Action>, labels: Labels) -> Payload {
    Payload {
        version: Payload::VERSION.into(),
        notification_name: template.name.clone(),
        notification_template_id: template.id,
        user_id: user,
        user_email: "ada@example.com".into(),
        user_name: "Ada Lovelace".into(),
        user_username: "ada".into(),
        actions,
        labels,
        data: None,
        targets: vec![],
    }
}

fn delivery(template: &Template, rendered: RenderedMessage, payload: Payload) -> Delivery {
    Delivery {
        message_id: MessageId::from_uuid(Uuid::from_u128(0x5e_4d)),
        method: Method::Webhook,
        template_id: template.id,
        recipient: payload.user_id,
        payload,
        targets: vec![],
        rendered,
    }
}

fn catalogue_template(name: &str) -> Template {
    catalogue::templates()
        .into_iter()
        .find(|template| template.name == name)
        .unwrap_or_else(|| panic!("no catalogue template is named {name:?}"))
}

fn body_json(format: WebhookFormat, delivery: &Delivery) -> Value {
    serde_json::from_slice(&format.body(delivery).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Golden files.

/// One rendering golden file of `herald-application`, read back.
struct Rendering {
    slug: String,
    template: Template,
    rendered: RenderedMessage,
    actions: Vec<Action>,
}

fn application_golden_dir() -> PathBuf {
    manifest_dir().join("../../application/tests/golden")
}

fn golden_dir(format: WebhookFormat) -> PathBuf {
    manifest_dir().join("tests/golden").join(format.name())
}

/// In the checkout under test: read at run time, since a target directory shared between
/// checkouts can run a binary another checkout built (whose `env!` path may be gone).
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The sections of a rendering golden file: `===== name =====` lines, each followed by its
/// content, then a blank line before the next (as `application/tests/rendering.rs` writes it).
fn sections(file: &str) -> Vec<(String, String)> {
    let mut sections = Vec::new();
    let mut rest = file;
    while let Some(start) = rest.find("===== ") {
        let header_end = start + rest[start..].find('\n').unwrap();
        let name = rest[start..header_end]
            .trim_matches(|c| c == '=' || c == ' ')
            .to_owned();
        let after = &rest[header_end + 1..];
        let next = after.find("\n===== ").map_or(after.len(), |at| at + 1);
        let content = &after[..next];
        let content = content
            .strip_suffix("\n\n")
            .or_else(|| content.strip_suffix('\n'))
            .unwrap_or(content);
        sections.push((name, content.to_owned()));
        rest = &after[next..];
    }
    sections
}

fn read_renderings(set: GoldenSet) -> Vec<Rendering> {
    let dir = set.under(application_golden_dir());
    let mut renderings = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "md") {
            continue;
        }
        let file = std::fs::read_to_string(&path).unwrap();
        let name = file
            .split('"')
            .nth(1)
            .unwrap_or_else(|| panic!("{}: no template name", path.display()));
        let section = |wanted: &str| {
            sections(&file)
                .into_iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, content)| content)
                .unwrap_or_else(|| panic!("{}: no {wanted} section", path.display()))
        };
        let actions = section("actions")
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| {
                let (label, url) = line.rsplit_once(" -> ").unwrap();
                Action {
                    label: label.to_owned(),
                    url: url.to_owned(),
                }
            })
            .collect();
        renderings.push(Rendering {
            slug: path.file_stem().unwrap().to_string_lossy().into_owned(),
            template: catalogue_template(name),
            rendered: RenderedMessage {
                title_markdown: section("title (markdown)"),
                body_markdown: section("body (markdown)"),
                title: section("title (text)"),
                body: section("body (text)"),
            },
            actions,
        });
    }
    renderings.sort_by(|a, b| a.slug.cmp(&b.slug));
    renderings
}

fn golden_body(format: WebhookFormat, rendering: &Rendering) -> String {
    let user = UserId::from_uuid(Uuid::from_u128(0xada));
    let payload = payload(
        &rendering.template,
        user,
        rendering.actions.clone(),
        Labels::new(),
    );
    let delivery = delivery(&rendering.template, rendering.rendered.clone(), payload);
    let mut text = serde_json::to_string_pretty(&body_json(format, &delivery)).unwrap();
    text.push('\n');
    text
}

/// Whether this run rewrites the golden files: `HERALD_BLESS=1`, and never in CI (`CI` set),
/// where a rewrite would make the comparison pass whatever the bodies became.
fn blessing() -> bool {
    let bless = std::env::var("HERALD_BLESS").is_ok_and(|bless| bless == "1");
    let in_ci = std::env::var("CI").is_ok_and(|ci| !ci.is_empty());
    assert!(
        !(bless && in_ci),
        "HERALD_BLESS=1 is refused because CI is set: golden files are never rewritten in CI; \
         regenerate them outside CI (`cargo xtask golden`) and commit the reviewed diff"
    );
    bless
}

/// The lines that differ, numbered, at most 20 of them.
fn line_diff(expected: &str, actual: &str) -> String {
    let expected: Vec<_> = expected.lines().collect();
    let actual: Vec<_> = actual.lines().collect();
    let mut diff = String::new();
    let differing = (0..expected.len().max(actual.len()))
        .filter(|&i| expected.get(i) != actual.get(i))
        .take(20);
    for i in differing {
        let line = |lines: &[&str]| {
            lines
                .get(i)
                .map_or("<none>".to_owned(), |l| (*l).to_owned())
        };
        writeln!(
            diff,
            "  line {}:\n    - {}\n    + {}",
            i + 1,
            line(&expected),
            line(&actual)
        )
        .unwrap();
    }
    diff
}

/// The golden files of one message each, or of the templates' digest forms (in `digest/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoldenSet {
    Messages,
    Digests,
}

impl GoldenSet {
    fn under(self, dir: PathBuf) -> PathBuf {
        match self {
            GoldenSet::Messages => dir,
            GoldenSet::Digests => dir.join("digest"),
        }
    }
}

fn check_golden_files(format: WebhookFormat, set: GoldenSet) {
    let renderings = read_renderings(set);
    // Security messages are never digested: they have no digest form.
    let expected = catalogue::templates()
        .iter()
        .filter(|template| set == GoldenSet::Messages || !template.is_security())
        .count();
    assert_eq!(
        renderings.len(),
        expected,
        "one rendering golden file per catalogue template"
    );
    let dir = set.under(golden_dir(format));
    let bless = blessing();
    let mut expected_files = BTreeSet::new();
    let mut failures = Vec::new();
    for rendering in &renderings {
        let file_name = format!("{}.json", rendering.slug);
        let path = dir.join(&file_name);
        let actual = golden_body(format, rendering);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &actual).unwrap();
        } else {
            match std::fs::read_to_string(&path) {
                Ok(expected) if expected == actual => {}
                Ok(expected) => failures.push(format!(
                    "{format}/{file_name} differs from the body:\n{}",
                    line_diff(&expected, &actual)
                )),
                Err(error) => failures.push(format!("{format}/{file_name}: {error}")),
            }
        }
        expected_files.insert(file_name);
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !expected_files.contains(&name) {
            if bless {
                std::fs::remove_file(&path).unwrap();
            } else {
                failures.push(format!("{format}/{name} matches no catalogue template"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nIf the change is intended, run \
         `HERALD_BLESS=1 cargo test -p herald-webhook --test formats` and review the diff.",
        failures.join("\n")
    );
}

#[test]
fn every_catalogue_template_as_slack_matches_its_golden_file() {
    check_golden_files(WebhookFormat::Slack, GoldenSet::Messages);
}

#[test]
fn every_catalogue_template_as_teams_matches_its_golden_file() {
    check_golden_files(WebhookFormat::Teams, GoldenSet::Messages);
}

#[test]
fn every_catalogue_digest_form_as_slack_matches_its_golden_file() {
    check_golden_files(WebhookFormat::Slack, GoldenSet::Digests);
}

#[test]
fn every_catalogue_digest_form_as_teams_matches_its_golden_file() {
    check_golden_files(WebhookFormat::Teams, GoldenSet::Digests);
}

#[test]
fn rendering_golden_files_are_read_back_whole() {
    let renderings = read_renderings(GoldenSet::Messages);
    let custom = renderings
        .iter()
        .find(|r| r.slug == "custom-notification")
        .unwrap();
    assert_eq!(custom.rendered.title, "Maintenance tonight");
    assert_eq!(
        custom.rendered.body_markdown,
        "Herald will be down from 22\\:00 to 23\\:00 UTC while the database is upgraded\\."
    );
    let deleted = renderings
        .iter()
        .find(|r| r.slug == "workspace-deleted")
        .unwrap();
    assert!(!deleted.actions.is_empty());
    assert!(
        deleted
            .actions
            .iter()
            .all(|a| a.url.starts_with("https://"))
    );
    assert!(deleted.rendered.body.starts_with("Hi Ada Lovelace,\n\n"));
}

// ---------------------------------------------------------------------------------------------
// Labels carrying markup.

/// The catalogue template `name` rendered by the real renderer with these labels.
fn rendered(name: &str, labels: &[(&str, &str)]) -> Delivery {
    let template = catalogue_template(name);
    let user = UserId::from_uuid(Uuid::from_u128(0xada));
    let labels = labels
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    let mut payload = payload(&template, user, vec![], labels);
    let renderer = Renderer::new("Herald", "https://herald.example.com");
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
    let rendered = renderer.render_message(&template, &payload, now).unwrap();
    payload.actions = renderer.render_actions(&template, &payload, now).unwrap();
    delivery(&template, rendered, payload)
}

/// "Workspace Deleted" with `name` set to `label`: the label is in both the title and the
/// body (in bold there).
fn workspace_deleted_named(label: &str) -> Delivery {
    let delivery = rendered(
        "Workspace Deleted",
        &[
            ("name", label),
            ("initiator", "grace"),
            ("reason", "cleanup"),
        ],
    );
    assert_eq!(delivery.template_id, WORKSPACE_DELETED);
    delivery
}

#[test]
fn a_label_with_slack_markup_arrives_escaped() {
    let label = "<!channel> <@U123> <http://evil.example|x> & co";
    let body = body_json(WebhookFormat::Slack, &workspace_deleted_named(label));
    let escaped = "&lt;!channel&gt; &lt;@U123&gt; &lt;http://evil.example|x&gt; &amp; co";

    let section = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|block| block["type"] == "section")
        .unwrap();
    let section = section["text"]["text"].as_str().unwrap();
    assert!(section.contains(&format!("*{escaped}*")), "{section}");
    let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(header.contains(escaped), "{header}");
    assert!(body["text"].as_str().unwrap().contains(escaped), "{body}");

    let whole = body.to_string();
    for raw in ["<!channel>", "<@U123>", "<http://evil.example|x>"] {
        assert!(!whole.contains(raw), "{raw} arrived as markup: {whole}");
    }
}

#[test]
fn a_label_with_teams_markup_arrives_escaped() {
    let label = "**loud** [click](https://evil.example) _x_";
    let body = body_json(WebhookFormat::Teams, &workspace_deleted_named(label));
    let card = &body["attachments"][0]["content"];
    let escaped = "\\*\\*loud\\*\\* \\[click\\](https://evil.example) \\_x\\_";

    let title = card["body"][0]["text"].as_str().unwrap();
    assert!(title.contains(escaped), "{title}");
    let texts: Vec<&str> = card["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|block| block["text"].as_str().unwrap())
        .collect();
    assert!(
        texts
            .iter()
            .any(|text| text.contains(&format!("**{escaped}**"))),
        "{texts:?}"
    );
    for text in &texts {
        assert!(
            !text.contains("[click]("),
            "a link arrived as markup: {text}"
        );
        assert!(
            !text.contains(" **loud"),
            "emphasis arrived as markup: {text}"
        );
    }
}

#[test]
fn a_label_cannot_start_a_teams_list() {
    let delivery = rendered(
        "Custom Notification",
        &[
            ("custom_title", "- 1. item"),
            ("custom_message", "2. first - second"),
        ],
    );
    let body = body_json(WebhookFormat::Teams, &delivery);
    let card = &body["attachments"][0]["content"];
    assert_eq!(card["body"][0]["text"], "\\- 1. item");
    assert_eq!(card["body"][1]["text"], "2\\. first - second");
}

#[test]
fn slack_texts_are_cut_to_slack_limits_on_character_boundaries() {
    let label = "é".repeat(4000);
    let mut delivery = workspace_deleted_named(&label);
    delivery.payload.actions = vec![Action {
        label: "ü".repeat(100),
        url: "https://herald.example.com/x".into(),
    }];
    let body = body_json(WebhookFormat::Slack, &delivery);
    let blocks = body["blocks"].as_array().unwrap();
    let chars = |value: &Value| value.as_str().unwrap().chars().count();

    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(chars(&blocks[0]["text"]["text"]), 150);
    assert!(blocks[0]["text"]["text"].as_str().unwrap().ends_with('…'));
    assert_eq!(blocks[1]["type"], "section");
    assert_eq!(chars(&blocks[1]["text"]["text"]), 3000);
    assert_eq!(blocks[2]["elements"][0]["type"], "button");
    assert_eq!(chars(&blocks[2]["elements"][0]["text"]["text"]), 75);
}

// ---------------------------------------------------------------------------------------------
// Against a receiver.

fn dispatcher(server: &MockServer, format: WebhookFormat) -> WebhookDispatcher {
    WebhookDispatcher::new(
        WebhookConfig {
            endpoint: format!("{}/hook", server.uri()),
            secret: Some(WebhookSecret::parse(SECRET).unwrap()),
            timeout: Duration::from_secs(5),
            format,
        },
        Arc::new(SystemClock),
    )
    .unwrap()
}

async fn receiver(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn each_format_is_posted_with_the_message_id_and_a_valid_signature() {
    for format in [WebhookFormat::Slack, WebhookFormat::Teams] {
        let server = receiver(ResponseTemplate::new(200).set_body_string("ok")).await;
        let delivery = workspace_deleted_named("dev-box");
        dispatcher(&server, format)
            .dispatch(&delivery)
            .await
            .unwrap_or_else(|err| panic!("{format}: {err}"));

        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1, "{format}");
        let request = &requests[0];
        let id = delivery.message_id.to_string();
        assert_eq!(request.url.path(), "/hook");
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(request.headers["x-message-id"], id.as_str());
        assert_eq!(request.headers["webhook-id"], id.as_str());
        let timestamp: i64 = request.headers["webhook-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((Utc::now().timestamp() - timestamp).abs() < 60, "{format}");
        let expected = WebhookSecret::parse(SECRET)
            .unwrap()
            .sign(&id, timestamp, &request.body);
        assert_eq!(
            request.headers["webhook-signature"],
            expected.as_str(),
            "{format}"
        );

        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body, body_json(format, &delivery), "{format}");
        match format {
            WebhookFormat::Slack => {
                assert_eq!(
                    body["blocks"][0]["text"]["text"],
                    "Workspace \"dev-box\" deleted"
                );
                assert_eq!(body["blocks"][2]["type"], "actions");
            }
            _ => {
                assert_eq!(body["type"], "message");
                let attachment = &body["attachments"][0];
                assert_eq!(
                    attachment["contentType"],
                    "application/vnd.microsoft.card.adaptive"
                );
                assert_eq!(attachment["content"]["type"], "AdaptiveCard");
                assert_eq!(
                    attachment["content"]["actions"][0]["type"],
                    "Action.OpenUrl"
                );
            }
        }
    }
}

#[tokio::test]
async fn each_format_has_the_same_status_handling() {
    for format in [WebhookFormat::Slack, WebhookFormat::Teams] {
        let delivery = workspace_deleted_named("dev-box");

        let server = receiver(ResponseTemplate::new(429).insert_header("retry-after", "120")).await;
        let before = Utc::now();
        let err: DeliveryError = dispatcher(&server, format)
            .dispatch(&delivery)
            .await
            .unwrap_err();
        assert!(err.retryable, "{format}: {err}");
        let retry_after = err.retry_after.expect("Retry-After honoured");
        assert!(
            retry_after >= before + chrono::Duration::seconds(119),
            "{format}"
        );

        let server = receiver(ResponseTemplate::new(503)).await;
        let err = dispatcher(&server, format)
            .dispatch(&delivery)
            .await
            .unwrap_err();
        assert!(err.retryable, "{format}: {err}");

        // Slack answers a body it refuses with 400 `invalid_blocks`: retrying cannot help.
        let server = receiver(ResponseTemplate::new(400).set_body_string("invalid_blocks")).await;
        let err = dispatcher(&server, format)
            .dispatch(&delivery)
            .await
            .unwrap_err();
        assert!(!err.retryable, "{format}: {err}");
    }
}
