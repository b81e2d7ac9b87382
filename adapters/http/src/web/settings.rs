//! `/settings/notifications`: what the signed-in user receives of every template, grouped as
//! the catalogue groups them, with a switch per template (every method at once) and one per
//! method the template goes out by on this deployment (DESIGN §10.2: the method's row, else the
//! all-methods row, else the default). Each switch is a small form of its own, so the page
//! works without JavaScript; a security message (One-Time Passcode) is shown always on, with
//! no switch.
//!
//! `?disabled=<template id>` is where an email's "Stop receiving emails like this" link leads:
//! the page highlights that template and asks once to turn it off for every method (the
//! reference's link turns the template off; here a confirmation comes first, since mail
//! scanners follow links).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use herald_application::{Error, PreferenceUpdate, TemplateSetting};
use herald_domain::{Method, TemplateId};
use serde_json::{Value, json};

use super::{ApiState, Page, Session, error_page, see_other};
use crate::extract::QueryPairs;

/// The page's path; emails link to it on the access URL.
pub(crate) const SETTINGS_PATH: &str = "/settings/notifications";

/// What the page says above the list.
#[derive(Debug)]
enum Notice<'a> {
    /// A `?disabled=` link to confirm.
    Confirm(&'a TemplateSetting),
    /// Information (`role="status"`).
    Status(String),
    /// A switch saved: said beside it, where the page opens after its form.
    Saved(String),
    /// Something the link or form got wrong (`role="alert"`).
    Error(String),
}

pub(crate) async fn page(
    State(api): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    query: QueryPairs,
) -> Result<Response, Response> {
    let here = uri
        .path_and_query()
        .map_or(SETTINGS_PATH, |path| path.as_str());
    let session = Session::require_returning(&api, &headers, here).await?;
    let settings = api
        .services
        .preferences()
        .settings(session.user.id)
        .await
        .map_err(|err| error_page(&err.into()))?;
    let find = |raw: &str| {
        let id: TemplateId = raw.parse().ok()?;
        settings.iter().find(|setting| setting.template.id == id)
    };
    let (status, highlighted, notice) = match (query.one("disabled"), query.one("saved")) {
        (Some(raw), _) => match find(raw) {
            None => (
                StatusCode::BAD_REQUEST,
                None,
                Some(Notice::Error(format!(
                    "disabled: {raw:?} is not the id of a notification; nothing was turned \
                     off. The list below shows every notification you can turn off."
                ))),
            ),
            Some(setting) if setting.template.is_security() => (
                StatusCode::BAD_REQUEST,
                Some(setting.template.id),
                Some(Notice::Error(format!(
                    "disabled: “{}” is a security message and cannot be turned off.",
                    setting.template.name
                ))),
            ),
            Some(setting) if !receives_any(&api, setting) => (
                StatusCode::OK,
                Some(setting.template.id),
                Some(Notice::Status(format!(
                    "“{}” is already turned off.",
                    setting.template.name
                ))),
            ),
            Some(setting) => (
                StatusCode::OK,
                Some(setting.template.id),
                Some(Notice::Confirm(setting)),
            ),
        },
        (None, Some(raw)) => match find(raw) {
            Some(setting) => (
                StatusCode::OK,
                Some(setting.template.id),
                Some(Notice::Saved(saved(&api, setting))),
            ),
            None => (StatusCode::OK, None, None),
        },
        (None, None) => (StatusCode::OK, None, None),
    };
    let confirm = match &notice {
        Some(Notice::Confirm(setting)) => Some(json!({
            "id": setting.template.id.to_string(),
            "name": setting.template.name,
            "methods": method_names(&api, setting),
        })),
        _ => None,
    };
    let (status_text, error_text, saved_text) = match notice {
        Some(Notice::Status(text)) => (Some(text), None, None),
        Some(Notice::Error(text)) => (None, Some(text), None),
        Some(Notice::Saved(text)) => (None, None, Some(text)),
        _ => (None, None, None),
    };
    Ok(Page::render(
        status,
        "settings",
        &json!({
            "title": "Notification settings",
            "signed_in": true,
            "owner": session.user.roles.contains(&herald_domain::Role::Owner),
            "user_name": super::inbox::display_name(&session),
            "csrf": session.secret.csrf_token(),
            "confirm": confirm,
            "status": status_text,
            "error": error_text,
            "groups": groups(&api, &settings, highlighted, saved_text.as_deref()),
        }),
    ))
}

/// A switch's form: `template`, `method` (`all` or a method's name) and `disabled`
/// (`true`/`false`), with the session's CSRF token.
pub(crate) async fn change(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let (session, form) = Session::form(&api, &headers, body).await?;
    let invalid = |field: &str, reason: String| {
        Page::message(
            StatusCode::BAD_REQUEST,
            &format!("Invalid {field}"),
            &format!("{field}: {reason}"),
        )
    };
    let raw = form.get("template").unwrap_or_default();
    let template: TemplateId = raw
        .parse()
        .map_err(|_| invalid("template", format!("{raw:?} is not a template id")))?;
    let disabled = match form.get("disabled") {
        Some("true") => true,
        Some("false") => false,
        _ => return Err(invalid("disabled", "must be true or false".to_owned())),
    };
    let mut update = PreferenceUpdate::default();
    match form.get("method") {
        Some("all") => {
            update.templates.insert(template, disabled);
        }
        Some(raw) => {
            let method: Method = raw.parse().map_err(|_| {
                invalid(
                    "method",
                    format!("{raw:?} is not all, smtp, webhook or inbox"),
                )
            })?;
            update
                .methods
                .insert(template, [(method, disabled)].into_iter().collect());
        }
        None => {
            return Err(invalid(
                "method",
                "must be all, smtp, webhook or inbox".to_owned(),
            ));
        }
    }
    api.services
        .preferences()
        .update(session.user.id, update)
        .await
        .map_err(|err| match err {
            // The use case names the API's fields; the form's is `template`.
            Error::Invalid { reason, .. } => invalid("template", reason),
            err => error_page(&err.into()),
        })?;
    Ok(see_other(&format!(
        "{SETTINGS_PATH}?saved={template}#template-{template}"
    )))
}

/// The methods a template is shown with: those its events go out by on this deployment.
fn shown_methods(api: &ApiState, setting: &TemplateSetting) -> Vec<Method> {
    api.services.delivery().methods_for(&setting.template)
}

/// Whether the user receives the template by any method it goes out by (by any method at all
/// when the deployment delivers it by none).
fn receives_any(api: &ApiState, setting: &TemplateSetting) -> bool {
    let methods = shown_methods(api, setting);
    if methods.is_empty() {
        return setting.receives.values().any(|on| *on);
    }
    methods
        .iter()
        .any(|method| setting.receives.get(method).copied().unwrap_or(true))
}

/// What the page says after a switch was saved.
fn saved(api: &ApiState, setting: &TemplateSetting) -> String {
    if receives_any(api, setting) {
        format!("Saved your settings for “{}”.", setting.template.name)
    } else {
        format!(
            "“{}” is turned off: you will no longer receive it.",
            setting.template.name
        )
    }
}

fn method_label(method: Method) -> &'static str {
    match method {
        Method::Smtp => "Email",
        Method::Webhook => "Webhook",
        Method::Inbox => "Inbox",
    }
}

/// "email and inbox": the methods a template goes out by, in words.
fn method_names(api: &ApiState, setting: &TemplateSetting) -> String {
    let names: Vec<String> = shown_methods(api, setting)
        .into_iter()
        .map(|method| method_label(method).to_lowercase())
        .collect();
    match names.as_slice() {
        [] => "every method".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The templates by group, in the order the use case gives them; the highlighted one with
/// `note`.
fn groups(
    api: &ApiState,
    settings: &[TemplateSetting],
    highlighted: Option<TemplateId>,
    note: Option<&str>,
) -> Value {
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for setting in settings {
        let note = (highlighted == Some(setting.template.id)).then_some(note);
        let item = template_item(api, setting, note);
        match groups.last_mut() {
            Some((group, items)) if *group == setting.template.group => items.push(item),
            _ => groups.push((setting.template.group.clone(), vec![item])),
        }
    }
    Value::Array(
        groups
            .into_iter()
            .map(|(name, templates)| json!({ "name": name, "templates": templates }))
            .collect(),
    )
}

/// What the template shows of one notification template: highlighted when `note` is `Some`,
/// with its text if any.
fn template_item(api: &ApiState, setting: &TemplateSetting, note: Option<Option<&str>>) -> Value {
    let template = &setting.template;
    let methods: Vec<Value> = shown_methods(api, setting)
        .into_iter()
        .map(|method| {
            let on = setting.receives.get(&method).copied().unwrap_or(true);
            json!({
                "method": method.as_str(),
                "label": method_label(method),
                "on": on,
            })
        })
        .collect();
    json!({
        "id": template.id.to_string(),
        "name": template.name,
        "security": template.is_security(),
        "highlighted": note.is_some(),
        "note": note.flatten(),
        "on": receives_any(api, setting),
        "methods": methods,
    })
}
