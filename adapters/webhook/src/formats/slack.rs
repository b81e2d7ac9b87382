//! Slack incoming-webhook bodies: `text` (the notification fallback: title and plain body) and
//! Block Kit `blocks`: a `header` with the title, a `section` with the body as Slack mrkdwn,
//! and an `actions` block with one link `button` per action.
//!
//! Slack treats `&`, `<` and `>` as control characters in mrkdwn (`<url|label>` links,
//! `<@U123>` mentions, `<!channel>` broadcasts), so every literal text is written with them as
//! `&amp;`, `&lt;` and `&gt;`: a label can never become a link, a mention or a broadcast. Only
//! the template's own Markdown becomes mrkdwn: `**bold**` → `*bold*`, `_italics_`, links →
//! `<url|label>`, lists, code. mrkdwn has no escape for `*`, `_`, `~` or `` ` ``, so a label can
//! still show emphasis; that changes how a word looks, never where a click goes or who is
//! notified.
//!
//! Slack refuses a message whose blocks break its limits, so the header, the section and each
//! button's text are cut (on a character boundary, never inside an entity or a link) to fit.
//! The `plain_text` of the header and the buttons is not parsed for links or mentions, but it
//! carries the same entities: one rule for every text Slack receives.

use herald_application::ports::Delivery;
use pulldown_cmark::{Event, Tag, TagEnd};
use serde_json::{Value, json};

use super::{is_linkable, parser, truncate};

/// The longest `header` text Slack accepts.
pub const HEADER_MAX_CHARS: usize = 150;
/// The longest button text Slack accepts.
pub const BUTTON_TEXT_MAX_CHARS: usize = 75;
/// The longest button URL Slack accepts; a longer one drops its button.
pub const BUTTON_URL_MAX_CHARS: usize = 3000;
/// The most elements an `actions` block holds.
pub const MAX_BUTTONS: usize = 25;
/// The longest `section` text Slack accepts.
pub const SECTION_MAX_CHARS: usize = 3000;
/// The longest top-level `text` Slack keeps.
pub const TEXT_MAX_CHARS: usize = 40_000;

/// The Slack message for one delivery.
pub fn body(delivery: &Delivery) -> Value {
    let rendered = &delivery.rendered;
    let title = rendered.title.trim();
    let mut blocks = Vec::new();
    if !title.is_empty() {
        blocks.push(json!({
            "type": "header",
            "text": plain_text(title, HEADER_MAX_CHARS),
        }));
    }
    let section = truncate_mrkdwn(
        &markdown_to_mrkdwn(&rendered.body_markdown),
        SECTION_MAX_CHARS,
    );
    if !section.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": section},
        }));
    }
    let buttons: Vec<Value> = delivery
        .payload
        .actions
        .iter()
        .filter(|action| {
            !action.label.trim().is_empty()
                && is_linkable(&action.url)
                && action.url.chars().count() <= BUTTON_URL_MAX_CHARS
        })
        .take(MAX_BUTTONS)
        .map(|action| {
            json!({
                "type": "button",
                "text": plain_text(action.label.trim(), BUTTON_TEXT_MAX_CHARS),
                "url": action.url,
            })
        })
        .collect();
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    let fallback = [title, rendered.body.trim()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    json!({
        "text": truncate_mrkdwn(&escape(&fallback), TEXT_MAX_CHARS),
        "blocks": blocks,
    })
}

/// A `plain_text` object of at most `max` characters.
fn plain_text(text: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": truncate_mrkdwn(&escape(text), max), "emoji": true})
}

/// Literal text for mrkdwn: `&`, `<` and `>` as entities.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A link target inside `<…|…>`: the control characters as entities, `|` and spaces
/// percent-encoded so the URL cannot end early.
fn escape_url(url: &str) -> String {
    escape(url.trim()).replace('|', "%7C").replace(' ', "%20")
}

/// mrkdwn `text` cut to at most `max` characters, ending in `…`, and never inside an entity
/// (`&amp;`) or a `<…>` link: escaped text holds `&` and `<` only where those begin.
fn truncate_mrkdwn(text: &str, max: usize) -> String {
    let cut = truncate(text, max);
    if cut == text {
        return cut;
    }
    let mut kept = cut.trim_end_matches('…');
    if let Some(open) = kept.rfind('<')
        && !kept[open..].contains('>')
    {
        kept = &kept[..open];
    }
    if let Some(amp) = kept.rfind('&')
        && !kept[amp..].contains(';')
    {
        kept = &kept[..amp];
    }
    format!("{kept}…")
}

/// Slack mrkdwn for Herald's Markdown: emphasis as `*bold*` and `_italics_`, links as
/// `<url|label>` (only `http`, `https` and `mailto`; other links keep their label only),
/// list items as `•` or `1.` lines indented by nesting, code as `` `code` `` and ```` ``` ````
/// blocks, block quotes as `>` lines, raw HTML as text. Every literal text is escaped.
pub fn markdown_to_mrkdwn(markdown: &str) -> String {
    let mut writer = MrkdwnWriter::default();
    for event in parser(markdown) {
        writer.event(event);
    }
    writer.out.trim().to_owned()
}

#[derive(Default)]
struct MrkdwnWriter {
    out: String,
    /// Open lists, innermost last: the next number of an ordered list, `None` for bullets.
    lists: Vec<Option<u64>>,
    /// Open links: where their label starts and their target, when it may be linked.
    links: Vec<(usize, Option<String>)>,
    /// An item marker was just written: the item's first block goes on the same line.
    after_marker: bool,
    /// Inside a block quote: each line starts with `> `.
    quoted: usize,
}

impl MrkdwnWriter {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text)
            | Event::Html(text)
            | Event::InlineHtml(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => self.write(&escape(&text)),
            Event::Code(code) => self.write(&format!("`{}`", escape(&code))),
            Event::FootnoteReference(name) => self.write(&format!("[{}]", escape(&name))),
            Event::SoftBreak | Event::HardBreak => self.line_break(),
            Event::Rule => {
                self.start_block();
                self.write("---");
            }
            Event::TaskListMarker(done) => self.write(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::List(first) => {
                if self.lists.is_empty() {
                    self.start_block();
                }
                self.lists.push(first);
            }
            Tag::Item => {
                if !self.out.is_empty() && !self.out.ends_with('\n') {
                    self.line_break_without_indent();
                }
                self.out
                    .push_str(&"    ".repeat(self.lists.len().saturating_sub(1)));
                match self.lists.last_mut() {
                    Some(Some(number)) => {
                        self.out.push_str(&format!("{number}. "));
                        *number += 1;
                    }
                    _ => self.out.push_str("• "),
                }
                self.after_marker = true;
            }
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                let target = is_linkable(&dest_url).then(|| dest_url.into_string());
                self.links.push((self.out.len(), target));
            }
            Tag::Strong => self.write("*"),
            Tag::Emphasis => self.write("_"),
            Tag::Strikethrough => self.write("~"),
            Tag::Heading { .. } => {
                self.start_block();
                self.write("*");
            }
            Tag::CodeBlock(_) => {
                self.start_block();
                self.write("```\n");
            }
            Tag::BlockQuote(_) => {
                self.start_block();
                self.quoted += 1;
                if !self.out.ends_with("> ") {
                    self.out.push_str("> ");
                }
                // The quote's first block goes right after its `> `.
                self.after_marker = true;
            }
            Tag::Superscript | Tag::Subscript | Tag::TableCell => {}
            Tag::Paragraph
            | Tag::HtmlBlock
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::Table(_)
            | Tag::TableHead
            | Tag::TableRow
            | Tag::MetadataBlock(_) => self.start_block(),
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::List(_) => {
                self.lists.pop();
            }
            TagEnd::Link | TagEnd::Image => {
                if let Some((start, Some(url))) = self.links.pop() {
                    let label = self.out.split_off(start);
                    let url = escape_url(&url);
                    if label.is_empty() || label == url {
                        self.out.push_str(&format!("<{url}>"));
                    } else {
                        self.out.push_str(&format!("<{url}|{label}>"));
                    }
                }
            }
            TagEnd::Strong => self.write("*"),
            TagEnd::Emphasis => self.write("_"),
            TagEnd::Strikethrough => self.write("~"),
            TagEnd::Heading(_) => self.write("*"),
            TagEnd::CodeBlock => {
                let kept = self.out.trim_end_matches('\n').len();
                self.out.truncate(kept);
                self.write("\n```");
            }
            TagEnd::HtmlBlock => {
                let kept = self.out.trim_end_matches('\n').len();
                self.out.truncate(kept);
            }
            TagEnd::BlockQuote(_) => self.quoted = self.quoted.saturating_sub(1),
            _ => {}
        }
    }

    fn quote_prefix(&self) -> &'static str {
        if self.quoted > 0 { "> " } else { "" }
    }

    /// Separates a new block from what came before: a blank line, or inside a list a new line
    /// indented to the item's content (unless it is the item's first block).
    fn start_block(&mut self) {
        if std::mem::take(&mut self.after_marker) || self.out.is_empty() {
            return;
        }
        if self.lists.is_empty() {
            let newlines = self.out.len() - self.out.trim_end_matches('\n').len();
            for _ in newlines..2 {
                self.out.push('\n');
            }
            self.out.push_str(self.quote_prefix());
        } else {
            self.line_break();
        }
    }

    fn line_break_without_indent(&mut self) {
        self.out.push('\n');
        self.out.push_str(self.quote_prefix());
    }

    fn line_break(&mut self) {
        self.line_break_without_indent();
        self.out.push_str(&"    ".repeat(self.lists.len()));
    }

    fn write(&mut self, text: &str) {
        self.after_marker = false;
        self.out.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emphasis_links_lists_and_code_become_mrkdwn() {
        assert_eq!(
            markdown_to_mrkdwn("Your workspace **dev\\-box** is _idle_ and `stopped`."),
            "Your workspace *dev-box* is _idle_ and `stopped`."
        );
        assert_eq!(
            markdown_to_mrkdwn("See [the docs](https://docs.example.com/a?b=1&c=2)."),
            "See <https://docs.example.com/a?b=1&amp;c=2|the docs>."
        );
        assert_eq!(
            markdown_to_mrkdwn("Intro:\n\n- one\n  - nested\n- two\n\n1. first\n2. second"),
            "Intro:\n\n• one\n    • nested\n• two\n\n1. first\n2. second"
        );
        assert_eq!(
            markdown_to_mrkdwn("```\nlet x = 1 < 2;\n```"),
            "```\nlet x = 1 &lt; 2;\n```"
        );
    }

    #[test]
    fn headings_and_quotes_become_bold_lines_and_quoted_lines() {
        assert_eq!(
            markdown_to_mrkdwn("# Title\n\n> quoted\n> more\n\nafter <https://a.example>"),
            "*Title*\n\n> quoted\n> more\n\nafter <https://a.example>"
        );
    }

    #[test]
    fn links_to_other_schemes_keep_only_their_label() {
        assert_eq!(
            markdown_to_mrkdwn("[click](javascript:alert(1)) and [rel](/x)"),
            "click and rel"
        );
    }

    #[test]
    fn literal_text_cannot_open_a_link_mention_or_broadcast() {
        let markdown = "Hi \\<\\!channel\\> \\<\\@U123\\> \\<http\\://evil\\|x\\> & co";
        assert_eq!(
            markdown_to_mrkdwn(markdown),
            "Hi &lt;!channel&gt; &lt;@U123&gt; &lt;http://evil|x&gt; &amp; co"
        );
    }

    #[test]
    fn cutting_never_splits_an_entity_or_a_link() {
        assert_eq!(truncate_mrkdwn("abc &amp; def", 7), "abc …");
        assert_eq!(
            truncate_mrkdwn("abc <https://x.example|x> def", 12),
            "abc …"
        );
        assert_eq!(truncate_mrkdwn("abc &amp; def", 20), "abc &amp; def");
        assert_eq!(truncate_mrkdwn("abc &amp; def", 12), "abc &amp; d…");
    }
}
