//! The benchmark's result: a table on stdout and `report.json`, each figure beside its target
//! and the baseline measured in the same run.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};

use crate::server::Tuning;

/// What a figure must reach.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// A baseline: no target of its own.
    None,
    AtLeast(f64),
    AtMost(f64),
    /// At least `at_least` × the baseline's figure (`value`).
    RatioOf {
        baseline: &'static str,
        at_least: f64,
        value: f64,
    },
    /// At least `at_least`, and at least `ratio` × the baseline's figure (`value`).
    AtLeastAndRatio {
        at_least: f64,
        baseline: &'static str,
        ratio: f64,
        value: f64,
    },
}

impl Target {
    fn met(self, figure: f64) -> Option<bool> {
        match self {
            Target::None => None,
            Target::AtLeast(min) => Some(figure >= min),
            Target::AtMost(max) => Some(figure <= max),
            Target::RatioOf {
                at_least, value, ..
            } => Some(figure >= at_least * value),
            Target::AtLeastAndRatio {
                at_least,
                ratio,
                value,
                ..
            } => Some(figure >= at_least && figure >= ratio * value),
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Target::None => "(baseline)".to_owned(),
            Target::AtLeast(min) => format!("≥ {} {unit}", thousands(min)),
            Target::AtMost(max) => format!("≤ {} {unit}", thousands(max)),
            Target::RatioOf {
                baseline,
                at_least,
                value,
            } => format!(
                "≥ {:.0} % of {baseline} = {}",
                at_least * 100.0,
                thousands(at_least * value)
            ),
            Target::AtLeastAndRatio {
                at_least,
                baseline,
                ratio,
                value,
            } => format!(
                "≥ {} and ≥ {:.0} % of {baseline} = {}",
                thousands(at_least),
                ratio * 100.0,
                thousands(ratio * value)
            ),
        }
    }

    fn json(self) -> Value {
        match self {
            Target::None => Value::Null,
            Target::AtLeast(min) => json!({"at_least": min}),
            Target::AtMost(max) => json!({"at_most": max}),
            Target::RatioOf {
                baseline,
                at_least,
                value,
            } => json!({"at_least_ratio_of_baseline": at_least, "baseline": baseline,
                        "baseline_figure": value, "at_least": at_least * value}),
            Target::AtLeastAndRatio {
                at_least,
                baseline,
                ratio,
                value,
            } => json!({"at_least": at_least.max(ratio * value), "absolute_at_least": at_least,
                        "at_least_ratio_of_baseline": ratio, "baseline": baseline,
                        "baseline_figure": value}),
        }
    }
}

#[derive(Debug)]
pub struct Scenario {
    key: &'static str,
    what: String,
    figure: f64,
    unit: &'static str,
    target: Target,
}

impl Scenario {
    pub fn baseline(key: &'static str, what: String, figure: f64, unit: &'static str) -> Self {
        Self {
            key,
            what,
            figure,
            unit,
            target: Target::None,
        }
    }

    pub fn measured(
        key: &'static str,
        what: String,
        figure: f64,
        unit: &'static str,
        target: Target,
    ) -> Self {
        Self {
            key,
            what,
            figure,
            unit,
            target,
        }
    }
}

#[derive(Debug)]
pub struct Report {
    quick: bool,
    machine: Value,
    tuning: Tuning,
    scenarios: Vec<Scenario>,
}

fn thousands(value: f64) -> String {
    if value.abs() < 100.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{:.0}", value.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 && c != '-' {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn first_line_of(path: &str, prefix: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().and_then(|text| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_owned())
    })
}

impl Report {
    pub async fn new(quick: bool, admin_url: &str, tuning: Tuning) -> Result<Self> {
        let mut connection = PgConnection::connect(admin_url)
            .await
            .context("connecting to PostgreSQL")?;
        let mut setting = async |name: &str| -> Result<String> {
            Ok(sqlx::query_scalar::<_, String>(&format!("SHOW {name}"))
                .fetch_one(&mut connection)
                .await?)
        };
        let postgres = json!({
            "version": setting("server_version").await?,
            "fsync": setting("fsync").await?,
            "synchronous_commit": setting("synchronous_commit").await?,
            "shared_buffers": setting("shared_buffers").await?,
            "max_connections": setting("max_connections").await?,
            "autovacuum": setting("autovacuum").await?,
        });
        let machine = json!({
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "cpu_model": first_line_of("/proc/cpuinfo", "model name"),
            "memory": first_line_of("/proc/meminfo", "MemTotal"),
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned()),
            "postgres": postgres,
            "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        Ok(Self {
            quick,
            machine,
            tuning,
            scenarios: Vec::new(),
        })
    }

    pub fn machine_line(&self) -> String {
        let m = &self.machine;
        format!(
            "{} CPUs ({}), {} RAM, PostgreSQL {} (fsync {}, synchronous_commit {}, autovacuum {}), {} run",
            m["cpus"],
            m["cpu_model"].as_str().unwrap_or("?"),
            m["memory"].as_str().unwrap_or("?"),
            m["postgres"]["version"].as_str().unwrap_or("?"),
            m["postgres"]["fsync"].as_str().unwrap_or("?"),
            m["postgres"]["synchronous_commit"].as_str().unwrap_or("?"),
            m["postgres"]["autovacuum"].as_str().unwrap_or("?"),
            if self.quick { "quick" } else { "full" }
        )
    }

    /// The figure of the scenario `key` pushed so far, if any.
    pub fn figure(&self, key: &str) -> Option<f64> {
        self.scenarios
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.figure)
    }

    pub fn push(&mut self, scenario: Scenario) {
        eprintln!(
            "bench: {}: {} {}",
            scenario.key,
            thousands(scenario.figure),
            scenario.unit
        );
        self.scenarios.push(scenario);
    }

    /// The Markdown table (as the README shows it).
    pub fn table(&self) -> String {
        let mut out = String::from("| scenario | figure | target | met |\n|---|---:|---|---|\n");
        for s in &self.scenarios {
            let met = match s.target.met(s.figure) {
                None => "",
                Some(true) => "yes",
                Some(false) => "**no**",
            };
            out.push_str(&format!(
                "| `{}`: {} | {} {} | {} | {met} |\n",
                s.key,
                s.what,
                thousands(s.figure),
                s.unit,
                s.target.describe(s.unit)
            ));
        }
        out
    }

    pub fn print(&self) {
        println!("{}\n", self.machine_line());
        println!(
            "herald tuning: --notifications-lease-count {} --notifications-store-sync-buffer-size {} --notifications-store-sync-interval {}ms\n",
            self.tuning.lease_count, self.tuning.buffer, self.tuning.sync_interval_ms
        );
        print!("{}", self.table());
        let missed: Vec<&str> = self
            .scenarios
            .iter()
            .filter(|s| s.target.met(s.figure) == Some(false))
            .map(|s| s.key)
            .collect();
        if missed.is_empty() {
            println!("\nevery target met");
        } else {
            println!("\ntargets missed: {}", missed.join(", "));
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let scenarios: Vec<Value> = self
            .scenarios
            .iter()
            .map(|s| {
                json!({
                    "key": s.key,
                    "what": s.what,
                    "figure": s.figure,
                    "unit": s.unit,
                    "target": s.target.json(),
                    "met": s.target.met(s.figure),
                })
            })
            .collect();
        let report = json!({
            "quick": self.quick,
            "machine": self.machine,
            "tuning": {
                "lease_count": self.tuning.lease_count,
                "store_sync_buffer_size": self.tuning.buffer,
                "store_sync_interval_ms": self.tuning.sync_interval_ms,
            },
            "scenarios": scenarios,
        });
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }
}
