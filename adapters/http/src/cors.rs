//! Cross-origin access for the embeddable bell (`<herald-inbox>`, [`crate::web`]): a host page
//! on another origin loads `/assets/herald-inbox.js` and calls the caller's inbox routes
//! (`/api/v2/notifications/inbox…`, its live stream included) with a bearer token.
//!
//! Only the origins an operator lists ([`AllowedOrigins`], `--web-allowed-origins`) are let in,
//! and only on those routes ([`is_embeddable`]): a request from a listed origin gets
//! `Access-Control-Allow-Origin` naming it, and its preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) is answered 204 with the methods and headers the bell
//! sends. An unlisted origin gets no CORS header at all, so the browser keeps the answer from
//! its page; with no origin listed (the default) nothing here runs. Every answer of those routes
//! carries `Vary: Origin` once an origin is listed, so a cache never hands one origin's answer
//! to another.
//!
//! No credentials are allowed (`Access-Control-Allow-Credentials` is never sent): the bell
//! authenticates with `Authorization: Bearer`, never with the session cookie, which is
//! SameSite=Strict and stays on Herald's own origin.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::API_PREFIX;

/// Where the bell's script is served.
pub const EMBED_SCRIPT_PATH: &str = "/assets/herald-inbox.js";
/// The inbox routes the bell calls, under [`API_PREFIX`].
const INBOX_ROUTES: &str = "/notifications/inbox";
/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE_SECONDS: &str = "600";

/// The origins (`scheme://host[:port]`) whose pages may embed the bell; none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Arc<[String]>);

/// A value that is not an origin, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOrigin {
    pub value: String,
    pub reason: &'static str,
}

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an origin: {} (expected scheme://host[:port], e.g. https://app.example.com)",
            self.value, self.reason
        )
    }
}

impl std::error::Error for InvalidOrigin {}

impl AllowedOrigins {
    /// Parses each origin; blank values are skipped. Origins are kept as browsers send them in
    /// `Origin` (scheme and host lowercased, a default port left out).
    ///
    /// # Errors
    /// [`InvalidOrigin`] for the first value that is not an http or https origin: a path, query,
    /// fragment or user name, another scheme, no host, or `*`.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidOrigin> {
        let mut origins: Vec<String> = Vec::new();
        for value in values.into_iter().map(str::trim).filter(|v| !v.is_empty()) {
            let origin = parse_origin(value)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self(origins.into()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The origins, as compared with `Origin` headers.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        origin
            .to_str()
            .is_ok_and(|origin| self.0.iter().any(|allowed| allowed == origin))
    }
}

fn parse_origin(value: &str) -> Result<String, InvalidOrigin> {
    let invalid = |reason| InvalidOrigin {
        value: value.to_owned(),
        reason,
    };
    if value == "*" {
        return Err(invalid("list each origin; a wildcard is not accepted"));
    }
    let url = url::Url::parse(value).map_err(|_| invalid("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host().is_none() {
        return Err(invalid("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it names a user"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("an origin has no path, query or fragment"));
    }
    Ok(url.origin().ascii_serialization())
}

/// Whether `path` is one of the routes the bell uses: its script and the caller's inbox routes.
pub fn is_embeddable(path: &str) -> bool {
    if path == EMBED_SCRIPT_PATH {
        return true;
    }
    path.strip_prefix(API_PREFIX)
        .and_then(|rest| rest.strip_prefix(INBOX_ROUTES))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The middleware: CORS headers on the embeddable routes for the listed origins.
pub(crate) async fn headers(
    State(origins): State<AllowedOrigins>,
    request: Request,
    next: Next,
) -> Response {
    if origins.is_empty() || !is_embeddable(request.uri().path()) {
        return next.run(request).await;
    }
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .filter(|origin| origins.allows(origin))
        .cloned();
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if allowed.is_some() && preflight {
        preflight_answer()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

/// What a listed origin's page may send: the inbox routes' methods, a bearer token and JSON.
fn preflight_answer() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, PUT"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            ),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECONDS),
            ),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn origins_are_kept_as_browsers_send_them() {
        let origins = AllowedOrigins::parse([
            "https://App.Example.com",
            " http://localhost:8080 ",
            "https://app.example.com:443/",
            "",
        ])
        .unwrap();
        assert_eq!(
            origins.iter().collect::<Vec<_>>(),
            ["https://app.example.com", "http://localhost:8080"]
        );
    }

    #[test]
    fn values_that_are_not_origins_are_refused_with_the_reason() {
        for (value, reason) in [
            ("https://app.example.com/inbox", "no path"),
            ("https://app.example.com?x=1", "no path"),
            ("ftp://app.example.com", "http or https"),
            ("app.example.com", "not a URL"),
            ("https://me@app.example.com", "names a user"),
            ("*", "wildcard"),
        ] {
            let err = AllowedOrigins::parse([value]).unwrap_err();
            assert!(err.to_string().contains(reason), "{value}: {err}");
            assert!(err.to_string().contains(value), "{value}: {err}");
        }
    }

    #[test]
    fn only_the_bells_routes_are_embeddable() {
        assert!(is_embeddable("/assets/herald-inbox.js"));
        assert!(is_embeddable("/api/v2/notifications/inbox"));
        assert!(is_embeddable("/api/v2/notifications/inbox/watch"));
        assert!(is_embeddable("/api/v2/notifications/inbox/x/read-status"));
        assert!(!is_embeddable("/api/v2/notifications/inboxes"));
        assert!(!is_embeddable("/api/v2/users/me"));
        assert!(!is_embeddable("/inbox"));
        assert!(!is_embeddable("/assets/inbox.js"));
    }
}
