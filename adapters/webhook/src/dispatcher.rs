use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{Clock, Delivery, DeliveryError, Dispatcher, DispatcherSetting};
use herald_domain::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::{WebhookFormat, WebhookSecret};

/// How long an idle connection to the receiver is kept for the next delivery.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(90);

/// The HTTP client webhooks go out through: every request bounded by `timeout` (connecting
/// included, at most 10 s of it), redirects not followed, connections pooled.
///
/// The pool keeps every connection it opened until it has been idle for
/// [`IDLE_CONNECTION_TIMEOUT`]: the notifier sends a whole lease at once, so a cap below the
/// lease count would close the connections beyond it after each batch and open them again for
/// the next, spending CPU on connecting that a kept connection does not.
///
/// # Errors
/// When the client cannot be built (no TLS provider could be set up).
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    // reqwest is built without a bundled crypto provider; use ring unless the host installed
    // one already (then `install_default` fails harmlessly).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
        .build()
}

/// How the webhook dispatcher reaches its receiver.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `--notifications-webhook-endpoint`, as configured. An unusable endpoint fails every
    /// message permanently (start-up validation should have refused it already).
    pub endpoint: String,
    /// `--notifications-webhook-secret`: sign requests per Standard Webhooks when set.
    pub secret: Option<WebhookSecret>,
    /// Longest a request may take, connecting included (the dispatch timeout).
    pub timeout: Duration,
    /// `--notifications-webhook-format`: the shape of the body (Herald's, Slack's or Teams').
    pub format: WebhookFormat,
}

/// Delivers messages as JSON `POST`s over one pooled HTTP client.
#[derive(Debug, Clone)]
pub struct WebhookDispatcher {
    client: reqwest::Client,
    endpoint: Result<Url, String>,
    secret: Option<WebhookSecret>,
    format: WebhookFormat,
    clock: Arc<dyn Clock>,
}

impl WebhookDispatcher {
    /// # Errors
    /// A description when the HTTP client cannot be built (no TLS provider could be set up).
    pub fn new(config: WebhookConfig, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let client = client(config.timeout)
            .map_err(|err| format!("could not build the webhook HTTP client: {err}"))?;
        Ok(Self {
            client,
            endpoint: parse_endpoint(&config.endpoint),
            secret: config.secret,
            format: config.format,
            clock,
        })
    }
}

/// An endpoint must be an absolute http(s) URL.
fn parse_endpoint(endpoint: &str) -> Result<Url, String> {
    let url = Url::parse(endpoint.trim())
        .map_err(|err| format!("the webhook endpoint {endpoint:?} is not a URL: {err}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err(format!(
            "the webhook endpoint {endpoint:?} must be an http or https URL"
        )),
    }
}

/// The endpoint as an operator may see it: its origin only, since a path or query often holds
/// a token (a Slack or Teams incoming-webhook URL is its own secret).
fn shown_endpoint(url: &Url) -> String {
    let origin = url.origin().ascii_serialization();
    if url.path() == "/" && url.query().is_none() {
        origin
    } else {
        format!("{origin}/… (path hidden)")
    }
}

#[async_trait]
impl Dispatcher for WebhookDispatcher {
    fn method(&self) -> Method {
        Method::Webhook
    }

    fn settings(&self) -> Vec<DispatcherSetting> {
        vec![
            DispatcherSetting::new(
                "Endpoint",
                match &self.endpoint {
                    Ok(url) => shown_endpoint(url),
                    Err(_) => "invalid (see the logs)".to_owned(),
                },
            ),
            DispatcherSetting::secret("Signing secret", self.secret.is_some()),
            DispatcherSetting::new("Format", self.format.to_string()),
        ]
    }

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let endpoint = self.endpoint.clone().map_err(DeliveryError::permanent)?;
        let body = self.format.body(delivery).map_err(|err| {
            DeliveryError::permanent(format!("could not encode the webhook body: {err}"))
        })?;
        let id = delivery.message_id.to_string();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        insert(&mut headers, "x-message-id", &id);
        if let Some(secret) = &self.secret {
            let timestamp = self.clock.now().timestamp();
            insert(&mut headers, "webhook-id", &id);
            insert(&mut headers, "webhook-timestamp", &timestamp.to_string());
            insert(
                &mut headers,
                "webhook-signature",
                &secret.sign(&id, timestamp, &body),
            );
        }

        let response = self
            .client
            .post(endpoint)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|err| DeliveryError::retryable(describe_send_error(&err)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = retry_after(response.headers(), self.clock.now());
        let reason = match answer_text(response).await {
            Some(words) => format!("webhook receiver answered {status}: {words}"),
            None => format!("webhook receiver answered {status}"),
        };
        if is_retryable(status) {
            Err(DeliveryError {
                reason,
                retryable: true,
                retry_after,
            })
        } else {
            Err(DeliveryError::permanent(reason))
        }
    }
}

/// The most of a failed answer's body kept in the failure's reason (characters).
pub const MAX_ANSWER_CHARS: usize = 200;

/// The start of a failed answer's body, in the receiver's own words, on one line: its
/// whitespace runs and control characters made single spaces, at most [`MAX_ANSWER_CHARS`]
/// characters (then `…`). Only that much is read. `None` when it is empty or unreadable.
async fn answer_text(mut response: reqwest::Response) -> Option<String> {
    // UTF-8 takes at most 4 bytes a character.
    const MAX_BYTES: usize = MAX_ANSWER_CHARS * 4;
    let mut bytes = Vec::new();
    while bytes.len() < MAX_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let cut = bytes.len() > MAX_BYTES;
    bytes.truncate(MAX_BYTES);
    let text = String::from_utf8_lossy(&bytes);
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect();
    let line = words.join(" ");
    if line.is_empty() {
        return None;
    }
    let mut kept: String = line.chars().take(MAX_ANSWER_CHARS).collect();
    if cut || kept.len() < line.len() {
        kept.push('…');
    }
    Some(kept)
}

/// Header values here are ids, numbers and base64: always valid.
fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// 408, 425, 429 and 5xx may clear; other non-2xx answers will not.
fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429) || status.is_server_error()
}

/// The latest retry time a receiver's `Retry-After` can ask for, from now (DESIGN §10.3): a
/// receiver cannot park a message past the retention, nor a message overflow the clock.
pub const MAX_RETRY_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// `Retry-After` as delay seconds or an HTTP date, at most [`MAX_RETRY_AFTER`] from `now`.
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let asked = if let Ok(seconds) = value.parse::<u64>() {
        let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
        now + chrono::TimeDelta::try_seconds(seconds).unwrap_or(MAX_RETRY_AFTER)
    } else {
        DateTime::parse_from_rfc2822(value)
            .ok()?
            .with_timezone(&Utc)
    };
    Some(asked.min(now + MAX_RETRY_AFTER))
}

fn describe_send_error(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "webhook request timed out".to_owned()
    } else if err.is_connect() {
        format!(
            "could not connect to the webhook receiver: {}",
            root_cause(err)
        )
    } else {
        format!("webhook request failed: {}", root_cause(err))
    }
}

/// The innermost error, which says what actually happened (refused, reset, DNS…).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_endpoint_keeps_its_path_and_query_hidden() {
        let url = |raw| Url::parse(raw).unwrap();
        assert_eq!(
            shown_endpoint(&url("https://hooks.slack.com/services/T0/B0/s3cr3t")),
            "https://hooks.slack.com/… (path hidden)"
        );
        assert_eq!(
            shown_endpoint(&url("http://receiver:8080/?token=s3cr3t")),
            "http://receiver:8080/… (path hidden)"
        );
        assert_eq!(
            shown_endpoint(&url("https://receiver.example")),
            "https://receiver.example"
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(
            retry_after(&headers, now),
            Some(now + chrono::Duration::seconds(120))
        );
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sat, 28 Nov 2026 10:00:00 GMT"),
        );
        assert_eq!(
            retry_after(&headers, now),
            Some(now + chrono::Duration::hours(1))
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn retry_after_is_capped_at_a_day() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut headers = HeaderMap::new();
        for far in [
            "86401",
            "31536000",
            "18446744073709551615",
            "Fri, 31 Dec 2100 23:59:59 GMT",
        ] {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(far));
            assert_eq!(
                retry_after(&headers, now),
                Some(now + MAX_RETRY_AFTER),
                "{far}"
            );
        }
        headers.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&headers, now), Some(now + MAX_RETRY_AFTER));
    }

    #[test]
    fn status_classification_follows_the_design() {
        for retryable in [408, 425, 429, 500, 502, 503, 504] {
            assert!(
                is_retryable(StatusCode::from_u16(retryable).unwrap()),
                "{retryable}"
            );
        }
        for permanent in [300, 301, 400, 401, 403, 404, 410, 422] {
            assert!(
                !is_retryable(StatusCode::from_u16(permanent).unwrap()),
                "{permanent}"
            );
        }
    }

    #[test]
    fn endpoints_must_be_absolute_http_urls() {
        assert!(parse_endpoint("https://hooks.example.com/herald").is_ok());
        assert!(parse_endpoint("http://127.0.0.1:9000").is_ok());
        for bad in [
            "",
            "not a url",
            "/relative",
            "ftp://x.example",
            "mailto:a@b.c",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }
}
