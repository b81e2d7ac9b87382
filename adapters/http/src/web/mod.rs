//! The web pages (DESIGN §10.6), served by `herald server` on the API's origin: `/sign-in`,
//! `/sign-out`, `/inbox`, `/settings/notifications` and the owners' `/deployment/notifications`,
//! rendered on the server from Handlebars templates compiled into the binary (`templates/`),
//! with their stylesheet and the inbox's small script embedded too (`assets/`, served under
//! `/assets/`). The pages work without JavaScript; the script only adds new notifications live.
//! [`embed`] is the bell other sites' pages embed (`/assets/herald-inbox.js`).
//!
//! Sessions ([`herald_application::WebSessions`]): signing in with an API token (the
//! `/sign-in` form) or a one-time link ([`sign_in_link_url`], minted by
//! `POST /api/v2/users/{id}/sign-in-links`) sets the [`SESSION_COOKIE`]: HttpOnly,
//! SameSite=Strict, `Secure` when the access URL is https. Every form carries a CSRF token
//! (`csrf`): the session's own ([`herald_application::SessionSecret::csrf_token`]), or for the
//! sign-in form, which comes before any session, one that must match the [`SIGN_IN_COOKIE`]
//! (a double-submitted cookie). A form posted without it is refused with a 403 page.
//!
//! Pages answer in HTML, errors included; a page that needs a session redirects to
//! `/sign-in` without one, which comes back to the page once signed in.

mod deployment;
mod embed;
mod inbox;
mod page;
mod settings;
mod sign_in;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use herald_application::SessionSecret;
use herald_domain::User;

use crate::{Api, MAX_BODY_BYTES, State};

pub(crate) use page::Page;

/// The session cookie: the session's secret.
pub const SESSION_COOKIE: &str = "herald_session";
/// The sign-in form's CSRF cookie, set with the form and compared with its `csrf` field.
pub const SIGN_IN_COOKIE: &str = "herald_sign_in";
/// Where a sign-in link leads: `?token=` carries the link's secret.
pub const SIGN_IN_LINK_PATH: &str = "/sign-in/link";

/// The URL of a sign-in link on `access_url`.
pub fn sign_in_link_url(access_url: &str, link: &SessionSecret) -> String {
    format!(
        "{}{SIGN_IN_LINK_PATH}?token={}",
        access_url.trim_end_matches('/'),
        link.expose()
    )
}

/// The pages' routes.
pub(crate) fn add(router: Router<State>) -> Router<State> {
    router
        .route("/sign-in", get(sign_in::form).post(sign_in::with_token))
        .route(SIGN_IN_LINK_PATH, get(sign_in::with_link))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/inbox", get(inbox::page))
        .route("/inbox/read-all", post(inbox::mark_all_read))
        .route("/inbox/{id}/read", post(inbox::set_read))
        .route("/inbox/events", get(inbox::events))
        .route(deployment::PATH, get(deployment::page))
        .route(
            "/deployment/notifications/templates/{id}/method",
            post(deployment::set_method),
        )
        .route(
            "/deployment/notifications/pause",
            post(deployment::set_paused),
        )
        .route(
            "/deployment/notifications/test",
            post(deployment::send_test),
        )
        .route(
            settings::SETTINGS_PATH,
            get(settings::page).post(settings::change),
        )
        .route("/assets/web.css", get(stylesheet))
        .route("/assets/inbox.js", get(script))
        .merge(embed::add(Router::new()))
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/web.css"))
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/inbox.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The signed-in user of a request and their session.
#[derive(Debug)]
pub(crate) struct Session {
    pub user: User,
    pub secret: SessionSecret,
}

impl Session {
    /// The request's live session, if it has one.
    async fn of(api: &Api, headers: &HeaderMap) -> Result<Option<Self>, Response> {
        let Some(secret) = cookie(headers, SESSION_COOKIE).and_then(SessionSecret::parse) else {
            return Ok(None);
        };
        match api.services.web_sessions().authenticate(&secret).await {
            Ok(Some(user)) => Ok(Some(Self { user, secret })),
            Ok(None) => Ok(None),
            Err(err) => Err(error_page(&err.into())),
        }
    }

    /// The request's live session, or a redirect to the sign-in page (which then leads to
    /// the inbox).
    pub(crate) async fn require(api: &Api, headers: &HeaderMap) -> Result<Self, Response> {
        Self::require_returning(api, headers, "/inbox").await
    }

    /// The request's live session, or a redirect to the sign-in page that comes back to
    /// `path` (this request's path and query) once signed in.
    pub(crate) async fn require_returning(
        api: &Api,
        headers: &HeaderMap,
        path: &str,
    ) -> Result<Self, Response> {
        Self::of(api, headers).await?.ok_or_else(|| {
            let mut response = see_other(&sign_in::sign_in_returning_to(path));
            // A stale cookie is dropped rather than sent again with every request.
            if cookie(headers, SESSION_COOKIE).is_some() {
                set_cookie(&mut response, &clear_cookie(SESSION_COOKIE));
            }
            response
        })
    }

    /// The session, and the fields of a form it posted, refused with a 403 page unless the
    /// form carries the session's CSRF token.
    pub(crate) async fn form(
        api: &Api,
        headers: &HeaderMap,
        body: axum::body::Body,
    ) -> Result<(Self, Form), Response> {
        let session = Self::require(api, headers).await?;
        let form = Form::read(body).await?;
        if !form
            .get("csrf")
            .is_some_and(|token| session.secret.csrf_matches(token))
        {
            return Err(csrf_refused());
        }
        Ok((session, form))
    }
}

/// A posted form's fields.
#[derive(Debug, Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    async fn read(body: axum::body::Body) -> Result<Self, Response> {
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                Page::message(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Form too large",
                    "The form sent more than the server accepts.",
                )
            })?;
        Ok(Self(
            url::form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The 403 page of a form posted without its CSRF token.
pub(crate) fn csrf_refused() -> Response {
    Page::message(
        StatusCode::FORBIDDEN,
        "Form refused",
        "This form was sent without its security token (csrf), so it may not have come from \
         this site. Go back, reload the page and try again.",
    )
}

/// An application error as a page with its status.
pub(crate) fn error_page(err: &crate::ApiError) -> Response {
    if err.status.is_server_error() {
        tracing::warn!(status = %err.status, detail = %err.detail, "web: a page failed");
    }
    Page::message(err.status, &err.message, &err.detail)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the whole site, `Secure` on https.
pub(crate) fn new_cookie(api: &Api, name: &str, value: &str, max_age_seconds: i64) -> String {
    let secure = api.services.access_url().starts_with("https://");
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{}",
        if secure { "; Secure" } else { "" }
    )
}

fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

pub(crate) fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// 303 to `location` (after a form: the browser follows with a GET).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The API's state type, for handlers.
pub(crate) type ApiState = Arc<Api>;
