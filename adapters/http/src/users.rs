//! `/users/…`: the standalone directory, the caller's own entry, and tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_application::UserInput;
use herald_domain::{Role, User, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::json;
use crate::extract::{Caller, JsonBody, PathId, UserRef};
use crate::{ApiError, State as ApiState, vocabulary};

/// Who manages the directory.
const USER_ADMINS: &[Role] = &[Role::Owner, Role::UserAdmin];

/// A directory user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub(crate) struct UserJson {
    #[schema(value_type = uuid::Uuid)]
    id: UserId,
    email: String,
    username: String,
    name: String,
    #[schema(schema_with = vocabulary::roles)]
    roles: Vec<&'static str>,
    #[schema(schema_with = vocabulary::user_status)]
    status: &'static str,
}

impl From<&User> for UserJson {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.to_string(),
            username: user.username.to_string(),
            name: user.name.clone(),
            roles: user.roles.iter().map(|r| r.as_str()).collect(),
            status: user.status.as_str(),
        }
    }
}

/// A directory user as a client sends it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UserInput)]
pub(crate) struct UserBody {
    email: String,
    username: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    #[schema(schema_with = vocabulary::roles)]
    roles: Vec<String>,
    #[serde(default = "active")]
    #[schema(schema_with = vocabulary::user_status)]
    status: String,
}

fn active() -> String {
    "active".to_owned()
}

/// A new API token, shown once.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Token)]
pub(crate) struct TokenJson<'a> {
    token: &'a str,
}

pub(crate) async fn me(caller: Caller) -> Response {
    json(StatusCode::OK, &UserJson::from(&caller.0))
}

pub(crate) async fn get_user(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(id): PathId<UserRef>,
) -> Result<Response, ApiError> {
    let id = caller.resolve(id);
    caller.require(USER_ADMINS)?;
    let user = api.users.get(id).await?;
    Ok(json(StatusCode::OK, &UserJson::from(&user)))
}

pub(crate) async fn put_user(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(id): PathId<UserRef>,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<Response, ApiError> {
    let id = caller.resolve(id);
    caller.require(USER_ADMINS)?;
    let input = UserInput::parse(
        &body.email,
        &body.username,
        &body.name,
        &body.roles,
        &body.status,
    )?;
    if !caller.has(Role::Owner) {
        // A user admin manages members and admins, but cannot make or change an owner.
        let existing_owner = match api.users.get(id).await {
            Ok(existing) => existing.roles.contains(&Role::Owner),
            Err(herald_application::Error::NotFound(_)) => false,
            Err(err) => return Err(err.into()),
        };
        if existing_owner || input.roles.contains(&Role::Owner) {
            return Err(ApiError::forbidden(
                "only an owner can make or change an owner",
            ));
        }
    }
    let user = api.users.upsert(id, input).await?;
    Ok(json(StatusCode::OK, &UserJson::from(&user)))
}

pub(crate) async fn delete_user(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(id): PathId<UserRef>,
) -> Result<Response, ApiError> {
    let id = caller.resolve(id);
    caller.require(USER_ADMINS)?;
    let user = api.users.get(id).await?;
    if user.roles.contains(&Role::Owner) && !caller.has(Role::Owner) {
        return Err(ApiError::forbidden("only an owner can delete an owner"));
    }
    // The store revokes the user's tokens with the deletion itself (`UserRegistry::delete`).
    let inhibited = api.users.delete(id).await?;
    tracing::info!(user_id = %id, inhibited, "deleted a user");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn create_token(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(id): PathId<UserRef>,
) -> Result<Response, ApiError> {
    let id = caller.resolve(id);
    caller.require_self_or(id, &[Role::Owner])?;
    let token = api.services.tokens().issue(id).await?;
    Ok(json(
        StatusCode::CREATED,
        &TokenJson {
            token: token.expose(),
        },
    ))
}

/// A one-time sign-in link to the web pages, on the access URL.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SignInLink)]
pub(crate) struct SignInLinkJson {
    url: String,
}

/// Owners and user admins mint links for any user, so a host application can send its users
/// straight to their pages.
pub(crate) async fn create_sign_in_link(
    State(api): State<ApiState>,
    caller: Caller,
    PathId(id): PathId<UserRef>,
) -> Result<Response, ApiError> {
    let id = caller.resolve(id);
    caller.require(USER_ADMINS)?;
    let link = api.services.web_sessions().mint_link(id).await?;
    let url = crate::web::sign_in_link_url(api.services.access_url(), &link);
    Ok(json(StatusCode::CREATED, &SignInLinkJson { url }))
}
