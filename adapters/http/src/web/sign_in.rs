//! `/sign-in` (an API token in a form), `/sign-in/link` (a one-time link) and `/sign-out`.
//!
//! Both ways in take a `next` page to go to once signed in (a page that needs a session sends
//! its own path there), kept only when it is a path on this site ([`return_path`]): anything
//! else leads to `/inbox`, so a link cannot send a user signing in to another site.
//!
//! A sign-in link arrives from another site (an email, the host application), and a
//! SameSite=Strict cookie set then is not sent on the redirects of that same navigation: the
//! link answers with a page that sets the cookie and moves on to `/inbox` by itself (a meta
//! refresh, or its link without one), a navigation of this site's own.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_application::SessionSecret;
use herald_application::web_sessions::SESSION_TTL;
use serde_json::json;

use super::{
    ApiState, Form, Page, SESSION_COOKIE, SIGN_IN_COOKIE, Session, cookie, csrf_refused,
    error_page, new_cookie, see_other, set_cookie,
};
use crate::extract::QueryPairs;

/// How long the sign-in form's CSRF cookie lasts.
const SIGN_IN_FORM_SECONDS: i64 = 3600;
/// Where signing in leads without a `next` page.
const HOME: &str = "/inbox";
/// The longest `next` kept.
const MAX_RETURN_PATH: usize = 2048;

/// `next` when it is a path on this site: it starts with one `/` (`//` starts another host's
/// URL), and has no backslash (browsers read `/\` as `//`), whitespace or control character.
pub(crate) fn return_path(next: Option<&str>) -> Option<&str> {
    let next = next?;
    let on_this_site = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= MAX_RETURN_PATH
        && !next
            .chars()
            .any(|c| c == '\\' || c.is_whitespace() || c.is_control());
    on_this_site.then_some(next)
}

/// The sign-in page's URL that comes back to `path` (a path and query on this site).
pub(crate) fn sign_in_returning_to(path: &str) -> String {
    if path == HOME {
        return "/sign-in".to_owned();
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", path)
        .finish();
    format!("/sign-in?{query}")
}

pub(crate) async fn form(
    State(api): State<ApiState>,
    headers: HeaderMap,
    query: QueryPairs,
) -> Response {
    let next = return_path(query.one("next"));
    if let Ok(Some(_)) = Session::of(&api, &headers).await {
        return see_other(next.unwrap_or(HOME));
    }
    sign_in_page(&api, StatusCode::OK, None, next)
}

/// The sign-in form with a fresh CSRF token, set as its cookie too, and the page to go to
/// next.
fn sign_in_page(
    api: &ApiState,
    status: StatusCode,
    error: Option<&str>,
    next: Option<&str>,
) -> Response {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        return Page::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in unavailable",
            "The server could not read random bytes.",
        );
    }
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let mut response = Page::render(
        status,
        "sign_in",
        &json!({
            "title": "Sign in",
            "signed_in": false,
            "form_csrf": token,
            "error": error,
            "next": next,
        }),
    );
    set_cookie(
        &mut response,
        &new_cookie(api, SIGN_IN_COOKIE, &token, SIGN_IN_FORM_SECONDS),
    );
    response
}

pub(crate) async fn with_token(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let form = Form::read(body).await?;
    let expected = cookie(&headers, SIGN_IN_COOKIE);
    match (form.get("csrf"), expected) {
        (Some(sent), Some(expected)) if !sent.is_empty() && sent == expected => {}
        _ => return Err(csrf_refused()),
    }
    let next = return_path(form.get("next"));
    let token = form.get("token").unwrap_or_default().trim();
    if token.is_empty() {
        return Ok(sign_in_page(
            &api,
            StatusCode::BAD_REQUEST,
            Some("token: enter an API token"),
            next,
        ));
    }
    let session = api
        .services
        .web_sessions()
        .sign_in_with_token(token)
        .await
        .map_err(|err| error_page(&err.into()))?;
    let Some(session) = session else {
        return Ok(sign_in_page(
            &api,
            StatusCode::UNAUTHORIZED,
            Some("token: this token is invalid or revoked, or its account is suspended"),
            next,
        ));
    };
    let mut response = see_other(next.unwrap_or(HOME));
    set_session_cookie(&api, &mut response, &session);
    Ok(response)
}

pub(crate) async fn with_link(
    State(api): State<ApiState>,
    query: QueryPairs,
) -> Result<Response, Response> {
    let refused = || {
        Page::message(
            StatusCode::UNAUTHORIZED,
            "Sign-in link not valid",
            "This sign-in link was already used, has expired (links last 10 minutes), or is \
             incomplete. Ask for a new one, or sign in with an API token.",
        )
    };
    let Some(link) = query.one("token") else {
        return Err(refused());
    };
    let session = api
        .services
        .web_sessions()
        .redeem_link(link)
        .await
        .map_err(|err| error_page(&err.into()))?
        .ok_or_else(refused)?;
    let next = return_path(query.one("next")).unwrap_or(HOME);
    let mut response = Page::render(StatusCode::OK, "signed_in", &json!({ "next": next }));
    set_session_cookie(&api, &mut response, &session);
    Ok(response)
}

pub(crate) async fn sign_out(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let (session, _) = Session::form(&api, &headers, body).await?;
    api.services
        .web_sessions()
        .sign_out(&session.secret)
        .await
        .map_err(|err| error_page(&err.into()))?;
    let mut response = see_other("/sign-in");
    set_cookie(
        &mut response,
        &format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

fn set_session_cookie(api: &ApiState, response: &mut Response, session: &SessionSecret) {
    set_cookie(
        response,
        &new_cookie(
            api,
            SESSION_COOKIE,
            session.expose(),
            SESSION_TTL.num_seconds(),
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_kept_as_the_next_page() {
        for kept in [
            "/settings/notifications",
            "/settings/notifications?disabled=f517da0b-cdc9-410f-ab89-a86107c420ed",
            "/inbox?filter=unread",
        ] {
            assert_eq!(return_path(Some(kept)), Some(kept));
        }
        for refused in [
            "https://elsewhere.example/",
            "//elsewhere.example/",
            "/\\elsewhere.example/",
            "/a\\b",
            "settings/notifications",
            "javascript:alert(1)",
            "/a b",
            "/a\nLocation: x",
            "",
        ] {
            assert_eq!(return_path(Some(refused)), None, "{refused:?}");
        }
        assert_eq!(return_path(Some(&format!("/{}", "a".repeat(3000)))), None);
        assert_eq!(return_path(None), None);
    }

    #[test]
    fn the_sign_in_url_carries_the_page_to_come_back_to() {
        assert_eq!(
            sign_in_returning_to("/settings/notifications?disabled=x&y=1"),
            "/sign-in?next=%2Fsettings%2Fnotifications%3Fdisabled%3Dx%26y%3D1"
        );
        assert_eq!(sign_in_returning_to("/inbox"), "/sign-in");
    }
}
