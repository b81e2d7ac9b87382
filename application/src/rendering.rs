//! Rendering: Handlebars templates → Markdown → plain text and HTML.
//!
//! A template's title and body are Handlebars producing Markdown. The data is the payload
//! serialised to JSON plus `app_name`, `base_url` (the app URL) and `current_year`. Every
//! value a title or body substitutes is escaped for Markdown, so a label can never add
//! emphasis, links or HTML, while Markdown written in the template itself still works.
//!
//! An action's label is plain text and is rendered without escaping; its URL is a path under
//! the app URL in which every substituted value is percent-encoded, so a value cannot change
//! the path's structure.
//!
//! From the Markdown come the plain text ([`markdown_to_text`]) and the HTML with raw HTML shown
//! as text and only `http`, `https`, `mailto` or relative links ([`markdown_to_html`]).
//!
//! Compiled templates, and the labels a template's sources need, are cached by their source
//! text, so each distinct template string is parsed once per [`Renderer`] (and its clones).

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::fmt::Write as _;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Datelike, Utc};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, Output, RenderContext, Renderable, ScopedJson,
    TemplateError,
};
use herald_domain::{Action, Labels, Payload, Template, digest};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// A message's title and body, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RenderedMessage {
    pub title_markdown: String,
    pub body_markdown: String,
    /// Plain text of the title (email subject, webhook `title`, inbox title).
    pub title: String,
    /// Plain text of the body (webhook `body`, inbox content, email text part).
    pub body: String,
}

impl RenderedMessage {
    /// HTML of the body with raw HTML disabled (email HTML part). Made on request, as only
    /// email uses it.
    pub fn body_html(&self) -> String {
        markdown_to_html(&self.body_markdown)
    }
}

/// A template that could not be rendered: a permanent failure of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?} failed to render: {reason}")]
pub struct RenderError {
    pub template: String,
    pub reason: String,
}

/// A template's actions prepared for the recipients of one event (see
/// [`Renderer::event_actions`]).
#[derive(Debug)]
pub struct EventActions<'a> {
    renderer: &'a Renderer,
    template: &'a Template,
    /// The event's payload as Handlebars data; the recipient fields are those of the last
    /// recipient rendered. `None` when no action has an expression: nothing reads it.
    context: Option<Context>,
}

impl EventActions<'_> {
    /// The actions for one recipient, `payload` being the event's payload for them: only its
    /// recipient fields (`user_id`, `user_email`, `user_name`, `user_username`, `actions`) are
    /// read, the rest is the event's, as prepared.
    ///
    /// # Errors
    /// [`RenderError`] when a label or URL template does not parse or render.
    pub fn render(&mut self, payload: &Payload) -> Result<Vec<Action>, RenderError> {
        let template = self.template;
        let Some(context) = &mut self.context else {
            return Ok(template
                .actions
                .iter()
                .map(|action| Action {
                    label: action.label.clone(),
                    url: self.renderer.absolute_url(&action.url),
                })
                .collect());
        };
        let recipient = [
            ("user_id", serde_json::to_value(payload.user_id)),
            ("user_email", Ok(payload.user_email.as_str().into())),
            ("user_name", Ok(payload.user_name.as_str().into())),
            ("user_username", Ok(payload.user_username.as_str().into())),
            ("actions", serde_json::to_value(&payload.actions)),
        ];
        if let serde_json::Value::Object(fields) = context.data_mut() {
            for (key, value) in recipient {
                let value =
                    value.map_err(|error| failure(template, "payload", error.to_string()))?;
                fields.insert(key.to_owned(), value);
            }
        }
        let engine = &self.renderer.engine;
        template
            .actions
            .iter()
            .enumerate()
            .map(|(index, action)| {
                let number = index + 1;
                let label = engine
                    .render(&engine.plain, &action.label, context)
                    .map_err(|reason| {
                        failure(template, &format!("action {number} label"), reason)
                    })?;
                let path = engine
                    .render(&engine.url, &action.url, context)
                    .map_err(|reason| failure(template, &format!("action {number} url"), reason))?;
                Ok(Action {
                    label,
                    url: self.renderer.absolute_url(&path),
                })
            })
            .collect()
    }
}

/// Renders templates for one deployment: its app name, and the host application's URL that
/// action links and `base_url` are built on (the app URL, by default Herald's access URL).
///
/// Cheap to clone: clones share the Handlebars registries and the compiled-template cache.
#[derive(Debug, Clone)]
pub struct Renderer {
    app_name: String,
    app_url: String,
    engine: Arc<Engine>,
}

impl Renderer {
    /// A renderer building links on `app_url` (a trailing `/` is dropped).
    pub fn new(app_name: &str, app_url: &str) -> Self {
        Self {
            app_name: app_name.to_owned(),
            app_url: app_url.trim_end_matches('/').to_owned(),
            engine: Arc::new(Engine::new()),
        }
    }

    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    /// The URL action links and `base_url` are built on.
    pub fn app_url(&self) -> &str {
        &self.app_url
    }

    /// The template's actions with their labels rendered as plain text and their URLs made
    /// absolute under the app URL.
    ///
    /// # Errors
    /// [`RenderError`] when a label or URL template does not parse or render.
    pub fn render_actions(
        &self,
        template: &Template,
        payload: &Payload,
        now: DateTime<Utc>,
    ) -> Result<Vec<Action>, RenderError> {
        self.event_actions(template, payload, now)?.render(payload)
    }

    /// The template's actions prepared for the recipients of one event, whose payload is
    /// `payload` (its recipient fields are not read): the sources are checked for missing labels
    /// and the payload is serialised here, once (not at all when no action has an expression);
    /// [`EventActions::render`] then only swaps in each recipient's fields.
    ///
    /// # Errors
    /// [`RenderError`] when the payload does not serialise.
    pub fn event_actions<'a>(
        &'a self,
        template: &'a Template,
        payload: &Payload,
        now: DateTime<Utc>,
    ) -> Result<EventActions<'a>, RenderError> {
        warn_of_missing_labels(
            template,
            payload,
            &self.engine.required_labels(
                template
                    .actions
                    .iter()
                    .flat_map(|action| [action.label.as_str(), action.url.as_str()]),
            ),
        );
        let expressions = template
            .actions
            .iter()
            .any(|action| has_expression(&action.label) || has_expression(&action.url));
        Ok(EventActions {
            renderer: self,
            template,
            context: if expressions {
                Some(self.context(template, payload, now)?)
            } else {
                None
            },
        })
    }

    /// The template's title and body as Markdown, plain text and (body only) HTML.
    ///
    /// # Errors
    /// [`RenderError`] when the title or body template does not parse or render.
    pub fn render_message(
        &self,
        template: &Template,
        payload: &Payload,
        now: DateTime<Utc>,
    ) -> Result<RenderedMessage, RenderError> {
        warn_of_missing_labels(
            template,
            payload,
            &self
                .engine
                .required_labels([template.title.as_str(), template.body.as_str()]),
        );
        let context = self.context(template, payload, now)?;
        let markdown = &self.engine.markdown;
        let title_markdown = self
            .engine
            .render(markdown, &template.title, &context)
            .map_err(|reason| failure(template, "title", reason))?;
        let body_markdown = self
            .engine
            .render(markdown, &template.body, &context)
            .map_err(|reason| failure(template, "body", reason))?;
        Ok(RenderedMessage {
            title: markdown_to_text(&title_markdown),
            body: markdown_to_text(&body_markdown),
            title_markdown,
            body_markdown,
        })
    }

    /// A digest's title and body, its template's digest form: the title names the template
    /// and counts the items; the body lists each item by the template's own title, rendered
    /// with that item's labels and data (see [`herald_domain::digest`]).
    ///
    /// # Errors
    /// [`RenderError`] when the template's title does not parse or render.
    pub fn render_digest(
        &self,
        template: &Template,
        payload: &Payload,
        now: DateTime<Utc>,
    ) -> Result<RenderedMessage, RenderError> {
        let items = digest::items(payload.data.as_ref());
        let count = items.len();
        let noun = if count == 1 {
            "notification"
        } else {
            "notifications"
        };
        let name = escape_markdown(&template.name);
        let title_markdown = format!("{name}: {count} {noun}");
        let mut body_markdown = format!("{count} {noun} of {name}:\n\n");
        let markdown = &self.engine.markdown;
        for item in items {
            let labels: Labels = item
                .get("labels")
                .and_then(serde_json::Value::as_object)
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            let data = item.get("data").filter(|data| !data.is_null()).cloned();
            let one = Payload {
                labels,
                data,
                ..payload.clone()
            };
            let context = self.context(template, &one, now)?;
            let title = self
                .engine
                .render(markdown, &template.title, &context)
                .map_err(|reason| failure(template, "title", reason))?;
            let _ = writeln!(
                body_markdown,
                "- {}",
                title.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
        Ok(RenderedMessage {
            title: markdown_to_text(&title_markdown),
            body: markdown_to_text(&body_markdown),
            title_markdown,
            body_markdown,
        })
    }

    /// The Handlebars data: the payload's JSON plus `app_name`, `base_url` and `current_year`.
    fn context(
        &self,
        template: &Template,
        payload: &Payload,
        now: DateTime<Utc>,
    ) -> Result<Context, RenderError> {
        let mut data = serde_json::to_value(payload)
            .map_err(|error| failure(template, "payload", error.to_string()))?;
        if let serde_json::Value::Object(fields) = &mut data {
            fields.insert(APP_NAME.to_owned(), self.app_name.clone().into());
            fields.insert(BASE_URL.to_owned(), self.app_url.clone().into());
            fields.insert(CURRENT_YEAR.to_owned(), now.year().into());
        }
        Ok(Context::from(data))
    }

    /// `path` under the app URL; a `/` is added when the path does not start with one.
    fn absolute_url(&self, path: &str) -> String {
        if path.is_empty() || path.starts_with(['/', '?', '#']) {
            format!("{}{path}", self.app_url)
        } else {
            format!("{}/{path}", self.app_url)
        }
    }
}

fn failure(template: &Template, part: &str, reason: String) -> RenderError {
    RenderError {
        template: template.name.clone(),
        reason: format!("{part}: {reason}"),
    }
}

const APP_NAME: &str = "app_name";
const BASE_URL: &str = "base_url";
const CURRENT_YEAR: &str = "current_year";

/// How many entries a [`Memo`] holds before it forgets them all, which only happens if
/// templates are generated rather than authored.
const CACHE_LIMIT: usize = 1024;

/// Values made once per source text and shared, forgotten all at once past [`CACHE_LIMIT`].
struct Memo<V: ?Sized>(RwLock<HashMap<String, Arc<V>>>);

impl<V: ?Sized> Memo<V> {
    fn new() -> Self {
        Self(RwLock::new(HashMap::new()))
    }

    fn len(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The value held for `key`, else what `make` gives (held unless it failed).
    fn get_or_try<E>(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<Arc<V>, E>,
    ) -> Result<Arc<V>, E> {
        if let Some(value) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return Ok(Arc::clone(value));
        }
        let value = make()?;
        let mut held = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if held.len() >= CACHE_LIMIT {
            held.clear();
        }
        held.insert(key.to_owned(), Arc::clone(&value));
        Ok(value)
    }
}

/// The three Handlebars registries (one per kind of escaping) and what is made once per
/// template source.
struct Engine {
    /// Title and body: values escaped for Markdown.
    markdown: Handlebars<'static>,
    /// Action URLs: values percent-encoded.
    url: Handlebars<'static>,
    /// Action labels: plain text, values as they are.
    plain: Handlebars<'static>,
    /// Compiled templates by source.
    compiled: Memo<handlebars::Template>,
    /// [`required_labels`] by the sources they were found in, so a message does not scan its
    /// template's sources again.
    required: Memo<[String]>,
}

impl Engine {
    fn new() -> Self {
        Self {
            markdown: registry(escape_markdown),
            url: registry(percent_encode),
            plain: registry(handlebars::no_escape),
            compiled: Memo::new(),
            required: Memo::new(),
        }
    }

    /// [`required_labels`] of `sources`, found once per set of sources.
    fn required_labels<'a>(&self, sources: impl IntoIterator<Item = &'a str>) -> Arc<[String]> {
        let sources: Vec<&str> = sources.into_iter().collect();
        // Each source after its length: no two lists of sources make the same key.
        let mut key = String::new();
        for source in &sources {
            let _ = write!(key, "{}:{source}", source.len());
        }
        let Ok(required) = self.required.get_or_try(&key, || {
            Ok::<_, Infallible>(required_labels(sources.iter().copied()).into())
        });
        required
    }

    /// Renders `source` (compiling it once) against `context` with `registry`'s escaping.
    fn render(
        &self,
        registry: &Handlebars<'static>,
        source: &str,
        context: &Context,
    ) -> Result<String, String> {
        if !has_expression(source) {
            return Ok(source.to_owned());
        }
        let template = self.compiled(source)?;
        let mut output = TextOutput(String::with_capacity(source.len() + source.len() / 2));
        let mut render_context = RenderContext::new(None);
        template
            .render(registry, context, &mut render_context, &mut output)
            .map_err(|error| {
                let reason = error.reason();
                match (error.line_no, error.column_no) {
                    (Some(line), Some(column)) => {
                        format!("{reason} at line {line}, column {column}")
                    }
                    _ => reason.to_string(),
                }
            })?;
        Ok(output.0)
    }

    fn compiled(&self, source: &str) -> Result<Arc<handlebars::Template>, String> {
        self.compiled.get_or_try(source, || {
            handlebars::Template::compile(source)
                .map(Arc::new)
                .map_err(describe)
        })
    }
}

/// Whether Handlebars would do anything with `source`: every expression, comment, escape and
/// raw block starts with `{{`; text without one renders as written.
fn has_expression(source: &str) -> bool {
    source.contains("{{")
}

/// Rendered text, in a `String` sized for its source. (Handlebars' own `StringOutput` reserves
/// 8 KiB for every render, and the rendered Markdown kept those 8 KiB while its message was in
/// flight.)
struct TextOutput(String);

impl Output for TextOutput {
    fn write(&mut self, segment: &str) -> Result<(), std::io::Error> {
        self.0.push_str(segment);
        Ok(())
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("compiled_templates", &self.compiled.len())
            .finish_non_exhaustive()
    }
}

/// A template parse error on one line (Handlebars' own `Display` spans several).
fn describe(error: TemplateError) -> String {
    let reason = error.reason().to_string();
    let reason = reason.lines().next().unwrap_or_default().trim_end();
    match error.pos() {
        Some((line, column)) => format!("{reason} at line {line}, column {column}"),
        None => reason.to_owned(),
    }
}

/// A non-strict registry with `escape` applied to every `{{value}}` and the helpers
/// `app_name`, `base_url` and `current_year`.
fn registry(escape: fn(&str) -> String) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.register_escape_fn(escape);
    for name in [APP_NAME, BASE_URL, CURRENT_YEAR] {
        registry.register_helper(name, Box::new(RootValue(name)));
    }
    registry
}

/// A helper answering with a field of the root data, so `{{app_name}}` also works inside
/// `{{#each}}`, where a plain path would be looked up in the current item.
struct RootValue(&'static str);

impl HelperDef for RootValue {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        _: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        context: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, handlebars::RenderError> {
        Ok(context
            .data()
            .get(self.0)
            .map_or(ScopedJson::Missing, ScopedJson::Constant))
    }
}

/// Escapes a substituted value so it reads as literal text in Markdown.
///
/// Every ASCII punctuation character is backslash-escaped (CommonMark allows escaping any of
/// them), so no emphasis, link, code, heading, list, entity or HTML can start inside the value.
/// Each run of whitespace becomes one space: a newline cannot start a new block, indentation
/// cannot start a code block and trailing spaces cannot make a hard break.
fn escape_markdown(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + value.len() / 4);
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_whitespace() {
            while chars.next_if(char::is_ascii_whitespace).is_some() {}
            escaped.push(' ');
        } else {
            if c.is_ascii_punctuation() {
                escaped.push('\\');
            }
            escaped.push(c);
        }
    }
    escaped
}

/// Everything but the RFC 3986 unreserved characters.
const URL_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode(value: &str) -> String {
    utf8_percent_encode(value, URL_VALUE).to_string()
}

/// Logs each of `required` (see [`required_labels`]) that the payload lacks (it renders empty).
fn warn_of_missing_labels(template: &Template, payload: &Payload, required: &[String]) {
    for key in required {
        if !payload.labels.contains_key(key) {
            tracing::warn!(
                template = %template.name,
                label = %key,
                "label missing from the payload, rendered empty"
            );
        }
    }
}

/// The labels `sources` use, except those tested with `{{#if labels.x}}` or
/// `{{#unless labels.x}}` anywhere in them (optional), in order of name.
fn required_labels<'a>(sources: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut used = BTreeSet::new();
    let mut optional = BTreeSet::new();
    for source in sources {
        for reference in label_references(source) {
            if reference.conditional {
                optional.insert(reference.key);
            }
            used.insert(reference.key);
        }
    }
    used.difference(&optional)
        .map(|key| (*key).to_owned())
        .collect()
}

struct LabelReference<'a> {
    key: &'a str,
    /// The reference is the condition of an `#if` or `#unless` block.
    conditional: bool,
}

/// The `labels.<key>` paths inside the `{{…}}` expressions of `source`.
fn label_references(source: &str) -> Vec<LabelReference<'_>> {
    const PREFIX: &str = "labels.";
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut references = Vec::new();
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}").unwrap_or(after.len());
        let expression = &after[..close];
        let head = expression.trim_start_matches(['{', '~']).trim_start();
        let conditional = head.starts_with("#if ") || head.starts_with("#unless ");
        for (at, _) in expression.match_indices(PREFIX) {
            let part_of_longer_path = expression[..at]
                .chars()
                .next_back()
                .is_some_and(|c| is_key_char(c) || c == '.' || c == '/');
            let key = &expression[at + PREFIX.len()..];
            let key = &key[..key.find(|c| !is_key_char(c)).unwrap_or(key.len())];
            if !part_of_longer_path && !key.is_empty() {
                references.push(LabelReference { key, conditional });
            }
        }
        rest = &after[close..];
    }
    references
}

/// The Markdown features Herald renders: CommonMark, nothing more.
fn parser(markdown: &str) -> Parser<'_> {
    Parser::new_ext(markdown, Options::empty())
}

/// Plain text of a Markdown document: paragraphs separated by a blank line, list items as
/// `- item` (nested items indented by two spaces per level), emphasis markers dropped, links as
/// `text (url)` when the text is not the URL itself, code and raw HTML as written.
pub fn markdown_to_text(markdown: &str) -> String {
    let mut writer = TextWriter::default();
    for event in parser(markdown) {
        writer.event(event);
    }
    writer.text.trim().to_owned()
}

#[derive(Default)]
struct TextWriter {
    text: String,
    /// Open lists, innermost last: the next number of an ordered list, `None` for bullets.
    lists: Vec<Option<u64>>,
    /// Open links and images: where their text starts and their destination.
    links: Vec<(usize, String)>,
    /// An item marker was just written: the item's first block goes on the same line.
    after_marker: bool,
}

impl TextWriter {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text)
            | Event::Code(text)
            | Event::Html(text)
            | Event::InlineHtml(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => self.write(&text),
            Event::FootnoteReference(name) => self.write(&format!("[{name}]")),
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
                if !self.text.is_empty() && !self.text.ends_with('\n') {
                    self.text.push('\n');
                }
                self.text
                    .push_str(&"  ".repeat(self.lists.len().saturating_sub(1)));
                match self.lists.last_mut() {
                    Some(Some(number)) => {
                        self.text.push_str(&format!("{number}. "));
                        *number += 1;
                    }
                    _ => self.text.push_str("- "),
                }
                self.after_marker = true;
            }
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                self.links.push((self.text.len(), dest_url.into_string()));
            }
            Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::TableCell => {}
            Tag::Paragraph
            | Tag::Heading { .. }
            | Tag::BlockQuote(_)
            | Tag::CodeBlock(_)
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
                if let Some((start, url)) = self.links.pop() {
                    let text = &self.text[start..];
                    let same = text == url || url.strip_prefix("mailto:") == Some(text);
                    if !url.is_empty() && !same {
                        self.text.push_str(&format!(" ({url})"));
                    }
                }
            }
            TagEnd::CodeBlock | TagEnd::HtmlBlock => {
                let kept = self.text.trim_end_matches('\n').len();
                self.text.truncate(kept);
            }
            _ => {}
        }
    }

    /// Separates a new block from what came before: a blank line, or inside a list a new line
    /// indented to the item's content (unless it is the item's first block).
    fn start_block(&mut self) {
        if std::mem::take(&mut self.after_marker) || self.text.is_empty() {
            return;
        }
        if self.lists.is_empty() {
            let newlines = self.text.len() - self.text.trim_end_matches('\n').len();
            for _ in newlines..2 {
                self.text.push('\n');
            }
        } else {
            self.line_break();
        }
    }

    fn line_break(&mut self) {
        self.text.push('\n');
        self.text.push_str(&"  ".repeat(self.lists.len()));
    }

    fn write(&mut self, text: &str) {
        self.after_marker = false;
        self.text.push_str(text);
    }
}

/// HTML of a Markdown document for the email HTML part: raw HTML is escaped and shown as text,
/// and a link or image whose URL is not `http`, `https`, `mailto` or relative keeps only its
/// text.
pub fn markdown_to_html(markdown: &str) -> String {
    // Whether each open link (and, separately, image) was kept, innermost last.
    let mut links = Vec::new();
    let mut images = Vec::new();
    let events = parser(markdown).filter_map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Some(Event::Text(html)),
        Event::Start(Tag::HtmlBlock) => Some(Event::Start(Tag::Paragraph)),
        Event::End(TagEnd::HtmlBlock) => Some(Event::End(TagEnd::Paragraph)),
        Event::Start(Tag::Link { ref dest_url, .. }) => {
            let kept = is_allowed_url(dest_url);
            links.push(kept);
            kept.then_some(event)
        }
        Event::End(TagEnd::Link) => links.pop().unwrap_or(false).then_some(event),
        Event::Start(Tag::Image { ref dest_url, .. }) => {
            let kept = is_allowed_url(dest_url);
            images.push(kept);
            kept.then_some(event)
        }
        Event::End(TagEnd::Image) => images.pop().unwrap_or(false).then_some(event),
        event => Some(event),
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// Whether `url` is relative or uses the `http`, `https` or `mailto` scheme. Anything before a
/// `:` that comes ahead of any `/`, `?` or `#` is a scheme, so `javascript:`, ` javascript:` and
/// `java\tscript:` are all refused.
fn is_allowed_url(url: &str) -> bool {
    match url.find([':', '/', '?', '#']) {
        Some(at) if url[at..].starts_with(':') => {
            let scheme = &url[..at];
            ["http", "https", "mailto"]
                .iter()
                .any(|allowed| scheme.eq_ignore_ascii_case(allowed))
        }
        _ => true,
    }
}
