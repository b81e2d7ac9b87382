//! DESIGN §7: `GET /api/v2/openapi.json` describes every route the router serves (the router
//! is built from the same table), every schema in it is complete, what each route answers
//! matches the schema it documents, and `GET /metrics` answers unauthenticated.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method as HttpMethod, StatusCode, header};
use herald_application::ports::InboxStore as _;
use herald_domain::{Action, catalogue};
use herald_http::routes::{OPENAPI_PATH, Verb};
use herald_tests::sample;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::support::{App, Caller};

const VERBS: [Verb; 4] = [Verb::Get, Verb::Put, Verb::Post, Verb::Delete];

/// The table's routes as path → methods (lower case, as OpenAPI spells them).
fn table() -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut table: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for route in herald_http::routes() {
        assert!(
            table
                .entry(route.path.clone())
                .or_default()
                .insert(route.verb.as_str()),
            "{} {} is in the table twice",
            route.verb.as_str(),
            route.path
        );
    }
    table
}

/// A concrete path for a templated one: `{name}` parameters filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "00000000-0000-4000-8000-000000000000".to_owned()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_no_route(reply: &super::support::Reply) -> bool {
    reply.status == StatusCode::NOT_FOUND
        && serde_json::from_slice::<Value>(&reply.body)
            .is_ok_and(|body| body["detail"] == "no such route")
}

#[tokio::test]
async fn the_document_describes_every_route_the_router_serves() {
    let app = App::start().await;
    let reply = app
        .raw(HttpMethod::GET, OPENAPI_PATH, None, Vec::new())
        .await
        .expect(StatusCode::OK);
    assert!(
        reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let document = reply.json();
    assert_eq!(document, herald_http::openapi());

    // OpenAPI 3.1 structure.
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["info"]["title"].is_string(), "{document}");
    assert!(document["info"]["version"].is_string(), "{document}");
    let paths = document["paths"].as_object().expect("paths");

    // The same paths, each with the same methods, as the table the router is built from.
    let table = table();
    let described: BTreeSet<&String> = paths.keys().collect();
    assert_eq!(described, table.keys().collect::<BTreeSet<_>>());
    for (path, methods) in &table {
        let item = paths[path].as_object().unwrap();
        let listed: BTreeSet<&str> = item.keys().map(String::as_str).collect();
        assert_eq!(&listed, methods, "{path}");
        for (method, operation) in item {
            assert!(operation["summary"].is_string(), "{method} {path}");
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            assert!(operation["security"].is_array(), "{method} {path}");
            let parameters: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(parameters, in_path, "{method} {path}");
        }
    }
    // Every DESIGN §7 route is there, the root ones included.
    for (method, path) in [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", OPENAPI_PATH),
        ("post", "/api/v2/notifications/events"),
        ("post", "/api/v2/notifications/events/batch"),
        ("get", "/api/v2/notifications/inbox/watch"),
        ("put", "/api/v2/users/{id}"),
        ("post", "/api/v2/notifications/unsubscribe/{token}"),
    ] {
        assert!(paths[path].get(method).is_some(), "{method} {path}");
    }
    // Every schema referenced is defined.
    let text = document.to_string();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(schemas.contains_key(name), "{name} is not defined");
    }

    // The router answers every described method on every path, and no other method.
    for (path, methods) in &table {
        let uri = concrete(path);
        for verb in VERBS {
            let reply = app
                .raw(verb.http(), &uri, Some(&app.owner.token), Vec::new())
                .await;
            assert!(!is_no_route(&reply), "{} {uri}: no route", verb.as_str());
            if methods.contains(verb.as_str()) {
                assert_ne!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{} {uri} is described but not served",
                    verb.as_str()
                );
            } else {
                assert_eq!(
                    reply.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{} {uri} is served but not described",
                    verb.as_str()
                );
            }
        }
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_without_authentication() {
    let app = App::start().await;
    let reply = app
        .raw(HttpMethod::GET, "/metrics", None, Vec::new())
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = reply.text();
    // Families without labels are there from the start; the labelled ones appear with their
    // first series (tests/it/usecases/metrics.rs).
    for family in [
        "# TYPE herald_notifier_pending_result_updates gauge\nherald_notifier_pending_result_updates 0\n",
        "# TYPE herald_notifier_synced_result_updates_total counter\nherald_notifier_synced_result_updates_total 0\n",
    ] {
        assert!(text.contains(family), "{family} in:\n{text}");
    }
    assert!(
        !text.contains("herald_notifier_dispatch_attempts_total{"),
        "{text}"
    );
}

// ---- schemas ---------------------------------------------------------------------------

const SCHEMA_PREFIX: &str = "#/components/schemas/";

/// Where `value` departs from `schema` (a JSON Schema of the document, `$ref`s resolved in
/// `schemas`), each as `at: why`. Stricter than JSON Schema: a property that an object schema
/// with `properties` does not list is a departure unless it gives `additionalProperties`.
fn mismatches(
    schema: &Value,
    value: &Value,
    schemas: &Map<String, Value>,
    at: &str,
    out: &mut Vec<String>,
) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.strip_prefix(SCHEMA_PREFIX).unwrap();
        let target = schemas
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not defined"));
        return mismatches(target, value, schemas, at, out);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(choices) = schema.get(key).and_then(Value::as_array) {
            let fits = choices.iter().any(|choice| {
                let mut found = Vec::new();
                mismatches(choice, value, schemas, at, &mut found);
                found.is_empty()
            });
            if !fits {
                out.push(format!("{at}: {value} matches none of {key} {schema}"));
            }
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            mismatches(part, value, schemas, at, out);
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            other => panic!("{at}: type {other}"),
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = kinds.contains(&actual) || (actual == "integer" && kinds.contains(&"number"));
        if !fits {
            out.push(format!("{at}: {value} is {actual}, not {kinds:?}"));
            return;
        }
    }
    if let (Some(format), Some(text)) =
        (schema.get("format").and_then(Value::as_str), value.as_str())
    {
        let parses = match format {
            "uuid" => Uuid::parse_str(text).is_ok(),
            "date-time" => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            _ => true,
        };
        if !parses {
            out.push(format!("{at}: {text:?} is not a {format}"));
        }
    }
    if let (Some(minimum), Some(number)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && number < minimum
    {
        out.push(format!("{at}: {number} is below {minimum}"));
    }
    if let Value::Object(object) = value {
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let required = required.as_str().unwrap();
            if !object.contains_key(required) {
                out.push(format!("{at}: the required {required:?} is missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (key, item) in object {
            let here = format!("{at}.{key}");
            if let Some(names) = schema.get("propertyNames") {
                mismatches(names, &Value::String(key.clone()), schemas, &here, out);
            }
            match (properties.and_then(|p| p.get(key)), additional) {
                (Some(property), _) => mismatches(property, item, schemas, &here, out),
                (None, Some(Value::Bool(true))) => {}
                (None, Some(extra @ Value::Object(_))) => {
                    mismatches(extra, item, schemas, &here, out);
                }
                // Free-form: an object schema that names no properties (the event's data).
                (None, None) if properties.is_none() => {}
                (None, _) => out.push(format!("{here}: not in the schema")),
            }
        }
    }
    if let (Value::Array(items), Some(each)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            mismatches(each, item, schemas, &format!("{at}[{i}]"), out);
        }
    }
}

/// Every schema node below `schema` that says nothing of its shape: no type, reference,
/// combination or enumeration (`untyped`), or an object with neither properties nor a schema
/// for its values (`free-form`).
fn vague(schema: &Value, at: &str, out: &mut BTreeSet<String>) {
    let Some(node) = schema.as_object() else {
        return;
    };
    let shaped = ["type", "$ref", "oneOf", "anyOf", "allOf", "enum"]
        .iter()
        .any(|key| node.contains_key(*key));
    if !shaped {
        out.insert(format!("untyped {at}"));
    }
    let is_object = match node.get("type") {
        Some(Value::String(kind)) => kind == "object",
        Some(Value::Array(kinds)) => kinds.iter().any(|k| k == "object"),
        _ => false,
    };
    if is_object
        && !node.contains_key("properties")
        && !node
            .get("additionalProperties")
            .is_some_and(Value::is_object)
    {
        out.insert(format!("free-form {at}"));
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            vague(property, &format!("{at}.{name}"), out);
        }
    }
    if let Some(extra) = node.get("additionalProperties") {
        vague(extra, &format!("{at}[*]"), out);
    }
    if let Some(items) = node.get("items") {
        vague(items, &format!("{at}[]"), out);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for (i, part) in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            vague(part, &format!("{at}.{key}[{i}]"), out);
        }
    }
}

#[test]
fn every_schema_describes_its_fields() {
    let document = herald_http::openapi();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let mut found = BTreeSet::new();
    for (name, schema) in schemas {
        vague(schema, name, &mut found);
    }
    // Only what is free-form by nature: the host's event data, and this document's own
    // operations and schemas.
    let expected: BTreeSet<String> = [
        "free-form Event.data",
        "free-form OpenApi.paths[*]",
        "free-form OpenApiComponents.schemas[*]",
        "free-form OpenApiComponents.securitySchemes",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(found, expected);
    // Each route's request and success bodies are named schemas of their own.
    for route in herald_http::routes() {
        for name in route.request.iter().chain(&route.response) {
            assert!(
                schemas.contains_key(name.as_ref()),
                "{} {}: {name} is not defined",
                route.verb.as_str(),
                route.path
            );
        }
    }
}

/// One real request to a route, as the document names it.
struct Probe<'a> {
    verb: Verb,
    /// The path as the document spells it (`{id}`).
    path: &'static str,
    /// The path requested.
    uri: String,
    caller: &'a Caller,
    body: Value,
}

impl<'a> Probe<'a> {
    fn new(verb: Verb, path: &'static str, caller: &'a Caller) -> Self {
        Self {
            verb,
            path,
            uri: path.to_owned(),
            caller,
            body: Value::Null,
        }
    }

    fn at(mut self, uri: String) -> Self {
        self.uri = uri;
        self
    }

    fn with(mut self, body: Value) -> Self {
        self.body = body;
        self
    }
}

fn workspace_deleted(subject: &Caller, initiator: &Caller) -> Value {
    json!({
        "template_id": catalogue::WORKSPACE_DELETED,
        "user_id": subject.user.id,
        "initiator_id": initiator.user.id,
        "labels": {"name": "ws", "reason": "tidy", "initiator": "owner"},
        "data": {"workspace_id": "w-1"},
        "targets": [Uuid::new_v4()],
        "created_by": "tests",
    })
}

#[tokio::test]
async fn every_json_answer_matches_its_documented_schema() {
    use Verb::{Get, Post, Put};
    let app = App::start().await;
    let document = herald_http::openapi();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let member = app.member.user.id;
    let mut stored = sample::inbox_notification_of(
        member,
        catalogue::WORKSPACE_DELETED,
        sample::t0(),
        vec![Uuid::new_v4()],
    );
    stored.actions = vec![Action {
        label: "View workspaces".into(),
        url: "https://app.example.com/workspaces".into(),
    }];
    assert!(app.store.insert(&stored).await.unwrap());

    // In order: the member turns Workspace Deleted off first, so enqueues for them are
    // skipped while those for the other member create messages.
    let probes = [
        Probe::new(Get, "/api/v2/users/me", &app.member),
        Probe::new(Get, "/api/v2/users/{id}", &app.owner).at(format!("/api/v2/users/{member}")),
        Probe::new(Put, "/api/v2/users/{id}", &app.owner)
            .at(format!("/api/v2/users/{}", Uuid::new_v4()))
            .with(json!({
                "email": "new@example.com", "username": "newcomer", "name": "New Comer",
                "roles": ["member"], "status": "active",
            })),
        Probe::new(Post, "/api/v2/users/{id}/tokens", &app.owner)
            .at(format!("/api/v2/users/{member}/tokens")),
        Probe::new(Post, "/api/v2/users/{id}/sign-in-links", &app.owner)
            .at(format!("/api/v2/users/{member}/sign-in-links")),
        Probe::new(
            Put,
            "/api/v2/users/{id}/notifications/preferences",
            &app.member,
        )
        .at(format!("/api/v2/users/{member}/notifications/preferences"))
        .with(json!({"template_disabled_map": {catalogue::WORKSPACE_DELETED.to_string(): true}})),
        Probe::new(
            Get,
            "/api/v2/users/{id}/notifications/preferences",
            &app.member,
        )
        .at(format!("/api/v2/users/{member}/notifications/preferences")),
        Probe::new(Post, "/api/v2/notifications/events", &app.owner)
            .with(workspace_deleted(&app.other, &app.owner)),
        Probe::new(Post, "/api/v2/notifications/events/batch", &app.owner).with(json!({
            "events": [
                {"template_name": "Workspace Deleted", "user_id": app.admin.user.id,
                 "labels": {"name": "ws", "reason": "tidy", "initiator": "owner"}},
                workspace_deleted(&app.member, &app.owner),
            ],
        })),
        Probe::new(Post, "/api/v2/notifications/custom", &app.admin).with(json!({
            "content": {"title": "Maintenance", "message": "Tonight"},
            "user_ids": [app.member.user.id],
            "roles": ["owner"],
        })),
        Probe::new(Get, "/api/v2/notifications/settings", &app.member),
        Probe::new(Put, "/api/v2/notifications/settings", &app.owner)
            .with(json!({"notifier_paused": true})),
        Probe::new(Get, "/api/v2/notifications/templates/system", &app.member),
        Probe::new(Get, "/api/v2/notifications/templates/custom", &app.member),
        Probe::new(
            Put,
            "/api/v2/notifications/templates/{id}/method",
            &app.owner,
        )
        .at(format!(
            "/api/v2/notifications/templates/{}/method",
            catalogue::WORKSPACE_DELETED
        ))
        .with(json!({"method": "webhook"})),
        Probe::new(
            Put,
            "/api/v2/notifications/templates/{id}/digest",
            &app.owner,
        )
        .at(format!(
            "/api/v2/notifications/templates/{}/digest",
            catalogue::WORKSPACE_DELETED
        ))
        .with(json!({"window": "1h"})),
        Probe::new(Get, "/api/v2/notifications/dispatch-methods", &app.member),
        Probe::new(Get, "/api/v2/notifications/messages", &app.owner),
        Probe::new(Get, "/api/v2/notifications/inbox", &app.member),
        Probe::new(
            Put,
            "/api/v2/notifications/inbox/{id}/read-status",
            &app.member,
        )
        .at(format!(
            "/api/v2/notifications/inbox/{}/read-status",
            stored.id
        ))
        .with(json!({"is_read": true})),
        Probe::new(Post, "/api/v2/resources/usage", &app.owner).with(json!({
            "workspace_id": Uuid::new_v4(), "workspace_name": "ws", "owner_id": member,
            "agent": "main", "memory": {"used": 95, "total": 100, "threshold_percent": 90},
            "volumes": [{"path": "/home", "used": 1, "total": 100, "threshold_percent": 90}],
        })),
        Probe::new(Put, "/api/v2/tasks/{id}/state", &app.owner)
            .at(format!("/api/v2/tasks/{}/state", Uuid::new_v4()))
            .with(json!({
                "owner_id": member, "task_name": "t", "workspace_name": "ws", "state": "idle",
            })),
        Probe::new(Get, OPENAPI_PATH, &app.member),
        Probe::new(Get, "/healthz", &app.member),
        Probe::new(Get, "/readyz", &app.member),
    ];

    let mut probed = BTreeMap::new();
    for probe in probes {
        let verb = probe.verb.as_str();
        let operation = &document["paths"][probe.path][verb];
        assert!(
            operation.is_object(),
            "{verb} {} is not documented",
            probe.path
        );
        if !probe.body.is_null() {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            let mut found = Vec::new();
            mismatches(schema, &probe.body, schemas, "request", &mut found);
            assert!(found.is_empty(), "{verb} {}: {found:#?}", probe.path);
        }
        let reply = app
            .send(probe.verb.http(), &probe.uri, probe.caller, probe.body)
            .await;
        let status = reply.status.as_u16();
        assert!(
            (200..300).contains(&status),
            "{verb} {}: {status} {}",
            probe.uri,
            reply.text()
        );
        let content = &operation["responses"][status.to_string()]["content"]["application/json"];
        let schema = &content["schema"];
        assert!(
            schema.is_object(),
            "{verb} {}: {status} is not documented as JSON",
            probe.path
        );
        let body = reply.json();
        let mut found = Vec::new();
        mismatches(schema, &body, schemas, "response", &mut found);
        assert!(
            found.is_empty(),
            "{verb} {}: {found:#?}\n{body:#}",
            probe.path
        );
        probed.insert((verb, probe.path.to_owned()), body);
    }
    // The arrays that matter had items, so what the items' schemas say was checked too.
    for (verb, path, pointer) in [
        (Post, "/api/v2/notifications/events", "/message_ids/0"),
        (
            Post,
            "/api/v2/notifications/events/batch",
            "/results/0/message_ids/0",
        ),
        (
            Post,
            "/api/v2/notifications/events/batch",
            "/results/1/skipped/0",
        ),
        (
            Get,
            "/api/v2/notifications/templates/system",
            "/0/actions/0",
        ),
        (Get, "/api/v2/notifications/templates/custom", "/0"),
        (Get, "/api/v2/notifications/messages", "/messages/0"),
        (
            Post,
            "/api/v2/resources/usage",
            "/notifications/0/message_ids/0",
        ),
        (Post, "/api/v2/resources/usage", "/volumes/0"),
        (Put, "/api/v2/tasks/{id}/state", "/notification/skipped/0"),
        (
            Get,
            "/api/v2/notifications/inbox",
            "/notifications/0/actions/0",
        ),
        (
            Get,
            "/api/v2/notifications/inbox",
            "/notifications/0/targets/0",
        ),
        (
            Get,
            "/api/v2/users/{id}/notifications/preferences",
            "/0/methods/smtp",
        ),
    ] {
        let body = &probed[&(verb.as_str(), path.to_owned())];
        assert!(
            body.pointer(pointer).is_some(),
            "{path}: no {pointer} in {body}"
        );
    }
    let probed: BTreeSet<_> = probed.into_keys().collect();

    // Every route documented with a JSON success body was probed.
    let mut documented = BTreeSet::new();
    for route in herald_http::routes() {
        if route.media == "application/json" && route.response.is_some() {
            documented.insert((route.verb.as_str(), route.path.clone()));
        }
    }
    assert_eq!(probed, documented);
}

#[tokio::test]
async fn error_answers_match_the_documented_error_schema() {
    let app = App::start().await;
    let document = herald_http::openapi();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let path = "/api/v2/users/{id}";
    for (token, uri, status) in [
        (
            Some(app.owner.token.as_str()),
            "/api/v2/users/not-a-uuid",
            400,
        ),
        (None, "/api/v2/users/me", 401),
        (
            Some(app.owner.token.as_str()),
            "/api/v2/users/00000000-0000-4000-8000-000000000000",
            404,
        ),
    ] {
        let reply = app.raw(HttpMethod::GET, uri, token, Vec::new()).await;
        assert_eq!(reply.status.as_u16(), status, "{uri}");
        let schema = &document["paths"][path]["get"]["responses"][status.to_string()]["content"]["application/json"]
            ["schema"];
        let mut found = Vec::new();
        mismatches(schema, &reply.json(), schemas, "error", &mut found);
        assert!(found.is_empty(), "{uri}: {found:#?}");
    }
}
