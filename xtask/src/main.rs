//! Developer tasks. `cargo xtask ci` does what CI does; `cargo xtask bench` runs the
//! benchmark; `cargo xtask chaos` the fault-injection suite; `cargo xtask golden` regenerates
//! the rendering golden files, the emails' and the webhook formats' golden files built from
//! the rendering ones.

use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <ci | bench [--quick] [--scale] [bench options] | chaos [--quick] [chaos options] | golden>
  ci      format check, clippy with warnings denied, the whole test suite (each test
          bounded by the nextest profile `ci`; under `cargo test`, the whole run)
  bench   build release binaries and run the benchmark against local PostgreSQL (a few
          minutes once built; --quick about one; --scale adds the scale scenarios and their
          SVG plots in docs/bench/, under 30 minutes); prints the table, writes
          target/bench/report.json and docs/benchmark.md.
          Options after it go to the benchmark (tests/bench/main.rs), e.g. --lease-count 200,
          --scale-factor 0.05 (scale scenarios at a fraction of their sizes, for development)
  chaos   build release binaries and run the fault-injection suite against real processes
          (about 15 minutes once built; --quick 3 to 5); prints the table, writes
          target/chaos/report.json and docs/chaos.md; fails when a scenario fails.
          Options after it go to the suite (tests/chaos/main.rs), e.g. --smtp-outage 20
  golden  regenerate application/tests/golden/*.md from the catalogue, the emails'
          adapters/smtp/tests/golden/*, then the webhook formats'
          adapters/webhook/tests/golden/{slack,teams}/*.json from those";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("ci") => ci(),
        Some("bench") => bench(std::env::args().skip(2).collect()),
        Some("chaos") => chaos(std::env::args().skip(2).collect()),
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

/// How long `cargo test` (already built) may run in all, where nextest's per-test timeouts
/// are not available: far above the suite's length, so only a hanging test reaches it.
const TEST_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// As [`run`], but ends the command (and every process it started: it leads a process group
/// of its own) when it runs past `deadline`.
fn run_within(step: &str, command: &mut Command, deadline: Duration) -> Result<()> {
    eprintln!("xtask: {step} (at most {} min)", deadline.as_secs() / 60);
    let started = Instant::now();
    let mut child = command
        .process_group(0)
        .spawn()
        .with_context(|| format!("could not start {step}"))?;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for it")? {
            break status;
        }
        if started.elapsed() > deadline {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            bail!(
                "{step} did not finish within {} min: a test hangs \
                 (`cargo nextest run --profile ci` names it)",
                deadline.as_secs() / 60
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
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
        // The `ci` profile (.config/nextest.toml) ends any test that runs past its timeout.
        run(
            "cargo nextest run",
            cargo().args([
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--profile",
                "ci",
            ]),
        )?;
    } else {
        eprintln!("xtask: cargo-nextest not found; using cargo test");
        run(
            "cargo test --no-run",
            cargo().args(["test", "--workspace", "--locked", "--no-run"]),
        )?;
        // `cargo test` has no per-test timeout: the whole run gets one.
        run_within(
            "cargo test",
            cargo().args(["test", "--workspace", "--locked", "--no-fail-fast"]),
            TEST_DEADLINE,
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

/// How long the fault-injection suite (already built) may run: far above a full run, so only
/// a hanging scenario reaches it.
const CHAOS_DEADLINE: Duration = Duration::from_secs(45 * 60);

/// Builds the release `herald` binary and the fault-injection suite, then runs the suite (it
/// finds `herald` beside itself) with the JSON report in the workspace's `target/chaos/` and
/// the Markdown report in its `docs/chaos.md`.
fn chaos(args: Vec<String>) -> Result<()> {
    // As for the benchmark: `herald` on its own, without the test crate's features.
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
    run(
        "cargo build --release --example chaos",
        cargo().args([
            "build",
            "--release",
            "--locked",
            "-p",
            "herald-tests",
            "--example",
            "chaos",
        ]),
    )?;
    let root = workspace_root();
    let report = root.join("target").join("chaos").join("report.json");
    let markdown = root.join("docs").join("chaos.md");
    run_within(
        "the fault-injection suite",
        cargo()
            .args([
                "run",
                "--release",
                "--locked",
                "--quiet",
                "-p",
                "herald-tests",
                "--example",
                "chaos",
                "--",
                "--report",
            ])
            .arg(report)
            .arg("--markdown")
            .arg(markdown)
            .args(args),
        CHAOS_DEADLINE,
    )
}

fn golden() -> Result<()> {
    if std::env::var_os("CI").is_some_and(|ci| !ci.is_empty()) {
        bail!(
            "golden files are never regenerated in CI (CI is set): run it outside CI and commit the reviewed diff"
        );
    }
    run(
        "regenerate the rendering golden files",
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
    )?;
    run(
        "regenerate the email golden files",
        cargo()
            .args(["test", "-p", "herald-smtp", "--lib", "golden"])
            .env("HERALD_BLESS", "1"),
    )?;
    // The webhook formats' golden files are built from the rendering ones: regenerated after.
    run(
        "regenerate the webhook format golden files",
        cargo()
            .args([
                "test",
                "-p",
                "herald-webhook",
                "--test",
                "formats",
                "golden",
            ])
            .env("HERALD_BLESS", "1"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_past_its_deadline_is_ended_with_every_process_it_started() {
        let dir = std::env::temp_dir().join(format!("xtask-deadline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("{err}"));
        let pid_file = dir.join("grandchild.pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let started = Instant::now();

        let result = run_within(
            "a hanging run",
            Command::new("sh").args(["-c", &script]),
            Duration::from_millis(500),
        );

        let err = result.err().map(|err| err.to_string()).unwrap_or_default();
        assert!(err.contains("did not finish within"), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(30));
        let grandchild = std::fs::read_to_string(&pid_file).unwrap_or_default();
        let grandchild = grandchild.trim();
        assert!(!grandchild.is_empty(), "the script never started its child");
        // Killed, it is gone or a zombie awaiting its reaper (`Z` in its stat line).
        let alive = || {
            std::fs::read_to_string(format!("/proc/{grandchild}/stat")).is_ok_and(|stat| {
                stat.rsplit(')')
                    .next()
                    .map(str::trim_start)
                    .is_some_and(|rest| !rest.starts_with('Z'))
            })
        };
        let gone = Instant::now() + Duration::from_secs(5);
        while alive() {
            assert!(
                Instant::now() < gone,
                "process {grandchild} outlived the run"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_run_within_its_deadline_reports_its_status() {
        let ok = run_within(
            "true",
            Command::new("sh").args(["-c", "exit 0"]),
            Duration::from_secs(30),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let failed = run_within(
            "false",
            Command::new("sh").args(["-c", "exit 3"]),
            Duration::from_secs(30),
        );
        let err = failed.err().map(|err| err.to_string()).unwrap_or_default();
        assert!(err.contains("false failed"), "{err:?}");
    }
}
