//! Rendering: Handlebars templates → Markdown → plain text and HTML.
//! (Placeholder signatures; the full implementation replaces this file.)

use chrono::{DateTime, Utc};
use herald_domain::{Action, Payload, Template};

/// A message's title and body, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RenderedMessage {
    pub title_markdown: String,
    pub body_markdown: String,
    /// Plain text of the title (email subject, webhook `title`, inbox title).
    pub title: String,
    /// Plain text of the body (webhook `body`, inbox content, email text part).
    pub body: String,
    /// HTML of the body with raw HTML disabled (email HTML part).
    pub body_html: String,
}

/// A template that could not be rendered: a permanent failure of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?} failed to render: {reason}")]
pub struct RenderError {
    pub template: String,
    pub reason: String,
}

/// Renders templates for one deployment (its app name and access URL).
#[derive(Debug, Clone)]
pub struct Renderer {
    app_name: String,
    access_url: String,
}

impl Renderer {
    pub fn new(app_name: &str, access_url: &str) -> Self {
        Self {
            app_name: app_name.to_owned(),
            access_url: access_url.trim_end_matches('/').to_owned(),
        }
    }

    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    pub fn access_url(&self) -> &str {
        &self.access_url
    }

    /// # Errors
    /// [`RenderError`] when a template does not parse or render.
    pub fn render_actions(
        &self,
        template: &Template,
        _payload: &Payload,
        _now: DateTime<Utc>,
    ) -> Result<Vec<Action>, RenderError> {
        Ok(template
            .actions
            .iter()
            .map(|a| Action {
                label: a.label.clone(),
                url: format!("{}{}", self.access_url, a.url),
            })
            .collect())
    }

    /// # Errors
    /// [`RenderError`] when a template does not parse or render.
    pub fn render_message(
        &self,
        template: &Template,
        _payload: &Payload,
        _now: DateTime<Utc>,
    ) -> Result<RenderedMessage, RenderError> {
        Ok(RenderedMessage {
            title_markdown: template.title.clone(),
            body_markdown: template.body.clone(),
            title: template.title.clone(),
            body: template.body.clone(),
            body_html: template.body.clone(),
        })
    }
}
