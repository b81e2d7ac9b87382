//! The commands that talk to a running `herald server` over its HTTP API (`herald templates
//! list | digest`, `herald notifications pause | resume | test | custom`, `herald preferences list |
//! disable | enable`), with `--url`/`--token`.
//!
//! Each command prints what happened as plain lines on stdout; every failure becomes one
//! [`anyhow::Error`] line naming the cause a person can act on (the URL that cannot be reached,
//! a refused token, the field the server rejected). The token is sent in the `Authorization`
//! header only: it is never part of a message, and `Debug` redacts it.

use std::fmt;
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::config::Secret;

/// How long the server may take to connect and to answer one request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server is and who is asking.
#[derive(Debug, Clone, Args)]
pub struct ServerConnection {
    /// The URL of the running Herald server (its access URL, e.g. `http://127.0.0.1:3000`).
    #[arg(
        long,
        env = "HERALD_URL",
        default_value = "http://127.0.0.1:3000",
        value_name = "URL"
    )]
    pub url: String,
    /// An API token (`herald users create` prints one).
    #[arg(
        long,
        env = "HERALD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Secret,
}

/// `herald templates …`.
#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// List the notification templates: name, group, id, enabled by default, method, digest
    /// window.
    List(ServerConnection),
    /// Gather a template's events for each recipient into one message per window (e.g. `1h`),
    /// or send each at once again with `""` (needs the owner role).
    Digest(DigestArgs),
}

/// `herald templates digest <template id> <window|"">`.
#[derive(Debug, Clone, Args)]
pub struct DigestArgs {
    /// The template's id (`herald templates list` shows them).
    pub template: String,
    /// The window, such as `30m`, `1h` or `1h30m` (at most `7d`); `""` clears it.
    pub window: String,
    #[command(flatten)]
    pub connection: ServerConnection,
}

/// `herald notifications …`.
#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// Pause the delivery of notifications on every replica (needs the owner role).
    Pause(ServerConnection),
    /// Resume the delivery of notifications (needs the owner role).
    Resume(ServerConnection),
    /// Send a Test Notification to yourself (needs the owner role).
    Test(ServerConnection),
    /// Send a notification with this title and message to yourself, or to the users and role
    /// holders named with `--user` and `--role` (owners and user-admins).
    Custom(CustomArgs),
}

/// `herald preferences …`.
#[derive(Debug, Subcommand)]
pub enum PreferencesCommand {
    /// List a user's notification preferences: each template the user has a value for, and
    /// whether each method is off or on.
    List(PreferencesListArgs),
    /// Turn a template's notifications off for a user, for every method or for one
    /// (`--method`); prints the preferences after the change.
    Disable(PreferenceChangeArgs),
    /// Turn a template's notifications back on for a user, for every method or for one
    /// (`--method`); prints the preferences after the change.
    Enable(PreferenceChangeArgs),
}

/// `herald preferences list [--user <id>]`.
#[derive(Debug, Clone, Args)]
pub struct PreferencesListArgs {
    /// Whose preferences: a user id, or `me` (owners and user-admins may name others).
    #[arg(long, default_value = "me", value_name = "ID")]
    pub user: String,
    #[command(flatten)]
    pub connection: ServerConnection,
}

/// `herald preferences disable|enable <template id> [--method <method>] [--user <id>]`.
#[derive(Debug, Clone, Args)]
pub struct PreferenceChangeArgs {
    /// The template's id (`herald templates list` shows them).
    pub template: String,
    /// Only this delivery method (smtp, webhook or inbox); every method when left out.
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,
    /// Whose preferences: a user id, or `me` (owners and user-admins may name others).
    #[arg(long, default_value = "me", value_name = "ID")]
    pub user: String,
    #[command(flatten)]
    pub connection: ServerConnection,
}

/// `herald notifications custom <title> <message> [--user <id>]… [--role <role>]…`.
#[derive(Debug, Clone, Args)]
pub struct CustomArgs {
    /// The title (at most 120 characters).
    pub title: String,
    /// The message (at most 2000 characters).
    pub message: String,
    /// Send to this user (by id) instead of yourself; repeatable.
    #[arg(long = "user", value_name = "ID")]
    pub users: Vec<String>,
    /// Send to every holder of this role (owner, user-admin, template-admin, member);
    /// repeatable.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    #[command(flatten)]
    pub connection: ServerConnection,
}

/// `herald templates …`: runs the command, printing its result on stdout.
///
/// # Errors
/// One line saying why the server could not be asked or what it refused.
pub async fn templates(command: TemplatesCommand) -> Result<()> {
    match command {
        TemplatesCommand::List(connection) => {
            let templates = list_templates(&Client::new(&connection)?).await?;
            print!("{}", templates_table(&templates));
            Ok(())
        }
        TemplatesCommand::Digest(args) => {
            let client = Client::new(&args.connection)?;
            let body = json!({ "window": args.window });
            let (status, body) = client
                .send(
                    Method::PUT,
                    &format!("notifications/templates/{}/digest", args.template),
                    Some(&body),
                )
                .await?;
            if status == StatusCode::NOT_MODIFIED {
                println!(
                    "The digest window of template {} is unchanged.",
                    args.template
                );
                return Ok(());
            }
            let row: TemplateRow = serde_json::from_slice(&body).map_err(|err| {
                anyhow!(
                    "the server at {} answered a template Herald does not understand: {err}",
                    client.base
                )
            })?;
            match row.digest_window.as_str() {
                "" => println!("{} ({}): each event is sent at once.", row.name, row.id),
                window => println!(
                    "{} ({}): events are gathered into one message per recipient every {window}.",
                    row.name, row.id
                ),
            }
            Ok(())
        }
    }
}

/// Every template, system then custom.
async fn list_templates(client: &Client) -> Result<Vec<TemplateRow>> {
    let mut templates: Vec<TemplateRow> = Vec::new();
    for kind in ["system", "custom"] {
        let (_, body) = client
            .send(
                Method::GET,
                &format!("notifications/templates/{kind}"),
                None,
            )
            .await?;
        let rows: Vec<TemplateRow> = serde_json::from_slice(&body).map_err(|err| {
            anyhow!(
                "the server at {} answered templates Herald does not understand: {err}",
                client.base
            )
        })?;
        templates.extend(rows);
    }
    Ok(templates)
}

/// `herald preferences …`: runs the command, printing the user's preferences on stdout.
///
/// # Errors
/// One line saying why the server could not be asked or what it refused.
pub async fn preferences(command: PreferencesCommand) -> Result<()> {
    let (connection, user, change) = match command {
        PreferencesCommand::List(args) => (args.connection, args.user, None),
        PreferencesCommand::Disable(args) => {
            let change = preference_change(&args, true);
            (args.connection, args.user, Some(change))
        }
        PreferencesCommand::Enable(args) => {
            let change = preference_change(&args, false);
            (args.connection, args.user, Some(change))
        }
    };
    let client = Client::new(&connection)?;
    let path = format!("users/{user}/notifications/preferences");
    let (_, body) = match &change {
        Some(change) => client.send(Method::PUT, &path, Some(change)).await?,
        None => client.send(Method::GET, &path, None).await?,
    };
    let rows: Vec<PreferenceRow> = serde_json::from_slice(&body).map_err(|err| {
        anyhow!(
            "the server at {} answered preferences Herald does not understand: {err}",
            client.base
        )
    })?;
    let names = list_templates(&client).await?;
    print!("{}", preferences_table(&rows, &names));
    Ok(())
}

/// The `PUT` body of `herald preferences disable|enable`.
fn preference_change(args: &PreferenceChangeArgs, disabled: bool) -> Value {
    match &args.method {
        Some(method) => json!({ "method_disabled_map": { &args.template: { method: disabled } } }),
        None => json!({ "template_disabled_map": { &args.template: disabled } }),
    }
}

/// One entry of `GET /users/{id}/notifications/preferences`.
#[derive(Debug, Deserialize)]
struct PreferenceRow {
    id: String,
    disabled: bool,
    methods: std::collections::BTreeMap<String, bool>,
}

/// The preferences as an aligned table: the template's name and id, the template-wide value,
/// then what applies to each method.
fn preferences_table(rows: &[PreferenceRow], templates: &[TemplateRow]) -> String {
    let off_on = |disabled: bool| if disabled { "off" } else { "on" }.to_owned();
    let method = |row: &PreferenceRow, name: &str| {
        row.methods
            .get(name)
            .map_or_else(|| "-".to_owned(), |disabled| off_on(*disabled))
    };
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let name = templates
                .iter()
                .find(|template| template.id == row.id)
                .map_or("?", |template| template.name.as_str());
            vec![
                name.to_owned(),
                row.id.clone(),
                off_on(row.disabled),
                method(row, "smtp"),
                method(row, "webhook"),
                method(row, "inbox"),
            ]
        })
        .collect();
    aligned_table(
        &["TEMPLATE", "ID", "ALL METHODS", "SMTP", "WEBHOOK", "INBOX"],
        &lines,
    )
}

/// `herald notifications …`: runs the command, printing what happened on stdout.
///
/// # Errors
/// One line saying why the server could not be asked or what it refused.
pub async fn notifications(command: NotificationsCommand) -> Result<()> {
    match command {
        NotificationsCommand::Pause(connection) => {
            let changed = set_paused(&Client::new(&connection)?, true).await?;
            println!(
                "{}",
                if changed {
                    "notifications paused"
                } else {
                    "notifications were already paused"
                }
            );
        }
        NotificationsCommand::Resume(connection) => {
            let changed = set_paused(&Client::new(&connection)?, false).await?;
            println!(
                "{}",
                if changed {
                    "notifications resumed"
                } else {
                    "notifications were not paused"
                }
            );
        }
        NotificationsCommand::Test(connection) => {
            Client::new(&connection)?
                .send(Method::POST, "notifications/test", None)
                .await?;
            println!("test notification sent");
        }
        NotificationsCommand::Custom(args) => {
            let mut body = json!({ "content": { "title": args.title, "message": args.message } });
            let addressed = !args.users.is_empty() || !args.roles.is_empty();
            if addressed {
                body["user_ids"] = json!(args.users);
                body["roles"] = json!(args.roles);
            }
            let (_, reply) = Client::new(&args.connection)?
                .send(Method::POST, "notifications/custom", Some(&body))
                .await?;
            if addressed {
                print_custom_result(&reply)?;
            } else {
                println!("custom notification sent");
            }
        }
    }
    Ok(())
}

/// What `POST /notifications/custom` answered for a notification to others.
#[derive(Debug, Deserialize)]
struct CustomReply {
    message_ids: Vec<String>,
    skipped: Vec<CustomSkipped>,
}

#[derive(Debug, Deserialize)]
struct CustomSkipped {
    user_id: String,
    reason: String,
}

/// Prints how many messages were queued, then one line per user skipped and why.
fn print_custom_result(reply: &[u8]) -> Result<()> {
    let reply: CustomReply = serde_json::from_slice(reply)
        .map_err(|err| anyhow!("the server's answer is not understood: {err}"))?;
    println!(
        "custom notification sent: {} messages queued",
        reply.message_ids.len()
    );
    for skipped in reply.skipped {
        println!("skipped {}: {}", skipped.user_id, skipped.reason);
    }
    Ok(())
}

/// Sets the pause switch; `false` when it already was in that position (304).
async fn set_paused(client: &Client, paused: bool) -> Result<bool> {
    let body = json!({ "notifier_paused": paused });
    let (status, _) = client
        .send(Method::PUT, "notifications/settings", Some(&body))
        .await?;
    Ok(status != StatusCode::NOT_MODIFIED)
}

/// One template as `GET /notifications/templates/{kind}` lists it.
#[derive(Debug, Deserialize)]
struct TemplateRow {
    id: String,
    name: String,
    group: String,
    enabled_by_default: bool,
    /// The admin's override, `""` when the deployment default applies.
    #[serde(default)]
    method: String,
    /// The methods its events go out by now.
    #[serde(default)]
    methods: Vec<String>,
    /// The digest window, `""` when there is none.
    #[serde(default)]
    digest_window: String,
}

impl TemplateRow {
    /// The methods its events go out by, marked when they come from the deployment default.
    fn method_column(&self) -> String {
        let methods = if self.methods.is_empty() {
            "none".to_owned()
        } else {
            self.methods.join(",")
        };
        if self.method.is_empty() {
            format!("{methods} (default)")
        } else {
            methods
        }
    }
}

/// The templates as an aligned table with a header line.
fn templates_table(rows: &[TemplateRow]) -> String {
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.name.clone(),
                row.group.clone(),
                row.id.clone(),
                if row.enabled_by_default { "yes" } else { "no" }.to_owned(),
                row.method_column(),
                if row.digest_window.is_empty() {
                    "-".to_owned()
                } else {
                    row.digest_window.clone()
                },
            ]
        })
        .collect();
    aligned_table(
        &[
            "NAME",
            "GROUP",
            "ID",
            "ENABLED BY DEFAULT",
            "METHOD",
            "DIGEST",
        ],
        &lines,
    )
}

/// `header` and `lines` as columns aligned two spaces apart, one line each.
fn aligned_table(header: &[&str], lines: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for line in lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: &[&str]| {
        let mut line = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            line.push_str(cell);
            if i + 1 < cells.len() {
                let pad = width - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push(header);
    for line in lines {
        let cells: Vec<&str> = line.iter().map(String::as_str).collect();
        push(&cells);
    }
    out
}

/// The HTTP API of one server, asked with one token.
struct Client {
    http: reqwest::Client,
    /// The server's URL as given, for messages (without any password in it).
    base: Shown,
    /// `<url>/api/v2/`.
    api: Url,
    token: Secret,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.0)
            .finish_non_exhaustive()
    }
}

/// A URL for messages: without user name or password.
#[derive(Debug, Clone)]
struct Shown(String);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Client {
    fn new(connection: &ServerConnection) -> Result<Self> {
        let token = connection.token.expose().trim();
        if token.is_empty() {
            return Err(anyhow!(
                "--token: no token given (set --token or HERALD_TOKEN)"
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(anyhow!(
                "--token: the token has characters no Herald token has"
            ));
        }
        let mut base = Url::parse(connection.url.trim())
            .map_err(|err| anyhow!("--url: {:?} is not a URL: {err}", connection.url.trim()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(anyhow!(
                "--url: {:?} is not an http:// or https:// URL",
                connection.url.trim()
            ));
        }
        let _ = base.set_password(None);
        let _ = base.set_username("");
        base.set_query(None);
        base.set_fragment(None);
        // Accept the server's URL with or without the API prefix.
        let path = base.path().trim_end_matches('/').to_owned();
        let path = path.strip_suffix("/api/v2").unwrap_or(&path).to_owned();
        base.set_path(&path);
        let shown = Shown(base.as_str().trim_end_matches('/').to_owned());
        let api = Url::parse(&format!("{shown}/api/v2/")).map_err(|err| anyhow!("--url: {err}"))?;
        // reqwest is built without a bundled crypto provider; use ring unless the process
        // already chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|err| anyhow!("setting up the HTTP client: {err}"))?;
        Ok(Self {
            http,
            base: shown,
            api,
            token: Secret::new(token),
        })
    }

    /// Sends one request; a 2xx or 304 answers (status, body), anything else is the error a
    /// person reads.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let url = self
            .api
            .join(path)
            .map_err(|err| anyhow!("building the request URL: {err}"))?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.unreachable(&err))?
            .to_vec();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok((status, bytes));
        }
        Err(self.refused(status, &bytes))
    }

    /// Why the server could not be asked.
    fn unreachable(&self, err: &reqwest::Error) -> anyhow::Error {
        let base = &self.base;
        if err.is_timeout() {
            return anyhow!("the Herald server at {base} did not answer in time");
        }
        if err.is_connect() {
            return anyhow!(
                "cannot connect to the Herald server at {base}: {}; is it running, and is \
                 --url (HERALD_URL) right?",
                innermost(err)
            );
        }
        anyhow!(
            "talking to the Herald server at {base} failed: {}",
            innermost(err)
        )
    }

    /// What the server refused, from its JSON error `{"message","detail","field"?}`.
    fn refused(&self, status: StatusCode, body: &[u8]) -> anyhow::Error {
        let base = &self.base;
        let error: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let said = error.as_ref().map(ErrorBody::describe);
        match (status, said) {
            (StatusCode::UNAUTHORIZED, _) => anyhow!(
                "the server at {base} refused the token: it is invalid or expired (check --token \
                 or HERALD_TOKEN)"
            ),
            (StatusCode::FORBIDDEN, _) => anyhow!(
                "not allowed: {}",
                error
                    .as_ref()
                    .map(|e| e.detail.trim())
                    .filter(|detail| !detail.is_empty())
                    .unwrap_or("this needs a role the token's user does not have")
            ),
            (StatusCode::NOT_FOUND, _)
                if error.as_ref().is_none_or(|e| e.detail == "no such route") =>
            {
                anyhow!(
                    "the server at {base} has no such route (404); is --url the address of a \
                     Herald server?"
                )
            }
            (status, Some(said)) if status.is_client_error() => anyhow!("{said}"),
            (status, Some(said)) => anyhow!("the server at {base} answered {status}: {said}"),
            (status, None) => anyhow!(
                "the server at {base} answered {status} without a Herald error; is --url a \
                 Herald server?"
            ),
        }
    }
}

/// The API's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    message: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    field: Option<String>,
}

impl ErrorBody {
    /// `Invalid content.title. content.title: must not be empty` reads as
    /// `content.title: must not be empty`; the message alone when there is no detail.
    fn describe(&self) -> String {
        let detail = self.detail.trim();
        let mut text = match &self.field {
            Some(field) if detail.starts_with(field.as_str()) => detail.to_owned(),
            Some(field) if !detail.is_empty() => format!("{field}: {detail}"),
            Some(field) => format!("{field}: {}", self.message.trim()),
            None if detail.is_empty() => self.message.trim().to_owned(),
            None => format!("{} {detail}", self.message.trim()),
        };
        text = text.replace(['\n', '\r'], " ");
        text
    }
}

/// The deepest cause of a reqwest error ("Connection refused (os error 111)").
fn innermost(err: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = err;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn connection(url: &str) -> ServerConnection {
        ServerConnection {
            url: url.to_owned(),
            token: Secret::new("tok"),
        }
    }

    #[test]
    fn the_api_prefix_and_credentials_are_dropped_from_the_url() {
        let client = Client::new(&connection("http://u:pw@127.0.0.1:3000/api/v2/")).unwrap();
        assert_eq!(client.base.0, "http://127.0.0.1:3000");
        assert_eq!(client.api.as_str(), "http://127.0.0.1:3000/api/v2/");
        let client = Client::new(&connection("https://herald.example.com/base")).unwrap();
        assert_eq!(
            client.api.as_str(),
            "https://herald.example.com/base/api/v2/"
        );
    }

    #[test]
    fn a_url_that_is_not_http_is_refused_naming_the_option() {
        let err = Client::new(&connection("ftp://x")).unwrap_err().to_string();
        assert!(err.starts_with("--url:"), "{err}");
        let err = Client::new(&connection("nonsense"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--url:"), "{err}");
    }

    #[test]
    fn field_errors_read_as_field_and_reason() {
        let body = ErrorBody {
            message: "Invalid content.title.".into(),
            detail: "content.title: must not be empty".into(),
            field: Some("content.title".into()),
        };
        assert_eq!(body.describe(), "content.title: must not be empty");
    }

    #[test]
    fn the_table_aligns_columns_under_a_header() {
        let rows = vec![TemplateRow {
            id: "id-1".into(),
            name: "Test Notification".into(),
            group: "Notification Events".into(),
            enabled_by_default: true,
            method: String::new(),
            methods: vec!["smtp".into(), "inbox".into()],
            digest_window: "1h".into(),
        }];
        let table = templates_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("NAME"));
        assert_eq!(lines[0].find("GROUP"), lines[1].find("Notification Events"));
        assert_eq!(lines[0].find("DIGEST"), lines[1].find("1h"));
        assert!(lines[1].ends_with("smtp,inbox (default)  1h"), "{table}");
    }
}
