//! DESIGN §1's dependency rule, checked on `cargo metadata`: dependencies point inward only
//! (domain ← application ← adapters ← bootstrap), no adapter depends on another, and the inner
//! layers stay free of runtimes, drivers and frameworks.

use std::process::Command;

use serde_json::Value;

/// Where a workspace crate sits; a crate may depend only on crates of lower layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Domain,
    Application,
    Adapter,
    Bootstrap,
}

/// The layer of a workspace crate; `None` for the crates free to depend on anything.
fn layer(name: &str) -> Result<Option<Layer>, String> {
    Ok(Some(match name {
        "herald-domain" => Layer::Domain,
        "herald-application" => Layer::Application,
        "herald-postgres" | "herald-smtp" | "herald-webhook" | "herald-inbox" | "herald-memory"
        | "herald-http" => Layer::Adapter,
        "herald" => Layer::Bootstrap,
        "herald-tests" | "xtask" => return Ok(None),
        other => {
            return Err(format!(
                "workspace crate {other} has no layer: place it in this test"
            ));
        }
    }))
}

/// External crates an inner layer must never depend on (normal dependencies).
fn forbidden_externals(layer: Layer) -> &'static [&'static str] {
    match layer {
        Layer::Domain => &["tokio", "sqlx", "reqwest", "lettre", "axum", "hyper"],
        Layer::Application => &["sqlx", "reqwest", "lettre", "axum"],
        Layer::Adapter | Layer::Bootstrap => &[],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Build,
    Dev,
}

/// One dependency edge of a workspace crate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    from: String,
    to: String,
    kind: Kind,
}

/// Every broken rule, one line each. `members` are the workspace's crates; edges from
/// crates outside it are ignored.
///
/// Between workspace crates, every kind of dependency counts (a dev-dependency of one adapter
/// on another is still an adapter depending on an adapter; shared test helpers live in
/// `herald-tests`), except that a layered crate may take the free crates as dev-dependencies.
fn violations(members: &[String], edges: &[Edge]) -> Vec<String> {
    let mut found = Vec::new();
    for member in members {
        if let Err(unplaced) = layer(member) {
            found.push(unplaced);
        }
    }
    for edge in edges {
        let Ok(Some(from)) = layer(&edge.from) else {
            continue;
        };
        if !members.contains(&edge.to) {
            if edge.kind == Kind::Normal && forbidden_externals(from).contains(&edge.to.as_str()) {
                found.push(format!("{} must not depend on {}", edge.from, edge.to));
            }
            continue;
        }
        let broken = match layer(&edge.to) {
            Ok(Some(to)) => to >= from,
            Ok(None) => edge.kind != Kind::Dev,
            Err(_) => false, // reported above
        };
        if broken {
            found.push(format!(
                "{} depends on {} ({:?}): dependencies point inward only, and no adapter depends on another",
                edge.from, edge.to, edge.kind
            ));
        }
    }
    found
}

/// The workspace's crates and their dependency edges, from `cargo metadata --no-deps`.
fn read_metadata(metadata: &Value) -> (Vec<String>, Vec<Edge>) {
    let packages = metadata["packages"]
        .as_array()
        .expect("metadata lists packages");
    let name = |value: &Value| value["name"].as_str().expect("a name").to_owned();
    let members = packages.iter().map(name).collect();
    let edges = packages
        .iter()
        .flat_map(|package| {
            let from = name(package);
            let dependencies = package["dependencies"]
                .as_array()
                .expect("a dependency list");
            dependencies.iter().map(move |dependency| Edge {
                from: from.clone(),
                to: name(dependency),
                kind: match dependency["kind"].as_str() {
                    Some("dev") => Kind::Dev,
                    Some("build") => Kind::Build,
                    _ => Kind::Normal,
                },
            })
        })
        .collect();
    (members, edges)
}

#[test]
fn dependencies_point_inward_and_adapters_stand_alone() {
    let workspace = herald_tests::checkout::workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(&workspace)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let (members, edges) = read_metadata(&metadata);
    assert!(members.contains(&"herald-domain".to_owned()), "{members:?}");
    assert!(
        edges
            .iter()
            .any(|e| e.from == "herald-application" && e.to == "herald-domain"),
        "the edges were read"
    );

    let found = violations(&members, &edges);

    assert!(
        found.is_empty(),
        "the dependency rule is broken:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rule_catches_outward_adapter_to_adapter_and_forbidden_edges() {
    let members: Vec<String> = [
        "herald-domain",
        "herald-application",
        "herald-memory",
        "herald-postgres",
        "herald",
        "herald-tests",
        "herald-stray",
    ]
    .map(String::from)
    .to_vec();
    let edge = |from: &str, to: &str, kind| Edge {
        from: from.to_owned(),
        to: to.to_owned(),
        kind,
    };
    let edges = [
        // Allowed.
        edge("herald-application", "herald-domain", Kind::Normal),
        edge("herald-postgres", "herald-domain", Kind::Normal),
        edge("herald", "herald-memory", Kind::Normal),
        edge("herald-tests", "herald-postgres", Kind::Normal),
        edge("herald-domain", "proptest", Kind::Dev),
        edge("herald-domain", "tokio", Kind::Dev),
        edge("herald-application", "tokio", Kind::Normal),
        edge("herald-postgres", "herald-tests", Kind::Dev),
        // Broken.
        edge("herald-domain", "herald-application", Kind::Normal),
        edge("herald-postgres", "herald-memory", Kind::Dev),
        edge("herald-application", "herald-memory", Kind::Normal),
        edge("herald-memory", "herald", Kind::Build),
        edge("herald-memory", "herald-tests", Kind::Normal),
        edge("herald-domain", "tokio", Kind::Normal),
        edge("herald-domain", "hyper", Kind::Normal),
        edge("herald-application", "sqlx", Kind::Normal),
    ];

    let found = violations(&members, &edges);

    let expected = [
        "herald-stray has no layer",
        "herald-domain depends on herald-application",
        "herald-postgres depends on herald-memory",
        "herald-application depends on herald-memory",
        "herald-memory depends on herald (Build)",
        "herald-memory depends on herald-tests",
        "herald-domain must not depend on tokio",
        "herald-domain must not depend on hyper",
        "herald-application must not depend on sqlx",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (line, expected) in found.iter().zip(expected) {
        assert!(line.contains(expected), "{line:?} should say {expected:?}");
    }
}
