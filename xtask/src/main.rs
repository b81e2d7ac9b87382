//! Developer tasks. `cargo xtask ci` does what CI does; `cargo xtask bench` runs the
//! benchmark; `cargo xtask golden` regenerates the rendering golden files.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <ci | bench [--quick] [bench options] | golden>
  ci      format check, clippy with warnings denied, the whole test suite
  bench   build release binaries and run the benchmark against local PostgreSQL (a few
          minutes once built; --quick about one); prints the table, writes
          target/bench/report.json and docs/benchmark.md.
          Options after it go to the benchmark (tests/bench/main.rs), e.g. --lease-count 200
  golden  regenerate application/tests/golden/*.md from the catalogue";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("ci") => ci(),
        Some("bench") => bench(std::env::args().skip(2).collect()),
        Some("golden") => golden(),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.current_dir(workspace_root());
    if let Some(url) = TEST_DATABASE_URL.get() {
        command.env("HERALD_TEST_DATABASE_URL", url);
    }
    command
}

/// The workspace this xtask was run from. Read at run time (`cargo run` sets
/// `CARGO_MANIFEST_DIR`), never baked in at compile time: a target directory shared between
/// checkouts must not send the tasks to another checkout.
fn workspace_root() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .and_then(|xtask| xtask.parent().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| ".".into())
}

fn run(step: &str, command: &mut Command) -> Result<()> {
    eprintln!("xtask: {step}");
    let status = command
        .status()
        .with_context(|| format!("could not start {step}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// The PostgreSQL tests need a server they may CREATE DATABASE on (DESIGN §9). When
/// `HERALD_TEST_DATABASE_URL` is unset and the machine's own server answers on 127.0.0.1:5432,
/// use it (as the `postgres` superuser, trust auth, as Debian's package sets it up).
fn find_test_database() {
    const VAR: &str = "HERALD_TEST_DATABASE_URL";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    let answers = Command::new("pg_isready")
        .args(["-q", "-h", "127.0.0.1", "-p", "5432"])
        .status()
        .is_ok_and(|status| status.success());
    if answers {
        let url = "postgres://postgres@127.0.0.1:5432/postgres";
        eprintln!("xtask: {VAR} unset; using the local server {url}");
        // `set_var` is unsafe in edition 2024 (and unsafe code is forbidden): hand the URL to
        // the commands this task starts instead.
        let _ = TEST_DATABASE_URL.set(url.to_owned());
    } else {
        eprintln!(
            "xtask: {VAR} unset and no PostgreSQL answers on 127.0.0.1:5432: the PostgreSQL tests will fail, saying how to provide one"
        );
    }
}

/// The test database URL found by [`find_test_database`], passed to every command.
static TEST_DATABASE_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn ci() -> Result<()> {
    find_test_database();
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    if has_nextest() {
        run(
            "cargo nextest run",
            cargo().args([
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--no-fail-fast",
            ]),
        )?;
    } else {
        eprintln!("xtask: cargo-nextest not found; using cargo test");
        run(
            "cargo test",
            cargo().args(["test", "--workspace", "--locked", "--no-fail-fast"]),
        )?;
    }
    Ok(())
}

/// Builds the release `herald` binary and the benchmark, then runs the benchmark (it finds
/// `herald` beside itself) with the JSON report in the workspace's `target/bench/` and the
/// Markdown report in its `docs/benchmark.md`.
fn bench(args: Vec<String>) -> Result<()> {
    find_test_database();
    // `herald` on its own, as `cargo build --release -p herald` builds it: built together with
    // herald-tests, its dependencies would take the test crate's features (tokio's test-util),
    // and `cargo run` below would build the benchmark's side a second time anyway.
    run(
        "cargo build --release -p herald",
        cargo().args([
            "build",
            "--release",
            "--locked",
            "-p",
            "herald",
            "--bin",
            "herald",
        ]),
    )?;
    let report = workspace_root()
        .join("target")
        .join("bench")
        .join("report.json");
    let markdown = workspace_root().join("docs").join("benchmark.md");
    run(
        "the benchmark",
        cargo()
            .args([
                "run",
                "--release",
                "--locked",
                "--quiet",
                "-p",
                "herald-tests",
                "--example",
                "bench",
                "--",
                "--report",
            ])
            .arg(report)
            .arg("--markdown")
            .arg(markdown)
            .args(args),
    )
}

fn golden() -> Result<()> {
    run(
        "regenerate golden files",
        cargo()
            .args([
                "test",
                "-p",
                "herald-application",
                "--test",
                "rendering",
                "golden",
            ])
            .env("HERALD_BLESS", "1"),
    )
}
