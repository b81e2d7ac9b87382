//! Herald's fault-injection suite (`cargo xtask chaos [--quick]`): each scenario queues its
//! messages, drains them through real processes while a fault is injected, and counts what
//! arrived. Pass: no message lost, none delivered twice (the kill -9 scenario allows what a
//! crashed replica had dispatched and not yet written back: its `--notifications-lease-count`
//! dispatches in flight, plus the results buffered for a write-back and those being written,
//! each at most `--notifications-store-sync-buffer-size`), and
//! `/healthz` answering throughout (asked on a new connection every 250 ms, 2 s to answer).
//!
//! Everything is a real process on this machine: the release `herald` binary (next to this
//! one), a PostgreSQL cluster of the suite's own (`initdb` from the installed binaries into
//! a temporary directory, so it can be stopped and started), the test SMTP server
//! (`tests/support/smtp_server.py`, aiosmtpd) and a webhook receiver (in this process). Each
//! scenario gets a fresh database on that cluster and its own server processes.
//!
//! The scenarios:
//! - `kill_replica`: three replicas drain together to a receiver taking 100 ms a request; one
//!   is killed with SIGKILL a third of the way through. Its leases expire and the others deliver what it held.
//! - `postgres_restart`: PostgreSQL is stopped (`pg_ctl stop -m fast`, every connection
//!   ended) a third of the way through and started again after a pause.
//! - `smtp_outage`: the SMTP server is killed a third of the way through an SMTP drain and
//!   started again on the same port after the outage (60 s; `--smtp-outage SECONDS`).
//! - `receiver_failing_half`: the webhook receiver answers 500 to half its requests, at random.
//! - `receiver_hanging`: the receiver never answers one request in 20, at random, so those
//!   end at Herald's dispatch timeout.
//! - `slow_headers`: as the drain starts, many sockets send a request line and then one byte
//!   of a header a second, never finishing it, for a set time; the server runs with the common
//!   default limit of 1,024 open files.
//! - `junk_tokens`: while the drain runs, thousands of concurrent event requests carry junk
//!   bearer tokens, half of them shaped as Herald's. Each must be answered 401.
//! - `watchers`: while the drain runs, inbox watchers (WebSocket) are opened and closed in
//!   waves, in two rounds; the server's RSS before and after each round is reported.
//!
//! Every server retries a failed delivery after 2 s and up to 100 times, so a fault of the
//! receiver's or of the SMTP server's own cannot use up a message's attempts within the
//! scenario: what is measured is whether Herald loses or repeats messages, not its retry
//! budget. The dispatch timeout is 3 s and the lease 12 s, so a crashed replica's messages
//! come back within seconds.
//!
//! The table goes to stdout and `--report PATH` (`target/chaos/report.json`), and with
//! `--markdown PATH` to a Markdown page (`cargo xtask chaos` writes `docs/chaos.md`). Options:
//! `--quick` (fewer messages, shorter outages), `--smtp-outage SECONDS`, `--only KEY,KEY`
//! (some scenarios only), `--herald PATH`, `--report PATH`, `--markdown PATH`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod attacks;
mod cluster;
mod deliveries;
mod report;
#[path = "../bench/server.rs"]
#[allow(
    dead_code,
    reason = "the benchmark's module: the suite uses part of it (launch, API client)"
)]
mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

use attacks::{Health, HealthFigures, SlowHeaders};
use cluster::Cluster;
use deliveries::{Behaviour, Deliveries, Receiver, SmtpRecords};
use report::{Outcome, Report};
use server::{Api, Server};

/// The settings every server runs with (see the module doc).
const DISPATCH_TIMEOUT: Duration = Duration::from_secs(3);
const LEASE_PERIOD: &str = "12s";
const LEASE_PERIOD_SPAN: Duration = Duration::from_secs(12);
const RETRY_INTERVAL: &str = "2s";
const FETCH_INTERVAL: &str = "1s";
const MAX_ATTEMPTS: &str = "100";
const LEASE_COUNT: usize = 50;
const SYNC_BUFFER: usize = 50;
const SYNC_INTERVAL: &str = "200ms";

/// The open-file limit the `slow_headers` server runs with.
const SLOW_HEADERS_FILE_LIMIT: u32 = 1024;

/// Where in the drain a mid-drain fault strikes: this share of the messages delivered.
const STRIKE_AT: f64 = 1.0 / 3.0;

/// Directory users the events go to.
const SUBJECTS: usize = 1_000;

/// How much each scenario does.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    messages: usize,
    smtp_outage: Duration,
    postgres_down: Duration,
    /// How long a drain (faults aside) may take before what is missing counts as lost.
    patience: Duration,
    slow_sockets: usize,
    /// How long the slow sockets dribble at least.
    slow_for: Duration,
    junk_requests: usize,
    junk_concurrency: usize,
    watchers: usize,
    watcher_wave: usize,
    /// Watchers per user.
    watchers_per_user: usize,
}

const FULL: Sizes = Sizes {
    messages: 10_000,
    smtp_outage: Duration::from_secs(60),
    postgres_down: Duration::from_secs(5),
    patience: Duration::from_secs(180),
    slow_sockets: 2_000,
    slow_for: Duration::from_secs(30),
    junk_requests: 10_000,
    junk_concurrency: 1_000,
    watchers: 10_000,
    watcher_wave: 500,
    watchers_per_user: 5,
};

const QUICK: Sizes = Sizes {
    messages: 2_000,
    smtp_outage: Duration::from_secs(10),
    postgres_down: Duration::from_secs(2),
    patience: Duration::from_secs(90),
    slow_sockets: 1_500,
    slow_for: Duration::from_secs(15),
    junk_requests: 3_000,
    junk_concurrency: 1_000,
    watchers: 3_000,
    watcher_wave: 500,
    watchers_per_user: 5,
};

const SCENARIOS: [&str; 8] = [
    "kill_replica",
    "postgres_restart",
    "smtp_outage",
    "receiver_failing_half",
    "receiver_hanging",
    "slow_headers",
    "junk_tokens",
    "watchers",
];

#[derive(Debug)]
struct Options {
    quick: bool,
    smtp_outage: Option<Duration>,
    only: Option<Vec<String>>,
    herald: PathBuf,
    report: PathBuf,
    markdown: Option<PathBuf>,
    command: String,
}

fn options() -> Result<Options> {
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/chaos → target/<profile>/herald
    let herald = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("herald"))
        .ok_or_else(|| anyhow!("cannot locate the herald binary; pass --herald PATH"))?;
    let mut options = Options {
        quick: false,
        smtp_outage: None,
        only: None,
        herald,
        report: PathBuf::from("target/chaos/report.json"),
        markdown: None,
        command: command_line(&std::env::args().skip(1).collect::<Vec<_>>()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--smtp-outage" => {
                let seconds: u64 = value("--smtp-outage")?
                    .parse()
                    .context("--smtp-outage takes whole seconds")?;
                options.smtp_outage = Some(Duration::from_secs(seconds));
            }
            "--only" => {
                let keys: Vec<String> = value("--only")?.split(',').map(str::to_owned).collect();
                if let Some(unknown) = keys.iter().find(|k| !SCENARIOS.contains(&k.as_str())) {
                    bail!(
                        "--only: no scenario {unknown:?} (there are {})",
                        SCENARIOS.join(", ")
                    );
                }
                options.only = Some(keys);
            }
            "--herald" => options.herald = value("--herald")?.into(),
            "--report" => options.report = value("--report")?.into(),
            "--markdown" => options.markdown = Some(value("--markdown")?.into()),
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(options)
}

/// `cargo xtask chaos` with the suite's arguments, less those that only say where the
/// binaries and reports are.
fn command_line(args: &[String]) -> String {
    let mut command = String::from("cargo xtask chaos");
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if matches!(arg.as_str(), "--herald" | "--report" | "--markdown") {
            args.next();
            continue;
        }
        command.push(' ');
        command.push_str(arg);
    }
    command
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("chaos: some scenarios failed (see the table)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("chaos: FAILED: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// What every scenario shares.
#[derive(Debug)]
struct Suite {
    herald: PathBuf,
    cluster: Cluster,
    sizes: Sizes,
    /// Where the servers' logs go.
    logs: PathBuf,
}

async fn run() -> Result<bool> {
    let options = options()?;
    let mut sizes = if options.quick { QUICK } else { FULL };
    if let Some(outage) = options.smtp_outage {
        sizes.smtp_outage = outage;
    }
    if !options.herald.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p herald` or run `cargo xtask chaos`",
            options.herald.display()
        );
    }
    eprintln!("chaos: starting a PostgreSQL cluster of the suite's own…");
    let cluster = tokio::task::spawn_blocking(Cluster::start).await??;
    let logs = options
        .report
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        .join("logs");
    std::fs::create_dir_all(&logs)?;
    let suite = Suite {
        herald: options.herald.clone(),
        cluster,
        sizes,
        logs,
    };
    let machine = machine(&suite.cluster.admin_url()).await?;
    let mut report = Report {
        quick: options.quick,
        command: options.command.clone(),
        machine,
        outcomes: Vec::new(),
    };
    eprintln!("chaos: {}", report.machine_line());
    for key in SCENARIOS {
        if options
            .only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|k| k == key))
        {
            continue;
        }
        eprintln!("chaos: {key}…");
        let started = Instant::now();
        let outcome = match key {
            "kill_replica" => kill_replica(&suite).await,
            "postgres_restart" => postgres_restart(&suite).await,
            "smtp_outage" => smtp_outage(&suite).await,
            "receiver_failing_half" => receiver_failing(&suite, key, Behaviour::FailHalf).await,
            "receiver_hanging" => {
                receiver_failing(&suite, key, Behaviour::Hang { one_in: 20 }).await
            }
            "slow_headers" => slow_headers(&suite).await,
            "junk_tokens" => junk_tokens(&suite).await,
            _ => watchers(&suite).await,
        }
        .with_context(|| format!("scenario {key}"))?;
        eprintln!(
            "chaos: {key}: {} of {} delivered, {} duplicates, /healthz failed {} times ({:.0} s){}",
            outcome.delivered,
            outcome.messages,
            outcome.duplicates,
            outcome.health_failures,
            started.elapsed().as_secs_f64(),
            if outcome.passed() { "" } else { ": FAILED" }
        );
        report.outcomes.push(outcome);
    }
    report.print();
    report.write(&options.report)?;
    eprintln!("chaos: report written to {}", options.report.display());
    if let Some(markdown) = &options.markdown {
        report.write_markdown(markdown)?;
        eprintln!("chaos: Markdown report written to {}", markdown.display());
    }
    Ok(report.passed())
}

async fn machine(admin_url: &str) -> Result<Value> {
    let mut connection = PgConnection::connect(admin_url).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut connection)
        .await?;
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_owned())
        });
    Ok(json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu_model,
        "postgres": version,
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

/// Where a scenario's servers deliver.
#[derive(Debug, Clone)]
enum Target {
    Webhook(String),
    Smtp(u16),
}

/// One scenario's database, servers and queued messages.
#[derive(Debug)]
struct Stage {
    database: String,
    url: String,
    servers: Vec<Server>,
    api: Api,
    token: String,
    subjects: Vec<Uuid>,
    ids: Vec<Uuid>,
}

impl Suite {
    /// A fresh database, `replicas` servers delivering to `target` (under an open-file limit
    /// when given), and the scenario's messages queued with the notifier paused.
    async fn stage(
        &self,
        key: &str,
        replicas: usize,
        target: &Target,
        file_limit: Option<u32>,
    ) -> Result<Stage> {
        let database = format!("chaos_{key}_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&self.cluster.admin_url()).await?;
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await?;
        let _ = admin.close().await;
        let url = self.cluster.url(&database);
        let mut servers = Vec::new();
        for replica in 0..replicas {
            let command = self.server_command(&url, target, file_limit);
            let log = self.logs.join(format!("{key}-{replica}.log"));
            // One at a time: the first applies the migrations.
            servers.push(
                tokio::task::spawn_blocking(move || Server::launch(command, Some(log))).await??,
            );
        }
        let (herald, owner_url) = (self.herald.clone(), url.clone());
        let token = tokio::task::spawn_blocking(move || server::create_owner(&herald, &owner_url))
            .await??;
        let api = Api::new(&servers[0].url, &token)?;
        let subjects = insert_users(&url, SUBJECTS).await?;
        api.set_paused(true).await?;
        let ids = enqueue(&api, &subjects, self.sizes.messages, key).await?;
        Ok(Stage {
            database,
            url,
            servers,
            api,
            token,
            subjects,
            ids,
        })
    }

    fn server_command(&self, url: &str, target: &Target, file_limit: Option<u32>) -> Command {
        let mut command = match file_limit {
            Some(limit) => {
                let mut prlimit = Command::new("prlimit");
                prlimit
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(&self.herald);
                prlimit
            }
            None => Command::new(&self.herald),
        };
        command.args(["server", "--postgres-url", url]).args([
            "--notifications-inbox-enabled=false",
            "--notifications-dispatch-timeout",
            &format!("{}s", DISPATCH_TIMEOUT.as_secs()),
            "--notifications-lease-period",
            LEASE_PERIOD,
            "--notifications-retry-interval",
            RETRY_INTERVAL,
            "--notifications-fetch-interval",
            FETCH_INTERVAL,
            "--notifications-max-send-attempts",
            MAX_ATTEMPTS,
            "--notifications-lease-count",
            &LEASE_COUNT.to_string(),
            "--notifications-store-sync-buffer-size",
            &SYNC_BUFFER.to_string(),
            "--notifications-store-sync-interval",
            SYNC_INTERVAL,
            "--log-filter",
            "info",
        ]);
        match target {
            Target::Webhook(receiver) => command.args([
                "--notifications-method",
                "webhook",
                "--notifications-webhook-endpoint",
                receiver,
            ]),
            Target::Smtp(port) => command.args([
                "--notifications-method",
                "smtp",
                "--email-from",
                "herald@chaos.example",
                "--email-smarthost",
                &format!("127.0.0.1:{port}"),
            ]),
        };
        command
    }

    /// Stops the stage's servers and drops its database.
    async fn tear_down(&self, stage: Stage) {
        for server in stage.servers {
            let _ = tokio::task::spawn_blocking(move || server.stop()).await;
        }
        if let Ok(mut admin) = PgConnection::connect(&self.cluster.admin_url()).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                stage.database
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

/// Directory users straight into the table (set-up, not measured).
async fn insert_users(url: &str, count: usize) -> Result<Vec<Uuid>> {
    let mut connection = PgConnection::connect(url).await?;
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    sqlx::query(
        "INSERT INTO users (id, email, username, name, roles) \
         SELECT id, 'u' || id || '@chaos.example', 'u' || id, 'Chaos user', ARRAY['member'] \
         FROM UNNEST($1::uuid[]) AS u(id)",
    )
    .bind(&ids)
    .execute(&mut connection)
    .await?;
    Ok(ids)
}

/// `count` single-recipient events in batches of 100, four requests at a time; the ids of
/// the messages queued.
async fn enqueue(api: &Api, subjects: &[Uuid], count: usize, key: &str) -> Result<Vec<Uuid>> {
    const BATCH: usize = 100;
    let template = *herald_domain::catalogue::WORKSPACE_DELETED.as_uuid();
    let requests = count.div_ceil(BATCH);
    let next = Arc::new(AtomicUsize::new(0));
    let subjects = Arc::new(subjects.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (api, subjects, next, key) =
            (api.clone(), subjects.clone(), next.clone(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let request = next.fetch_add(1, Ordering::Relaxed);
                if request >= requests {
                    break;
                }
                let events: Vec<Value> = (request * BATCH..((request + 1) * BATCH).min(count))
                    .map(|n| {
                        json!({
                            "template_id": template,
                            "user_id": subjects[n % subjects.len()],
                            "labels": {"name": format!("{key}-{n}"), "reason": "chaos",
                                       "initiator": "chaos"},
                            "created_by": "chaos",
                        })
                    })
                    .collect();
                ids.extend(api.batch(&events).await?);
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await??);
    }
    if ids.len() != count {
        bail!("{count} events queued {} messages", ids.len());
    }
    Ok(ids)
}

/// A drain under way: when it started, what arrives, and `/healthz` of each server.
#[derive(Debug)]
struct Drain {
    started: Instant,
    deliveries: Deliveries,
    health: Vec<Health>,
    health_done: HealthFigures,
    patience: Duration,
}

impl Drain {
    /// Watches every server's `/healthz`, then lifts the pause.
    async fn start(stage: &Stage, deliveries: &Deliveries, patience: Duration) -> Result<Self> {
        let health = stage
            .servers
            .iter()
            .map(|server| Health::watch(&server.url))
            .collect::<Result<Vec<_>>>()?;
        let started = Instant::now();
        stage.api.set_paused(false).await?;
        Ok(Self {
            started,
            deliveries: deliveries.clone(),
            health,
            health_done: HealthFigures::default(),
            patience,
        })
    }

    /// Waits until `share` of `messages` arrived (or the drain's patience ran out).
    async fn until_share(&self, messages: usize, share: f64) {
        let wanted = (messages as f64 * share).ceil() as usize;
        while self.deliveries.distinct() < wanted && self.started.elapsed() < self.patience {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops watching replica `index` (it is about to be killed).
    async fn forget(&mut self, index: usize) {
        let health = self.health.remove(index);
        self.health_done.add(&health.finish().await);
    }

    /// Waits for every message (at most `patience` plus `extra` from the start), then for
    /// the rows to settle and anything still in flight; then counts.
    async fn finish(
        mut self,
        stage: &Stage,
        key: &'static str,
        what: String,
        extra: Duration,
        fault_ended: Option<Instant>,
    ) -> Result<Outcome> {
        let deadline = self.started + self.patience + extra;
        while self.deliveries.summary(&stage.ids).delivered < stage.ids.len()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Results are written back within the lease of what they complete, so rows still open
        // a lease after the last delivery stay open.
        let settled_by = deadline.max(Instant::now() + LEASE_PERIOD_SPAN);
        let rows = settle(&stage.url, &stage.ids, settled_by).await?;
        // A dispatch of a lease taken over meanwhile would end within the dispatch timeout.
        tokio::time::sleep(DISPATCH_TIMEOUT).await;
        for health in self.health.drain(..) {
            self.health_done.add(&health.finish().await);
        }
        let summary = self.deliveries.summary(&stage.ids);
        let mut outcome = Outcome {
            key,
            what,
            messages: stage.ids.len(),
            delivered: summary.delivered,
            duplicates: summary.duplicates,
            health_checks: self.health_done.checks,
            health_failures: self.health_done.failures,
            recovered_s: fault_ended.and_then(|ended| {
                summary
                    .last
                    .map(|last| last.saturating_duration_since(ended).as_secs_f64())
            }),
            drained_s: summary
                .last
                .map_or(0.0, |last| last.duration_since(self.started).as_secs_f64()),
            ..Outcome::default()
        };
        if let Some(first) = &self.health_done.first_failure {
            outcome
                .notes
                .push(format!("first /healthz failure: {first}"));
        }
        outcome.notes.push(format!(
            "slowest /healthz answer {:.0} ms",
            self.health_done.slowest.as_secs_f64() * 1000.0
        ));
        if rows != format!("{} sent", stage.ids.len()) {
            outcome.notes.push(format!("rows at the end: {rows}"));
        }
        if summary.unexpected > 0 || summary.unreadable > 0 {
            outcome.problems.push(format!(
                "{} deliveries of messages never queued, {} without a message id",
                summary.unexpected, summary.unreadable
            ));
        }
        Ok(outcome)
    }
}

/// Waits (until `deadline`) for every row to reach a final state; says how they ended
/// (`9998 sent, 2 permanent_failure (reason)`).
async fn settle(url: &str, ids: &[Uuid], deadline: Instant) -> Result<String> {
    let mut connection = loop {
        match PgConnection::connect(url).await {
            Ok(connection) => break connection,
            Err(err) if Instant::now() > deadline => return Err(err.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    loop {
        let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT status::text, count(*), min(status_reason) FROM messages \
             WHERE id = ANY($1) GROUP BY 1 ORDER BY 1 DESC",
        )
        .bind(ids)
        .fetch_all(&mut connection)
        .await
        .context("counting messages by status")?;
        let open = rows.iter().any(|(status, _, _)| {
            matches!(status.as_str(), "pending" | "leased" | "temporary_failure")
        });
        if !open || Instant::now() > deadline {
            return Ok(rows
                .iter()
                .map(|(status, count, reason)| match reason {
                    Some(reason) if status != "sent" => format!("{count} {status} ({reason})"),
                    _ => format!("{count} {status}"),
                })
                .collect::<Vec<_>>()
                .join(", "));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn address(server: &Server) -> Result<SocketAddr> {
    server
        .url
        .trim_start_matches("http://")
        .parse()
        .with_context(|| format!("the server's address in {}", server.url))
}

/// How long the receiver takes per request in `kill_replica`: long enough that the drain
/// lasts and the killed replica holds messages in flight when it dies.
const KILL_RECEIVER_DELAY: Duration = Duration::from_millis(100);

async fn kill_replica(suite: &Suite) -> Result<Outcome> {
    let receiver = Receiver::start(Behaviour::Slow(KILL_RECEIVER_DELAY)).await?;
    let mut stage = suite
        .stage(
            "kill_replica",
            3,
            &Target::Webhook(receiver.url.clone()),
            None,
        )
        .await?;
    let mut drain = Drain::start(&stage, &receiver.deliveries, suite.sizes.patience).await?;
    drain.until_share(stage.ids.len(), STRIKE_AT).await;
    let at = receiver.deliveries.distinct();
    drain.forget(0).await;
    let victim = stage.servers.remove(0);
    tokio::task::spawn_blocking(move || victim.kill()).await?;
    let killed = Instant::now();
    let mut outcome = drain
        .finish(
            &stage,
            "kill_replica",
            format!(
                "three replicas, the receiver taking {} ms a request; one killed with SIGKILL after {at} deliveries, its leases left to expire ({LEASE_PERIOD}).",
                KILL_RECEIVER_DELAY.as_millis()
            ),
            Duration::ZERO,
            Some(killed),
        )
        .await?;
    outcome.duplicates_allowed = LEASE_COUNT + 2 * SYNC_BUFFER;
    suite.tear_down(stage).await;
    Ok(outcome)
}

async fn postgres_restart(suite: &Suite) -> Result<Outcome> {
    let receiver = Receiver::start(Behaviour::Answer).await?;
    let stage = suite
        .stage(
            "postgres_restart",
            1,
            &Target::Webhook(receiver.url.clone()),
            None,
        )
        .await?;
    let drain = Drain::start(&stage, &receiver.deliveries, suite.sizes.patience).await?;
    drain.until_share(stage.ids.len(), STRIKE_AT).await;
    let at = receiver.deliveries.distinct();
    let down = suite.sizes.postgres_down;
    let (stopped, started) = tokio::task::block_in_place(|| {
        let stopped = suite.cluster.stop();
        std::thread::sleep(down);
        (stopped, suite.cluster.start_again())
    });
    stopped?;
    started?;
    let back = Instant::now();
    let outcome = drain
        .finish(
            &stage,
            "postgres_restart",
            format!(
                "PostgreSQL stopped (fast: every connection ended) after {at} deliveries, started again {} s later.",
                down.as_secs()
            ),
            down,
            Some(back),
        )
        .await?;
    suite.tear_down(stage).await;
    Ok(outcome)
}

async fn smtp_outage(suite: &Suite) -> Result<Outcome> {
    use herald_tests::smtp_server::{ScratchDir, ServerOptions, SmtpServer};
    let scratch = ScratchDir::new();
    let dir = scratch.path().to_path_buf();
    let first = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || SmtpServer::start(&dir, ServerOptions::default()))
            .await?
    };
    let port = first.port();
    let records = SmtpRecords::follow();
    records.add(first.record_path().to_path_buf());
    let stage = suite
        .stage("smtp_outage", 1, &Target::Smtp(port), None)
        .await?;
    let drain = Drain::start(&stage, &records.deliveries, suite.sizes.patience).await?;
    drain.until_share(stage.ids.len(), STRIKE_AT).await;
    let at = records.deliveries.distinct();
    tokio::task::spawn_blocking(move || drop(first)).await?;
    let outage = suite.sizes.smtp_outage;
    tokio::time::sleep(outage).await;
    let second = tokio::task::spawn_blocking(move || {
        SmtpServer::start_on(&dir, port, ServerOptions::default())
    })
    .await
    .map_err(|_| anyhow!("the SMTP server did not start again on port {port}"))?;
    records.add(second.record_path().to_path_buf());
    let back = Instant::now();
    let outcome = drain
        .finish(
            &stage,
            "smtp_outage",
            format!(
                "an SMTP drain; the SMTP server killed after {at} messages, started again on the same port {} s later.",
                outage.as_secs()
            ),
            outage,
            Some(back),
        )
        .await?;
    suite.tear_down(stage).await;
    drop(second);
    Ok(outcome)
}

async fn receiver_failing(
    suite: &Suite,
    key: &'static str,
    behaviour: Behaviour,
) -> Result<Outcome> {
    let receiver = Receiver::start(behaviour).await?;
    let stage = suite
        .stage(key, 1, &Target::Webhook(receiver.url.clone()), None)
        .await?;
    let drain = Drain::start(&stage, &receiver.deliveries, suite.sizes.patience).await?;
    let what = match behaviour {
        Behaviour::FailHalf => {
            "the receiver answers 500 to half its requests, at random.".to_owned()
        }
        Behaviour::Hang { one_in } => format!(
            "the receiver never answers one request in {one_in}, at random (Herald's dispatch timeout: {} s).",
            DISPATCH_TIMEOUT.as_secs()
        ),
        Behaviour::Answer | Behaviour::Slow(_) => "the receiver answers.".to_owned(),
    };
    let mut outcome = drain
        .finish(&stage, key, what, Duration::ZERO, None)
        .await?;
    let summary = receiver.deliveries.summary(&stage.ids);
    outcome.notes.push(match behaviour {
        Behaviour::Hang { .. } => format!("{} requests left hanging", summary.hung),
        _ => format!("{} requests answered 500", summary.refused),
    });
    suite.tear_down(stage).await;
    Ok(outcome)
}

async fn slow_headers(suite: &Suite) -> Result<Outcome> {
    let receiver = Receiver::start(Behaviour::Answer).await?;
    let stage = suite
        .stage(
            "slow_headers",
            1,
            &Target::Webhook(receiver.url.clone()),
            Some(SLOW_HEADERS_FILE_LIMIT),
        )
        .await?;
    let sockets = suite.sizes.slow_sockets;
    let attack = SlowHeaders::start(address(&stage.servers[0])?, sockets).await;
    let attacked = Instant::now();
    let drain = Drain::start(&stage, &receiver.deliveries, suite.sizes.patience).await?;
    // The sockets dribble for `slow_for`, however soon the drain ends; the drain goes on
    // after them if it must.
    tokio::time::sleep(suite.sizes.slow_for.saturating_sub(attacked.elapsed())).await;
    let figures = attack.finish().await;
    let ended = Instant::now();
    let mut outcome = drain
        .finish(
            &stage,
            "slow_headers",
            format!(
                "during the drain, {sockets} sockets send a request line and then a header byte a second for {} s; the server may open {SLOW_HEADERS_FILE_LIMIT} files.",
                suite.sizes.slow_for.as_secs()
            ),
            suite.sizes.slow_for,
            Some(ended),
        )
        .await?;
    outcome.notes.push(format!(
        "{} of {} sockets connected; the server closed {} of them while they dribbled ({:.0} s)",
        figures.opened,
        figures.tried,
        figures.closed_by_server,
        ended.duration_since(attacked).as_secs_f64()
    ));
    suite.tear_down(stage).await;
    Ok(outcome)
}

async fn junk_tokens(suite: &Suite) -> Result<Outcome> {
    let receiver = Receiver::start(Behaviour::Answer).await?;
    let stage = suite
        .stage(
            "junk_tokens",
            1,
            &Target::Webhook(receiver.url.clone()),
            None,
        )
        .await?;
    let (total, concurrency) = (suite.sizes.junk_requests, suite.sizes.junk_concurrency);
    let base = stage.servers[0].url.clone();
    let drain = Drain::start(&stage, &receiver.deliveries, suite.sizes.patience).await?;
    let flood_started = Instant::now();
    let figures = attacks::junk_tokens(&base, total, concurrency).await?;
    let flood_took = flood_started.elapsed();
    let mut outcome = drain
        .finish(
            &stage,
            "junk_tokens",
            format!(
                "during the drain, {total} event requests with junk bearer tokens (half shaped as Herald's), {concurrency} at a time."
            ),
            Duration::ZERO,
            None,
        )
        .await?;
    outcome.notes.push(format!(
        "the flood took {:.1} s; answers: {}{}",
        flood_took.as_secs_f64(),
        figures
            .answers
            .iter()
            .map(|(status, n)| format!("{status} × {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        if figures.unanswered > 0 {
            format!(", none × {}", figures.unanswered)
        } else {
            String::new()
        }
    ));
    if figures.not_401() > 0 {
        outcome.problems.push(format!(
            "{} junk requests answered otherwise than 401{}",
            figures.not_401(),
            figures
                .first_error
                .as_ref()
                .map(|err| format!(" (first error: {err})"))
                .unwrap_or_default()
        ));
    }
    suite.tear_down(stage).await;
    Ok(outcome)
}

async fn watchers(suite: &Suite) -> Result<Outcome> {
    let receiver = Receiver::start(Behaviour::Answer).await?;
    let stage = suite
        .stage("watchers", 1, &Target::Webhook(receiver.url.clone()), None)
        .await?;
    let sizes = suite.sizes;
    let users = sizes
        .watchers
        .div_ceil(sizes.watchers_per_user)
        .min(stage.subjects.len());
    let tokens = user_tokens(&stage, users).await?;
    let server = &stage.servers[0];
    let before = server.rss()?;
    let _ = server.reset_peak_rss();
    let drain = Drain::start(&stage, &receiver.deliveries, sizes.patience).await?;
    // Two rounds, each half the watchers: memory a round leaves behind grows with the rounds,
    // memory the allocator keeps for reuse does not.
    let address = address(server)?;
    let half = sizes.watchers / 2;
    let first = attacks::watchers(address, &tokens, half, sizes.watcher_wave).await?;
    let between = server.rss()?;
    let second = attacks::watchers(address, &tokens, half, sizes.watcher_wave).await?;
    drain.until_share(stage.ids.len(), 1.0).await;
    let after = server.rss()?;
    let peak = server.peak_rss()?;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let mut outcome = drain
        .finish(
            &stage,
            "watchers",
            format!(
                "during the drain, {} inbox watchers (WebSocket) of {users} users opened and closed in two rounds, {} at a time.",
                2 * half, sizes.watcher_wave
            ),
            Duration::ZERO,
            None,
        )
        .await?;
    let mut refused = first.refused;
    for (why, n) in second.refused {
        *refused.entry(why).or_default() += n;
    }
    outcome.notes.push(format!(
        "{} watchers opened{}; server RSS {:.1} MiB before, {:.1} MiB after the first round, {:.1} MiB after the second (peak {:.1} MiB)",
        first.opened + second.opened,
        if refused.is_empty() {
            String::new()
        } else {
            format!(", refused: {refused:?}")
        },
        mib(before),
        mib(between),
        mib(after),
        mib(peak)
    ));
    suite.tear_down(stage).await;
    Ok(outcome)
}

/// An API token for each of the first `users` subjects (issued by the owner).
async fn user_tokens(stage: &Stage, users: usize) -> Result<Vec<String>> {
    let http = reqwest::Client::new();
    let base = stage.servers[0].url.clone();
    let mut tokens = Vec::with_capacity(users);
    for subject in &stage.subjects[..users] {
        let response = http
            .post(format!("{base}/api/v2/users/{subject}/tokens"))
            .bearer_auth(&stage.token)
            .send()
            .await?;
        let status = response.status();
        let body: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
        let token = body["token"]
            .as_str()
            .ok_or_else(|| anyhow!("POST /users/{subject}/tokens answered {status}: {body}"))?;
        tokens.push(token.to_owned());
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::command_line;

    #[test]
    fn the_command_line_keeps_what_changes_the_run_and_drops_the_paths() {
        let args: Vec<String> = [
            "--report",
            "/w/target/chaos/report.json",
            "--quick",
            "--markdown",
            "/w/docs/chaos.md",
            "--smtp-outage",
            "20",
        ]
        .map(str::to_owned)
        .to_vec();

        assert_eq!(
            command_line(&args),
            "cargo xtask chaos --quick --smtp-outage 20"
        );
    }
}
