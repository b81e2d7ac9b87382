//! The route table: every route the API serves, with what `GET /api/v2/openapi.json` says
//! about it. [`crate::router`] is built from this table and the OpenAPI document is written
//! from it, so a route cannot be served without being described. Add routes here only.
//!
//! A route names its request and response body by their Rust types; their schemas come from
//! `utoipa`'s `ToSchema`, derived on the very structs the handlers deserialize and serialize,
//! so the document cannot describe a shape the route does not use.

use std::borrow::Cow;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::error::Body as ErrorBody;
use crate::{
    API_PREFIX, State, builds, health, inbox, metrics, notifications, signals, unsubscribe, users,
    watch,
};

/// The path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/v2/openapi.json";

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Get,
    Put,
    Post,
    Delete,
}

impl Verb {
    /// The method's name as OpenAPI spells it (lower case).
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Put => "put",
            Verb::Post => "post",
            Verb::Delete => "delete",
        }
    }

    pub const fn http(self) -> axum::http::Method {
        match self {
            Verb::Get => axum::http::Method::GET,
            Verb::Put => axum::http::Method::PUT,
            Verb::Post => axum::http::Method::POST,
            Verb::Delete => axum::http::Method::DELETE,
        }
    }

    const fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Put => MethodFilter::PUT,
            Verb::Post => MethodFilter::POST,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone (health, metrics, the document itself).
    Public,
    /// `Authorization: Bearer <token>`; the route may require roles on top.
    Bearer,
    /// The signed token in the path is the credential (unsubscribe links).
    SignedLink,
}

/// What the document says about one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDoc {
    pub verb: Verb,
    /// The full path, with `{name}` parameters (axum's and OpenAPI's syntax alike).
    pub path: String,
    pub summary: &'static str,
    pub auth: Auth,
    /// The request body's schema name, if it takes a JSON body.
    pub request: Option<Cow<'static, str>>,
    /// The success body's schema name (`None`: no body).
    pub response: Option<Cow<'static, str>>,
    /// The success body's media type.
    pub media: &'static str,
    /// Every status the route answers with (success first).
    pub statuses: Vec<u16>,
}

/// The named schemas a body type needs: its own and those it refers to.
type Schemas = Vec<(String, RefOr<Schema>)>;

fn schemas_of<T: ToSchema>(schemas: &mut Schemas) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

pub(crate) struct Route {
    doc: RouteDoc,
    handler: MethodRouter<State>,
    /// The schemas of its request and response bodies.
    schemas: Vec<fn(&mut Schemas)>,
}

impl Route {
    /// A route under [`API_PREFIX`].
    fn api<H, T>(verb: Verb, path: &str, handler: H, summary: &'static str) -> Self
    where
        H: Handler<T, State>,
        T: 'static,
    {
        Self::root(verb, &format!("{API_PREFIX}{path}"), handler, summary)
    }

    /// A route at the root (`/healthz`, `/metrics`).
    fn root<H, T>(verb: Verb, path: &str, handler: H, summary: &'static str) -> Self
    where
        H: Handler<T, State>,
        T: 'static,
    {
        Self {
            doc: RouteDoc {
                verb,
                path: path.to_owned(),
                summary,
                auth: Auth::Bearer,
                request: None,
                response: None,
                media: "application/json",
                statuses: Vec::new(),
            },
            handler: on(verb.filter(), handler),
            schemas: Vec::new(),
        }
    }

    fn auth(mut self, auth: Auth) -> Self {
        self.doc.auth = auth;
        self
    }

    /// Takes a JSON body of type `T`.
    fn body<T: ToSchema>(mut self) -> Self {
        self.doc.request = Some(T::name());
        self.schemas.push(schemas_of::<T>);
        self
    }

    /// Answers `T` on success, and these statuses.
    fn returns<T: ToSchema>(mut self, statuses: &[u16]) -> Self {
        self.doc.response = Some(T::name());
        self.schemas.push(schemas_of::<T>);
        self.empty(statuses)
    }

    /// Answers no body on success, and these statuses.
    fn empty(mut self, statuses: &[u16]) -> Self {
        self.doc.statuses = statuses.to_vec();
        self
    }

    fn media(mut self, media: &'static str) -> Self {
        self.doc.media = media;
        self
    }
}

/// Every route, in the order the document lists them.
pub(crate) fn table() -> Vec<Route> {
    use Verb::{Delete, Get, Post, Put};
    use builds::BuildBody;
    use inbox::{PageJson, ReadStatusBody, UpdateJson};
    use notifications::{
        BatchBody, CustomBody, DigestBody, DispatchMethodsJson, EnqueueBatchJson, EnqueueJson,
        EventBody, MessageListJson, MethodBody, PreferenceListJson, PreferencesBody, SettingsBody,
        TemplateJson, TemplateListJson,
    };
    use users::{SignInLinkJson, TokenJson, UserBody, UserJson};
    vec![
        Route::api(Get, "/users/me", users::me, "The calling user")
            .returns::<UserJson>(&[200, 401]),
        Route::api(Get, "/users/{id}", users::get_user, "One directory user")
            .returns::<UserJson>(&[200, 400, 401, 403, 404]),
        Route::api(
            Put,
            "/users/{id}",
            users::put_user,
            "Create or update a directory user",
        )
        .body::<UserBody>()
        .returns::<UserJson>(&[200, 400, 401, 403, 413]),
        Route::api(
            Delete,
            "/users/{id}",
            users::delete_user,
            "Delete a directory user",
        )
        .empty(&[204, 400, 401, 403, 404]),
        Route::api(
            Post,
            "/users/{id}/tokens",
            users::create_token,
            "Issue an API token",
        )
        .returns::<TokenJson>(&[201, 400, 401, 403, 404]),
        Route::api(
            Post,
            "/users/{id}/sign-in-links",
            users::create_sign_in_link,
            "Mint a one-time sign-in link to the web pages (valid 10 minutes)",
        )
        .returns::<SignInLinkJson>(&[201, 400, 401, 403, 404]),
        Route::api(
            Get,
            "/users/{id}/notifications/preferences",
            notifications::get_preferences,
            "A user's notification preferences",
        )
        .returns::<PreferenceListJson>(&[200, 400, 401, 403, 404]),
        Route::api(
            Put,
            "/users/{id}/notifications/preferences",
            notifications::put_preferences,
            "Change a user's notification preferences",
        )
        .body::<PreferencesBody>()
        .returns::<PreferenceListJson>(&[200, 400, 401, 403, 404, 413]),
        Route::api(
            Post,
            "/notifications/events",
            notifications::enqueue,
            "Enqueue an event",
        )
        .body::<EventBody>()
        .returns::<EnqueueJson>(&[202, 400, 401, 403, 413]),
        Route::api(
            Post,
            "/notifications/events/batch",
            notifications::enqueue_batch,
            "Enqueue several events",
        )
        .body::<BatchBody>()
        .returns::<EnqueueBatchJson>(&[202, 400, 401, 403, 413]),
        Route::api(
            Post,
            "/builds",
            builds::record_build,
            "Report a workspace build (for the weekly failed-builds report)",
        )
        .body::<BuildBody>()
        .empty(&[204, 400, 401, 403, 413]),
        Route::api(
            Get,
            "/notifications/settings",
            notifications::get_settings,
            "The notifier's settings (the pause switch)",
        )
        .returns::<SettingsBody>(&[200, 401, 403]),
        Route::api(
            Put,
            "/notifications/settings",
            notifications::put_settings,
            "Pause or resume the notifier",
        )
        .body::<SettingsBody>()
        .returns::<SettingsBody>(&[200, 304, 400, 401, 403, 413]),
        Route::api(
            Get,
            "/notifications/templates/system",
            notifications::system_templates,
            "The system templates",
        )
        .returns::<TemplateListJson>(&[200, 401, 403]),
        Route::api(
            Get,
            "/notifications/templates/custom",
            notifications::custom_templates,
            "The custom templates",
        )
        .returns::<TemplateListJson>(&[200, 401, 403]),
        Route::api(
            Put,
            "/notifications/templates/{id}/method",
            notifications::put_template_method,
            "Set a template's delivery method",
        )
        .body::<MethodBody>()
        .returns::<TemplateJson>(&[200, 304, 400, 401, 403, 404, 413]),
        Route::api(
            Put,
            "/notifications/templates/{id}/digest",
            notifications::put_template_digest,
            "Set or clear a template's digest window",
        )
        .body::<DigestBody>()
        .returns::<TemplateJson>(&[200, 304, 400, 401, 403, 404, 413]),
        Route::api(
            Get,
            "/notifications/dispatch-methods",
            notifications::dispatch_methods,
            "The configured delivery methods",
        )
        .returns::<DispatchMethodsJson>(&[200, 401]),
        Route::api(
            Post,
            "/notifications/test",
            notifications::send_test,
            "Send a test notification to the caller",
        )
        .empty(&[204, 401, 403]),
        Route::api(
            Post,
            "/notifications/custom",
            notifications::send_custom,
            "Send a custom notification to the caller, or to the users and roles it names",
        )
        .body::<CustomBody>()
        .returns::<EnqueueJson>(&[202, 204, 400, 401, 403, 413, 429]),
        Route::api(
            Get,
            "/notifications/messages",
            notifications::messages,
            "Troubleshooting: the queued messages",
        )
        .returns::<MessageListJson>(&[200, 400, 401, 403]),
        Route::api(
            Post,
            "/resources/usage",
            signals::report_usage,
            "Report a workspace agent's memory and volume usage",
        )
        .body::<signals::UsageBody>()
        .returns::<signals::UsageJson>(&[202, 400, 401, 403, 413]),
        Route::api(
            Put,
            "/tasks/{id}/state",
            signals::set_task_state,
            "Report a task's state",
        )
        .body::<signals::TaskBody>()
        .returns::<signals::TaskJson>(&[200, 400, 401, 403, 413]),
        Route::api(
            Delete,
            "/notifications/messages/{id}",
            notifications::cancel_message,
            "Cancel a message still pending (a scheduled one)",
        )
        .empty(&[204, 400, 401, 403, 404, 409]),
        Route::api(
            Get,
            "/notifications/inbox",
            inbox::list,
            "The caller's inbox",
        )
        .returns::<PageJson>(&[200, 400, 401]),
        Route::api(
            Get,
            "/notifications/inbox/watch",
            watch::watch,
            "The caller's new inbox notifications, live (WebSocket or text/event-stream)",
        )
        .media("text/event-stream")
        .returns::<InboxUpdateStream>(&[200, 101, 400, 401, 429, 503]),
        Route::api(
            Put,
            "/notifications/inbox/mark-all-as-read",
            inbox::mark_all_read,
            "Mark the caller's whole inbox read",
        )
        .empty(&[204, 401]),
        Route::api(
            Put,
            "/notifications/inbox/{id}/read-status",
            inbox::set_read_status,
            "Mark one inbox notification read or unread",
        )
        .body::<ReadStatusBody>()
        .returns::<UpdateJson>(&[200, 400, 401, 404, 413]),
        Route::api(
            Get,
            "/notifications/unsubscribe/{token}",
            unsubscribe::page,
            "The unsubscribe page of an email link",
        )
        .auth(Auth::SignedLink)
        .media("text/html")
        .returns::<Html>(&[200, 400]),
        Route::api(
            Post,
            "/notifications/unsubscribe/{token}",
            unsubscribe::one_click,
            "One-click unsubscribe (RFC 8058)",
        )
        .auth(Auth::SignedLink)
        .media("text/html")
        .returns::<Html>(&[200, 400]),
        Route::api(Get, "/openapi.json", openapi_json, "This document")
            .auth(Auth::Public)
            .returns::<Document>(&[200]),
        Route::root(Get, "/healthz", health::healthz, "The process answers")
            .auth(Auth::Public)
            .returns::<health::HealthJson>(&[200]),
        Route::root(Get, "/readyz", health::readyz, "The database answers too")
            .auth(Auth::Public)
            .returns::<health::HealthJson>(&[200, 503]),
        Route::root(
            Get,
            "/metrics",
            metrics::metrics,
            "Prometheus metrics of the notifier",
        )
        .auth(Auth::Public)
        .media(metrics::CONTENT_TYPE)
        .returns::<PrometheusText>(&[200]),
    ]
}

/// The routes of [`table`], added to `router`.
pub(crate) fn add_all(mut router: Router<State>) -> Router<State> {
    for route in table() {
        router = router.route(&route.doc.path, route.handler);
    }
    router
}

/// What the document describes: every route the router serves.
pub fn routes() -> Vec<RouteDoc> {
    table().into_iter().map(|route| route.doc).collect()
}

/// The OpenAPI 3.1 document of every route.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    let mut collected = Schemas::new();
    schemas_of::<ErrorBody>(&mut collected);
    for route in table() {
        for add in &route.schemas {
            add(&mut collected);
        }
        let doc = route.doc;
        let mut responses = Map::new();
        for status in &doc.statuses {
            let response = if (200..300).contains(status) {
                match &doc.response {
                    Some(schema) => json!({
                        "description": reason(*status),
                        "content": {
                            doc.media: {"schema": {"$ref": format!("#/components/schemas/{schema}")}},
                        },
                    }),
                    None => json!({"description": reason(*status)}),
                }
            } else if *status >= 400 {
                json!({
                    "description": reason(*status),
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
                    },
                })
            } else {
                json!({"description": reason(*status)})
            };
            responses.insert(status.to_string(), response);
        }
        let mut operation = json!({
            "operationId": operation_id(&doc),
            "summary": doc.summary,
            "parameters": parameters(&doc.path),
            "responses": responses,
            "security": match doc.auth {
                Auth::Bearer => json!([{"bearer": []}]),
                Auth::Public | Auth::SignedLink => json!([]),
            },
        });
        if let Some(schema) = &doc.request {
            operation["requestBody"] = json!({
                "required": true,
                "content": {
                    "application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}},
                },
            });
        }
        if let Value::Object(item) = paths.entry(doc.path.clone()).or_insert_with(|| json!({})) {
            item.insert(doc.verb.as_str().to_owned(), operation);
        }
    }
    let mut schemas = Map::new();
    for (name, schema) in collected {
        // Serializing a schema builds a JSON value; it does not fail.
        schemas
            .entry(name)
            .or_insert_with(|| serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    let document = Document {
        openapi: "3.1.0",
        info: Info {
            title: "Herald",
            version: env!("CARGO_PKG_VERSION"),
            description: "Herald's notification API. Errors are JSON {\"message\", \"detail\"}.",
        },
        paths,
        components: Components {
            schemas,
            security_schemes: json!({"bearer": {"type": "http", "scheme": "bearer"}}),
        },
    };
    serde_json::to_value(document).unwrap_or(Value::Null)
}

/// This document: `GET /api/v2/openapi.json`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OpenApi)]
struct Document {
    /// The OpenAPI version, `3.1.0`.
    openapi: &'static str,
    info: Info,
    /// Path → method → operation.
    #[schema(value_type = BTreeMap<String, Object>)]
    paths: Map<String, Value>,
    components: Components,
}

/// The API's title, version and description.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OpenApiInfo)]
struct Info {
    title: &'static str,
    version: &'static str,
    description: &'static str,
}

/// The named schemas and the security schemes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OpenApiComponents)]
struct Components {
    /// Name → JSON Schema.
    #[schema(value_type = BTreeMap<String, Object>)]
    schemas: Map<String, Value>,
    #[schema(value_type = Object)]
    security_schemes: Value,
}

/// A body that is not JSON: its schema is a string with what it holds.
macro_rules! text_body {
    ($(#[doc = $doc:literal])* $name:ident) => {
        $(#[doc = $doc])*
        enum $name {}

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(concat!($($doc),*).trim()))
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

text_body! {
    /// An HTML page.
    Html
}

text_body! {
    /// The Prometheus text exposition format, version 0.0.4.
    PrometheusText
}

text_body! {
    /// Server-Sent Events: `event: notification` records whose data is an InboxUpdate
    /// (`#/components/schemas/InboxUpdate`), and keep-alive comments. A WebSocket gets the
    /// same InboxUpdate JSON as text frames.
    InboxUpdateStream
}

fn parameters(path: &str) -> Value {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

fn operation_id(doc: &RouteDoc) -> String {
    let mut id = doc.verb.as_str().to_owned();
    for part in doc.path.split(['/', '-', '.', '{', '}']) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.extend(chars);
        }
    }
    id
}

fn reason(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Response")
}

async fn openapi_json() -> axum::response::Response {
    crate::error::json(axum::http::StatusCode::OK, &openapi())
}
