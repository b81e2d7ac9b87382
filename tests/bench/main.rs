//! Herald's benchmark (`cargo xtask bench [--quick]`): throughput, latency, fan-out and memory
//! of the real `herald server` process, each against its target and against the raw limit of
//! the same PostgreSQL measured in the same run. Every scenario checks that each message
//! reached the receiver exactly once before it reports a figure; one that loses or repeats a
//! message fails the run.
//!
//! Everything is local: PostgreSQL (the server `HERALD_TEST_DATABASE_URL` names, else the
//! machine's own on 127.0.0.1:5432, else a throwaway cluster from the local binaries), the
//! `herald` binary (release build, next to this one), and the webhook receiver (in this
//! process). The table goes to stdout and `target/bench/report.json`, and with `--markdown
//! PATH` to a Markdown page (`cargo xtask bench` writes `docs/benchmark.md`).
//!
//! Run: `cargo xtask bench` (or `--quick`, about a minute). Options: `--clients N`,
//! `--batch-events N`, `--lease-count N`, `--buffer N`, `--sync-interval-ms N` (the server's
//! notifier tuning), `--herald PATH`, `--report PATH`, `--markdown PATH`, `--only
//! mixed|throttle|scale` (one group alone, no Markdown report).
//!
//! `--scale` adds the scale scenarios (`scale.rs`: large backlogs, tables and fan-outs, each
//! figure on a curve drawn as an SVG plot by `plot.rs`, in `docs/bench/` beside the Markdown
//! report and in the JSON report's directory); `--scale-factor F` runs them at F × their full
//! sizes, `--only scale` runs them alone (no Markdown report), `--scale-phases backlog,purge`
//! only those named (alone too).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod plot;
mod raw;
mod receiver;
mod report;
mod scale;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use herald_application::ports::TemplateStore as _;
use herald_postgres::PgStore;
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

use receiver::Receiver;
use report::{Report, Scenario, Target};
use server::{Api, Server, Tuning};

/// The template single-recipient events use (audience: the subject user).
pub fn workspace_deleted() -> Uuid {
    *herald_domain::catalogue::WORKSPACE_DELETED.as_uuid()
}

/// The template the fan-out event uses (audience: every template-admin).
fn template_deprecated() -> Uuid {
    *herald_domain::catalogue::TEMPLATE_DEPRECATED.as_uuid()
}

/// How much each scenario does.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Concurrent connections for the raw inserts and the API clients alike.
    clients: usize,
    raw_insert_for: Duration,
    raw_lease_messages: usize,
    api_for: Duration,
    batch_events: usize,
    drain_messages: usize,
    latency_rate: u32,
    latency_for: Duration,
    fanout: usize,
}

const FULL: Sizes = Sizes {
    clients: 16,
    raw_insert_for: Duration::from_secs(10),
    raw_lease_messages: 50_000,
    api_for: Duration::from_secs(10),
    batch_events: 100,
    drain_messages: 50_000,
    latency_rate: 200,
    latency_for: Duration::from_secs(30),
    fanout: 10_000,
};

const QUICK: Sizes = Sizes {
    raw_insert_for: Duration::from_secs(3),
    raw_lease_messages: 10_000,
    api_for: Duration::from_secs(3),
    drain_messages: 10_000,
    latency_for: Duration::from_secs(8),
    ..FULL
};

#[derive(Debug)]
struct Options {
    quick: bool,
    /// `--only mixed`: only the mixed drain (a diagnostic run; no Markdown report).
    only_mixed: bool,
    /// `--scale`: the scale scenarios too (`--only scale`: them alone, no Markdown report).
    scale: bool,
    only_scale: bool,
    /// `--scale-factor F`: the scale scenarios at F × their full sizes (development runs).
    scale_factor: f64,
    /// `--scale-phases backlog,purge`: only these scale scenarios (implies `--only scale`).
    scale_phases: Option<Vec<String>>,
    /// `--only throttle`: only the throttled drain, beside a plain drain of its own (a
    /// diagnostic run; no Markdown report).
    only_throttle: bool,
    /// Events per batch request, instead of the sizes' default.
    batch_events: Option<usize>,
    /// Connections for the raw inserts and the API clients, instead of the sizes' default.
    clients: Option<usize>,
    herald: PathBuf,
    report: PathBuf,
    /// Where to write the Markdown report, if anywhere.
    markdown: Option<PathBuf>,
    /// `cargo xtask bench` with the options that change what is measured (not where the
    /// binaries and reports are), as the Markdown report names it.
    command: String,
    tuning: Tuning,
}

fn options() -> Result<Options> {
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/bench → target/<profile>/herald
    let herald = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("herald"))
        .ok_or_else(|| anyhow!("cannot locate the herald binary; pass --herald PATH"))?;
    let mut options = Options {
        quick: false,
        only_mixed: false,
        scale: false,
        only_scale: false,
        scale_factor: 1.0,
        scale_phases: None,
        only_throttle: false,
        batch_events: None,
        clients: None,
        herald,
        report: PathBuf::from("target/bench/report.json"),
        markdown: None,
        command: command_line(&std::env::args().skip(1).collect::<Vec<_>>()),
        tuning: Tuning {
            lease_count: 100,
            buffer: 1_000,
            sync_interval_ms: 200,
        },
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--only" => match value("--only")?.as_str() {
                "mixed" => options.only_mixed = true,
                "scale" => {
                    options.only_scale = true;
                    options.scale = true;
                }
                "throttle" => options.only_throttle = true,
                other => {
                    bail!(
                        "--only {other:?}: the groups that run alone are `mixed`, `throttle` and \
                         `scale`"
                    )
                }
            },
            "--scale" => options.scale = true,
            "--scale-factor" => {
                let factor: f64 = value("--scale-factor")?.parse()?;
                if !(factor > 0.0 && factor <= 1.0) {
                    bail!("--scale-factor {factor}: a factor in (0, 1] of the full sizes");
                }
                options.scale_factor = factor;
            }
            "--scale-phases" => {
                let phases: Vec<String> = value("--scale-phases")?
                    .split(',')
                    .map(|phase| phase.trim().to_owned())
                    .collect();
                if let Some(unknown) = phases.iter().find(|p| !scale::PHASES.contains(&p.as_str()))
                {
                    bail!(
                        "--scale-phases: no scale scenario {unknown:?}; they are {}",
                        scale::PHASES.join(", ")
                    );
                }
                options.scale_phases = Some(phases);
                options.only_scale = true;
                options.scale = true;
            }
            "--herald" => options.herald = value("--herald")?.into(),
            "--report" => options.report = value("--report")?.into(),
            "--markdown" => options.markdown = Some(value("--markdown")?.into()),
            "--lease-count" => options.tuning.lease_count = value("--lease-count")?.parse()?,
            "--batch-events" => options.batch_events = Some(value("--batch-events")?.parse()?),
            "--clients" => options.clients = Some(value("--clients")?.parse()?),
            "--buffer" => options.tuning.buffer = value("--buffer")?.parse()?,
            "--sync-interval-ms" => {
                options.tuning.sync_interval_ms = value("--sync-interval-ms")?.parse()?;
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(options)
}

/// `cargo xtask bench` with the benchmark's arguments, less those that only say where the
/// binaries and reports are.
fn command_line(args: &[String]) -> String {
    let mut command = String::from("cargo xtask bench");
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
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: FAILED: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A database of the benchmark's own on the server, dropped at the end (best effort).
struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    async fn create(admin_url: &str, kind: &str) -> Result<Self> {
        let name = format!("herald_bench_{kind}_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let _ = admin.close().await;
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(&name);
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        })
    }

    /// A database of its own with Herald's schema and catalogue, for the raw limits.
    async fn with_schema(admin_url: &str, kind: &str) -> Result<Self> {
        let database = Self::create(admin_url, kind).await?;
        let store = PgStore::connect(&database.url).await?;
        store.migrate().await?;
        store.seed(&herald_domain::catalogue::templates()).await?;
        store.close().await;
        Ok(database)
    }

    async fn drop_now(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

async fn run() -> Result<()> {
    let options = options()?;
    let mut sizes = if options.quick { QUICK } else { FULL };
    if let Some(events) = options.batch_events {
        sizes.batch_events = events;
    }
    if let Some(clients) = options.clients {
        sizes.clients = clients;
    }
    if !options.herald.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p herald` or run `cargo xtask bench`",
            options.herald.display()
        );
    }
    let admin_url = herald_tests::postgres::choose_server(
        std::env::var(herald_tests::postgres::DATABASE_URL_VAR).ok(),
        herald_tests::docker_postgres::start,
        herald_tests::local_cluster::start,
    )
    .map_err(|why| anyhow!(why))?;
    let mut report = Report::new(
        options.quick,
        options.command.clone(),
        &admin_url,
        options.tuning,
    )
    .await?;
    eprintln!("bench: {}", report.machine_line());
    let only = options.only_mixed || options.only_throttle || options.only_scale;
    if !only {
        general_scenarios(&options, sizes, &admin_url, &mut report).await?;
    }
    if !only || options.only_throttle {
        throttled_drain(&options, sizes, &admin_url, &mut report).await?;
    }

    // 3. A drain of webhook messages beside as many emails to the real SMTP test server.
    if !only || options.only_mixed {
        let db = Database::create(&admin_url, "herald").await?;
        let result = mixed_drain(&options, sizes, &db.url, &mut report).await;
        db.drop_now().await;
        result?;
    }

    // 4. The scale scenarios.
    if options.scale {
        let scale_sizes = scale::ScaleSizes::at(options.scale_factor);
        scale::run(&options, sizes, scale_sizes, &admin_url, &mut report).await?;
    }

    report.print();
    report.write(&options.report)?;
    eprintln!("bench: report written to {}", options.report.display());
    match &options.markdown {
        Some(_) if only => {
            eprintln!("bench: --only: no Markdown report (it would hold one group)");
        }
        Some(markdown) => {
            report.write_markdown(markdown)?;
            eprintln!("bench: Markdown report written to {}", markdown.display());
        }
        None => {}
    }
    Ok(())
}

/// The raw limits, then Herald's scenarios on a database of its own.
async fn general_scenarios(
    options: &Options,
    sizes: Sizes,
    admin_url: &str,
    report: &mut Report,
) -> Result<()> {
    // 1. The raw limit, on a database of its own with Herald's schema.
    let raw_db = Database::with_schema(admin_url, "raw").await?;
    eprintln!("bench: raw single-row inserts…");
    let (raw_insert, raw_insert_cpu) =
        raw::single_inserts(&raw_db.url, sizes.clients, sizes.raw_insert_for).await?;
    eprintln!("bench: raw plain HTTP endpoint, one INSERT per event…");
    let plain_subjects: Vec<Uuid> = (0..1_000).map(|_| Uuid::new_v4()).collect();
    let (plain_api, plain_api_pg, plain_api_own) =
        raw::plain_api_inserts(&raw_db.url, &plain_subjects, sizes.clients, sizes.api_for).await?;
    raw::fill(&raw_db.url, sizes.raw_lease_messages).await?;
    eprintln!("bench: raw lease + mark sent…");
    let (raw_lease, leased, raw_lease_cpu) =
        raw::lease_and_mark_sent(&raw_db.url, options.tuning.lease_count).await?;
    if leased != sizes.raw_lease_messages {
        bail!(
            "the raw lease loop marked {leased} of {} messages sent",
            sizes.raw_lease_messages
        );
    }
    raw_db.drop_now().await;
    report.push(Scenario::baseline(
        "raw_single_insert",
        format!(
            "raw limit: single-row INSERTs, {} connections; CPU per message: postgres {raw_insert_cpu:.0} µs",
            sizes.clients
        ),
        raw_insert,
        "rows/s",
    ));
    report.push(Scenario::baseline(
        "raw_plain_api_insert",
        format!(
            "raw limit: a plain HTTP endpoint, one INSERT per event (no template, recipient or preference read; nothing batched), {} clients as for Herald's single events; CPU per event: postgres {plain_api_pg:.0} µs, endpoint+clients {plain_api_own:.0} µs",
            sizes.clients
        ),
        plain_api,
        "events/s",
    ));
    report.push(Scenario::baseline(
        "raw_lease_mark_sent",
        format!(
            "raw limit: lease {} + mark sent, one worker; CPU per message: postgres {raw_lease_cpu:.0} µs",
            options.tuning.lease_count
        ),
        raw_lease,
        "messages/s",
    ));

    // 2. Herald: the server process, its database, the receiver.
    let db = Database::create(admin_url, "herald").await?;
    let result = herald_scenarios(
        options, sizes, admin_url, &db.url, report, raw_insert, raw_lease,
    )
    .await;
    db.drop_now().await;
    result
}

async fn herald_scenarios(
    options: &Options,
    sizes: Sizes,
    admin_url: &str,
    url: &str,
    report: &mut Report,
    raw_insert: f64,
    raw_lease: f64,
) -> Result<()> {
    let receiver = Receiver::start().await?;
    let server = Server::start(&options.herald, url, &receiver.url, options.tuning, &[])?;
    let token = server::create_owner(&options.herald, url)?;
    let api = Api::new(&server.url, &token)?;
    let subjects = insert_users(url, 1_000, "member").await?;
    api.set_paused(true).await?;

    // 3a. Enqueue, one event per request.
    eprintln!("bench: enqueue via the API, one event per request…");
    let cpu_before = server::CpuSample::take(&server);
    let (rate, ids) = single_events(&api, &subjects, sizes.clients, sizes.api_for, false).await?;
    let single_rate = rate;
    let cpu = server::CpuSample::take(&server).per_message_since(&cpu_before, ids.len());
    let of_plain = report
        .figure("raw_plain_api_insert")
        .map(|plain| format!("; {:.0} % of raw_plain_api_insert", 100.0 * rate / plain))
        .unwrap_or_default();
    report.push(Scenario::measured(
        "api_enqueue_single",
        format!(
            "POST /notifications/events, one event per request, {} clients; {cpu}{of_plain}",
            sizes.clients
        ),
        rate,
        "events/s",
        Target::RatioOf {
            baseline: "raw_single_insert",
            at_least: 0.60,
            value: raw_insert,
        },
    ));
    deliver_queued(&api, &receiver, &ids, url).await?;

    // 3a'. Enqueue, one event per request, each with an idempotency key of its own.
    eprintln!("bench: enqueue via the API, one event per request with an idempotency key…");
    let cpu_before = server::CpuSample::take(&server);
    let (rate, ids) = single_events(&api, &subjects, sizes.clients, sizes.api_for, true).await?;
    let cpu = server::CpuSample::take(&server).per_message_since(&cpu_before, ids.len());
    report.push(Scenario::measured(
        "api_enqueue_single_keyed",
        format!(
            "POST /notifications/events with an Idempotency-Key, one event per request, {} \
             clients; {cpu}",
            sizes.clients
        ),
        rate,
        "events/s",
        Target::RatioOf {
            baseline: "api_enqueue_single",
            at_least: 0.80,
            value: single_rate,
        },
    ));
    deliver_queued(&api, &receiver, &ids, url).await?;

    // 3b. Enqueue, batches of events.
    eprintln!("bench: enqueue via the API, batches…");
    let cpu_before = server::CpuSample::take(&server);
    let (rate, ids) = batches(&api, &subjects, sizes, "batch").await?;
    let cpu = server::CpuSample::take(&server).per_message_since(&cpu_before, ids.len());
    report.push(Scenario::measured(
        "api_enqueue_batch",
        format!(
            "POST /notifications/events/batch, {} events per request, {} clients; {cpu}",
            sizes.batch_events, sizes.clients
        ),
        rate,
        "messages/s",
        Target::AtLeast(25_000.0),
    ));

    // 2 + 6. Drain what the batches queued; the server's peak RSS meanwhile.
    eprintln!("bench: drain {} webhook messages…", ids.len());
    let rss_reset = server.reset_peak_rss().is_ok();
    let cpu_before = server::CpuSample::take(&server);
    let started = Instant::now();
    api.set_paused(false).await?;
    let arrivals = receiver
        .expect_exactly(&ids, Duration::from_secs(300))
        .await?;
    let drain = Receiver::rate_since(started, &arrivals);
    let peak = server.peak_rss()?;
    wait_all_sent(url, &ids).await?;
    let cpu = server::CpuSample::take(&server).per_message_since(&cpu_before, ids.len());
    eprintln!("bench: drain {cpu}");
    report.push(Scenario::measured(
        "drain",
        format!(
            "drain {} queued webhook messages (lease {}, buffer {}; {cpu})",
            ids.len(),
            options.tuning.lease_count,
            options.tuning.buffer
        ),
        drain,
        "messages/s",
        Target::AtLeastAndRatio {
            at_least: 5_000.0,
            baseline: "raw_lease_mark_sent",
            ratio: 0.70,
            value: raw_lease,
        },
    ));
    report.push(Scenario::measured(
        "memory",
        format!(
            "server peak RSS during the drain{}",
            if rss_reset {
                ""
            } else {
                " (since start: peak reset refused)"
            }
        ),
        peak as f64 / (1024.0 * 1024.0),
        "MiB",
        Target::AtMost(64.0),
    ));
    // 2b. The delivery side's own limit: the same number of plain POSTs of the drain's mean
    // body size to the same receiver, as many in flight as a lease returns; no database.
    let body_bytes = receiver.mean_body_bytes();
    receiver.reset();
    eprintln!("bench: raw webhook POSTs ({body_bytes}-byte bodies)…");
    let (raw_posts, raw_posts_cpu) =
        raw::webhook_posts(&receiver, ids.len(), options.tuning.lease_count, body_bytes).await?;
    report.push(Scenario::baseline(
        "raw_webhook_posts",
        format!(
            "raw limit: {} plain HTTP POSTs of {body_bytes} bytes to the receiver, {} at a time, no database; CPU per message: receiver+clients {raw_posts_cpu:.0} µs",
            ids.len(),
            options.tuning.lease_count
        ),
        raw_posts,
        "messages/s",
    ));
    receiver.reset();
    // 2c. A plain queue worker that delivers (raw SQL and plain POSTs of the same size, the
    // next lease taken while a batch is in flight), on a database of its own.
    eprintln!("bench: raw lease + POST + mark sent…");
    let raw_db = Database::with_schema(admin_url, "raw").await?;
    raw::fill(&raw_db.url, ids.len()).await?;
    let worker = raw::lease_post_mark_sent(
        &raw_db.url,
        options.tuning.lease_count,
        &receiver,
        body_bytes,
    )
    .await;
    raw_db.drop_now().await;
    let (raw_worker, raw_worker_pg, raw_worker_own) = worker?;
    report.push(Scenario::baseline(
        "raw_lease_post_mark_sent",
        format!(
            "raw limit: a plain worker, lease {} + POST each ({body_bytes} bytes, a lease at once, the next leased meanwhile) + mark sent, {} messages; CPU per message: postgres {raw_worker_pg:.0} µs, worker+receiver {raw_worker_own:.0} µs; Herald's drain: {:.0} % of this",
            options.tuning.lease_count,
            ids.len(),
            100.0 * drain / raw_worker
        ),
        raw_worker,
        "messages/s",
    ));
    receiver.reset();
    between_scenarios(url).await?;

    // 2d. The same drain with a latency tail at the receiver (1 request in 200 waits 50 ms),
    // and a plain worker pool that refills each slot as it frees, with the same tail.
    eprintln!("bench: drain with a latency tail…");
    api.set_paused(true).await?;
    let (_, tail_ids) = batches(&api, &subjects, sizes, "tail").await?;
    receiver.set_tail(Some(TAIL));
    let started = Instant::now();
    api.set_paused(false).await?;
    let arrivals = receiver
        .expect_exactly(&tail_ids, Duration::from_secs(300))
        .await?;
    let drain_tail = Receiver::rate_since(started, &arrivals);
    wait_all_sent(url, &tail_ids).await?;
    receiver.reset();
    eprintln!("bench: raw worker pool with the latency tail…");
    let pool_db = Database::with_schema(admin_url, "raw").await?;
    raw::fill(&pool_db.url, tail_ids.len()).await?;
    let pool = raw::lease_pool_post_mark_sent(
        &pool_db.url,
        options.tuning.lease_count,
        &receiver,
        body_bytes,
    )
    .await;
    pool_db.drop_now().await;
    let pool_tail = pool?;
    receiver.set_tail(None);
    receiver.reset();
    report.push(Scenario::baseline(
        "raw_pool_tail",
        format!(
            "raw limit: a plain worker pool, {} POSTs in flight, each slot refilled as it frees, bulk lease and mark sent, {} messages, 1 request in {} answered after {:?}",
            options.tuning.lease_count,
            tail_ids.len(),
            TAIL.0,
            TAIL.1
        ),
        pool_tail,
        "messages/s",
    ));
    report.push(Scenario::measured(
        "drain_tail",
        format!(
            "drain {} queued webhook messages, 1 request in {} answered after {:?}; {:.0} % of the fast drain, {:.0} % of raw_pool_tail",
            tail_ids.len(),
            TAIL.0,
            TAIL.1,
            100.0 * drain_tail / drain,
            100.0 * drain_tail / pool_tail
        ),
        drain_tail,
        "messages/s",
        Target::RatioOf {
            baseline: "raw_pool_tail",
            at_least: 0.90,
            value: pool_tail,
        },
    ));
    report.push(Scenario::measured(
        "drain_tail_of_fast",
        "the drain with the latency tail over the fast drain".to_owned(),
        drain_tail / drain,
        "ratio",
        Target::AtLeast(0.85),
    ));
    between_scenarios(url).await?;

    // 4. Latency under a steady offered load.
    eprintln!(
        "bench: latency at {} events/s for {:?}…",
        sizes.latency_rate, sizes.latency_for
    );
    let (p50, p99, max) = latency(&api, &receiver, &subjects, sizes).await?;
    report.push(Scenario::measured(
        "latency_p50",
        format!(
            "API 2xx → webhook received, {} events/s offered, p50",
            sizes.latency_rate
        ),
        p50,
        "ms",
        Target::AtMost(5.0),
    ));
    report.push(Scenario::measured(
        "latency_p99",
        format!("same, p99 (max {max:.1} ms)"),
        p99,
        "ms",
        Target::AtMost(25.0),
    ));
    receiver.reset();

    // 5. Fan-out: role events to many recipients, one at a time; the median of three.
    eprintln!("bench: fan-out to {} recipients…", sizes.fanout);
    insert_users(url, sizes.fanout, "template-admin").await?;
    between_scenarios(url).await?;
    let mut took = Vec::new();
    let mut ids = Vec::new();
    for round in 0..3 {
        let started = Instant::now();
        let queued = api
            .event(&json!({
                "template_id": template_deprecated(),
                "labels": {"template": format!("bench-template-{round}"),
                           "organization": "bench", "message": "fan-out"},
            }))
            .await?;
        took.push(started.elapsed().as_secs_f64() * 1000.0);
        if queued.len() != sizes.fanout {
            bail!(
                "the fan-out event queued {} messages for {} recipients",
                queued.len(),
                sizes.fanout
            );
        }
        ids.extend(queued);
    }
    receiver
        .expect_exactly(&ids, Duration::from_secs(180))
        .await?;
    wait_all_sent(url, &ids).await?;
    took.sort_by(f64::total_cmp);
    report.push(Scenario::measured(
        "fanout",
        format!(
            "one role event to {} recipients, request to 202 (median of 3; {:.0} to {:.0} ms)",
            sizes.fanout, took[0], took[2]
        ),
        took[1],
        "ms",
        Target::AtMost(1000.0),
    ));

    server.stop();
    Ok(())
}

/// Vacuums the queue between scenarios (see [`raw::vacuum`]).
/// How long after the drain started each of `ids` reached the receiver, as `arrivals` gives
/// them: the p99, in milliseconds.
fn p99_since(started: Instant, arrivals: &[Instant]) -> f64 {
    let mut waits: Vec<f64> = arrivals
        .iter()
        .map(|at| at.duration_since(started).as_secs_f64() * 1000.0)
        .collect();
    waits.sort_by(f64::total_cmp);
    waits
        .get((waits.len() * 99 / 100).min(waits.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

/// The drain of 2 again with the throttle on at a limit no recipient reaches (every message
/// is counted in the lease, none held back), as a ratio of the same run's plain drain. With
/// `--only throttle` the plain drain is measured here first, as this one is.
async fn throttled_drain(
    options: &Options,
    sizes: Sizes,
    admin_url: &str,
    report: &mut Report,
) -> Result<()> {
    let plain = match report.figure("drain") {
        Some(drain) => drain,
        None => {
            eprintln!(
                "bench: drain {} webhook messages, no throttle…",
                sizes.drain_messages
            );
            let (rate, cpu) = drain_alone(options, sizes, admin_url, &[]).await?;
            report.push(Scenario::baseline(
                "drain",
                format!(
                    "drain {} queued webhook messages on a fresh database (lease {}, buffer {}; {cpu})",
                    sizes.drain_messages, options.tuning.lease_count, options.tuning.buffer
                ),
                rate,
                "messages/s",
            ));
            rate
        }
    };
    eprintln!(
        "bench: drain {} webhook messages, throttled…",
        sizes.drain_messages
    );
    let limit = [
        "--notifications-user-rate-limit".to_owned(),
        "1000000/1h".to_owned(),
    ];
    let (rate, cpu) = drain_alone(options, sizes, admin_url, &limit).await?;
    report.push(Scenario::measured(
        "drain_throttled",
        format!(
            "the drain with --notifications-user-rate-limit 1000000/1h, every message counted \
             per recipient in its lease and none held back ({cpu}); {:.0} % of the drain",
            100.0 * rate / plain
        ),
        rate,
        "messages/s",
        Target::RatioOf {
            baseline: "drain",
            at_least: 0.90,
            value: plain,
        },
    ));
    Ok(())
}

/// Queues `sizes.drain_messages` webhook messages for 1,000 users on a fresh database and a
/// server started with `extra`, paused, then drains them: messages per second and the CPU
/// per message.
async fn drain_alone(
    options: &Options,
    sizes: Sizes,
    admin_url: &str,
    extra: &[String],
) -> Result<(f64, String)> {
    let db = Database::create(admin_url, "herald").await?;
    let result = async {
        let receiver = Receiver::start().await?;
        let server = Server::start(
            &options.herald,
            &db.url,
            &receiver.url,
            options.tuning,
            extra,
        )?;
        let token = server::create_owner(&options.herald, &db.url)?;
        let api = Api::new(&server.url, &token)?;
        let subjects = insert_users(&db.url, 1_000, "member").await?;
        api.set_paused(true).await?;
        let (_, ids) = batches(&api, &subjects, sizes, "drain").await?;
        let cpu_before = server::CpuSample::take(&server);
        let started = Instant::now();
        api.set_paused(false).await?;
        let arrivals = receiver
            .expect_exactly(&ids, Duration::from_secs(300))
            .await?;
        let rate = Receiver::rate_since(started, &arrivals);
        wait_all_sent(&db.url, &ids).await?;
        let cpu = server::CpuSample::take(&server).per_message_since(&cpu_before, ids.len());
        server.stop();
        anyhow::Ok((rate, cpu.to_string()))
    }
    .await;
    db.drop_now().await;
    result
}

/// Webhook messages drained alone, then the same number beside as many emails (queued
/// interleaved, a template overridden to email) to the real SMTP test server: the p99 of the
/// webhook messages' time from the drain's start to the receiver, with the emails over alone.
async fn mixed_drain(
    options: &Options,
    sizes: Sizes,
    url: &str,
    report: &mut Report,
) -> Result<()> {
    let scratch = herald_tests::smtp_server::ScratchDir::new();
    let smtp = herald_tests::smtp_server::SmtpServer::start(
        scratch.path(),
        herald_tests::smtp_server::ServerOptions::default(),
    );
    let receiver = Receiver::start().await?;
    let extra = [
        "--email-smarthost".to_owned(),
        format!("127.0.0.1:{}", smtp.port()),
        "--email-from".to_owned(),
        "bench@example.com".to_owned(),
    ];
    let server = Server::start(&options.herald, url, &receiver.url, options.tuning, &extra)?;
    let token = server::create_owner(&options.herald, url)?;
    let api = Api::new(&server.url, &token)?;
    let subjects = insert_users(url, 1_000, "member").await?;
    let emailed = *herald_domain::catalogue::WORKSPACE_MARKED_DORMANT.as_uuid();
    api.set_template_method(emailed, "smtp").await?;
    let count = sizes.drain_messages / 4;

    let mut webhook_p99 = Vec::new();
    let mut cpu_lines = Vec::new();
    // The emails Herald sent, sent again by a plain client beside the last webhook-only drain.
    let mut sent_emails = Vec::new();
    for phase in [Mixed::Alone, Mixed::WithEmail, Mixed::BesideRawEmail] {
        let with_email = phase == Mixed::WithEmail;
        api.set_paused(true).await?;
        let mut webhooks = Vec::new();
        let mut emails = Vec::new();
        // A batch holds at most `batch_events` events: with emails, half as many of each.
        let per_batch = if with_email {
            (sizes.batch_events / 2).max(1)
        } else {
            sizes.batch_events
        };
        for chunk in 0..count.div_ceil(per_batch) {
            let mut events = Vec::new();
            for i in 0..per_batch.min(count - chunk * per_batch) {
                let n = chunk * per_batch + i;
                let subject = subjects[n % subjects.len()];
                let name = format!("mixed-{phase:?}-{n}");
                events.push(subject_event(subject, &name));
                if with_email {
                    let mut email = subject_event(subject, &name);
                    email["template_id"] = json!(emailed);
                    email["labels"]["timeTilDormant"] = json!("a week");
                    events.push(email);
                }
            }
            let queued = api.batch(&events).await?;
            for (i, id) in queued.into_iter().enumerate() {
                if with_email && i % 2 == 1 {
                    emails.push(id);
                } else {
                    webhooks.push(id);
                }
            }
        }
        let cpu_before = MixedCpu::take(&server, &smtp);
        let started = Instant::now();
        let raw_sender = (phase == Mixed::BesideRawEmail).then(|| {
            tokio::spawn(raw::smtp_sends(
                smtp.port(),
                std::mem::take(&mut sent_emails),
                options.tuning.lease_count.div_ceil(2),
            ))
        });
        api.set_paused(false).await?;
        let arrivals = receiver
            .expect_exactly(&webhooks, Duration::from_secs(300))
            .await?;
        let p99 = p99_since(started, &arrivals);
        webhook_p99.push(p99);
        // The CPU spent while the webhook messages drained (up to their last arrival).
        let spent = MixedCpu::take(&server, &smtp).since(&cpu_before);
        let wall = started.elapsed();
        // How much of the SMTP half competed with the webhook messages: the emails the
        // server took while they drained (those of earlier phases left out).
        let taken_before = if phase == Mixed::BesideRawEmail {
            count
        } else {
            0
        };
        let meanwhile = smtp.messages().len().saturating_sub(taken_before);
        let mut cpu = spent.describe(wall);
        if phase != Mixed::Alone {
            cpu.push_str(&format!(
                "; {meanwhile} of the {count} emails sent meanwhile"
            ));
        }
        eprintln!("bench: mixed drain ({phase:?}): webhook p99 {p99:.0} ms; {cpu}");
        cpu_lines.push(cpu);
        wait_all_sent(url, &[webhooks, emails].concat()).await?;
        if let Some(raw_sender) = raw_sender {
            raw_sender.await??;
        }
        if with_email {
            sent_emails = smtp
                .messages()
                .into_iter()
                .filter_map(|message| message["data"].as_str().map(str::to_owned))
                .collect();
            if sent_emails.len() != count {
                bail!(
                    "the SMTP server recorded {} emails of {count}",
                    sent_emails.len()
                );
            }
        }
        receiver.reset();
    }
    let (alone, mixed, beside_raw) = (webhook_p99[0], webhook_p99[1], webhook_p99[2]);
    report.push(Scenario::baseline(
        "webhook_alone_p99",
        format!(
            "{count} webhook messages drained alone: p99 time from the drain's start to the receiver; {}",
            cpu_lines[0]
        ),
        alone,
        "ms",
    ));
    report.push(Scenario::measured(
        "webhook_beside_email_p99",
        format!(
            "the same beside {count} emails to the real SMTP test server, queued interleaved: p99 time to the receiver, {:.2}× webhook_alone_p99; {}",
            mixed / alone,
            cpu_lines[1]
        ),
        mixed,
        "ms",
        Target::AtMost(2.0 * alone),
    ));
    report.push(Scenario::baseline(
        "webhook_beside_raw_email_p99",
        format!(
            "raw limit: the webhook messages drained alone again while a plain SMTP client (no Herald, {} connections) sends the same {count} emails to the same server: p99 time to the receiver, {:.2}× webhook_alone_p99; {}",
            options.tuning.lease_count.div_ceil(2),
            beside_raw / alone,
            cpu_lines[2]
        ),
        beside_raw,
        "ms",
    ));
    drop(server);
    Ok(())
}

/// The phases of the mixed drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mixed {
    /// Webhook messages only.
    Alone,
    /// As many emails queued interleaved with them.
    WithEmail,
    /// Webhook messages only, while a plain SMTP client sends the emails Herald sent.
    BesideRawEmail,
}

/// CPU seconds used so far by each process of the mixed drain: those of every scenario, and
/// the SMTP server.
#[derive(Debug, Clone, Copy)]
struct MixedCpu {
    processes: server::CpuSample,
    smtp: f64,
}

impl MixedCpu {
    fn take(server: &Server, smtp: &herald_tests::smtp_server::SmtpServer) -> Self {
        Self {
            processes: server::CpuSample::take(server),
            smtp: server::cpu_seconds(&smtp.pid().to_string()).unwrap_or(0.0),
        }
    }

    fn since(&self, earlier: &Self) -> Self {
        Self {
            processes: self.processes.since(&earlier.processes),
            smtp: self.smtp - earlier.smtp,
        }
    }

    /// The CPU each used over `wall`, and all of them as a share of the machine's cores.
    fn describe(&self, wall: Duration) -> String {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let server::CpuSample {
            herald,
            postgres,
            bench,
        } = self.processes;
        let total = herald + postgres + self.smtp + bench;
        format!(
            "CPU over the webhook messages' {:.0} ms: herald {:.0} ms, postgres {:.0} ms, SMTP server {:.0} ms, receiver+clients {:.0} ms ({:.0} % of {cores} cores)",
            wall.as_secs_f64() * 1000.0,
            herald * 1000.0,
            postgres * 1000.0,
            self.smtp * 1000.0,
            bench * 1000.0,
            100.0 * total / (wall.as_secs_f64() * cores as f64),
        )
    }
}

/// The receiver's latency tail in the tail scenarios: every 200th request waits 50 ms.
const TAIL: (usize, Duration) = (200, Duration::from_millis(50));

/// After an enqueue scenario (the notifier paused): lets the notifier deliver what it queued,
/// then pauses it again and tidies the database for the next scenario.
async fn deliver_queued(api: &Api, receiver: &Receiver, ids: &[Uuid], url: &str) -> Result<()> {
    api.set_paused(false).await?;
    receiver
        .expect_exactly(ids, Duration::from_secs(120))
        .await?;
    receiver.reset();
    api.set_paused(true).await?;
    between_scenarios(url).await
}

async fn between_scenarios(url: &str) -> Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    raw::vacuum(&pool).await?;
    pool.close().await;
    Ok(())
}

/// Directory users straight into the table (setup, not measured).
async fn insert_users(url: &str, count: usize, role: &str) -> Result<Vec<Uuid>> {
    let mut connection = PgConnection::connect(url).await?;
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    sqlx::query(
        "INSERT INTO users (id, email, username, name, roles) \
         SELECT id, 'u' || id || '@bench.example', 'u' || id, 'Bench user', ARRAY[$2] \
         FROM UNNEST($1::uuid[]) AS u(id)",
    )
    .bind(&ids)
    .bind(role)
    .execute(&mut connection)
    .await?;
    // As autovacuum would have by the time a real directory is this size (it may be off on
    // the benchmark machine): set the new rows' hint bits and the statistics.
    sqlx::query("VACUUM ANALYZE users")
        .execute(&mut connection)
        .await?;
    Ok(ids)
}

fn subject_event(subject: Uuid, name: &str) -> Value {
    json!({
        "template_id": workspace_deleted(),
        "user_id": subject,
        "labels": {"name": name, "reason": "bench", "initiator": "bench"},
        "created_by": "bench",
    })
}

/// `clients` connections each sending one event per request for `duration`.
async fn single_events(
    api: &Api,
    subjects: &[Uuid],
    clients: usize,
    duration: Duration,
    keyed: bool,
) -> Result<(f64, Vec<Uuid>)> {
    let subjects = Arc::new(subjects.to_vec());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (api, subjects) = (api.clone(), subjects.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut i = 0usize;
            while started.elapsed() < duration {
                let subject = subjects[(client + i * 7) % subjects.len()];
                let name = if keyed {
                    format!("keyed-{client}-{i}")
                } else {
                    format!("single-{client}-{i}")
                };
                // A fresh key per request: each is stored with its answer, none replayed.
                let key = keyed.then(|| name.clone());
                let queued = api
                    .event_keyed(&subject_event(subject, &name), key.as_deref())
                    .await?;
                if queued.len() != 1 {
                    bail!("an event queued {} messages, 1 expected", queued.len());
                }
                ids.extend(queued);
                i += 1;
            }
            Ok(ids)
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await??);
    }
    Ok((ids.len() as f64 / started.elapsed().as_secs_f64(), ids))
}

/// `sizes.drain_messages` single-recipient events in batches of `sizes.batch_events`, from
/// `sizes.clients` connections: messages per second.
async fn batches(
    api: &Api,
    subjects: &[Uuid],
    sizes: Sizes,
    prefix: &'static str,
) -> Result<(f64, Vec<Uuid>)> {
    let requests = sizes.drain_messages.div_ceil(sizes.batch_events);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let subjects = Arc::new(subjects.to_vec());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..sizes.clients {
        let (api, subjects, next) = (api.clone(), subjects.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let request = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if request >= requests {
                    break;
                }
                let events: Vec<Value> = (0..sizes.batch_events)
                    .map(|i| {
                        let n = request * sizes.batch_events + i;
                        subject_event(subjects[n % subjects.len()], &format!("{prefix}-{n}"))
                    })
                    .collect();
                let queued = api.batch(&events).await?;
                if queued.len() != events.len() {
                    bail!(
                        "a batch of {} events queued {} messages",
                        events.len(),
                        queued.len()
                    );
                }
                ids.extend(queued);
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await??);
    }
    Ok((ids.len() as f64 / started.elapsed().as_secs_f64(), ids))
}

/// Offers `sizes.latency_rate` events per second (open loop: a request starts on schedule
/// whether or not earlier ones finished) and measures, per message, the time from the API's
/// 202 to the receiver getting it. Returns p50, p99 and max in milliseconds.
async fn latency(
    api: &Api,
    receiver: &Receiver,
    subjects: &[Uuid],
    sizes: Sizes,
) -> Result<(f64, f64, f64)> {
    let total = (f64::from(sizes.latency_rate) * sizes.latency_for.as_secs_f64()) as usize;
    let interval = Duration::from_secs(1) / sizes.latency_rate;
    let answered: Arc<Mutex<Vec<(Uuid, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until(started + interval * u32::try_from(i)?).await;
        let (api, answered) = (api.clone(), answered.clone());
        let event = subject_event(subjects[i % subjects.len()], &format!("latency-{i}"));
        tasks.push(tokio::spawn(async move {
            let ids = api.event(&event).await?;
            let at = Instant::now();
            let mut answered = answered.lock().unwrap_or_else(PoisonError::into_inner);
            answered.extend(ids.into_iter().map(|id| (id, at)));
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let answered = std::mem::take(&mut *answered.lock().unwrap_or_else(PoisonError::into_inner));
    if answered.len() != total {
        bail!("{total} events queued {} messages", answered.len());
    }
    let ids: Vec<Uuid> = answered.iter().map(|(id, _)| *id).collect();
    let arrivals = receiver
        .expect_exactly(&ids, Duration::from_secs(60))
        .await?;
    let mut millis: Vec<f64> = answered
        .iter()
        .zip(&arrivals)
        // A webhook can arrive before the 202 reaches the client: that counts as 0.
        .map(|((_, answered), arrived)| {
            arrived.saturating_duration_since(*answered).as_secs_f64() * 1000.0
        })
        .collect();
    millis.sort_by(f64::total_cmp);
    let at = |q: f64| millis[((millis.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.50), at(0.99), at(1.0)))
}

/// Waits until every message's row says `sent` (the results are written back in bulk after
/// delivery).
async fn wait_all_sent(url: &str, ids: &[Uuid]) -> Result<()> {
    let mut connection = PgConnection::connect(url).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE id = ANY($1) AND status = 'sent'",
        )
        .bind(ids)
        .fetch_one(&mut connection)
        .await
        .context("counting sent messages")?;
        if sent as usize == ids.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{sent} of {} delivered messages are recorded as sent",
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::command_line;

    #[test]
    fn the_command_line_keeps_what_changes_the_figures_and_drops_the_paths() {
        let args: Vec<String> = [
            "--report",
            "/w/target/bench/report.json",
            "--markdown",
            "/w/docs/benchmark.md",
            "--quick",
            "--herald",
            "/w/target/release/herald",
            "--clients",
            "8",
        ]
        .map(str::to_owned)
        .to_vec();

        assert_eq!(command_line(&args), "cargo xtask bench --quick --clients 8");
    }
}
