//! The body shapes a webhook can take (DESIGN §10.4): Herald's own JSON (§6), a Slack
//! incoming-webhook message, or a Microsoft Teams message carrying an Adaptive Card.
//!
//! Every format is built from the same rendered Markdown. The renderer has already escaped each
//! substituted value for Markdown, so parsing that Markdown again tells the template's own
//! formatting (converted deliberately into the receiver's markup) apart from the values, which
//! arrive as literal text and are escaped for the receiver here. Signing and status handling do
//! not depend on the format: the dispatcher signs whatever bytes the format produced.

use std::fmt;
use std::str::FromStr;

use herald_application::ports::Delivery;
use pulldown_cmark::{Options, Parser};

use crate::WebhookBody;

pub mod slack;
pub mod teams;

/// What the webhook dispatcher `POST`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    /// Herald's JSON body (DESIGN §6), the reference's fields plus the Markdown.
    #[default]
    Herald,
    /// A Slack incoming-webhook message: `text` plus Block Kit `blocks`.
    Slack,
    /// A Microsoft Teams message carrying an Adaptive Card.
    Teams,
}

/// A format name that is not `herald`, `slack` or `teams`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", WebhookFormat::KEY, self.reason())]
pub struct UnknownFormat(String);

impl UnknownFormat {
    /// Why the format was refused, without the configuration key.
    pub fn reason(&self) -> String {
        format!(
            "unknown format {:?}; expected herald, slack or teams",
            self.0
        )
    }
}

impl WebhookFormat {
    /// The configuration key a bad format is reported under.
    pub const KEY: &'static str = "webhook.format";

    pub const fn name(self) -> &'static str {
        match self {
            Self::Herald => "herald",
            Self::Slack => "slack",
            Self::Teams => "teams",
        }
    }

    /// The request body for one delivery, as JSON bytes.
    ///
    /// # Errors
    /// When the body cannot be encoded (it is built from strings and numbers only, so this
    /// does not happen in practice).
    pub fn body(self, delivery: &Delivery) -> serde_json::Result<Vec<u8>> {
        match self {
            Self::Herald => serde_json::to_vec(&WebhookBody::of(delivery)),
            Self::Slack => serde_json::to_vec(&slack::body(delivery)),
            Self::Teams => serde_json::to_vec(&teams::body(delivery)),
        }
    }
}

impl FromStr for WebhookFormat {
    type Err = UnknownFormat;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "herald" => Ok(Self::Herald),
            "slack" => Ok(Self::Slack),
            "teams" => Ok(Self::Teams),
            _ => Err(UnknownFormat(text.to_owned())),
        }
    }
}

impl fmt::Display for WebhookFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The same Markdown dialect the renderer writes: CommonMark, nothing more.
fn parser(markdown: &str) -> Parser<'_> {
    Parser::new_ext(markdown, Options::empty())
}

/// Whether a link may be kept as a link: `http`, `https` or `mailto`. A receiver resolves
/// nothing relative to Herald, and other schemes (`javascript:`) must not become clickable.
fn is_linkable(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

/// `text` cut to at most `max` characters (never inside one), ending in `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) => {
            let keep = max.saturating_sub(1);
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            format!("{}…", &text[..end])
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn formats_parse_by_name_and_unknown_ones_are_refused() {
        assert_eq!("herald".parse(), Ok(WebhookFormat::Herald));
        assert_eq!(" Slack ".parse(), Ok(WebhookFormat::Slack));
        assert_eq!("teams".parse(), Ok(WebhookFormat::Teams));
        assert_eq!(WebhookFormat::default(), WebhookFormat::Herald);
        let err = "discord".parse::<WebhookFormat>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "webhook.format: unknown format \"discord\"; expected herald, slack or teams"
        );
        assert!("".parse::<WebhookFormat>().is_err());
    }

    #[test]
    fn truncation_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate("short", 5), "short");
        assert_eq!(truncate("toolong", 5), "tool…");
        assert_eq!(truncate("ééééééé", 4), "ééé…");
        assert_eq!(truncate("ééééééé", 4).chars().count(), 4);
        assert_eq!(truncate("🦀🦀🦀", 2), "🦀…");
    }

    #[test]
    fn only_web_and_mail_links_are_linkable() {
        assert!(is_linkable("https://example.com"));
        assert!(is_linkable("HTTP://example.com"));
        assert!(is_linkable("mailto:a@example.com"));
        for refused in ["javascript:alert(1)", "/relative", "data:text/html,x", ""] {
            assert!(!is_linkable(refused), "{refused}");
        }
    }
}
