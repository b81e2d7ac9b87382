//! Rendering: escaping of substituted values, Markdown → text and HTML, action URLs, errors,
//! and golden files of every catalogue template.
//!
//! Golden files live in `tests/golden/<slug>.md`, each template's digest form in
//! `tests/golden/digest/<slug>.md`. After an intended change, regenerate them with
//! `HERALD_BLESS=1 cargo test -p herald-application --test rendering` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use herald_application::rendering::{
    RenderError, RenderedMessage, Renderer, markdown_to_html, markdown_to_text,
};
use herald_domain::{
    Action, ActionTemplate, Audience, Labels, Payload, Template, TemplateId, TemplateKind, UserId,
};
use herald_domain::{catalogue, digest};
use serde_json::{Value, json};
use uuid::Uuid;

const ACCESS_URL: &str = "https://herald.example.com";

fn renderer() -> Renderer {
    Renderer::new("Herald", ACCESS_URL)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
}

fn template(title: &str, body: &str, actions: &[(&str, &str)]) -> Template {
    Template {
        id: TemplateId::from_uuid(Uuid::from_u128(0x7e57)),
        name: "Rendering Test".to_owned(),
        group: catalogue::CUSTOM_EVENTS.to_owned(),
        kind: TemplateKind::Custom,
        title: title.to_owned(),
        body: body.to_owned(),
        actions: actions
            .iter()
            .map(|(label, url)| ActionTemplate {
                label: (*label).to_owned(),
                url: (*url).to_owned(),
            })
            .collect(),
        enabled_by_default: true,
        method_override: None,
        audience: Audience::Caller,
        inbox_allowed: true,
        deduplicate: false,
        digest_window: None,
    }
}

fn payload(template: &Template, labels: &[(&str, &str)], data: Option<Value>) -> Payload {
    Payload {
        version: Payload::VERSION.to_owned(),
        notification_name: template.name.clone(),
        notification_template_id: template.id,
        user_id: UserId::from_uuid(Uuid::from_u128(0xada)),
        user_email: "ada@example.com".to_owned(),
        user_name: "Ada Lovelace".to_owned(),
        user_username: "ada".to_owned(),
        actions: vec![],
        labels: labels
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
        data,
        targets: vec![],
    }
}

fn render(title: &str, body: &str, labels: &[(&str, &str)]) -> RenderedMessage {
    let template = template(title, body, &[]);
    renderer()
        .render_message(&template, &payload(&template, labels, None), now())
        .unwrap()
}

fn render_actions(actions: &[(&str, &str)], labels: &[(&str, &str)]) -> Vec<Action> {
    let template = template("t", "b", actions);
    renderer()
        .render_actions(&template, &payload(&template, labels, None), now())
        .unwrap()
}

#[test]
fn text_without_expressions_renders_as_written_beside_actions_that_have_them() {
    let written = "a \\ b } { %20 ~ <x> & *y* #z {";
    let message = render(written, written, &[("name", "dev")]);
    assert_eq!(message.title_markdown, written);
    assert_eq!(message.body_markdown, written);

    let only_written = render_actions(&[(written, "/w?q=a b&c={")], &[]);
    assert_eq!(only_written[0].label, written);
    assert_eq!(only_written[0].url, format!("{ACCESS_URL}/w?q=a b&c={{"));

    let mixed = render_actions(
        &[
            (written, "/w?q=a b"),
            ("{{labels.name}} {", "/@{{labels.name}}"),
        ],
        &[("name", "a b")],
    );
    assert_eq!(mixed[0].label, written);
    assert_eq!(mixed[0].url, format!("{ACCESS_URL}/w?q=a b"));
    assert_eq!(mixed[1].label, "a b {");
    assert_eq!(mixed[1].url, format!("{ACCESS_URL}/@a%20b"));
}

// ---------------------------------------------------------------------------------------------
// Escaping of substituted values

/// Values that would be Markdown, links or HTML if they were not escaped.
const INJECTIONS: &[&str] = &[
    "**x**",
    "[a](http://evil)",
    "<script>alert(1)</script>",
    "_x_",
    "`x`",
    "# h",
    "first line\n\n# second line",
    "- item",
    "1. one",
    "    indented like code",
    "> quoted",
    "![img](http://evil/i.png)",
    "<http://evil>",
    "&lt;b&gt; &amp;",
    "x  \ny",
    "~~gone~~",
    "---",
];

#[test]
fn labels_cannot_inject_markdown_links_or_html() {
    for injected in INJECTIONS {
        let message = render(
            "Title {{labels.x}}",
            "Mid-line: {{labels.x}}\n\n{{labels.x}}",
            &[("x", injected)],
        );
        let words = |text: &str| text.split_ascii_whitespace().collect::<Vec<_>>().join(" ");

        assert_eq!(
            words(&message.title),
            words(&format!("Title {injected}")),
            "{injected:?}"
        );
        assert_eq!(
            words(&message.body),
            words(&format!("Mid-line: {injected} {injected}")),
            "{injected:?}"
        );
        assert_eq!(message.body.matches("\n\n").count(), 1, "{injected:?}");
        assert_eq!(message.body.matches('\n').count(), 2, "{injected:?}");
        let tags_left = message.body_html().replace("<p>", "").replace("</p>", "");
        assert!(
            !tags_left.contains('<'),
            "{injected:?} made HTML: {}",
            message.body_html()
        );
        assert!(
            !message.title_markdown.contains('\n') && !message.body_markdown.contains("\n\n\n"),
            "{injected:?} added lines: {:?}",
            message.body_markdown
        );
    }
}

#[test]
fn injected_values_come_out_literally_in_html() {
    let message = render(
        "t",
        "{{labels.a}} {{labels.b}} {{labels.c}}",
        &[
            ("a", "**x**"),
            ("b", "[a](http://evil)"),
            ("c", "<script>alert(1)</script>"),
        ],
    );
    assert_eq!(
        message.body_html(),
        "<p>**x** [a](http://evil) &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    );
    assert!(!message.body_html().contains("<strong>"));
    assert!(!message.body_html().contains("<a href=\"http://evil\""));
    assert!(!message.body_html().contains("<script>"));
}

#[test]
fn markup_written_in_the_template_still_works() {
    let message = render(
        "Workspace \"{{labels.name}}\"",
        "Your workspace **{{labels.name}}** is _ready_. [Open it](/@{{user_username}})",
        &[("name", "my-ws_1")],
    );
    assert_eq!(message.title_markdown, "Workspace \"my\\-ws\\_1\"");
    assert_eq!(message.title, "Workspace \"my-ws_1\"");
    assert_eq!(
        message.body_html(),
        "<p>Your workspace <strong>my-ws_1</strong> is <em>ready</em>. \
         <a href=\"/@ada\">Open it</a></p>\n"
    );
    assert_eq!(
        message.body,
        "Your workspace my-ws_1 is ready. Open it (/@ada)"
    );
}

#[test]
fn payload_fields_and_data_are_escaped_too() {
    let template = template(
        "t",
        "{{user_name}} {{data.note}} {{#each data.items}}{{this}} {{/each}}",
        &[],
    );
    let mut payload = payload(
        &template,
        &[],
        Some(json!({"note": "*a*", "items": ["<b>", "_c_"]})),
    );
    payload.user_name = "[Ada](http://evil)".to_owned();
    let message = renderer()
        .render_message(&template, &payload, now())
        .unwrap();
    assert_eq!(message.body, "[Ada](http://evil) *a* <b> _c_");
    assert_eq!(
        message.body_html(),
        "<p>[Ada](http://evil) *a* &lt;b&gt; _c_</p>\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Markdown → HTML and plain text

#[test]
fn raw_html_written_in_a_template_is_escaped_in_html() {
    let message = render(
        "t",
        "Some <b onclick=\"x()\">bold</b> words.\n\n<div>\n<script>alert(1)</script>\n</div>",
        &[],
    );
    assert!(
        !message.body_html().contains("<b"),
        "{}",
        message.body_html()
    );
    assert!(
        !message.body_html().contains("<div"),
        "{}",
        message.body_html()
    );
    assert!(
        !message.body_html().contains("<script"),
        "{}",
        message.body_html()
    );
    assert!(
        message
            .body_html()
            .contains("Some &lt;b onclick=\"x()\"&gt;bold&lt;/b&gt; words."),
        "{}",
        message.body_html()
    );
    assert!(
        message
            .body_html()
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
}

#[test]
fn links_keep_their_href_only_with_safe_schemes() {
    let html = markdown_to_html(
        "[a](javascript:alert(1)) [b](JavaScript:alert(1)) <javascript:alert(1)> \
         [c](data:text/html,x) ![d](javascript:x) [e](https://example.com/x) \
         [f](http://example.com) [g](mailto:ada@example.com) [h](/workspaces) [i](?tab=1) \
         <ada@example.com>",
    );
    assert!(
        !html.to_lowercase().contains("javascript:alert(1)\""),
        "{html}"
    );
    assert!(!html.to_lowercase().contains("href=\"javascript"), "{html}");
    assert!(!html.contains("href=\"data:"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    for kept in [
        "<a href=\"https://example.com/x\">e</a>",
        "<a href=\"http://example.com\">f</a>",
        "<a href=\"mailto:ada@example.com\">g</a>",
        "<a href=\"/workspaces\">h</a>",
        "<a href=\"?tab=1\">i</a>",
        "<a href=\"mailto:ada@example.com\">ada@example.com</a>",
    ] {
        assert!(html.contains(kept), "{kept} missing from {html}");
    }
    assert!(
        html.starts_with("<p>a b javascript:alert(1) c d "),
        "{html}"
    );
}

#[test]
fn plain_text_separates_paragraphs_and_lists_and_shows_link_targets() {
    let text = markdown_to_text(
        "# Heading\n\nHello *there*, **you**.\nSecond line.\n\n\
         - one\n- two\n  - two a\n    - two a i\n- three\n\n\
         1. first\n2. second\n\n\
         See [the docs](https://docs.example.com), <https://example.com> and `code`.",
    );
    assert_eq!(
        text,
        "Heading\n\n\
         Hello there, you.\nSecond line.\n\n\
         - one\n- two\n  - two a\n    - two a i\n- three\n\n\
         1. first\n2. second\n\n\
         See the docs (https://docs.example.com), https://example.com and code."
    );
}

#[test]
fn plain_text_of_escaped_markdown_is_the_literal_characters() {
    assert_eq!(
        markdown_to_text("\\*\\*x\\*\\* \\[a\\]\\(b\\) \\<i\\> \\# \\- \\\\"),
        "**x** [a](b) <i> # - \\"
    );
}

// ---------------------------------------------------------------------------------------------
// Missing labels, helpers and errors

#[test]
fn a_missing_label_renders_empty_and_is_logged() {
    let (message, warnings) = captured_warnings(|| {
        render(
            "Workspace \"{{labels.name}}\"",
            "Reason: {{labels.reason}}.",
            &[("name", "dev")],
        )
    });
    assert_eq!(message.title, "Workspace \"dev\"");
    assert_eq!(message.body, "Reason: .");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("template=Rendering Test"),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("label=reason"), "{warnings:?}");
}

#[test]
fn each_message_reports_its_own_missing_labels_whatever_the_renderer_rendered_before() {
    let renderer = renderer();
    let reason = template("t", "Reason: {{labels.reason}}.", &[]);
    let name = template(
        "t",
        "Name: {{labels.name}}{{#if labels.reason}}.{{/if}}",
        &[],
    );
    let messages: [(&Template, &[(&str, &str)]); 5] = [
        (&reason, &[]),
        (&reason, &[("reason", "r")]),
        (&name, &[]),
        (&reason, &[("name", "n")]),
        (&name, &[("name", "n")]),
    ];
    let ((), warnings) = captured_warnings(|| {
        for (template, labels) in messages {
            renderer
                .render_message(template, &payload(template, labels, None), now())
                .unwrap();
        }
    });
    let labels: Vec<_> = warnings
        .iter()
        .map(|w| w.split_once("label=").map(|(_, rest)| rest.to_owned()))
        .collect();
    assert_eq!(
        labels,
        ["reason", "name", "reason"].map(|l| Some(l.to_owned())),
        "{warnings:?}"
    );
}

#[test]
fn labels_tested_with_if_are_optional_and_not_logged() {
    let (message, warnings) = captured_warnings(|| {
        render(
            "t",
            "Deleted{{#if labels.initiator}} by {{labels.initiator}}{{/if}}.",
            &[],
        )
    });
    assert_eq!(message.body, "Deleted.");
    assert_eq!(warnings, Vec::<String>::new());
}

#[test]
fn a_missing_label_in_an_action_is_logged_and_encodes_as_nothing() {
    let (actions, warnings) = captured_warnings(|| {
        render_actions(&[("View", "/@{{user_username}}/{{labels.name}}")], &[])
    });
    assert_eq!(actions[0].url, format!("{ACCESS_URL}/@ada/"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("label=name"), "{warnings:?}");
}

#[test]
fn actions_prepared_for_an_event_render_each_recipient_as_they_would_alone() {
    let template = template(
        "t",
        "b",
        &[
            (
                "Hi {{user_name}} <{{user_email}}>",
                "/@{{user_username}}/{{labels.name}}",
            ),
            ("{{labels.missing}}", "/users/{{user_id}}?k={{data.k}}"),
        ],
    );
    let ada = payload(&template, &[("name", "ws/1")], Some(json!({"k": "v w"})));
    let bob = Payload {
        user_id: UserId::from_uuid(Uuid::from_u128(0xb0b)),
        user_email: "bob@example.com".to_owned(),
        user_name: "Bob".to_owned(),
        user_username: "bob".to_owned(),
        ..ada.clone()
    };
    let renderer = renderer();

    let (prepared, warnings) = captured_warnings(|| {
        let mut actions = renderer.event_actions(&template, &ada, now()).unwrap();
        [&ada, &bob, &ada].map(|payload| actions.render(payload).unwrap())
    });

    assert_eq!(
        prepared[0],
        renderer.render_actions(&template, &ada, now()).unwrap()
    );
    assert_eq!(
        prepared[1],
        renderer.render_actions(&template, &bob, now()).unwrap()
    );
    assert_eq!(prepared[1][0].label, "Hi Bob <bob@example.com>");
    assert_eq!(prepared[1][0].url, format!("{ACCESS_URL}/@bob/ws%2F1"));
    assert_eq!(
        prepared[2], prepared[0],
        "a recipient's fields do not linger"
    );
    assert_eq!(warnings.len(), 1, "warned once for the event: {warnings:?}");
}

#[test]
fn current_year_app_name_and_base_url_are_available_everywhere() {
    let template = template(
        "{{app_name}} {{current_year}}",
        "(c) {{current_year}} {{app_name}} at {{base_url}}\n\n\
         {{#each data.items}}{{this}} in {{app_name}} {{current_year}}; {{/each}}",
        &[(
            "Open {{app_name}}",
            "/?year={{current_year}}&app={{app_name}}",
        )],
    );
    let payload = payload(&template, &[], Some(json!({"items": ["a", "b"]})));
    let renderer = Renderer::new("Herald Dev", ACCESS_URL);
    let message = renderer.render_message(&template, &payload, now()).unwrap();
    assert_eq!(message.title, "Herald Dev 2026");
    assert_eq!(
        message.body,
        "(c) 2026 Herald Dev at https://herald.example.com\n\n\
         a in Herald Dev 2026; b in Herald Dev 2026;"
    );
    let actions = renderer.render_actions(&template, &payload, now()).unwrap();
    assert_eq!(
        actions,
        [Action {
            label: "Open Herald Dev".to_owned(),
            url: format!("{ACCESS_URL}/?year=2026&app=Herald%20Dev"),
        }]
    );
}

#[test]
fn bad_handlebars_syntax_is_a_render_error_naming_the_template() {
    // Title, body, actions, and the part the reason must name.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        ("{{#if labels.x}}unclosed", "b", &[], "title: "),
        ("t", "Hello {{user_name", &[], "body: "),
        ("t", "{{#each data}}x{{/if}}", &[], "body: "),
        ("t", "{{shout labels.x}}", &[], "body: "),
        ("t", "b", &[("{{/if}}", "/")], "action 1 label: "),
        (
            "t",
            "b",
            &[("ok", "/"), ("ok", "/{{labels.x")],
            "action 2 url: ",
        ),
    ];
    for (title, body, actions, part) in cases {
        let template = template(title, body, actions);
        let payload = payload(&template, &[], None);
        let renderer = renderer();
        let error = renderer
            .render_message(&template, &payload, now())
            .and_then(|_| renderer.render_actions(&template, &payload, now()))
            .unwrap_err();
        assert_eq!(error.template, "Rendering Test");
        assert!(
            error.reason.starts_with(part),
            "{title:?} {body:?}: {error}"
        );
        assert!(!error.reason.contains('\n'), "{error}");
    }
}

#[test]
fn a_render_error_says_which_template_failed_and_why() {
    let error = RenderError {
        template: "Workspace Deleted".to_owned(),
        reason: "body: invalid handlebars syntax".to_owned(),
    };
    assert_eq!(
        error.to_string(),
        "template \"Workspace Deleted\" failed to render: body: invalid handlebars syntax"
    );
}

// ---------------------------------------------------------------------------------------------
// Actions

#[test]
fn action_urls_percent_encode_every_substituted_value() {
    let actions = render_actions(
        &[
            ("Reset", "/reset?otp={{labels.otp}}&email={{user_email}}"),
            ("View", "/@{{user_username}}/{{labels.name}}"),
            ("Sneaky", "/@{{user_username}}/{{labels.sneaky}}"),
            (
                "Filter",
                "/workspaces?filter=owner%3Ame+template%3A{{labels.name}}",
            ),
        ],
        &[
            ("otp", "a+b=c&d"),
            ("name", "a/b?c d#e"),
            ("sneaky", "../x"),
        ],
    );
    let urls: Vec<_> = actions.iter().map(|action| action.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://herald.example.com/reset?otp=a%2Bb%3Dc%26d&email=ada%40example.com",
            "https://herald.example.com/@ada/a%2Fb%3Fc%20d%23e",
            "https://herald.example.com/@ada/..%2Fx",
            "https://herald.example.com/workspaces?filter=owner%3Ame+template%3Aa%2Fb%3Fc%20d%23e",
        ]
    );
}

#[test]
fn action_urls_keep_unreserved_characters_and_encode_unicode() {
    let actions = render_actions(&[("View", "/{{labels.name}}")], &[("name", "a-b.c_d~e é")]);
    assert_eq!(
        actions[0].url,
        "https://herald.example.com/a-b.c_d~e%20%C3%A9"
    );
}

#[test]
fn action_labels_are_plain_text_without_escaping() {
    let actions = render_actions(
        &[("Open {{labels.name}} in {{app_name}}", "/")],
        &[("name", "**x** & <y>")],
    );
    assert_eq!(actions[0].label, "Open **x** & <y> in Herald");
    assert_eq!(actions[0].url, "https://herald.example.com/");
}

#[test]
fn the_app_url_loses_its_trailing_slashes() {
    for app_url in [
        "https://herald.example.com",
        "https://herald.example.com/",
        "https://herald.example.com//",
    ] {
        let renderer = Renderer::new("Herald", app_url);
        assert_eq!(renderer.app_url(), "https://herald.example.com");
        assert_eq!(renderer.app_name(), "Herald");
        let template = template("t", "b", &[("Home", "/workspaces"), ("Rel", "templates")]);
        let actions = renderer
            .render_actions(&template, &payload(&template, &[], None), now())
            .unwrap();
        assert_eq!(actions[0].url, "https://herald.example.com/workspaces");
        assert_eq!(actions[1].url, "https://herald.example.com/templates");
    }
}

#[test]
fn a_renderer_is_shared_between_threads_and_clones() {
    let renderer = renderer();
    let template = template("Hi {{labels.n}}", "b", &[]);
    std::thread::scope(|scope| {
        for n in 0..4 {
            let renderer = renderer.clone();
            let template = &template;
            scope.spawn(move || {
                let n = n.to_string();
                let payload = payload(template, &[("n", &n)], None);
                let message = renderer.render_message(template, &payload, now()).unwrap();
                assert_eq!(message.title, format!("Hi {n}"));
            });
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Golden files of the catalogue

/// Sample labels and data for a catalogue template, covering every label and datum it uses.
fn sample(name: &str) -> (Vec<(&'static str, &'static str)>, Option<Value>) {
    let labels = match name {
        "Workspace Deleted" => vec![
            ("name", "dev-box"),
            ("reason", "it was no longer needed"),
            ("initiator", "grace"),
        ],
        "Workspace Autobuild Failed" => vec![
            ("name", "dev-box"),
            (
                "reason",
                "the image registry.example.com/dev:latest could not be pulled",
            ),
        ],
        "Workspace Marked as Dormant" => vec![
            ("name", "dev-box"),
            ("reason", "inactivity"),
            ("initiator", "the dormancy policy"),
            ("timeTilDormant", "30 days"),
        ],
        "Workspace Updated Automatically" => vec![
            ("name", "dev-box"),
            ("template_version_name", "v1.3.0"),
            (
                "template_version_message",
                "Add the Rust toolchain and bump Go to 1.23.",
            ),
        ],
        "Workspace Marked for Deletion" => vec![
            ("name", "dev-box"),
            ("reason", "inactivity"),
            ("timeTilDormant", "7 days"),
        ],
        "Workspace Manual Build Failed" => vec![
            ("name", "dev-box"),
            ("workspace_owner_username", "bob"),
            ("template_name", "docker"),
            ("template_version_name", "v1.2.0"),
            ("initiator", "carol"),
            ("workspace_build_number", "42"),
        ],
        "Workspace Created" => vec![
            ("workspace", "dev-box"),
            ("template", "docker"),
            ("version", "v1.2.0"),
        ],
        "Workspace Manually Updated" => vec![
            ("initiator", "grace"),
            ("workspace", "dev-box"),
            ("template", "docker"),
            ("version", "v1.3.0"),
            ("organization", "acme"),
        ],
        "Workspace Out Of Memory" => vec![("workspace", "dev-box"), ("threshold", "90%")],
        "Workspace Out Of Disk" => vec![("workspace", "dev-box")],
        "User account created" => vec![
            ("initiator", "grace"),
            ("created_account_name", "bob"),
            ("created_account_user_name", "Bob Smith"),
        ],
        "User account deleted" => vec![
            ("initiator", "grace"),
            ("deleted_account_name", "bob"),
            ("deleted_account_user_name", "Bob Smith"),
        ],
        "User account suspended" => vec![
            ("initiator", "grace"),
            ("suspended_account_name", "bob"),
            ("suspended_account_user_name", "Bob Smith"),
        ],
        "User account activated" => vec![
            ("initiator", "grace"),
            ("activated_account_name", "bob"),
            ("activated_account_user_name", "Bob Smith"),
        ],
        "Your account has been suspended" => {
            vec![("suspended_account_name", "ada"), ("initiator", "grace")]
        }
        "Your account has been activated" => {
            vec![("activated_account_name", "ada"), ("initiator", "grace")]
        }
        "One-Time Passcode" => vec![("one_time_passcode", "fad9020b-6562-4cdb-87f1-0486f1bea415")],
        "Template Deleted" => vec![("name", "docker"), ("initiator", "grace")],
        "Template Deprecated" => vec![
            ("template", "docker"),
            ("organization", "acme"),
            ("message", "Use the devcontainer template instead."),
        ],
        "Report: Workspace Builds Failed" => vec![],
        "Task Working" | "Task Idle" => {
            vec![("task", "write-release-notes"), ("workspace", "dev-box")]
        }
        "Test Notification" => vec![],
        "Custom Notification" => vec![
            ("custom_title", "Maintenance tonight"),
            (
                "custom_message",
                "Herald will be down from 22:00 to 23:00 UTC while the database is upgraded.",
            ),
        ],
        other => panic!("add sample labels for the catalogue template {other:?}"),
    };
    let data = match name {
        "Workspace Out Of Disk" => Some(json!({
            "volumes": [
                {"path": "/home/coder", "threshold": "90%"},
                {"path": "/var/lib/docker", "threshold": "95%"},
            ]
        })),
        "Report: Workspace Builds Failed" => Some(json!({
            "report_frequency": "week",
            "templates": [
                {
                    "name": "docker",
                    "display_name": "Docker",
                    "failed_builds": 3,
                    "total_builds": 10,
                    "versions": [
                        {
                            "template_version_name": "v1.2.0",
                            "failed_count": 2,
                            "failed_builds": [
                                {"build_number": 17, "workspace_owner_username": "ada", "workspace_name": "dev-box"},
                                {"build_number": 21, "workspace_owner_username": "bob", "workspace_name": "ml-lab"},
                            ]
                        },
                        {
                            "template_version_name": "v1.1.9",
                            "failed_count": 1,
                            "failed_builds": [
                                {"build_number": 5, "workspace_owner_username": "carol", "workspace_name": "legacy"},
                            ]
                        }
                    ]
                },
                {
                    "name": "k8s-pod",
                    "display_name": "Kubernetes Pod",
                    "failed_builds": 1,
                    "total_builds": 4,
                    "versions": [
                        {
                            "template_version_name": "v3.0.0",
                            "failed_count": 1,
                            "failed_builds": [
                                {"build_number": 8, "workspace_owner_username": "grace", "workspace_name": "k8s-dev"},
                            ]
                        }
                    ]
                }
            ]
        })),
        _ => None,
    };
    (labels, data)
}

/// The lowercase name with each run of other characters replaced by one `-`.
fn slug(name: &str) -> String {
    name.to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

struct Golden {
    template: Template,
    message: RenderedMessage,
    actions: Vec<Action>,
    /// The template's digest form rather than one event's message.
    digest: bool,
}

fn render_catalogue() -> Vec<Golden> {
    let renderer = renderer();
    catalogue::templates()
        .into_iter()
        .map(|template| {
            let (labels, data) = sample(&template.name);
            let payload = payload(&template, &labels, data);
            let message = renderer
                .render_message(&template, &payload, now())
                .unwrap_or_else(|error| panic!("{error}"));
            let actions = renderer
                .render_actions(&template, &payload, now())
                .unwrap_or_else(|error| panic!("{error}"));
            Golden {
                template,
                message,
                actions,
                digest: false,
            }
        })
        .collect()
}

/// Every catalogue template's digest form over two events: the sample's, and the sample with
/// each label changed, as a digest's `data.items` holds them. Security messages (One-Time
/// Passcode) are never gathered into a digest, so they have none.
fn render_digests() -> Vec<Golden> {
    let renderer = renderer();
    catalogue::templates()
        .into_iter()
        .filter(|template| !template.is_security())
        .map(|template| {
            let (labels, data) = sample(&template.name);
            let first: Labels = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let second: Labels = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), format!("{v}-2")))
                .collect();
            let items = vec![
                digest::item(&first, data.as_ref()),
                digest::item(&second, data.as_ref()),
            ];
            let mut payload = payload(&template, &[], None);
            payload.data = Some(digest::data(items));
            let message = renderer
                .render_digest(&template, &payload, now())
                .unwrap_or_else(|error| panic!("{error}"));
            Golden {
                template,
                message,
                actions: Vec::new(),
                digest: true,
            }
        })
        .collect()
}

fn golden_file(golden: &Golden) -> String {
    let message = &golden.message;
    let form = if golden.digest {
        "digest form"
    } else {
        "rendering"
    };
    let mut file = format!(
        "Golden {form} of the {:?} template.\n\
         Regenerate: HERALD_BLESS=1 cargo test -p herald-application --test rendering\n",
        golden.template.name
    );
    let actions: String = golden
        .actions
        .iter()
        .map(|action| format!("{} -> {}\n", action.label, action.url))
        .collect();
    for (section, content) in [
        ("title (markdown)", message.title_markdown.as_str()),
        ("title (text)", &message.title),
        ("body (markdown)", &message.body_markdown),
        ("body (text)", &message.body),
        ("body (html)", &message.body_html()),
        ("actions", actions.trim_end()),
    ] {
        write!(file, "\n===== {section} =====\n{content}\n").unwrap();
    }
    file
}

/// In the checkout under test: read at run time, since a target directory shared between
/// checkouts can run a binary another checkout built (whose `env!` path may be gone).
fn golden_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/golden")
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
                .map_or("<none>".to_owned(), |l| format!("{l:?}"))
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

/// Whether this run rewrites the golden files: `HERALD_BLESS=1`, and never in CI (`CI` set),
/// where a rewrite would make the comparison pass whatever the rendering became.
///
/// # Panics
/// When both are set.
fn blessing(bless: Option<&str>, ci: Option<&str>) -> bool {
    let bless = bless == Some("1");
    let in_ci = ci.is_some_and(|ci| !ci.is_empty());
    assert!(
        !(bless && in_ci),
        "HERALD_BLESS=1 is refused because CI is set: golden files are never rewritten in CI; \
         regenerate them outside CI (`cargo xtask golden`) and commit the reviewed diff"
    );
    bless
}

#[test]
fn blessing_is_asked_for_with_herald_bless_1_outside_ci() {
    assert!(blessing(Some("1"), None));
    assert!(blessing(Some("1"), Some("")));
    assert!(!blessing(None, None));
    assert!(!blessing(Some("0"), None));
    assert!(!blessing(None, Some("true")));
}

#[test]
#[should_panic(expected = "HERALD_BLESS=1 is refused because CI is set")]
fn blessing_is_refused_in_ci() {
    blessing(Some("1"), Some("true"));
}

#[test]
fn every_catalogue_template_renders_as_its_golden_file() {
    check_golden_files(&golden_dir(), &render_catalogue());
}

#[test]
fn every_catalogue_template_has_a_digest_form_as_its_golden_file() {
    check_golden_files(&golden_dir().join("digest"), &render_digests());
}

/// Compares each golden file of `dir` with its rendering (or rewrites them all when blessing);
/// a file matching no rendering fails too. Directories are other golden sets.
fn check_golden_files(dir: &std::path::Path, renderings: &[Golden]) {
    let bless = blessing(
        std::env::var("HERALD_BLESS").ok().as_deref(),
        std::env::var("CI").ok().as_deref(),
    );
    let mut expected_files = BTreeSet::new();
    let mut failures = Vec::new();
    for golden in renderings {
        let file_name = format!("{}.md", slug(&golden.template.name));
        let path = dir.join(&file_name);
        let actual = golden_file(golden);
        if bless {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&path, &actual).unwrap();
        } else {
            match std::fs::read_to_string(&path) {
                Ok(expected) if expected == actual => {}
                Ok(expected) => failures.push(format!(
                    "{file_name} differs from the rendering:\n{}",
                    line_diff(&expected, &actual)
                )),
                Err(error) => failures.push(format!("{file_name}: {error}")),
            }
        }
        expected_files.insert(file_name);
    }
    let existing = std::fs::read_dir(dir).into_iter().flatten();
    for entry in existing {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !expected_files.contains(&name) {
            if bless {
                std::fs::remove_file(&path).unwrap();
            } else {
                failures.push(format!("{name} matches no catalogue template"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nIf the change is intended, run \
         `HERALD_BLESS=1 cargo test -p herald-application --test rendering` and review the diff.",
        failures.join("\n")
    );
}

#[test]
fn golden_samples_cover_every_label_the_catalogue_uses() {
    let (rendered, warnings) = captured_warnings(render_catalogue);
    assert_eq!(rendered.len(), catalogue::templates().len());
    assert_eq!(warnings, Vec::<String>::new());
}

#[test]
fn catalogue_renderings_are_complete_and_link_under_the_access_url() {
    for Golden {
        template,
        message,
        actions,
        ..
    } in render_catalogue()
    {
        let name = &template.name;
        for output in [
            &message.title_markdown,
            &message.title,
            &message.body_markdown,
            &message.body,
            &message.body_html(),
        ] {
            assert!(
                !output.contains("{{"),
                "{name}: unreplaced expression in {output:?}"
            );
            assert!(!output.trim().is_empty(), "{name}: empty output");
        }
        for text in [&message.title, &message.body] {
            assert!(
                !text.contains('\\'),
                "{name}: escape left in plain text {text:?}"
            );
        }
        assert!(!message.title.contains('\n'), "{name}: title spans lines");
        assert_eq!(actions.len(), template.actions.len(), "{name}");
        for action in &actions {
            assert!(
                !action.label.contains("{{") && !action.url.contains("{{"),
                "{name}: {action:?}"
            );
            assert!(
                action.url.starts_with(&format!("{ACCESS_URL}/")),
                "{name}: {} is not under the access URL",
                action.url
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Capturing warnings

/// Runs `f` with a subscriber recording WARN events as `field=value` lines.
fn captured_warnings<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let subscriber = Capture(Arc::clone(&events));
    let result = tracing::subscriber::with_default(subscriber, f);
    let events = events.lock().unwrap().clone();
    (result, events)
}

struct Capture(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Capture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() == tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0.trim_end().to_owned());
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        write!(self.0, "{}={value:?} ", field.name()).unwrap();
    }
}
