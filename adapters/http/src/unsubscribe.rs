//! `/notifications/unsubscribe/{token}`: the signed one-click links of emails (RFC 8058).
//!
//! `GET` (a person following the link) shows a confirmation page with a form; `POST` (the
//! form, or a mail client's one-click `List-Unsubscribe=One-Click`) opts the user out of the
//! template's emails only: the link came by email, and other channels stay as they were
//! (DESIGN §10.2). No bearer token: the signed link is the credential. Security messages
//! (One-Time Passcode) cannot be turned off; a link to one (from an email sent before they
//! lost their unsubscribe headers) says so.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_domain::{Method, is_security};

use crate::extract::PathText;
use crate::{ApiError, State as ApiState};

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\
         <body style=\"font-family: sans-serif; max-width: 36em; margin: 3em auto;\">\
         <h1>{title}</h1>\n{body}\n</body></html>\n",
        title = escape(title),
    );
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        page,
    )
        .into_response()
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn invalid_link() -> Response {
    html(
        StatusCode::BAD_REQUEST,
        "Invalid unsubscribe link",
        "<p>This unsubscribe link is not valid. Copy the whole link from the email, or change \
         your notification settings instead.</p>",
    )
}

pub(crate) async fn page(
    State(api): State<ApiState>,
    PathText(token): PathText,
) -> Result<Response, ApiError> {
    let Some((_user, template)) = api.services.unsubscribe_key().verify(&token) else {
        return Ok(invalid_link());
    };
    let name = match api.services.templates().get(template).await {
        Ok(view) => view.template.name,
        Err(herald_application::Error::NotFound(_)) => return Ok(invalid_link()),
        Err(err) => return Err(err.into()),
    };
    if is_security(template) {
        return Ok(security_message(&name));
    }
    // The form posts back to this same URL (relative, so it works behind any proxy).
    let body = format!(
        "<p>Stop receiving <strong>{name}</strong> emails? Other channels (the inbox, \
         webhooks) are unchanged.</p>\
         <form method=\"post\" action=\"\">\
         <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Unsubscribe</button></form>",
        name = escape(&name),
    );
    Ok(html(StatusCode::OK, "Unsubscribe", &body))
}

pub(crate) async fn one_click(
    State(api): State<ApiState>,
    PathText(token): PathText,
) -> Result<Response, ApiError> {
    let Some((user, template)) = api.services.unsubscribe_key().verify(&token) else {
        return Err(ApiError::invalid("token", "not a valid unsubscribe link"));
    };
    let name = api.services.templates().get(template).await?.template.name;
    if is_security(template) {
        return Ok(security_message(&name));
    }
    api.services
        .preferences()
        .disable_method(user, template, Method::Smtp)
        .await?;
    tracing::info!(user_id = %user, template_id = %template, "unsubscribed from emails by one-click link");
    Ok(html(
        StatusCode::OK,
        "Unsubscribed",
        &format!(
            "<p>You will no longer receive emails for <strong>{}</strong>; other channels \
             are unchanged.</p>",
            escape(&name)
        ),
    ))
}

/// The page for a link to a security message, which cannot be turned off.
fn security_message(name: &str) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        "Security message",
        &format!(
            "<p><strong>{}</strong> is a security message: security messages cannot be \
             disabled.</p>",
            escape(name)
        ),
    )
}
