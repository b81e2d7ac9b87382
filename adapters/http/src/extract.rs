//! The API's extractors. Each rejects with an [`ApiError`], so clients never see axum's
//! plain-text rejections: [`Caller`] (the bearer token's user), [`JsonBody`] (a size-limited
//! JSON body, errors naming the field), [`PathId`] (a path parameter parsed once) and
//! [`QueryPairs`] (the query string).

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use herald_domain::{Role, User, UserId, UserStatus};
use serde::de::DeserializeOwned;

use crate::{Api, ApiError, MAX_BODY_BYTES};

/// A user in a path: a UUID, or `me` for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRef {
    Me,
    Id(UserId),
}

impl FromStr for UserRef {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "me" {
            return Ok(UserRef::Me);
        }
        s.parse().map(UserRef::Id)
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.0.roles.contains(&role)
    }

    /// The user a path names (`me` is the caller).
    pub fn resolve(&self, user: UserRef) -> UserId {
        match user {
            UserRef::Me => self.0.id,
            UserRef::Id(id) => id,
        }
    }

    /// 403 unless the caller holds one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|role| self.has(*role)) {
            return Ok(());
        }
        let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "this needs one of the roles: {}",
            names.join(", ")
        )))
    }

    /// 403 unless the caller is `user` or holds one of `roles`.
    pub fn require_self_or(
        &self,
        user: herald_domain::UserId,
        roles: &[Role],
    ) -> Result<(), ApiError> {
        if self.0.id == user {
            return Ok(());
        }
        self.require(roles)
            .map_err(|err| ApiError::forbidden(format!("{} (or being that user)", err.detail)))
    }
}

impl FromRequestParts<Arc<Api>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, ApiError> {
        Caller::with_token(api, bearer_token(&parts.headers)?).await
    }
}

impl Caller {
    /// The live, unsuspended user `token` belongs to.
    pub(crate) async fn with_token(api: &Api, token: &str) -> Result<Self, ApiError> {
        let user = api
            .services
            .tokens()
            .authenticate(token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the token is invalid or revoked"))?;
        if user.status == UserStatus::Suspended {
            return Err(ApiError::forbidden("your account is suspended"));
        }
        Ok(Caller(user))
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <token>"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(ApiError::unauthorized(
            "the Authorization header must be Bearer <token>",
        )),
    }
}

/// A JSON request body of at most [`MAX_BODY_BYTES`], deserialized with errors that name the
/// field at fault. The content type is not checked: `curl -d` sends a form type by default.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let too_large = || {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large.",
                format!("the body must be at most {MAX_BODY_BYTES} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        // Reading fails when the body exceeds the limit or the connection broke; only the
        // first has anyone left to answer.
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| too_large())?;
        parse(&bytes).map(JsonBody)
    }
}

/// Deserializes a JSON document, naming the field of the first error.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("body", "a JSON body is required"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid("body", format!("malformed JSON: {inner}"))
        } else if path == "." {
            ApiError::invalid("body", inner.to_string())
        } else {
            ApiError::invalid(path, inner.to_string())
        }
    })?;
    deserializer
        .end()
        .map_err(|err| ApiError::invalid("body", format!("malformed JSON: {err}")))?;
    Ok(value)
}

/// One path parameter, parsed (`{id}` as a UUID newtype): a bad value is a 400 naming it.
#[derive(Debug)]
pub struct PathId<T>(pub T);

impl<S: Send + Sync, T: FromStr> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|err| ApiError::invalid("path", err.body_text()))?;
        raw.parse()
            .map(PathId)
            .map_err(|_| ApiError::invalid("id", format!("{raw:?} is not a valid UUID")))
    }
}

/// The raw path parameter (the unsubscribe token).
#[derive(Debug)]
pub struct PathText(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(raw)| PathText(raw))
            .map_err(|err| ApiError::invalid("path", err.body_text()))
    }
}

/// The query string's `key=value` pairs, percent-decoded, in order.
#[derive(Debug, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let pairs = parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(QueryPairs(pairs))
    }
}

impl QueryPairs {
    /// The last value of `key`, unless empty.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, each split on commas (`?templates=a,b&templates=c`).
    pub fn many(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// The value of `key` parsed, or a 400 naming it.
    pub fn parsed<T: FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, ApiError> {
        self.one(key)
            .map(|raw| {
                raw.parse()
                    .map_err(|_| ApiError::invalid(key, format!("{raw:?} is not {what}")))
            })
            .transpose()
    }

    /// Every value of `key` parsed, or a 400 naming it.
    pub fn parsed_many<T: FromStr>(&self, key: &str, what: &str) -> Result<Vec<T>, ApiError> {
        self.many(key)
            .into_iter()
            .map(|raw| {
                raw.parse()
                    .map_err(|_| ApiError::invalid(key, format!("{raw:?} is not {what}")))
            })
            .collect()
    }
}
