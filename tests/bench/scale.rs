//! The scale scenarios (`cargo xtask bench --scale`): how the cost grows as the work grows.
//! Each runs the real `herald server` on a database of its own, with its large tables seeded
//! by PostgreSQL itself (`generate_series` over a prototype row Herald wrote, in the
//! benchmark's database, not through the API), and checks its targets against figures of the
//! same run:
//!
//! - backlog: drain rate and lease p99 with 10k, 100k and 1M messages waiting, and beside the
//!   smallest and the largest the raw limit: the same backlog drained by a plain SQL worker;
//! - history: single and batch enqueue rates with 0 and 5M rows of sent history, and the raw
//!   limit of single enqueue statements of Herald's shape on the same tables;
//! - purge: 1M expired rows purged while 500 events/s flow (pick-up p99 with and without it,
//!   the slowest enqueue meanwhile), and the raw limit: the slowest of plain single enqueue
//!   statements at the same rate while the same purge runs again;
//! - inbox: the inbox page and the unread page p99 of a user with 1k, 10k, 100k notifications;
//! - fan-out: one role event to 1k, 10k, 100k recipients (to 202, to all delivered, peak RSS);
//! - replicas: one, two and three servers draining the same 100k backlog (rate, duplicates).
//!
//! `--scale-factor F` runs every size at F × the full one (durations too, within floors), so
//! that a development run takes a minute or two.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, Utc};
use herald_application::Purger;
use herald_application::ports::{
    HeldLease, LeaseRequest, MessageQueue as _, PurgeOutcome, SkipMethods, SystemClock,
};
use herald_postgres::{PgStore, WAKEUP_CHANNEL};
use serde_json::json;
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

use crate::receiver::Receiver;
use crate::report::{Curve, Report, Scenario, Series, Target};
use crate::server::{self, Api, Server};
use crate::{Database, Options, Sizes, insert_users, subject_event, template_deprecated};

/// The full sizes of the scale scenarios.
#[derive(Debug, Clone, Copy)]
pub struct ScaleSizes {
    pub factor: f64,
    backlog: [usize; 3],
    history_rows: usize,
    history_single_for: Duration,
    history_batch_messages: usize,
    purge_rows: usize,
    purge_rate: u32,
    purge_quiet_for: Duration,
    inbox: [usize; 3],
    inbox_requests: usize,
    fanout: [usize; 3],
    replicas_backlog: usize,
}

const FULL: ScaleSizes = ScaleSizes {
    factor: 1.0,
    backlog: [10_000, 100_000, 1_000_000],
    history_rows: 5_000_000,
    history_single_for: Duration::from_secs(10),
    history_batch_messages: 50_000,
    purge_rows: 1_000_000,
    purge_rate: 500,
    purge_quiet_for: Duration::from_secs(20),
    inbox: [1_000, 10_000, 100_000],
    inbox_requests: 300,
    fanout: [1_000, 10_000, 100_000],
    replicas_backlog: 100_000,
};

impl ScaleSizes {
    /// The full sizes × `factor` (at least 100 rows each; durations at least 2 s).
    pub fn at(factor: f64) -> Self {
        let n = |full: usize| ((full as f64 * factor).round() as usize).max(100);
        let d = |full: Duration| full.mul_f64(factor).max(Duration::from_secs(2));
        Self {
            factor,
            backlog: FULL.backlog.map(n),
            history_rows: n(FULL.history_rows),
            history_single_for: d(FULL.history_single_for),
            history_batch_messages: n(FULL.history_batch_messages),
            purge_rows: n(FULL.purge_rows),
            purge_rate: FULL.purge_rate,
            purge_quiet_for: d(FULL.purge_quiet_for),
            inbox: FULL.inbox.map(n),
            inbox_requests: FULL.inbox_requests,
            fanout: FULL.fanout.map(n),
            replicas_backlog: n(FULL.replicas_backlog),
        }
    }
}

/// A full size as a row's key names it: 10_000 → "10k", 1_000_000 → "1m".
fn label(full: usize) -> String {
    match full {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}m", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// A count as the rows' descriptions say it: 1,000,000.
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The q-quantile (0..=1) of `values`, in their unit; 0 for none.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Every scale scenario, in the order of the module's list, each on a database of its own.
pub async fn run(
    options: &Options,
    sizes: Sizes,
    scale: ScaleSizes,
    admin_url: &str,
    report: &mut Report,
) -> Result<()> {
    let bench = Bench {
        options,
        sizes,
        scale,
    };
    let phases = [
        Phase::Backlog,
        Phase::History,
        Phase::Purge,
        Phase::Inbox,
        Phase::Fanout,
        Phase::Replicas,
    ];
    for (name, phase) in PHASES.into_iter().zip(phases) {
        if let Some(chosen) = &options.scale_phases
            && !chosen.iter().any(|c| c == name)
        {
            continue;
        }
        let started = Instant::now();
        eprintln!("bench: scale: {name}…");
        let db = Database::create(admin_url, "scale").await?;
        let result = match phase {
            Phase::Backlog => bench.backlog(&db.url, report).await,
            Phase::History => bench.history(&db.url, report).await,
            Phase::Purge => bench.purge(&db.url, report).await,
            Phase::Inbox => bench.inbox(&db.url, report).await,
            Phase::Fanout => bench.fanout(&db.url, report).await,
            Phase::Replicas => bench.replicas(&db.url, report).await,
        };
        db.drop_now().await;
        result?;
        eprintln!(
            "bench: scale: {name} took {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The scale scenarios' names, in the order they run (`--scale-phases` picks among them).
pub const PHASES: [&str; 6] = [
    "backlog", "history", "purge", "inbox", "fan-out", "replicas",
];

#[derive(Debug, Clone, Copy)]
enum Phase {
    Backlog,
    History,
    Purge,
    Inbox,
    Fanout,
    Replicas,
}

struct Bench<'a> {
    options: &'a Options,
    sizes: Sizes,
    scale: ScaleSizes,
}

/// A server on the scenario's database, its owner's API client, the receiver it delivers to
/// and 1,000 directory users to address events to.
struct Herald {
    receiver: Receiver,
    server: Server,
    api: Api,
    subjects: Vec<Uuid>,
}

impl Bench<'_> {
    fn push(&self, report: &mut Report, scenario: Scenario) {
        report.push_scale(scenario, self.scale.factor);
    }

    async fn herald(&self, url: &str) -> Result<Herald> {
        let receiver = Receiver::start().await?;
        let server = Server::start(
            &self.options.herald,
            url,
            &receiver.url,
            self.options.tuning,
            &[],
        )?;
        let token = server::create_owner(&self.options.herald, url)?;
        let api = Api::new(&server.url, &token)?;
        let subjects = insert_users(url, 1_000, "member").await?;
        Ok(Herald {
            receiver,
            server,
            api,
            subjects,
        })
    }

    /// A message Herald queued itself (paused, it stays queued), whose copies seed the tables.
    async fn prototype(&self, herald: &Herald) -> Result<Uuid> {
        herald.api.set_paused(true).await?;
        let queued = herald
            .api
            .event(&subject_event(herald.subjects[0], "scale-prototype"))
            .await?;
        queued
            .first()
            .copied()
            .ok_or_else(|| anyhow!("the prototype event queued no message"))
    }

    /// Backlog: each size drained by Herald (`backlog_drain`), the smallest and the largest
    /// by the raw worker too (`raw_backlog_drain`), and what each keeps at the largest.
    async fn backlog(&self, url: &str, report: &mut Report) -> Result<()> {
        let herald = self.herald(url).await?;
        let store = PgStore::connect(url).await?;
        let mut rates = Vec::new();
        let mut leases = Vec::new();
        let mut raw_rates = Vec::new();
        for (i, &n) in self.scale.backlog.iter().enumerate() {
            // The smallest backlog drains in well under a second, where one slow moment weighs
            // much: it is drained three times, and the median counts.
            let rounds = if i == 0 { 3 } else { 1 };
            let mut drains = Vec::new();
            for _ in 0..rounds {
                drains.push(self.backlog_drain(&herald, &store, url, n).await?);
            }
            drains.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (rate, lease_p99) = drains[drains.len() / 2];
            rates.push((n as f64, rate));
            leases.push((n as f64, lease_p99));
            let full = label(FULL.backlog[i]);
            let last = i == self.scale.backlog.len() - 1;
            if i == 0 || last {
                let mut raw = Vec::new();
                for _ in 0..rounds {
                    raw.push(self.raw_backlog_drain(&herald, url, n).await?);
                }
                raw.sort_by(f64::total_cmp);
                let raw_rate = raw[raw.len() / 2];
                raw_rates.push(raw_rate);
                self.push(
                    report,
                    Scenario::baseline(
                        format!("raw_backlog_drain_{full}"),
                        format!(
                            "raw limit: one SQL worker leasing {} (oldest first, FOR UPDATE SKIP LOCKED) and marking them sent in one statement, over the same backlog of {} seeded again{}",
                            self.options.tuning.lease_count,
                            count(n),
                            if rounds > 1 { " (median of 3)" } else { "" }
                        ),
                        raw_rate,
                        "messages/s",
                    ),
                );
            }
            let drain_target = if last {
                Target::RatioOf {
                    baseline: "backlog_drain_10k",
                    at_least: 0.90,
                    value: rates[0].1,
                }
            } else {
                Target::None
            };
            self.push(
                report,
                Scenario::measured(
                    format!("backlog_drain_{full}"),
                    format!(
                        "drain of a backlog of {} webhook messages seeded while paused (lease {}){}",
                        count(n),
                        self.options.tuning.lease_count,
                        if rounds > 1 { "; median of 3" } else { "" }
                    ),
                    rate,
                    "messages/s",
                    drain_target,
                ),
            );
            self.push(
                report,
                Scenario::measured(
                    format!("backlog_lease_p99_{full}"),
                    format!(
                        "Herald's lease of {} (PgStore::lease, given back at once) over the same backlog, p99 of 100",
                        self.options.tuning.lease_count
                    ),
                    lease_p99,
                    "ms",
                    if last {
                        Target::AtMost(10.0)
                    } else {
                        Target::None
                    },
                ),
            );
            if last {
                // What each keeps at the largest backlog of its drain at the smallest, so the
                // issue's target can be read beside the database's own limit of the same run.
                let raw_kept = 100.0 * raw_rates[1] / raw_rates[0];
                self.push(
                    report,
                    Scenario::baseline(
                        format!("raw_backlog_drain_kept_{full}"),
                        format!(
                            "raw limit: raw_backlog_drain_{full} as a share of raw_backlog_drain_{}",
                            label(FULL.backlog[0])
                        ),
                        raw_kept,
                        "%",
                    ),
                );
                self.push(
                    report,
                    Scenario::measured(
                        format!("backlog_drain_kept_{full}"),
                        format!(
                            "backlog_drain_{full} as a share of backlog_drain_{}: at least what the raw worker keeps",
                            label(FULL.backlog[0])
                        ),
                        100.0 * rate / rates[0].1,
                        "%",
                        Target::RatioOf {
                            baseline: "raw_backlog_drain_kept_1m",
                            at_least: 1.0,
                            value: raw_kept,
                        },
                    ),
                );
            }
        }
        store.close().await;
        herald.server.stop();
        report.push_curve(Curve {
            key: "backlog",
            title: "Drain rate by backlog".to_owned(),
            x_label: "messages waiting",
            y_label: "messages/s",
            log_x: true,
            series: vec![Series {
                name: "drain".to_owned(),
                points: rates,
            }],
        });
        report.push_curve(Curve {
            key: "backlog_lease",
            title: "Lease p99 by backlog".to_owned(),
            x_label: "messages waiting",
            y_label: "ms",
            log_x: true,
            series: vec![Series {
                name: "lease p99".to_owned(),
                points: leases,
            }],
        });
        Ok(())
    }

    /// A backlog of `n` pending messages, an hour of outage's worth, oldest first: Herald's
    /// prototype (queued while paused) and its copies, vacuumed.
    async fn seed_backlog(&self, herald: &Herald, url: &str, n: usize) -> Result<()> {
        let prototype = self.prototype(herald).await?;
        let first = Utc::now() - chrono::Duration::hours(1);
        seed_messages(
            url,
            prototype,
            n - 1,
            "pending",
            first,
            3_600.0 / n as f64,
            &herald.subjects,
        )
        .await?;
        vacuum(url, "messages").await
    }

    /// One drain of a backlog of `n` messages seeded while Herald is paused: the lease's p99
    /// over them first (Herald's lease, given back at once), then the drain to the receiver;
    /// messages per second and the p99 in ms. The table is emptied again afterwards.
    async fn backlog_drain(
        &self,
        herald: &Herald,
        store: &PgStore,
        url: &str,
        n: usize,
    ) -> Result<(f64, f64)> {
        self.seed_backlog(herald, url, n).await?;
        let ids = ids_with_status(url, "pending").await?;
        if ids.len() != n {
            bail!("{} messages wait, {n} seeded", ids.len());
        }
        let lease_p99 = lease_p99(store, self.options.tuning.lease_count, 100).await?;
        let started = Instant::now();
        herald.api.set_paused(false).await?;
        let arrivals = herald
            .receiver
            .expect_exactly(&ids, drain_timeout(n))
            .await?;
        let rate = Receiver::rate_since(started, &arrivals);
        eprintln!(
            "bench: scale: backlog of {}: {rate:.0} messages/s, lease p99 {lease_p99:.2} ms",
            count(n)
        );
        all_sent(url, n).await?;
        herald.receiver.reset();
        truncate_messages(url).await?;
        Ok((rate, lease_p99))
    }

    /// The raw limit of a backlog's drain: `n` messages seeded again as for Herald's drain
    /// (Herald paused), drained by one plain SQL worker (`raw::lease_and_mark_sent`, the
    /// default benchmark's `raw_lease_mark_sent`) with nothing delivered; messages per second.
    /// The table is emptied again afterwards.
    async fn raw_backlog_drain(&self, herald: &Herald, url: &str, n: usize) -> Result<f64> {
        self.seed_backlog(herald, url, n).await?;
        let (rate, drained, _) =
            crate::raw::lease_and_mark_sent(url, self.options.tuning.lease_count).await?;
        if drained != n {
            bail!("the raw worker drained {drained} of {n} messages");
        }
        eprintln!(
            "bench: scale: raw drain of a backlog of {}: {rate:.0} messages/s",
            count(n)
        );
        truncate_messages(url).await?;
        Ok(rate)
    }

    /// History: single and batch enqueue rates on an empty table, then with the sent history
    /// seeded (a week of it).
    async fn history(&self, url: &str, report: &mut Report) -> Result<()> {
        let herald = self.herald(url).await?;
        let mut single = Vec::new();
        let mut batch = Vec::new();
        let mut raw_single = Vec::new();
        for rows in [0, self.scale.history_rows] {
            let mut prototype = None;
            if rows > 0 {
                let copied = self.prototype(&herald).await?;
                prototype = Some(copied);
                // A week of sent history, none of it old enough to be purged.
                let first = Utc::now() - chrono::Duration::days(7) + chrono::Duration::hours(1);
                let step = (7.0 * 86_400.0 - 7_200.0) / rows as f64;
                seed_messages(url, copied, rows, "sent", first, step, &herald.subjects).await?;
                vacuum(url, "messages").await?;
            }
            herald.api.set_paused(true).await?;
            // Users of their own for each round: the same events again would be duplicates.
            let subjects = if rows == 0 {
                herald.subjects.clone()
            } else {
                insert_users(url, 1_000, "member").await?
            };
            let writes_before = checkpoint_writes(url).await?;
            let (single_rate, mut ids) = crate::single_events(
                &herald.api,
                &subjects,
                self.sizes.clients,
                self.scale.history_single_for,
                false,
            )
            .await?;
            let writes = checkpoint_writes(url).await?;
            eprintln!(
                "bench: scale: during the single enqueues with {} rows of history: {} checkpoints, {} buffers written by checkpoints, {} by backends",
                count(rows),
                writes.0 - writes_before.0,
                writes.1 - writes_before.1,
                writes.2 - writes_before.2
            );
            let mut sizes = self.sizes;
            sizes.drain_messages = self.scale.history_batch_messages;
            let (batch_rate, batch_ids) =
                crate::batches(&herald.api, &subjects, sizes, "history").await?;
            let raw_rate =
                raw_single_enqueues(url, self.sizes.clients, self.scale.history_single_for).await?;
            ids.extend(batch_ids);
            // The prototype is delivered with them.
            ids.extend(prototype);
            eprintln!(
                "bench: scale: {} rows of history: single {single_rate:.0} events/s, batch {batch_rate:.0} messages/s, raw single enqueue {raw_rate:.0} rows/s",
                count(rows)
            );
            herald.api.set_paused(false).await?;
            herald
                .receiver
                .expect_exactly(&ids, drain_timeout(ids.len()))
                .await?;
            herald.receiver.reset();
            wait_drained(url).await?;
            single.push((rows as f64, single_rate));
            batch.push((rows as f64, batch_rate));
            raw_single.push(raw_rate);
        }
        herald.server.stop();
        let full = label(FULL.history_rows);
        self.push(
            report,
            Scenario::baseline(
                "history_single_empty",
                format!(
                    "POST /notifications/events, one event per request, {} clients, on an empty messages table",
                    self.sizes.clients
                ),
                single[0].1,
                "events/s",
            ),
        );
        self.push(
            report,
            Scenario::measured(
                format!("history_single_{full}"),
                format!(
                    "the same with {} rows of sent history in the table",
                    count(self.scale.history_rows)
                ),
                single[1].1,
                "events/s",
                Target::RatioOf {
                    baseline: "history_single_empty",
                    at_least: 0.90,
                    value: single[0].1,
                },
            ),
        );
        self.push(
            report,
            Scenario::baseline(
                "raw_history_single_empty",
                format!(
                    "raw limit: single enqueue statements of Herald's shape (dedupe claim and insert, time-ordered id), {} connections, on the same empty table",
                    self.sizes.clients
                ),
                raw_single[0],
                "rows/s",
            ),
        );
        self.push(
            report,
            Scenario::baseline(
                format!("raw_history_single_{full}"),
                format!(
                    "the same with {} rows of sent history; {:.0} % of the empty table's (Herald: {:.0} %)",
                    count(self.scale.history_rows),
                    100.0 * raw_single[1] / raw_single[0],
                    100.0 * single[1].1 / single[0].1
                ),
                raw_single[1],
                "rows/s",
            ),
        );
        self.push(
            report,
            Scenario::baseline(
                "history_batch_empty",
                format!(
                    "POST /notifications/events/batch, {} events per request, {} messages, on an empty messages table",
                    self.sizes.batch_events,
                    count(self.scale.history_batch_messages)
                ),
                batch[0].1,
                "messages/s",
            ),
        );
        self.push(
            report,
            Scenario::measured(
                format!("history_batch_{full}"),
                format!(
                    "the same with {} rows of sent history in the table",
                    count(self.scale.history_rows)
                ),
                batch[1].1,
                "messages/s",
                Target::RatioOf {
                    baseline: "history_batch_empty",
                    at_least: 0.90,
                    value: batch[0].1,
                },
            ),
        );
        report.push_curve(Curve {
            key: "history",
            title: "Enqueue rate by sent history".to_owned(),
            x_label: "rows of sent history",
            y_label: "messages/s",
            log_x: false,
            series: vec![
                Series {
                    name: "single events (events/s)".to_owned(),
                    points: single,
                },
                Series {
                    name: "batches (messages/s)".to_owned(),
                    points: batch,
                },
            ],
        });
        Ok(())
    }

    /// Purge under load: a steady `purge_rate` events/s, first alone, then while Herald's
    /// purge (the purge loop's [`Purger`], run from here) deletes the expired rows; then, with
    /// as many expired rows seeded again, the same purge beside plain enqueue statements at the
    /// same rate (the database's own stalls, such as a checkpoint's flush).
    async fn purge(&self, url: &str, report: &mut Report) -> Result<()> {
        let herald = self.herald(url).await?;
        let prototype = self.prototype(&herald).await?;
        let rows = self.scale.purge_rows;
        seed_expired(url, prototype, rows, &herald.subjects).await?;
        herald.api.set_paused(false).await?;
        herald
            .receiver
            .expect_exactly(&[prototype], Duration::from_secs(30))
            .await?;
        herald.receiver.reset();

        let rate = self.scale.purge_rate;
        eprintln!(
            "bench: scale: {rate} events/s for {:?} without a purge…",
            self.scale.purge_quiet_for
        );
        let quiet = steady(
            &herald.api,
            &herald.subjects,
            rate,
            self.scale.purge_quiet_for,
            Arc::new(AtomicBool::new(false)),
        )
        .await?;
        let quiet_pickups = pickups(&herald.receiver, &quiet, None).await?;
        herald.receiver.reset();

        eprintln!(
            "bench: scale: {rate} events/s while {} rows are purged…",
            count(rows)
        );
        let store = PgStore::connect(url).await?;
        let purger = Purger::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(SystemClock),
        );
        let herald_purge = beside_purge(&purger, url, rows, |stop| {
            let (api, subjects) = (herald.api.clone(), herald.subjects.clone());
            // Bounded in case the purge never ends; stopped when it does.
            async move { steady(&api, &subjects, rate, Duration::from_secs(600), stop).await }
        })
        .await?;
        let BesidePurge {
            window: purge_window,
            checkpoints,
            load: during,
        } = herald_purge;
        let purge_took = purge_window.end - purge_window.start;
        let purge_pickups = pickups(&herald.receiver, &during, Some(purge_window.clone())).await?;
        herald.receiver.reset();
        wait_drained(url).await?;
        herald.server.stop();

        // The raw limit: the same purge of as many expired rows again, beside plain single
        // enqueues at the same rate straight into PostgreSQL (no HTTP, no Herald).
        eprintln!(
            "bench: scale: raw enqueues at {rate}/s while {} rows are purged…",
            count(rows)
        );
        seed_expired(url, prototype, rows, &herald.subjects).await?;
        let raw = beside_purge(&purger, url, rows, |stop| {
            let url = url.to_owned();
            async move {
                crate::raw::steady_enqueues(
                    &url,
                    rate,
                    herald_postgres::POOL_SIZE,
                    Duration::from_secs(600),
                    stop,
                )
                .await
            }
        })
        .await?;
        store.close().await;
        delete_raw_enqueues(url).await?;
        let raw_checkpoints = raw.checkpoints;
        let raw_enqueue_max = raw
            .load
            .iter()
            .filter(|(at, _)| raw.window.contains(at))
            .map(|(_, took)| millis(*took))
            .fold(0.0, f64::max);

        let throughput = rows as f64 / purge_took.as_secs_f64();
        let quiet_p99 = quantile(&quiet_pickups.latencies(), 0.99);
        let purge_p99 = quantile(&purge_pickups.latencies(), 0.99);
        let enqueue_max = during
            .iter()
            .filter(|sent| purge_window.contains(&sent.started))
            .map(|sent| millis(sent.took))
            .fold(0.0, f64::max);
        let quiet_enqueue_max = quiet
            .iter()
            .map(|sent| millis(sent.took))
            .fold(0.0, f64::max);
        eprintln!(
            "bench: scale: purged {} rows in {:.1} s; pick-up p99 {quiet_p99:.1} ms alone, {purge_p99:.1} ms during the purge; slowest enqueue {enqueue_max:.0} ms ({checkpoints} checkpoints), raw {raw_enqueue_max:.0} ms ({raw_checkpoints} checkpoints)",
            count(rows),
            purge_took.as_secs_f64()
        );
        self.push(
            report,
            Scenario::baseline(
                "purge_throughput",
                format!(
                    "Herald's purge (Purger::purge) of {} expired messages while {rate} events/s flow: {:.1} s",
                    count(rows),
                    purge_took.as_secs_f64()
                ),
                throughput,
                "rows/s",
            ),
        );
        self.push(
            report,
            Scenario::baseline(
                "purge_pickup_p99_alone",
                format!(
                    "{rate} events/s for {:?}, no purge: API 202 → webhook received, p99 of {} (slowest enqueue {quiet_enqueue_max:.0} ms)",
                    self.scale.purge_quiet_for,
                    quiet_pickups.0.len()
                ),
                quiet_p99,
                "ms",
            ),
        );
        self.push(
            report,
            Scenario::measured(
                "purge_pickup_p99",
                format!(
                    "the same during the purge: p99 of the {} events sent while it ran, {:.2}× purge_pickup_p99_alone",
                    purge_pickups.0.len(),
                    purge_p99 / quiet_p99.max(f64::MIN_POSITIVE)
                ),
                purge_p99,
                "ms",
                Target::AtMost(3.0 * quiet_p99),
            ),
        );
        self.push(
            report,
            Scenario::baseline(
                "raw_purge_enqueue_max",
                format!(
                    "raw limit: the slowest of plain single enqueues (one autocommit statement each, as raw_single_enqueue, {} connections as Herald's API pool) at {rate}/s straight into PostgreSQL while the same purge deletes {} expired messages again; checkpoints meanwhile: {raw_checkpoints}",
                    herald_postgres::POOL_SIZE,
                    count(rows)
                ),
                raw_enqueue_max,
                "ms",
            ),
        );
        self.push(
            report,
            Scenario::measured(
                "purge_enqueue_max",
                format!(
                    "the slowest enqueue request (POST to 202) while the purge ran; PostgreSQL checkpoints meanwhile: {checkpoints}; at most 100 ms, or raw_purge_enqueue_max when the database alone held a plain enqueue longer"
                ),
                enqueue_max,
                "ms",
                Target::AtMost(raw_enqueue_max.max(100.0)),
            ),
        );
        report.push_curve(Curve {
            key: "purge",
            title: "Pick-up p99 per second, alone and during the purge".to_owned(),
            x_label: "seconds into the phase",
            y_label: "ms",
            log_x: false,
            series: vec![
                Series {
                    name: "alone".to_owned(),
                    points: quiet_pickups.per_second(),
                },
                Series {
                    name: "during the purge".to_owned(),
                    points: purge_pickups.per_second(),
                },
            ],
        });
        Ok(())
    }

    /// Large inbox: one user's inbox of 1k, 10k, 100k unread notifications; the first page
    /// (with its unread count) and the first unread page, each p99 over sequential requests.
    async fn inbox(&self, url: &str, report: &mut Report) -> Result<()> {
        let herald = self.herald(url).await?;
        let token = server::create_user(&self.options.herald, url, "reader", "member")?;
        let reader_api = Api::new(&herald.server.url, &token)?;
        let mut connection = PgConnection::connect(url).await?;
        let reader: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = 'reader'")
            .fetch_one(&mut connection)
            .await?;
        let mut pages = Vec::new();
        let mut unread = Vec::new();
        let mut have = 0;
        let mut raw_count = 0.0;
        for &n in &self.scale.inbox {
            seed_inbox(&mut connection, reader, have, n).await?;
            have = n;
            vacuum(url, "inbox_notifications").await?;
            let page = inbox_p99(&reader_api, "", n, self.scale.inbox_requests).await?;
            let unread_page = inbox_p99(
                &reader_api,
                "?read_status=unread",
                n,
                self.scale.inbox_requests,
            )
            .await?;
            raw_count =
                raw_unread_count_p99(&mut connection, reader, self.scale.inbox_requests).await?;
            eprintln!(
                "bench: scale: inbox of {}: page p99 {page:.2} ms, unread page p99 {unread_page:.2} ms, raw count p99 {raw_count:.2} ms",
                count(n)
            );
            pages.push((n as f64, page));
            unread.push((n as f64, unread_page));
        }
        let _ = connection.close().await;
        herald.server.stop();
        let n = count(have);
        let full = label(FULL.inbox[2]);
        self.push(
            report,
            Scenario::measured(
                format!("inbox_page_p99_{full}"),
                format!(
                    "GET /notifications/inbox (first page and its unread count) of a user with {n} unread notifications, p99 of {}",
                    self.scale.inbox_requests
                ),
                pages[2].1,
                "ms",
                Target::AtMost(10.0),
            ),
        );
        self.push(
            report,
            Scenario::measured(
                format!("inbox_unread_p99_{full}"),
                format!(
                    "GET /notifications/inbox?read_status=unread (first unread page and the unread count) of the same user, p99 of {}",
                    self.scale.inbox_requests
                ),
                unread[2].1,
                "ms",
                Target::AtMost(10.0),
            ),
        );
        self.push(
            report,
            Scenario::baseline(
                format!("raw_unread_count_p99_{full}"),
                format!(
                    "raw limit: the unread count's statement alone (SELECT count(*) … read_at IS NULL) over the {n} unread rows, p99 of {}",
                    self.scale.inbox_requests
                ),
                raw_count,
                "ms",
            ),
        );
        report.push_curve(Curve {
            key: "inbox",
            title: "Inbox page p99 by inbox size".to_owned(),
            x_label: "unread notifications",
            y_label: "ms",
            log_x: true,
            series: vec![
                Series {
                    name: "first page".to_owned(),
                    points: pages,
                },
                Series {
                    name: "first unread page".to_owned(),
                    points: unread,
                },
            ],
        });
        Ok(())
    }

    /// Fan-out: one role event to 1k, 10k, 100k recipients; time to 202, to the last delivery,
    /// and the server's peak RSS meanwhile.
    async fn fanout(&self, url: &str, report: &mut Report) -> Result<()> {
        let herald = self.herald(url).await?;
        let mut to_202 = Vec::new();
        let mut delivered = Vec::new();
        let mut rss = Vec::new();
        let mut have = 0;
        for (round, &n) in self.scale.fanout.iter().enumerate() {
            insert_users(url, n - have, "template-admin").await?;
            have = n;
            let rss_reset = herald.server.reset_peak_rss().is_ok();
            let started = Instant::now();
            let queued = herald
                .api
                .event(&json!({
                    "template_id": template_deprecated(),
                    "labels": {"template": format!("scale-template-{round}"),
                               "organization": "bench", "message": "fan-out"},
                }))
                .await?;
            let answered = started.elapsed();
            if queued.len() != n {
                bail!(
                    "the fan-out event queued {} messages for {n} recipients",
                    queued.len()
                );
            }
            let arrivals = herald
                .receiver
                .expect_exactly(&queued, drain_timeout(n))
                .await?;
            let last = arrivals.iter().max().copied().unwrap_or(started);
            let peak = herald.server.peak_rss()? as f64 / (1024.0 * 1024.0);
            if !rss_reset {
                eprintln!("bench: scale: the peak RSS could not be reset: it is since start");
            }
            eprintln!(
                "bench: scale: fan-out to {}: 202 after {:.0} ms, all delivered after {:.0} ms, peak RSS {peak:.1} MiB",
                count(n),
                millis(answered),
                millis(last.duration_since(started))
            );
            herald.receiver.reset();
            wait_drained(url).await?;
            to_202.push((n as f64, millis(answered)));
            delivered.push((n as f64, millis(last.duration_since(started))));
            rss.push((n as f64, peak));
        }
        herald.server.stop();
        let n = count(have);
        let full = label(FULL.fanout[2]);
        self.push(
            report,
            Scenario::measured(
                format!("fanout_202_{full}"),
                format!("one role event to {n} recipients: request to 202"),
                to_202[2].1,
                "ms",
                Target::AtMost(10_000.0),
            ),
        );
        self.push(
            report,
            Scenario::baseline(
                format!("fanout_delivered_{full}"),
                format!(
                    "the same: request to the last of the {n} webhooks received ({:.0} messages/s)",
                    have as f64 / (delivered[2].1 / 1000.0)
                ),
                delivered[2].1,
                "ms",
            ),
        );
        self.push(
            report,
            Scenario::measured(
                format!("fanout_rss_{full}"),
                "the same: the server's peak RSS from the request to the last delivery".to_owned(),
                rss[2].1,
                "MiB",
                Target::AtMost(128.0),
            ),
        );
        report.push_curve(Curve {
            key: "fanout",
            title: "Fan-out: one role event by recipients".to_owned(),
            x_label: "recipients",
            y_label: "ms",
            log_x: true,
            series: vec![
                Series {
                    name: "to 202".to_owned(),
                    points: to_202,
                },
                Series {
                    name: "to all delivered".to_owned(),
                    points: delivered,
                },
            ],
        });
        report.push_curve(Curve {
            key: "fanout_rss",
            title: "Fan-out: server peak RSS by recipients".to_owned(),
            x_label: "recipients",
            y_label: "MiB",
            log_x: true,
            series: vec![Series {
                name: "peak RSS".to_owned(),
                points: rss,
            }],
        });
        Ok(())
    }

    /// Replicas: one, two, three `herald server` processes on one database; the backlog is
    /// seeded while they idle and they are woken together (the NOTIFY an enqueue sends).
    /// The rate runs from the first delivery to the last; a message delivered twice counts as
    /// a duplicate.
    async fn replicas(&self, url: &str, report: &mut Report) -> Result<()> {
        let herald = self.herald(url).await?;
        let prototype = self.prototype(&herald).await?;
        herald.api.set_paused(false).await?;
        herald
            .receiver
            .expect_exactly(&[prototype], Duration::from_secs(30))
            .await?;
        herald.receiver.reset();
        wait_drained(url).await?;
        let n = self.scale.replicas_backlog;
        let mut rates = Vec::new();
        let mut duplicates = 0;
        let mut first_server = Some(herald.server);
        for replicas in 1..=3 {
            let mut servers = Vec::new();
            if let Some(server) = first_server.take() {
                servers.push(server);
            }
            while servers.len() < replicas {
                servers.push(Server::start(
                    &self.options.herald,
                    url,
                    &herald.receiver.url,
                    self.options.tuning,
                    &[],
                )?);
            }
            truncate_messages_keeping(url, prototype).await?;
            let ids = seed_and_wake(url, prototype, n, &herald.subjects).await?;
            let (arrivals, repeats) = herald.receiver.expect_each(&ids, drain_timeout(n)).await?;
            let first = arrivals.iter().min().copied();
            let last = arrivals.iter().max().copied();
            let rate = match (first, last) {
                (Some(first), Some(last)) if last > first => {
                    (ids.len() - 1) as f64 / last.duration_since(first).as_secs_f64()
                }
                _ => 0.0,
            };
            eprintln!(
                "bench: scale: {replicas} replica(s) draining {}: {rate:.0} messages/s, {repeats} duplicates",
                count(n)
            );
            all_sent(url, n + 1).await?;
            herald.receiver.reset();
            duplicates += repeats;
            rates.push((replicas as f64, rate));
            for server in servers {
                server.stop();
            }
        }
        let one = rates[0].1;
        for &(replicas, rate) in &rates {
            let key = format!("replicas_{replicas:.0}");
            let what = format!(
                "{replicas:.0} herald server process(es) draining the same {} webhook messages: total rate, first delivery to last",
                count(n)
            );
            let target = if replicas >= 3.0 {
                Target::RatioOf {
                    baseline: "replicas_1",
                    at_least: 0.90,
                    value: one,
                }
            } else {
                Target::None
            };
            self.push(
                report,
                Scenario::measured(key, what, rate, "messages/s", target),
            );
        }
        self.push(
            report,
            Scenario::measured(
                "replicas_duplicates",
                "messages delivered more than once over the three drains".to_owned(),
                duplicates as f64,
                "messages",
                Target::AtMost(0.0),
            ),
        );
        report.push_curve(Curve {
            key: "replicas",
            title: "Drain rate by replicas".to_owned(),
            x_label: "herald server processes",
            y_label: "messages/s",
            log_x: false,
            series: vec![Series {
                name: "total rate".to_owned(),
                points: rates,
            }],
        });
        Ok(())
    }
}

/// What a load offered beside a purge: the purge's window, the checkpoints PostgreSQL ran in
/// it, and the load's own result.
struct BesidePurge<T> {
    window: std::ops::Range<Instant>,
    checkpoints: i64,
    load: T,
}

/// Starts `load` (it stops when its flag is set) and, half a second later, `purger`'s purge of
/// the `rows` expired messages; once the purge has ended and the load has run at least a second
/// beside it, stops the load. Fails unless the purge deleted all `rows`.
async fn beside_purge<T, Load, Running>(
    purger: &Purger,
    url: &str,
    rows: usize,
    load: Load,
) -> Result<BesidePurge<T>>
where
    Load: FnOnce(Arc<AtomicBool>) -> Running,
    Running: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let checkpoints_before = checkpoint_writes(url).await?.0;
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(stop.clone()));
    // The load runs a moment before the purge starts, as in a real deployment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let outcome = purger.purge().await;
    let ended = Instant::now();
    let checkpoints = checkpoint_writes(url).await?.0 - checkpoints_before;
    // At least a second of load after the purge's start, so a fast purge has a sample.
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    let load = running.await??;
    purged_all(outcome?, rows)?;
    Ok(BesidePurge {
        window: started..ended,
        checkpoints,
        load,
    })
}

/// Seeds `rows` sent messages (copies of `prototype`) sent between 14 and 8 days ago, every one
/// past the 7 days' retention, and vacuums the table.
async fn seed_expired(url: &str, prototype: Uuid, rows: usize, recipients: &[Uuid]) -> Result<()> {
    let first = Utc::now() - chrono::Duration::days(14);
    seed_messages(
        url,
        prototype,
        rows,
        "sent",
        first,
        6.0 * 86_400.0 / rows as f64,
        recipients,
    )
    .await?;
    vacuum(url, "messages").await
}

/// Fails unless the purge ran and deleted all `rows` expired messages.
fn purged_all(outcome: PurgeOutcome, rows: usize) -> Result<()> {
    match outcome {
        PurgeOutcome::Purged(purged) if purged == rows as u64 => Ok(()),
        PurgeOutcome::Purged(purged) => {
            bail!("the purge deleted {purged} messages, {rows} had expired")
        }
        PurgeOutcome::Skipped => bail!("the purge was skipped: another replica held its lock"),
    }
}

/// PostgreSQL's checkpoints so far, the buffers they wrote and those backends wrote themselves
/// (`pg_stat_bgwriter`): what a measurement shares the machine with.
async fn checkpoint_writes(url: &str) -> Result<(i64, i64, i64)> {
    let mut connection = PgConnection::connect(url).await?;
    let writes = sqlx::query_as(
        "SELECT checkpoints_timed + checkpoints_req, buffers_checkpoint, buffers_backend \
         FROM pg_stat_bgwriter",
    )
    .fetch_one(&mut connection)
    .await?;
    let _ = connection.close().await;
    Ok(writes)
}

/// The raw limit of single enqueues (`raw::single_enqueues`) on the scenario's table while
/// Herald is paused; its rows are deleted after, so Herald never delivers them. Rows per
/// second.
async fn raw_single_enqueues(url: &str, clients: usize, duration: Duration) -> Result<f64> {
    let rate = crate::raw::single_enqueues(url, clients, duration).await?;
    delete_raw_enqueues(url).await?;
    Ok(rate)
}

/// Deletes the raw enqueues' messages and their dedupe claims.
async fn delete_raw_enqueues(url: &str) -> Result<()> {
    let mut connection = PgConnection::connect(url).await?;
    sqlx::query(
        "WITH raw AS (DELETE FROM messages WHERE created_by = $1 RETURNING dedupe_hash) \
         DELETE FROM message_dedupe WHERE dedupe_hash IN (SELECT dedupe_hash FROM raw)",
    )
    .bind(crate::raw::RAW_ENQUEUE_CREATOR)
    .execute(&mut connection)
    .await?;
    let _ = connection.close().await;
    Ok(())
}

/// How long a drain of `n` messages may take before the run fails (far above the rates seen).
fn drain_timeout(n: usize) -> Duration {
    Duration::from_secs(60 + (n / 500) as u64)
}

/// Rows per seeding statement: each is one transaction of bounded size and a progress line.
const SEED_CHUNK: usize = 500_000;

/// Copies of the message `prototype` (a row Herald wrote): `count` of them with `status`,
/// created and last updated at `first + i × step_seconds`, addressed round-robin to
/// `recipients`; seeded by PostgreSQL itself (`generate_series`) in chunks.
async fn seed_messages(
    url: &str,
    prototype: Uuid,
    count_of: usize,
    status: &str,
    first: DateTime<Utc>,
    step_seconds: f64,
    recipients: &[Uuid],
) -> Result<()> {
    let mut connection = PgConnection::connect(url).await?;
    let started = Instant::now();
    for start in (0..count_of).step_by(SEED_CHUNK) {
        let end = (start + SEED_CHUNK).min(count_of);
        sqlx::query(SEED_STATEMENT)
            .bind(prototype)
            .bind(i64::try_from(start)?)
            .bind(i64::try_from(end)? - 1)
            .bind(recipients)
            .bind(status)
            .bind(first)
            .bind(step_seconds)
            .execute(&mut connection)
            .await?;
        eprintln!(
            "bench: scale: seeded {} of {} {status} messages ({:.1} s)",
            count(end),
            count(count_of),
            started.elapsed().as_secs_f64()
        );
    }
    let _ = connection.close().await;
    Ok(())
}

/// `$1` the prototype's id, `$2..=$3` the rows' numbers, `$4` the recipients, `$5` the status,
/// `$6` the first row's time, `$7` the seconds between rows.
const SEED_STATEMENT: &str = "INSERT INTO messages (id, template_id, recipient, method, status, \
         payload, targets, created_by, created_at, updated_at) \
     SELECT gen_random_uuid(), p.template_id, \
         ($4::uuid[])[1 + g % cardinality($4::uuid[])], p.method, $5::text::message_status, \
         p.payload, p.targets, p.created_by, \
         $6 + make_interval(secs => g * $7), $6 + make_interval(secs => g * $7) \
     FROM messages AS p, generate_series($2::bigint, $3::bigint) AS g \
     WHERE p.id = $1";

/// Seeds `n` pending copies of `prototype` and wakes every notifier in the same transaction,
/// as an enqueue does (the NOTIFY is delivered at commit); the copies' ids.
async fn seed_and_wake(
    url: &str,
    prototype: Uuid,
    n: usize,
    recipients: &[Uuid],
) -> Result<Vec<Uuid>> {
    let mut connection = PgConnection::connect(url).await?;
    let mut tx = connection.begin().await?;
    let ids = sqlx::query_scalar(&format!("{SEED_STATEMENT} RETURNING id"))
        .bind(prototype)
        .bind(0_i64)
        .bind(i64::try_from(n)? - 1)
        .bind(recipients)
        .bind("pending")
        .bind(Utc::now() - chrono::Duration::minutes(10))
        .bind(600.0 / n as f64)
        .fetch_all(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAKEUP_CHANNEL)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let _ = connection.close().await;
    Ok(ids)
}

/// `n - have` more unread notifications for `user` (numbered from `have`), newest first.
async fn seed_inbox(
    connection: &mut PgConnection,
    user: Uuid,
    have: usize,
    n: usize,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO inbox_notifications (id, user_id, template_id, targets, title, content, \
             title_markdown, content_markdown, actions, read_at, created_at) \
         SELECT gen_random_uuid(), $1, $2, '{}', \
             'Workspace ws-' || g || ' deleted', \
             'The workspace ws-' || g || ' was deleted by bench: bench.', \
             'Workspace **ws-' || g || '** deleted', \
             'The workspace **ws-' || g || '** was deleted by bench: bench.', \
             '[{\"label\": \"View workspaces\", \"url\": \"http://127.0.0.1/workspaces\"}]'::jsonb, \
             NULL, now() - make_interval(secs => ($4 - g) * 60) \
         FROM generate_series($3::bigint, $4::bigint - 1) AS g",
    )
    .bind(user)
    .bind(crate::workspace_deleted())
    .bind(i64::try_from(have)?)
    .bind(i64::try_from(n)?)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// `requests` sequential `GET /notifications/inbox{query}`: the p99 in milliseconds. Each must
/// answer a full page and an unread count of `unread`.
async fn inbox_p99(api: &Api, query: &str, unread: usize, requests: usize) -> Result<f64> {
    let path = format!("/notifications/inbox{query}");
    let mut took = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let (status, body) = api.get(&path).await?;
        took.push(millis(started.elapsed()));
        if status != 200 {
            bail!("GET {path} answered {status}: {body}");
        }
        if body["unread_count"].as_u64() != Some(unread as u64) {
            bail!(
                "GET {path} counted {} unread, {unread} are",
                body["unread_count"]
            );
        }
        if body["notifications"].as_array().is_none_or(Vec::is_empty) {
            bail!("GET {path} answered no notifications");
        }
    }
    Ok(quantile(&took, 0.99))
}

/// The unread count's statement alone, `requests` times: the p99 in milliseconds.
async fn raw_unread_count_p99(
    connection: &mut PgConnection,
    user: Uuid,
    requests: usize,
) -> Result<f64> {
    let mut took = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let _: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM inbox_notifications WHERE user_id = $1 AND read_at IS NULL",
        )
        .bind(user)
        .fetch_one(&mut *connection)
        .await?;
        took.push(millis(started.elapsed()));
    }
    Ok(quantile(&took, 0.99))
}

/// Herald's lease (`PgStore::lease`, as a notifier calls it) of `count` messages, `probes`
/// times, each lease given back at once so the backlog stays whole: the p99 in milliseconds.
async fn lease_p99(store: &PgStore, count_of: usize, probes: usize) -> Result<f64> {
    let mut took = Vec::with_capacity(probes);
    // One lease first, not counted: it opens the pool's connection.
    for probe in 0..=probes {
        let request = LeaseRequest {
            notifier: Arc::from("bench-lease-probe"),
            now: Utc::now(),
            lease_period: chrono::Duration::minutes(2),
            count: count_of,
            max_attempts: 10,
            max_lease_expiries: 3,
            skip: SkipMethods::NONE,
        };
        let started = Instant::now();
        let leased = store.lease(request).await?;
        if probe > 0 {
            took.push(millis(started.elapsed()));
        }
        if leased.len() != count_of {
            bail!("a lease of {count_of} took {} messages", leased.len());
        }
        let held: Vec<HeldLease> = leased
            .iter()
            .filter_map(|m| m.leased_until.map(|lease| HeldLease { id: m.id, lease }))
            .collect();
        let given = store.give_back(&held).await?;
        if given != count_of as u64 {
            bail!("{given} of {count_of} leased messages were given back");
        }
    }
    Ok(quantile(&took, 0.99))
}

/// One request of a steady load: when it started, how long to its 202, the messages.
#[derive(Debug)]
struct Sent {
    started: Instant,
    took: Duration,
    ids: Vec<Uuid>,
}

/// Offers `rate` single events per second (open loop) until `stop` is set or `at_most` has
/// passed; every request's start, time to 202 and messages.
async fn steady(
    api: &Api,
    subjects: &[Uuid],
    rate: u32,
    at_most: Duration,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Sent>> {
    crate::raw::open_loop(rate, at_most, &stop, |i| {
        let api = api.clone();
        let event = subject_event(
            subjects[i as usize % subjects.len()],
            &format!("steady-{}-{i}", Uuid::new_v4().simple()),
        );
        async move {
            let started = Instant::now();
            let ids = api.event(&event).await?;
            Ok(Sent {
                started,
                took: started.elapsed(),
                ids,
            })
        }
    })
    .await
}

/// Per message of `sent` (those started within `window`, when given): when its request started
/// and its pick-up time (202 → webhook received), in milliseconds.
struct Pickups(Vec<(Instant, f64)>);

impl Pickups {
    fn latencies(&self) -> Vec<f64> {
        self.0.iter().map(|(_, ms)| *ms).collect()
    }

    /// The p99 of each second since the first request: (second, ms).
    fn per_second(&self) -> Vec<(f64, f64)> {
        let Some(begun) = self.0.iter().map(|(at, _)| *at).min() else {
            return Vec::new();
        };
        let mut buckets: Vec<Vec<f64>> = Vec::new();
        for (at, ms) in &self.0 {
            let second = at.duration_since(begun).as_secs() as usize;
            if buckets.len() <= second {
                buckets.resize_with(second + 1, Vec::new);
            }
            buckets[second].push(*ms);
        }
        buckets
            .iter()
            .enumerate()
            .filter(|(_, values)| !values.is_empty())
            .map(|(second, values)| (second as f64, quantile(values, 0.99)))
            .collect()
    }
}

/// Waits for every message of `sent` (each exactly once) and measures their pick-up times.
async fn pickups(
    receiver: &Receiver,
    sent: &[Sent],
    window: Option<std::ops::Range<Instant>>,
) -> Result<Pickups> {
    let ids: Vec<Uuid> = sent.iter().flat_map(|s| s.ids.iter().copied()).collect();
    let arrivals = receiver
        .expect_exactly(&ids, Duration::from_secs(120))
        .await?;
    let mut arrival = arrivals.into_iter();
    let mut out = Vec::new();
    for s in sent {
        let answered = s.started + s.took;
        for _ in &s.ids {
            let at = arrival
                .next()
                .ok_or_else(|| anyhow!("fewer arrivals than messages"))?;
            if window
                .as_ref()
                .is_none_or(|window| window.contains(&s.started))
            {
                // A webhook can arrive before the 202 reaches the client: that counts as 0.
                out.push((s.started, millis(at.saturating_duration_since(answered))));
            }
        }
    }
    Ok(Pickups(out))
}

/// The ids of the messages in `status`.
async fn ids_with_status(url: &str, status: &str) -> Result<Vec<Uuid>> {
    let mut connection = PgConnection::connect(url).await?;
    let ids = sqlx::query_scalar("SELECT id FROM messages WHERE status = $1::text::message_status")
        .bind(status)
        .fetch_all(&mut connection)
        .await?;
    let _ = connection.close().await;
    Ok(ids)
}

/// Waits until no message is queued or leased (the results are written back in bulk after
/// delivery), then checks that none failed.
async fn wait_drained(url: &str) -> Result<()> {
    let mut connection = PgConnection::connect(url).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (queued, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status IN ('pending', 'leased', 'temporary_failure')), \
                    count(*) FILTER (WHERE status = 'permanent_failure') \
             FROM messages",
        )
        .fetch_one(&mut connection)
        .await?;
        if failed > 0 {
            bail!("{failed} messages failed for good");
        }
        if queued == 0 {
            let _ = connection.close().await;
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{queued} messages are still queued or leased after their delivery");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the table's messages are all recorded as sent, and checks there are `n`.
async fn all_sent(url: &str, n: usize) -> Result<()> {
    wait_drained(url).await?;
    let mut connection = PgConnection::connect(url).await?;
    let (sent, all): (i64, i64) =
        sqlx::query_as("SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FROM messages")
            .fetch_one(&mut connection)
            .await?;
    let _ = connection.close().await;
    if usize::try_from(sent)? != n || sent != all {
        bail!("{sent} of {all} messages are recorded as sent, {n} were delivered");
    }
    Ok(())
}

/// Empties the queue (and the deduplication claims) between sizes, then vacuums.
async fn truncate_messages(url: &str) -> Result<()> {
    let mut connection = PgConnection::connect(url).await?;
    sqlx::query("TRUNCATE messages, message_dedupe")
        .execute(&mut connection)
        .await?;
    let _ = connection.close().await;
    vacuum(url, "messages").await
}

/// Deletes every message but `prototype`, then vacuums.
async fn truncate_messages_keeping(url: &str, prototype: Uuid) -> Result<()> {
    let mut connection = PgConnection::connect(url).await?;
    sqlx::query("DELETE FROM messages WHERE id <> $1")
        .bind(prototype)
        .execute(&mut connection)
        .await?;
    let _ = connection.close().await;
    vacuum(url, "messages").await
}

/// `VACUUM ANALYZE table` after seeding: what autovacuum does by the time a real table is that
/// size (it may be off on the benchmark machine).
async fn vacuum(url: &str, table: &str) -> Result<()> {
    let mut connection = PgConnection::connect(url).await?;
    let started = Instant::now();
    sqlx::query(&format!("VACUUM ANALYZE {table}"))
        .execute(&mut connection)
        .await?;
    let _ = connection.close().await;
    let took = started.elapsed();
    if took > Duration::from_secs(1) {
        eprintln!(
            "bench: scale: VACUUM ANALYZE {table} took {:.1} s",
            took.as_secs_f64()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_factor_scales_every_size_within_floors() {
        let small = ScaleSizes::at(0.01);

        assert_eq!(small.backlog, [100, 1_000, 10_000]);
        assert_eq!(small.history_rows, 50_000);
        assert_eq!(small.history_single_for, Duration::from_secs(2));
        assert_eq!(
            small.purge_rate, 500,
            "the offered load is a rate, not a size"
        );
        assert_eq!(ScaleSizes::at(1.0).backlog, FULL.backlog);
    }

    #[test]
    fn keys_name_the_full_sizes() {
        assert_eq!(label(10_000), "10k");
        assert_eq!(label(1_000_000), "1m");
        assert_eq!(label(5_000_000), "5m");
        assert_eq!(label(250), "250");
    }

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();

        assert_eq!(quantile(&values, 0.99), 99.0);
        assert_eq!(quantile(&values, 0.5), 51.0);
        assert_eq!(quantile(&[], 0.99), 0.0);
    }
}
