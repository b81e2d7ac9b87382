//! Microsoft Teams bodies: a `message` carrying one Adaptive Card (version 1.4) whose body is the
//! title (a bolder, medium `TextBlock`) and the body's blocks (one `TextBlock` each), and whose
//! actions are one `Action.OpenUrl` per action.
//!
//! A `TextBlock` reads a Markdown subset: `**bold**`, `_italics_`, `- ` and `1. ` lists and
//! `[label](url)` links. The template's own Markdown is written in that subset (headings become
//! bolder blocks, code blocks monospace ones, links other than `http`, `https` and `mailto`
//! keep their label only). Every literal text is backslash-escaped where the subset would read
//! it as markup (`\`, `*`, `_`, `` ` ``, `~`, `[`, `]`, `<`, `>`, `&`, and a leading `-`, `+`,
//! `#` or `1.`), so a label cannot add emphasis, a link or a list.

use herald_application::ports::Delivery;
use pulldown_cmark::{Event, Tag, TagEnd};
use serde_json::{Value, json};

use super::{is_linkable, parser};

/// The `contentType` of an Adaptive Card attachment.
pub const ADAPTIVE_CARD: &str = "application/vnd.microsoft.card.adaptive";

/// The Teams message for one delivery.
pub fn body(delivery: &Delivery) -> Value {
    let rendered = &delivery.rendered;
    let title = markdown_to_text_blocks(&rendered.title_markdown)
        .into_iter()
        .map(|block| block.text)
        .collect::<Vec<_>>()
        .join(" ");
    let mut card_body = vec![json!({
        "type": "TextBlock",
        "text": title,
        "weight": "bolder",
        "size": "medium",
        "wrap": true,
    })];
    card_body.extend(
        markdown_to_text_blocks(&rendered.body_markdown)
            .iter()
            .map(TextBlock::to_json),
    );
    let actions: Vec<Value> = delivery
        .payload
        .actions
        .iter()
        .filter(|action| is_linkable(&action.url))
        .map(|action| {
            json!({
                "type": "Action.OpenUrl",
                "title": action.label,
                "url": action.url,
            })
        })
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": ADAPTIVE_CARD,
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": card_body,
                "actions": actions,
            },
        }],
    })
}

/// How a block of the body is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockStyle {
    Plain,
    /// A Markdown heading: a bolder block.
    Heading,
    /// A code block: a monospace block.
    Code,
}

/// One `TextBlock` of the card: its text in the `TextBlock` Markdown subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextBlock {
    pub text: String,
    pub style: BlockStyle,
}

impl TextBlock {
    fn to_json(&self) -> Value {
        let mut block = json!({"type": "TextBlock", "text": self.text, "wrap": true});
        match self.style {
            BlockStyle::Plain => {}
            BlockStyle::Heading => block["weight"] = json!("bolder"),
            BlockStyle::Code => block["fontType"] = json!("monospace"),
        }
        block
    }
}

/// The `TextBlock`s of Herald's Markdown: one per top-level paragraph, heading, list or code
/// block. Every literal text is escaped.
pub fn markdown_to_text_blocks(markdown: &str) -> Vec<TextBlock> {
    let mut writer = CardWriter::default();
    for event in parser(markdown) {
        writer.event(event);
    }
    writer.flush();
    writer.blocks
}

/// Literal text for a `TextBlock`. `line_start` says whether the text begins a line, where a
/// leading `-`, `+`, `#` or `1.` would start a list or heading.
pub fn escape(text: &str, mut line_start: bool) -> String {
    let mut escaped = String::with_capacity(text.len() + text.len() / 8);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if line_start && !c.is_whitespace() {
            line_start = false;
            let digits = rest.len() - rest.trim_start_matches(|d: char| d.is_ascii_digit()).len();
            let after = rest[digits..].chars().next();
            if digits > 0 && matches!(after, Some('.' | ')')) {
                escaped.push_str(&rest[..digits]);
                escaped.push('\\');
                rest = &rest[digits..];
                continue;
            }
            if matches!(c, '-' | '+' | '#') {
                escaped.push('\\');
            }
        }
        if matches!(
            c,
            '\\' | '*' | '_' | '`' | '~' | '[' | ']' | '<' | '>' | '&'
        ) {
            escaped.push('\\');
        }
        escaped.push(c);
        if c == '\n' {
            line_start = true;
        }
        rest = &rest[c.len_utf8()..];
    }
    escaped
}

/// A link target inside `(…)`: characters that would end it or break it percent-encoded.
fn escape_url(url: &str) -> String {
    url.trim()
        .replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
        .replace('<', "%3C")
        .replace('>', "%3E")
}

#[derive(Default)]
struct CardWriter {
    blocks: Vec<TextBlock>,
    current: String,
    style: Option<BlockStyle>,
    /// Literal text not yet written: consecutive text events are escaped together, so a
    /// leading `1.` split over two events is still seen.
    pending: String,
    /// Open lists, innermost last: the next number (`None` for bullets) and the width of the
    /// item markers, which nested content is indented by.
    lists: Vec<(Option<u64>, usize)>,
    /// Open links: where their label starts and their target, when it may be linked.
    links: Vec<(usize, Option<String>)>,
    /// The next text begins a line (after a line break or an item marker).
    line_start: bool,
    /// An item marker was just written: the item's first block goes on the same line.
    after_marker: bool,
}

impl CardWriter {
    fn event(&mut self, event: Event<'_>) {
        if let Event::Text(text)
        | Event::Code(text)
        | Event::Html(text)
        | Event::InlineHtml(text)
        | Event::InlineMath(text)
        | Event::DisplayMath(text) = &event
        {
            self.pending.push_str(text);
            return;
        }
        self.write_pending();
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::FootnoteReference(name) => self.write(&escape(&format!("[{name}]"), false)),
            Event::SoftBreak => self.line_break("\n"),
            Event::HardBreak => {
                let separator = if self.lists.is_empty() { "\n\n" } else { "\n" };
                self.line_break(separator);
            }
            Event::TaskListMarker(done) => self.write(if done { "\\[x\\] " } else { "\\[ \\] " }),
            Event::Rule => self.flush(),
            Event::Text(_)
            | Event::Code(_)
            | Event::Html(_)
            | Event::InlineHtml(_)
            | Event::InlineMath(_)
            | Event::DisplayMath(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::List(first) => {
                if self.lists.is_empty() {
                    self.flush();
                } else if !self.after_marker {
                    self.current.push('\n');
                }
                let width = first.map_or(2, |number| number.to_string().len() + 2);
                self.lists.push((first, width));
                self.after_marker = false;
            }
            Tag::Item => {
                if !self.current.is_empty() && !self.current.ends_with('\n') {
                    self.current.push('\n');
                }
                self.current.push_str(&" ".repeat(self.indent(1)));
                let marker = match self.lists.last_mut() {
                    Some((Some(number), _)) => {
                        let marker = format!("{number}. ");
                        *number += 1;
                        marker
                    }
                    _ => "- ".to_owned(),
                };
                self.current.push_str(&marker);
                self.after_marker = true;
                self.line_start = true;
            }
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                let target = is_linkable(&dest_url).then(|| dest_url.into_string());
                self.links.push((self.current.len(), target));
            }
            Tag::Strong => self.write("**"),
            Tag::Emphasis => self.write("_"),
            Tag::Heading { .. } => self.start_block(BlockStyle::Heading),
            Tag::CodeBlock(_) => self.start_block(BlockStyle::Code),
            Tag::Paragraph | Tag::HtmlBlock => self.start_block(BlockStyle::Plain),
            Tag::BlockQuote(_)
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::Table(_)
            | Tag::TableHead
            | Tag::TableRow
            | Tag::TableCell
            | Tag::MetadataBlock(_) => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::List(_) => {
                self.lists.pop();
                if self.lists.is_empty() {
                    self.flush();
                }
            }
            TagEnd::Link | TagEnd::Image => {
                if let Some((start, Some(url))) = self.links.pop() {
                    let label = self.current.split_off(start);
                    let label = if label.is_empty() {
                        escape(&url, false)
                    } else {
                        label
                    };
                    self.write(&format!("[{label}]({})", escape_url(&url)));
                }
            }
            TagEnd::Strong => self.write("**"),
            TagEnd::Emphasis => self.write("_"),
            TagEnd::CodeBlock | TagEnd::HtmlBlock => {
                let kept = self.current.trim_end_matches('\n').len();
                self.current.truncate(kept);
                if self.lists.is_empty() {
                    self.flush();
                }
            }
            TagEnd::Heading(_) | TagEnd::Paragraph if self.lists.is_empty() => self.flush(),
            _ => {}
        }
    }

    /// Spaces before a line at `level` lists up from the innermost.
    fn indent(&self, skip_innermost: usize) -> usize {
        let open = self.lists.len().saturating_sub(skip_innermost);
        self.lists[..open].iter().map(|(_, width)| width).sum()
    }

    /// A paragraph, heading or code block begins: its own `TextBlock` at the top level, a new
    /// line of the item inside a list.
    fn start_block(&mut self, style: BlockStyle) {
        if self.lists.is_empty() {
            self.flush();
            self.style = Some(style);
            self.line_start = true;
        } else if !std::mem::take(&mut self.after_marker) {
            self.line_break("\n");
        }
    }

    fn line_break(&mut self, separator: &str) {
        self.current.push_str(separator);
        self.current.push_str(&" ".repeat(self.indent(0)));
        self.line_start = true;
    }

    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.pending);
        let text = if self.style == Some(BlockStyle::Code) {
            text.trim_end_matches('\n').to_owned() + "\n"
        } else {
            text
        };
        let escaped = escape(&text, self.line_start);
        self.write(&escaped);
    }

    fn write(&mut self, text: &str) {
        self.after_marker = false;
        if !text.is_empty() {
            self.line_start = text.ends_with('\n');
        }
        self.current.push_str(text);
    }

    /// Ends the current `TextBlock`, if it holds anything.
    fn flush(&mut self) {
        self.write_pending();
        let text = std::mem::take(&mut self.current);
        let style = self.style.take().unwrap_or(BlockStyle::Plain);
        self.after_marker = false;
        self.line_start = true;
        let text = text.trim_end();
        if !text.trim().is_empty() {
            self.blocks.push(TextBlock {
                text: text.to_owned(),
                style,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(markdown: &str) -> Vec<String> {
        markdown_to_text_blocks(markdown)
            .into_iter()
            .map(|block| block.text)
            .collect()
    }

    #[test]
    fn each_top_level_block_is_one_text_block() {
        let blocks = markdown_to_text_blocks(
            "# Heading\n\nHi **Ada**, see [docs](<https://d.example/a b>).\n\n- one\n  - nested\n- two\n\n```\ncode\n```",
        );
        assert_eq!(
            blocks,
            vec![
                TextBlock {
                    text: "Heading".into(),
                    style: BlockStyle::Heading
                },
                TextBlock {
                    text: "Hi **Ada**, see [docs](https://d.example/a%20b).".into(),
                    style: BlockStyle::Plain
                },
                TextBlock {
                    text: "- one\n  - nested\n- two".into(),
                    style: BlockStyle::Plain
                },
                TextBlock {
                    text: "code".into(),
                    style: BlockStyle::Code
                },
            ]
        );
    }

    #[test]
    fn ordered_lists_keep_their_numbers_and_italics_their_underscores() {
        assert_eq!(
            texts("1. first\n2. _second_"),
            vec!["1. first\n2. _second_".to_owned()]
        );
    }

    #[test]
    fn literal_text_cannot_add_emphasis_links_or_lists() {
        // What the renderer makes of the label `**x** [y](https://evil.example) _z_`.
        let markdown = "Label: \\*\\*x\\*\\* \\[y\\]\\(https\\://evil\\.example\\) \\_z\\_";
        assert_eq!(
            texts(markdown),
            vec!["Label: \\*\\*x\\*\\* \\[y\\](https://evil.example) \\_z\\_".to_owned()]
        );
        assert_eq!(texts("\\- item"), vec!["\\- item".to_owned()]);
        assert_eq!(texts("1\\. item"), vec!["1\\. item".to_owned()]);
        assert_eq!(texts("\\# title"), vec!["\\# title".to_owned()]);
    }

    #[test]
    fn a_marker_is_escaped_only_where_it_begins_a_line() {
        assert_eq!(escape("a - b 1. c", false), "a - b 1. c");
        assert_eq!(escape("- a\n2. b\n+ c", true), "\\- a\n2\\. b\n\\+ c");
        assert_eq!(escape("x <y> & z", false), "x \\<y\\> \\& z");
    }

    #[test]
    fn links_to_other_schemes_keep_only_their_label() {
        assert_eq!(
            texts("[click](javascript:alert(1)) and [rel](/x)"),
            vec!["click and rel".to_owned()]
        );
    }
}
