//! The closed sets of words the API's JSON uses (methods, roles, statuses) as schemas, listed
//! from the domain's own enumerations so the document names every value a route may answer.

use herald_domain::{MessageStatus, Method, Role, UserStatus};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

const USER_STATUSES: [UserStatus; 2] = [UserStatus::Active, UserStatus::Suspended];

fn one_of(words: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(words))
}

fn list_of(word: ObjectBuilder) -> RefOr<Schema> {
    ArrayBuilder::new().items(word).into()
}

/// A delivery method.
pub(crate) fn method() -> RefOr<Schema> {
    one_of(Method::ALL.map(Method::as_str)).into()
}

/// Delivery methods.
pub(crate) fn methods() -> RefOr<Schema> {
    list_of(one_of(Method::ALL.map(Method::as_str)))
}

/// A delivery method, or `""` for the deployment's default.
pub(crate) fn method_or_default() -> RefOr<Schema> {
    one_of(std::iter::once("").chain(Method::ALL.map(Method::as_str)))
        .description(Some(
            "A delivery method, or \"\" for the deployment's default.",
        ))
        .into()
}

/// Roles.
pub(crate) fn roles() -> RefOr<Schema> {
    list_of(one_of(Role::ALL.map(Role::as_str)))
}

/// A user's status.
pub(crate) fn user_status() -> RefOr<Schema> {
    one_of(USER_STATUSES.map(UserStatus::as_str)).into()
}

/// A message's status.
pub(crate) fn message_status() -> RefOr<Schema> {
    one_of(MessageStatus::ALL.map(MessageStatus::as_str)).into()
}
