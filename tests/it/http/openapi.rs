//! DESIGN §7: `GET /api/v2/openapi.json` describes every route the router serves (the router
//! is built from the same table), and `GET /metrics` answers unauthenticated.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method as HttpMethod, StatusCode, header};
use herald_http::routes::{OPENAPI_PATH, Verb};
use serde_json::Value;

use super::support::App;

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
