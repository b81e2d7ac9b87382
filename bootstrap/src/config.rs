//! The `herald` command line: every option of the reference's configuration tables under its
//! flag name and default, each also read from its environment variable (the reference's name
//! with `CODER_` replaced by `HERALD_`), plus Herald's additions (DESIGN §8).
//!
//! Parsing ([`Cli`]) only checks the shape of each value (a duration, a number, a known
//! method). [`ServerArgs::validate`] then turns the options into the typed configurations the
//! builder takes and refuses bad combinations with one line naming the option.
//!
//! Secrets (`--email-auth-password`, `--notifications-webhook-secret`,
//! `--notifications-unsubscribe-key` and the password inside `--postgres-url`) are held as
//! [`Secret`] or [`PostgresUrl`]: their environment values are hidden from `--help`, `Debug`
//! redacts them, and a value that fails to parse is never echoed back.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};
use herald_application::config::notifier_keys;
use herald_application::limits::limit_keys;
use herald_application::notifier::Backoff;
use herald_application::unsubscribe::UnsubscribeKey;
use herald_application::{
    ConfigError, DefaultMethod, Limits, NotifierConfig, NotifierSettings, RateLimit, WatchLimits,
};
use herald_domain::Method;
use herald_http::AllowedOrigins;
use herald_smtp::{SmtpConfig, SmtpSettings};
use herald_webhook::{WebhookConfig, WebhookFormat, WebhookSecret};

use crate::builtin_postgres::BuiltinOptions;
use crate::http_server::{self, HttpLimits, keys as http_keys};

/// `herald`: the standalone notification server.
#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: notification delivery by email, webhook and in-app inbox"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and the notifier until SIGINT or SIGTERM (against --postgres-url, or
    /// a built-in PostgreSQL cluster in --data-dir).
    Server(Box<ServerArgs>),
    /// Apply the database migrations and exit.
    Migrate(MigrateArgs),
    /// Manage the users of Herald's own directory, directly in the database.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Look at the notification templates of a running server (--url, --token).
    #[command(subcommand)]
    Templates(crate::client::TemplatesCommand),
    /// Pause, resume or try out notifications on a running server (--url, --token).
    #[command(subcommand)]
    Notifications(crate::client::NotificationsCommand),
    /// List or change a user's notification preferences on a running server (--url, --token).
    #[command(subcommand)]
    Preferences(crate::client::PreferencesCommand),
}

/// `herald users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user and print a new API token for it as the only line on stdout (the first
    /// owner: `TOKEN=$(herald users create --email … --username … --roles owner)`).
    Create(CreateUserArgs),
}

/// Options of `herald users create`.
#[derive(Debug, Clone, Args)]
pub struct CreateUserArgs {
    /// The user's email address.
    #[arg(long, value_name = "ADDRESS")]
    pub email: String,
    /// The user's username.
    #[arg(long, value_name = "USERNAME")]
    pub username: String,
    /// The display name (default: the username).
    #[arg(long, default_value = "", value_name = "NAME")]
    pub name: String,
    /// Comma-separated roles: owner, user-admin, template-admin, member.
    #[arg(long, value_delimiter = ',', required = true, value_name = "ROLES")]
    pub roles: Vec<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Options of `herald server`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The connections of the notifier's own pool (2 to 100), on top of the API's 10: API
    /// requests never take them.
    #[arg(
        long,
        env = "HERALD_POSTGRES_NOTIFIER_CONNECTIONS",
        default_value_t = crate::NOTIFIER_CONNECTIONS,
        value_name = "INT"
    )]
    pub postgres_notifier_connections: u32,
    #[command(flatten)]
    pub notifications: NotificationArgs,
    #[command(flatten)]
    pub email: EmailArgs,
    /// The address the HTTP API listens on (port 0: any free port, logged at start).
    #[arg(
        long,
        env = "HERALD_HTTP_ADDRESS",
        default_value = "127.0.0.1:3000",
        value_name = "HOST:PORT"
    )]
    pub http_address: SocketAddr,
    /// The URL users reach Herald at; unsubscribe links and Herald's pages are built on it.
    /// Defaults to http://<--http-address>.
    #[arg(long, env = "HERALD_ACCESS_URL", value_name = "URL")]
    pub access_url: Option<String>,
    /// The host application's URL; notifications' action links and the `base_url` template
    /// helper are built on it. Defaults to the access URL.
    #[arg(long, env = "HERALD_APP_URL", value_name = "URL")]
    pub app_url: Option<String>,
    /// How long a client may take to send a request's head (request line and headers); a
    /// slower one is disconnected.
    #[arg(long, env = "HERALD_HTTP_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub http_header_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request before it is closed.
    #[arg(long, env = "HERALD_HTTP_IDLE_TIMEOUT", default_value = "1m", value_parser = parse_duration, value_name = "DURATION")]
    pub http_idle_timeout: Duration,
    /// How long a request may take to be answered (its body received, its answer computed);
    /// a later one is answered 503. Streams (the inbox watch) run on once started.
    #[arg(long, env = "HERALD_HTTP_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub http_request_timeout: Duration,
    /// How many HTTP connections may be open at once; at the limit, a new one displaces the
    /// connection waiting longest for a request, or is refused when all are busy. Default:
    /// the limit on open files (ulimit -n) less what the rest of the server needs.
    #[arg(long, env = "HERALD_HTTP_MAX_CONNECTIONS", value_name = "INT")]
    pub http_max_connections: Option<usize>,
    /// Comma-separated origins (scheme://host[:port]) whose pages may embed the
    /// `<herald-inbox>` bell: they get CORS headers on its script and the inbox API. Default:
    /// none, no CORS headers.
    #[arg(
        long,
        env = "HERALD_WEB_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGINS"
    )]
    pub web_allowed_origins: Vec<String>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Options of `herald migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Logging.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Which logs to write: tracing-subscriber `EnvFilter` directives (e.g. `info`,
    /// `herald_application=debug,warn`), or, as the reference takes it, a regular expression
    /// (e.g. `.*notifications.*`): INFO and above plus the DEBUG lines whose target or message
    /// it matches.
    #[arg(
        long,
        env = "HERALD_LOG_FILTER",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log_filter: String,
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL (postgres://user:password@host:port/database). Without it,
    /// Herald runs a private built-in PostgreSQL cluster in --data-dir.
    #[arg(
        long,
        env = "HERALD_PG_CONNECTION_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub postgres_url: Option<PostgresUrl>,
    /// Where Herald keeps its state: the built-in PostgreSQL cluster and the unsubscribe
    /// signing key.
    #[arg(
        long,
        env = "HERALD_DATA_DIR",
        default_value_os_t = default_data_dir(),
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// The 127.0.0.1 port of the built-in PostgreSQL cluster (default: a free port).
    #[arg(long, env = "HERALD_BUILTIN_POSTGRES_PORT", value_name = "PORT")]
    pub builtin_postgres_port: Option<u16>,
}

/// The notifier and the delivery methods.
#[derive(Debug, Clone, Args)]
pub struct NotificationArgs {
    /// How long to wait while a notification is being sent before giving up.
    #[arg(long, env = "HERALD_NOTIFICATIONS_DISPATCH_TIMEOUT", default_value = "1m", value_parser = parse_duration, value_name = "DURATION")]
    pub notifications_dispatch_timeout: Duration,
    /// Which delivery method to use (available options: 'smtp', 'webhook').
    #[arg(long, env = "HERALD_NOTIFICATIONS_METHOD", default_value = "smtp", value_parser = parse_method, value_name = "METHOD")]
    pub notifications_method: Method,
    /// The upper limit of attempts to send a notification.
    #[arg(
        long,
        env = "HERALD_NOTIFICATIONS_MAX_SEND_ATTEMPTS",
        default_value = "5",
        value_name = "INT"
    )]
    pub notifications_max_send_attempts: u32,
    /// Enable or disable inbox notifications.
    #[arg(long, env = "HERALD_NOTIFICATIONS_INBOX_ENABLED", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = BoolishValueParser::new(), value_name = "BOOL")]
    pub notifications_inbox_enabled: bool,
    /// How long a message that failed temporarily waits before it is retried.
    #[arg(long, env = "HERALD_NOTIFICATIONS_RETRY_INTERVAL", default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub notifications_retry_interval: Duration,
    /// How retries are spaced: `fixed` waits the retry interval every time; `exponential`
    /// waits a random time up to the retry interval × 2^(attempt − 1), capped at
    /// --notifications-retry-max-interval. A receiver's `Retry-After` that is later still wins.
    #[arg(long, env = "HERALD_NOTIFICATIONS_RETRY_BACKOFF", default_value = "fixed", value_parser = Backoff::parse, value_name = "fixed|exponential")]
    pub notifications_retry_backoff: Backoff,
    /// The longest wait of exponential backoff.
    #[arg(long, env = "HERALD_NOTIFICATIONS_RETRY_MAX_INTERVAL", default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub notifications_retry_max_interval: Duration,
    /// How often the notifier looks for messages without being woken (a fallback: new
    /// messages wake it at once).
    #[arg(long, env = "HERALD_NOTIFICATIONS_FETCH_INTERVAL", default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    pub notifications_fetch_interval: Duration,
    /// How long a leased message belongs to this notifier before another may take it.
    #[arg(long, env = "HERALD_NOTIFICATIONS_LEASE_PERIOD", default_value = "2m", value_parser = parse_duration, value_name = "DURATION")]
    pub notifications_lease_period: Duration,
    /// How many messages one cycle leases at most.
    #[arg(
        long,
        env = "HERALD_NOTIFICATIONS_LEASE_COUNT",
        default_value = "20",
        value_name = "INT"
    )]
    pub notifications_lease_count: usize,
    /// How often dispatch results are written back.
    #[arg(long, env = "HERALD_NOTIFICATIONS_STORE_SYNC_INTERVAL", default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub notifications_store_sync_interval: Duration,
    /// How many dispatch results are buffered before they are written back.
    #[arg(
        long,
        env = "HERALD_NOTIFICATIONS_STORE_SYNC_BUFFER_SIZE",
        default_value = "50",
        value_name = "INT"
    )]
    pub notifications_store_sync_buffer_size: usize,
    /// A message whose lease expired this many times (its dispatch never reported back: it
    /// may be crashing the process) fails permanently instead of being leased again.
    #[arg(
        long,
        env = "HERALD_NOTIFICATIONS_MAX_LEASE_EXPIRIES",
        default_value = "3",
        value_name = "INT"
    )]
    pub notifications_max_lease_expiries: u32,
    /// The longest the notifier waits for one database statement (a lease, a write-back)
    /// before taking the database for unreachable and trying again.
    #[arg(long, env = "HERALD_NOTIFICATIONS_STORE_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub notifications_store_timeout: Duration,
    /// The endpoint to which to send webhooks.
    #[arg(
        long,
        env = "HERALD_NOTIFICATIONS_WEBHOOK_ENDPOINT",
        value_name = "URL"
    )]
    pub notifications_webhook_endpoint: Option<String>,
    /// Sign webhooks per the Standard Webhooks spec with this secret (`whsec_<base64>`, or raw).
    #[arg(
        long,
        env = "HERALD_NOTIFICATIONS_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub notifications_webhook_secret: Option<Secret>,
    /// The shape of webhook bodies: 'herald' (Herald's JSON), 'slack' (a Slack incoming-webhook
    /// message) or 'teams' (a Microsoft Teams message with an Adaptive Card).
    #[arg(long, env = "HERALD_NOTIFICATIONS_WEBHOOK_FORMAT", default_value = "herald", value_parser = parse_webhook_format, value_name = "FORMAT")]
    pub notifications_webhook_format: WebhookFormat,
    /// The key (at least 64 hex digits) signing one-click unsubscribe links; give every
    /// replica the same one. Default: a key generated once and kept in --data-dir.
    #[arg(
        long,
        env = "HERALD_NOTIFICATIONS_UNSUBSCRIBE_KEY",
        hide_env_values = true,
        value_name = "HEX"
    )]
    pub notifications_unsubscribe_key: Option<Secret>,
    /// The most live inbox watchers (WebSocket or SSE) one user may hold open on this server.
    #[arg(
        long,
        env = "HERALD_NOTIFICATIONS_INBOX_MAX_WATCHERS_PER_USER",
        default_value = "16",
        value_name = "INT"
    )]
    pub notifications_inbox_max_watchers_per_user: usize,
    /// The most live inbox watchers this server holds open for everyone together.
    #[arg(
        long,
        env = "HERALD_NOTIFICATIONS_INBOX_MAX_WATCHERS",
        default_value = "10000",
        value_name = "INT"
    )]
    pub notifications_inbox_max_watchers: usize,
    /// How many custom notifications one user may send per window of time, counted across
    /// every replica (N/DURATION, e.g. 30/1m), or `off` for no limit.
    #[arg(long, env = "HERALD_NOTIFICATIONS_CUSTOM_RATE_LIMIT", default_value = "30/1m", value_parser = parse_rate, value_name = "N/DURATION")]
    pub notifications_custom_rate_limit: Rate,
    /// The throttle: how many messages one recipient may get by one method per window of
    /// time, counted across every replica (N/DURATION, e.g. 5/1h), or `off`. The excess waits
    /// for a later window, oldest first; nothing is dropped.
    #[arg(long, env = "HERALD_NOTIFICATIONS_USER_RATE_LIMIT", default_value = "off", value_parser = parse_rate, value_name = "N/DURATION")]
    pub notifications_user_rate_limit: Rate,
}

/// A rate as given on the command line: `N/DURATION`, or `off`. Its range is checked by
/// [`RateLimit::new`] in [`ServerArgs::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Off,
    Per(u32, Duration),
}

fn parse_rate(value: &str) -> Result<Rate, String> {
    let text = value.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(Rate::Off);
    }
    let expected = || format!("{value:?} is not a rate; expected N/DURATION (e.g. 30/1m) or off");
    let (count, window) = text.split_once('/').ok_or_else(expected)?;
    let count = count.trim().parse::<u32>().map_err(|_| expected())?;
    let window = parse_duration(window)?;
    Ok(Rate::Per(count, window))
}

/// The `--email-*` options.
#[derive(Debug, Clone, Args)]
pub struct EmailArgs {
    /// The sender's address to use (e.g. "Herald <herald@example.com>").
    #[arg(long, env = "HERALD_EMAIL_FROM", value_name = "ADDRESS")]
    pub email_from: Option<String>,
    /// The SMTP relay to send messages (format: hostname:port).
    #[arg(long, env = "HERALD_EMAIL_SMARTHOST", value_name = "HOST:PORT")]
    pub email_smarthost: Option<String>,
    /// The hostname identifying the SMTP server.
    #[arg(
        long,
        env = "HERALD_EMAIL_HELLO",
        default_value = "localhost",
        value_name = "HOSTNAME"
    )]
    pub email_hello: String,
    /// Username to use with PLAIN/LOGIN authentication.
    #[arg(long, env = "HERALD_EMAIL_AUTH_USERNAME", value_name = "USERNAME")]
    pub email_auth_username: Option<String>,
    /// Password to use with PLAIN/LOGIN authentication.
    #[arg(
        long,
        env = "HERALD_EMAIL_AUTH_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub email_auth_password: Option<Secret>,
    /// File from which to load password for use with PLAIN/LOGIN authentication.
    #[arg(long, env = "HERALD_EMAIL_AUTH_PASSWORD_FILE", value_name = "FILE")]
    pub email_auth_password_file: Option<PathBuf>,
    /// Identity to use with PLAIN authentication.
    #[arg(long, env = "HERALD_EMAIL_AUTH_IDENTITY", value_name = "IDENTITY")]
    pub email_auth_identity: Option<String>,
    /// Force a TLS connection to the configured SMTP smarthost. If port 465 is used, TLS will
    /// be forced.
    #[arg(long, env = "HERALD_EMAIL_FORCE_TLS", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = BoolishValueParser::new(), value_name = "BOOL")]
    pub email_force_tls: bool,
    /// Enable STARTTLS to upgrade insecure SMTP connections using TLS. Ignored if
    /// --email-force-tls is set.
    #[arg(long, env = "HERALD_EMAIL_TLS_STARTTLS", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = BoolishValueParser::new(), value_name = "BOOL")]
    pub email_tls_starttls: bool,
    /// Skip verification of the target server's certificate (insecure).
    #[arg(long, env = "HERALD_EMAIL_TLS_SKIPVERIFY", default_value = "false", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = BoolishValueParser::new(), value_name = "BOOL")]
    pub email_tls_skip_verify: bool,
    /// Server name to verify against the target certificate.
    #[arg(long, env = "HERALD_EMAIL_TLS_SERVERNAME", value_name = "NAME")]
    pub email_tls_server_name: Option<String>,
    /// Certificate file to use.
    #[arg(long, env = "HERALD_EMAIL_TLS_CERTFILE", value_name = "FILE")]
    pub email_tls_cert_file: Option<PathBuf>,
    /// Certificate key file to use.
    #[arg(long, env = "HERALD_EMAIL_TLS_CERTKEYFILE", value_name = "FILE")]
    pub email_tls_cert_key_file: Option<PathBuf>,
    /// Extra trusted CA certificates (PEM) for the smarthost, on top of the system's.
    #[arg(long, env = "HERALD_EMAIL_TLS_CAFILE", value_name = "FILE")]
    pub email_tls_ca_file: Option<PathBuf>,
}

/// A secret option value: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, to hand to the component that uses it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `--postgres-url`: shown (`Display`, `Debug`) with its password replaced by `***`. Any
/// string is accepted while parsing so that a malformed URL, which may hold a password, is
/// never echoed; [`ServerArgs::validate`] checks it.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, to connect with. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// # Errors
    /// [`ConfigError`] on `--postgres-url` unless it is a `postgres://` or `postgresql://` URL.
    pub fn check(&self) -> Result<(), ConfigError> {
        let url = url::Url::parse(self.0.trim()).map_err(|err| {
            ConfigError::new(
                "--postgres-url",
                format!(
                    "is not a URL ({err}); expected postgres://user:password@host:port/database"
                ),
            )
        })?;
        match url.scheme() {
            "postgres" | "postgresql" => Ok(()),
            other => Err(ConfigError::new(
                "--postgres-url",
                format!("must be a postgres:// URL, not {other}://"),
            )),
        }
    }
}

impl FromStr for PostgresUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(self.0.trim()) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                // libpq and sqlx also take the password (and a client key's) as a parameter.
                let secret = |name: &str| matches!(name, "password" | "sslpassword");
                if url.query_pairs().any(|(name, _)| secret(&name)) {
                    let pairs: Vec<(String, String)> = url
                        .query_pairs()
                        .map(|(name, value)| {
                            let value = if secret(&name) { "***".into() } else { value };
                            (name.into_owned(), value.into_owned())
                        })
                        .collect();
                    url.query_pairs_mut().clear().extend_pairs(pairs);
                }
                write!(f, "{url}")
            }
            Err(_) => f.write_str("<unparsable URL>"),
        }
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

/// Where Herald's data lives unless `--data-dir` says otherwise: `/var/lib/herald` for root
/// (PostgreSQL then runs as the `postgres` user, who cannot reach `/root`), else
/// `$XDG_DATA_HOME/herald` or `$HOME/.local/share/herald`, else `./herald-data`.
pub fn default_data_dir() -> PathBuf {
    if crate::builtin_postgres::running_as_root() {
        return PathBuf::from("/var/lib/herald");
    }
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(data_home) = non_empty("XDG_DATA_HOME") {
        return Path::new(&data_home).join("herald");
    }
    if let Some(home) = non_empty("HOME") {
        return Path::new(&home).join(".local/share/herald");
    }
    PathBuf::from("herald-data")
}

fn parse_webhook_format(value: &str) -> Result<WebhookFormat, String> {
    value.parse::<WebhookFormat>().map_err(|err| err.reason())
}

fn parse_method(value: &str) -> Result<Method, String> {
    value
        .trim()
        .parse::<Method>()
        .map_err(|_| "unknown delivery method; expected smtp or webhook".to_owned())
}

#[cfg(test)]
mod flag_tests {
    #![allow(clippy::unwrap_used)]

    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn every_configuration_key_renames_to_a_flag_the_server_has() {
        let command = Cli::command();
        let server = command
            .find_subcommand("server")
            .map(|server| {
                server
                    .get_arguments()
                    .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for (key, flag) in FLAGS {
            assert!(server.iter().any(|known| known == flag), "{key} → {flag}");
        }
    }

    #[test]
    fn an_inner_error_names_flags_on_the_command_line() {
        let err = NotifierConfig {
            dispatch_timeout: Duration::from_secs(300),
            ..NotifierConfig::default()
        }
        .validate()
        .unwrap_err();

        assert_eq!(err.key, notifier_keys::DISPATCH_TIMEOUT);
        let line = on_command_line(&err).to_string();
        assert!(
            line.starts_with("--notifications-dispatch-timeout: must be shorter than --notifications-lease-period "),
            "{line}"
        );
    }
}

/// Parses a Go-style duration: one or more `<number><unit>` with units `ns`, `us` (`µs`),
/// `ms`, `s`, `m`, `h`, and decimal numbers allowed (`1m`, `15s`, `2m30s`, `500ms`, `1.5h`).
/// A lone `0` is zero.
///
/// # Errors
/// A description of what is wrong (clap puts the flag name in front of it).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let text = value.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let expected =
        || format!("{value:?} is not a duration; expected e.g. 500ms, 15s, 1m, 2m30s or 1h");
    if text.is_empty() {
        return Err(expected());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{value:?} has no unit; expected e.g. 15s or 1m"))?;
        let (number, after) = rest.split_at(number_len);
        let number: f64 = number.parse().map_err(|_| expected())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds_per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(expected()),
        };
        total += number * seconds_per_unit;
        rest = after;
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("{value:?} is too long"))
}

/// The configuration keys the inner layers name in their errors, and the flags that set them.
/// Only this edge knows a key is spelled as a flag; [`on_command_line`] renames them.
pub const FLAGS: &[(&str, &str)] = &[
    (
        crate::NOTIFIER_CONNECTIONS_KEY,
        "--postgres-notifier-connections",
    ),
    (
        notifier_keys::MAX_SEND_ATTEMPTS,
        "--notifications-max-send-attempts",
    ),
    (
        notifier_keys::RETRY_INTERVAL,
        "--notifications-retry-interval",
    ),
    (
        notifier_keys::RETRY_BACKOFF,
        "--notifications-retry-backoff",
    ),
    (
        notifier_keys::RETRY_MAX_INTERVAL,
        "--notifications-retry-max-interval",
    ),
    (
        notifier_keys::FETCH_INTERVAL,
        "--notifications-fetch-interval",
    ),
    (notifier_keys::LEASE_PERIOD, "--notifications-lease-period"),
    (notifier_keys::LEASE_COUNT, "--notifications-lease-count"),
    (
        notifier_keys::DISPATCH_TIMEOUT,
        "--notifications-dispatch-timeout",
    ),
    (
        notifier_keys::STORE_SYNC_INTERVAL,
        "--notifications-store-sync-interval",
    ),
    (
        notifier_keys::STORE_SYNC_BUFFER_SIZE,
        "--notifications-store-sync-buffer-size",
    ),
    (
        notifier_keys::MAX_LEASE_EXPIRIES,
        "--notifications-max-lease-expiries",
    ),
    (
        notifier_keys::STORE_TIMEOUT,
        "--notifications-store-timeout",
    ),
    (
        notifier_keys::USER_RATE_LIMIT,
        "--notifications-user-rate-limit",
    ),
    (DefaultMethod::KEY, "--notifications-method"),
    ("delivery.inbox_enabled", "--notifications-inbox-enabled"),
    ("smtp.from", "--email-from"),
    ("smtp.smarthost", "--email-smarthost"),
    ("smtp.hello", "--email-hello"),
    ("smtp.auth_username", "--email-auth-username"),
    ("smtp.auth_password", "--email-auth-password"),
    ("smtp.auth_password_file", "--email-auth-password-file"),
    ("smtp.auth_identity", "--email-auth-identity"),
    ("smtp.force_tls", "--email-force-tls"),
    ("smtp.starttls", "--email-tls-starttls"),
    ("smtp.tls_skip_verify", "--email-tls-skip-verify"),
    ("smtp.tls_server_name", "--email-tls-server-name"),
    ("smtp.tls_cert_file", "--email-tls-cert-file"),
    ("smtp.tls_cert_key_file", "--email-tls-cert-key-file"),
    ("smtp.tls_ca_file", "--email-tls-ca-file"),
    (
        herald_webhook::InvalidSecret::KEY,
        "--notifications-webhook-secret",
    ),
    (WebhookFormat::KEY, "--notifications-webhook-format"),
    (http_keys::HEADER_READ_TIMEOUT, "--http-header-read-timeout"),
    (http_keys::IDLE_TIMEOUT, "--http-idle-timeout"),
    (http_keys::REQUEST_TIMEOUT, "--http-request-timeout"),
    (http_keys::MAX_CONNECTIONS, "--http-max-connections"),
    (
        limit_keys::WATCHERS_PER_USER,
        "--notifications-inbox-max-watchers-per-user",
    ),
    (limit_keys::WATCHERS, "--notifications-inbox-max-watchers"),
    (
        limit_keys::CUSTOM_NOTIFICATIONS,
        "--notifications-custom-rate-limit",
    ),
];

/// The flag that sets configuration key `key`.
pub fn flag_for(key: &str) -> Option<&'static str> {
    FLAGS
        .iter()
        .find(|(known, _)| *known == key)
        .map(|(_, flag)| *flag)
}

/// An inner layer's configuration error as the command line says it: keys renamed to flags.
pub fn on_command_line(err: &ConfigError) -> ConfigError {
    err.rename(flag_for)
}

/// Everything `herald server` runs with, checked.
#[derive(Debug)]
pub struct ServerConfig {
    pub database: DatabaseConfig,
    /// `--postgres-notifier-connections`.
    pub notifier_connections: u32,
    pub notifier: NotifierSettings,
    /// `--notifications-method`.
    pub default_method: DefaultMethod,
    /// `--notifications-inbox-enabled`.
    pub inbox_enabled: bool,
    /// Set when `--email-smarthost` is.
    pub smtp: Option<SmtpSettings>,
    /// Set when `--notifications-webhook-endpoint` is.
    pub webhook: Option<WebhookConfig>,
    pub access_url: String,
    /// `--app-url`, when given (else links are built on the access URL).
    pub app_url: Option<String>,
    pub http_address: SocketAddr,
    /// The `--http-*` timeouts and connection limit.
    pub http_limits: HttpLimits,
    /// `--notifications-unsubscribe-key`, when given.
    pub unsubscribe_key: Option<UnsubscribeKey>,
    /// `--web-allowed-origins`.
    pub web_allowed_origins: AllowedOrigins,
    /// `--notifications-inbox-max-watchers[-per-user]`, `--notifications-custom-rate-limit`.
    pub limits: Limits,
    pub data_dir: PathBuf,
}

/// The database a command runs against.
#[derive(Debug, Clone)]
pub enum DatabaseConfig {
    /// `--postgres-url`.
    External(PostgresUrl),
    /// A private cluster in the data directory.
    Builtin(BuiltinOptions),
}

impl DatabaseArgs {
    /// # Errors
    /// [`ConfigError`] on `--postgres-url` when it is not a PostgreSQL URL.
    pub fn validate(&self) -> Result<DatabaseConfig, ConfigError> {
        match self
            .postgres_url
            .as_ref()
            .filter(|url| !url.0.trim().is_empty())
        {
            Some(url) => {
                url.check()?;
                Ok(DatabaseConfig::External(url.clone()))
            }
            None => Ok(DatabaseConfig::Builtin(BuiltinOptions {
                data_dir: self.data_dir.clone(),
                port: self.builtin_postgres_port,
            })),
        }
    }
}

/// An optional string option, `None` when unset or blank (an empty environment variable
/// unsets an option).
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl ServerArgs {
    /// Checks every option and builds the typed configurations. Files named by options (the
    /// SMTP password, certificate, key and CA files) are read here.
    ///
    /// # Errors
    /// The first bad option, as `--flag: reason`.
    pub fn validate(&self) -> Result<ServerConfig, ConfigError> {
        let database = self.database.validate()?;
        crate::check_notifier_connections(self.postgres_notifier_connections)
            .map_err(|err| on_command_line(&err))?;
        let n = &self.notifications;
        let notifier = NotifierConfig {
            max_send_attempts: n.notifications_max_send_attempts,
            retry_interval: n.notifications_retry_interval,
            retry_backoff: n.notifications_retry_backoff,
            retry_max_interval: n.notifications_retry_max_interval,
            fetch_interval: n.notifications_fetch_interval,
            lease_period: n.notifications_lease_period,
            lease_count: n.notifications_lease_count,
            dispatch_timeout: n.notifications_dispatch_timeout,
            store_sync_interval: n.notifications_store_sync_interval,
            store_sync_buffer_size: n.notifications_store_sync_buffer_size,
            max_lease_expiries: n.notifications_max_lease_expiries,
            store_timeout: n.notifications_store_timeout,
            user_rate_limit: n.user_rate_limit().map_err(|err| on_command_line(&err))?,
        }
        .validate()
        .map_err(|err| on_command_line(&err))?;
        let default_method =
            DefaultMethod::try_from(n.notifications_method).map_err(|err| on_command_line(&err))?;
        let dispatch_timeout = notifier.config().dispatch_timeout;
        let smtp = self.email.smtp_config(dispatch_timeout)?;
        let webhook = self.webhook_config(dispatch_timeout)?;

        let access_url = match set(&self.access_url) {
            Some(url) => {
                http_url(url).map_err(|reason| ConfigError::new("--access-url", reason))?;
                url.trim_end_matches('/').to_owned()
            }
            None => format!("http://{}", self.http_address),
        };
        let app_url = set(&self.app_url)
            .map(|url| {
                http_url(url)
                    .map(|()| url.trim().trim_end_matches('/').to_owned())
                    .map_err(|reason| ConfigError::new("--app-url", reason))
            })
            .transpose()?;
        let web_allowed_origins =
            AllowedOrigins::parse(self.web_allowed_origins.iter().map(String::as_str))
                .map_err(|err| ConfigError::new("--web-allowed-origins", err.to_string()))?;
        let limits = n.limits().map_err(|err| on_command_line(&err))?;
        let unsubscribe_key = n
            .notifications_unsubscribe_key
            .as_ref()
            .map(|key| parse_unsubscribe_key(key.expose()))
            .transpose()?;
        let http_limits = HttpLimits {
            header_read_timeout: self.http_header_read_timeout,
            idle_timeout: self.http_idle_timeout,
            request_timeout: self.http_request_timeout,
            max_connections: self.http_max_connections.unwrap_or_else(|| {
                http_server::default_max_connections(http_server::open_files_limit())
            }),
        }
        .validate()
        .map_err(|err| on_command_line(&err))?;
        Ok(ServerConfig {
            database,
            notifier_connections: self.postgres_notifier_connections,
            notifier,
            default_method,
            inbox_enabled: n.notifications_inbox_enabled,
            smtp,
            webhook,
            access_url,
            app_url,
            http_address: self.http_address,
            http_limits,
            unsubscribe_key,
            web_allowed_origins,
            limits,
            data_dir: self.database.data_dir.clone(),
        })
    }

    fn webhook_config(&self, timeout: Duration) -> Result<Option<WebhookConfig>, ConfigError> {
        const ENDPOINT: &str = "--notifications-webhook-endpoint";
        let n = &self.notifications;
        let secret = n
            .notifications_webhook_secret
            .as_ref()
            .map(|secret| {
                WebhookSecret::parse(secret.expose()).map_err(|err| {
                    on_command_line(&ConfigError::new(
                        herald_webhook::InvalidSecret::KEY,
                        err.reason(),
                    ))
                })
            })
            .transpose()?;
        let Some(endpoint) = set(&n.notifications_webhook_endpoint) else {
            if secret.is_some() {
                return Err(ConfigError::new(
                    "--notifications-webhook-secret",
                    format!("is set but {ENDPOINT} is not"),
                ));
            }
            return Ok(None);
        };
        http_url(endpoint).map_err(|reason| ConfigError::new(ENDPOINT, reason))?;
        Ok(Some(WebhookConfig {
            endpoint: endpoint.to_owned(),
            secret,
            timeout,
            format: n.notifications_webhook_format,
        }))
    }
}

impl NotificationArgs {
    /// `--notifications-user-rate-limit`, checked (`None` when off).
    ///
    /// # Errors
    /// [`ConfigError`] naming [`notifier_keys::USER_RATE_LIMIT`] when the count is zero or the
    /// window out of range.
    pub fn user_rate_limit(&self) -> Result<Option<RateLimit>, ConfigError> {
        match self.notifications_user_rate_limit {
            Rate::Off => Ok(None),
            Rate::Per(count, window) => Ok(Some(RateLimit::new(
                notifier_keys::USER_RATE_LIMIT,
                count,
                window,
            )?)),
        }
    }

    /// The watcher caps and the custom-notification rate limit, checked.
    ///
    /// # Errors
    /// [`ConfigError`] naming the limit's key.
    pub fn limits(&self) -> Result<Limits, ConfigError> {
        Ok(Limits {
            watchers: WatchLimits::new(
                self.notifications_inbox_max_watchers_per_user,
                self.notifications_inbox_max_watchers,
            )?,
            custom_notifications: match self.notifications_custom_rate_limit {
                Rate::Off => None,
                Rate::Per(count, window) => Some(RateLimit::new(
                    limit_keys::CUSTOM_NOTIFICATIONS,
                    count,
                    window,
                )?),
            },
        })
    }
}

impl EmailArgs {
    /// The SMTP settings when `--email-smarthost` is set, validated.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad `--email-*` option.
    pub fn smtp_config(&self, timeout: Duration) -> Result<Option<SmtpSettings>, ConfigError> {
        let Some(smarthost) = set(&self.email_smarthost) else {
            return Ok(None);
        };
        let config = SmtpConfig {
            from: set(&self.email_from).unwrap_or_default().to_owned(),
            smarthost: smarthost.to_owned(),
            hello: self.email_hello.clone(),
            auth_username: set(&self.email_auth_username).map(str::to_owned),
            auth_password: self
                .email_auth_password
                .as_ref()
                .map(|password| password.expose().to_owned())
                .filter(|password| !password.is_empty()),
            auth_password_file: self.email_auth_password_file.clone(),
            auth_identity: set(&self.email_auth_identity).map(str::to_owned),
            force_tls: self.email_force_tls,
            starttls: self.email_tls_starttls,
            tls_skip_verify: self.email_tls_skip_verify,
            tls_server_name: set(&self.email_tls_server_name).map(str::to_owned),
            tls_cert_file: self.email_tls_cert_file.clone(),
            tls_cert_key_file: self.email_tls_cert_key_file.clone(),
            tls_ca_file: self.email_tls_ca_file.clone(),
            timeout,
        };
        config
            .validate()
            .map(Some)
            .map_err(|err| on_command_line(&err))
    }
}

/// An absolute http(s) URL with a host.
fn http_url(text: &str) -> Result<(), String> {
    let url =
        url::Url::parse(text.trim()).map_err(|err| format!("{text:?} is not a URL: {err}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(()),
        _ => Err(format!("{text:?} must be an http:// or https:// URL")),
    }
}

/// `--notifications-unsubscribe-key`: hex, at least [`UnsubscribeKey::MIN_LEN`] bytes.
fn parse_unsubscribe_key(text: &str) -> Result<UnsubscribeKey, ConfigError> {
    const OPTION: &str = "--notifications-unsubscribe-key";
    let bytes =
        hex::decode(text.trim()).map_err(|_| ConfigError::new(OPTION, "must be hexadecimal"))?;
    UnsubscribeKey::new(bytes).map_err(|_| {
        ConfigError::new(
            OPTION,
            format!(
                "must be at least {} hex digits ({} bytes)",
                UnsubscribeKey::MIN_LEN * 2,
                UnsubscribeKey::MIN_LEN
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn go_style_durations_parse() {
        let cases = [
            ("1m", Duration::from_secs(60)),
            ("15s", Duration::from_secs(15)),
            ("2m30s", Duration::from_secs(150)),
            ("500ms", Duration::from_millis(500)),
            ("1h", Duration::from_secs(3600)),
            ("1.5h", Duration::from_secs(5400)),
            ("0", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn rates_parse_as_a_count_per_duration_or_off() {
        assert_eq!(
            parse_rate("10/1m").unwrap(),
            Rate::Per(10, Duration::from_secs(60))
        );
        assert_eq!(parse_rate(" off ").unwrap(), Rate::Off);
        for text in ["", "10", "10/", "/1m", "ten/1m", "10/1x", "-1/1m"] {
            assert!(parse_rate(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn malformed_durations_are_refused() {
        for text in ["", "15", "1x", "m", "1m-2s", "abc"] {
            assert!(parse_duration(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn a_postgres_url_hides_its_password() {
        let url = PostgresUrl::new("postgres://herald:hunter2@db:5432/herald");

        assert_eq!(url.to_string(), "postgres://herald:***@db:5432/herald");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn a_postgres_url_hides_a_password_given_as_a_parameter() {
        let url = PostgresUrl::new(
            "postgres://herald@db/herald?sslmode=require&password=hunter2&sslpassword=swordfish",
        );

        let shown = format!("{url} {url:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("swordfish"),
            "{shown}"
        );
        assert_eq!(
            url.to_string(),
            "postgres://herald@db/herald?sslmode=require&password=***&sslpassword=***"
        );
    }
}
