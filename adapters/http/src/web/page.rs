//! Rendering a page: the Handlebars templates of `templates/`, compiled into the binary and
//! registered once, each filling the `layout` partial. Handlebars escapes every `{{value}}`,
//! so text from users and templates cannot become markup.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use handlebars::Handlebars;
use serde_json::{Value, json};

/// Every page template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("templates/layout.hbs")),
    ("sign_in", include_str!("templates/sign_in.hbs")),
    ("signed_in", include_str!("templates/signed_in.hbs")),
    ("inbox", include_str!("templates/inbox.hbs")),
    ("message", include_str!("templates/message.hbs")),
    ("deployment", include_str!("templates/deployment.hbs")),
    ("settings", include_str!("templates/settings.hbs")),
];

static REGISTRY: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(escape);
    for (name, text) in TEMPLATES {
        // The templates are part of the binary: the page tests render each one.
        if let Err(err) = registry.register_template_string(name, *text) {
            tracing::error!(template = name, error = %err, "web: a page template does not compile");
        }
    }
    registry
});

/// Escapes text for HTML content and quoted attribute values (the templates quote every
/// attribute). Handlebars' own escaper also encodes `=` and backticks, which would garble URLs.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page to render.
#[derive(Debug)]
pub(crate) struct Page;

impl Page {
    /// `template` rendered with `data`, answered with `status`.
    pub(crate) fn render(status: StatusCode, template: &str, data: &Value) -> Response {
        match REGISTRY.render(template, data) {
            Ok(html) => html_response(status, html),
            Err(err) => {
                tracing::error!(template, error = %err, "web: a page did not render");
                html_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!DOCTYPE html><title>Error</title><p>This page could not be shown.</p>"
                        .to_owned(),
                )
            }
        }
    }

    /// A page of one message: a title and a paragraph.
    pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
        Self::render(
            status,
            "message",
            &json!({ "title": title, "text": text, "signed_in": false }),
        )
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            ),
            (
                header::HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static(
                    "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
                ),
            ),
        ],
        html,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(REGISTRY.has_template(name), "{name}");
        }
    }

    #[test]
    fn values_are_escaped() {
        let html = REGISTRY
            .render(
                "message",
                &json!({ "title": "<b>x</b>", "text": "<script>", "signed_in": false }),
            )
            .unwrap();
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }
}
