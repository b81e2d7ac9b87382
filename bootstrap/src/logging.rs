//! `--log-filter`: which log lines are written. It takes either tracing-subscriber `EnvFilter`
//! directives (`info`, `herald_application=debug,warn`) or, as the reference does, a regular
//! expression (`".*notifications.*"`). The reference's filter picks out debug lines: with a
//! regular expression, every line at INFO and above is written as usual, and a DEBUG line
//! only when the expression matches its target (the module that logged it) or its message.
//!
//! Which one a value is: directives never contain `*`, `+`, `?`, `^`, `$`, `|`, `(`, `)` or
//! `\`, so a value with any of these is a regular expression; anything else is directives.

use std::fmt;
use std::io::IsTerminal as _;

use regex::Regex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer as _, Registry};

/// A checked `--log-filter`.
#[derive(Debug)]
pub enum LogFilter {
    /// tracing-subscriber directives (boxed: far larger than an expression).
    Directives(Box<EnvFilter>),
    /// The reference's form: INFO and above, plus the DEBUG lines whose target or message the
    /// expression matches.
    Pattern(Regex),
}

/// Characters a regular expression may use that directives never do.
const PATTERN_ONLY: &[char] = &['*', '+', '?', '^', '$', '|', '(', ')', '\\'];

impl LogFilter {
    /// # Errors
    /// Why `text` is neither valid directives nor a valid regular expression.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.contains(PATTERN_ONLY) {
            return Regex::new(text)
                .map(LogFilter::Pattern)
                .map_err(|err| format!("not a valid regular expression: {err}"));
        }
        EnvFilter::try_new(text)
            .map(|directives| LogFilter::Directives(Box::new(directives)))
            .map_err(|err| format!("not valid filter directives: {err}"))
    }
}

/// The logging of a `herald` command: lines on `writer` (stderr for the binary) as `filter`
/// selects them.
pub fn subscriber<W>(filter: LogFilter, writer: W, ansi: bool) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match filter {
        LogFilter::Directives(directives) => {
            Box::new(Registry::default().with(lines.with_filter(*directives)))
        }
        LogFilter::Pattern(pattern) => {
            Box::new(Registry::default().with(lines.with_filter(PatternFilter { pattern })))
        }
    }
}

/// Installs the logging of the `herald` binary: lines on stderr, coloured on a terminal.
///
/// # Errors
/// When logging was already set up.
pub fn init(filter: LogFilter) -> Result<(), String> {
    let ansi = std::io::stderr().is_terminal();
    tracing::subscriber::set_global_default(subscriber(filter, std::io::stderr, ansi))
        .map_err(|err| err.to_string())
}

/// INFO and above, and DEBUG lines whose target or message `pattern` matches.
struct PatternFilter {
    pattern: Regex,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for PatternFilter {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        *metadata.level() <= Level::DEBUG
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        let metadata = event.metadata();
        if *metadata.level() <= Level::INFO || self.pattern.is_match(metadata.target()) {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        self.pattern.is_match(&message.0)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }
}

/// An event's `message` field, as text.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.0);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
