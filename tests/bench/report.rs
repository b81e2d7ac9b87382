//! The benchmark's result: a table on stdout, `report.json` and the Markdown report
//! (`docs/benchmark.md` under `cargo xtask bench`), each figure beside its target and the
//! baseline measured in the same run.

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
    key: String,
    what: String,
    figure: f64,
    unit: &'static str,
    target: Target,
    /// Pushed by the scale scenarios (`--scale`): in the report's "Scale" section.
    scale: bool,
}

impl Scenario {
    pub fn baseline(key: impl Into<String>, what: String, figure: f64, unit: &'static str) -> Self {
        Self {
            key: key.into(),
            what,
            figure,
            unit,
            target: Target::None,
            scale: false,
        }
    }

    pub fn measured(
        key: impl Into<String>,
        what: String,
        figure: f64,
        unit: &'static str,
        target: Target,
    ) -> Self {
        Self {
            key: key.into(),
            what,
            figure,
            unit,
            target,
            scale: false,
        }
    }
}

/// A curve of the scale scenarios: how figures grow with a size, one line per series, drawn
/// as `<key>.svg` ([`crate::plot::svg`]) and linked from the report's "Scale" section.
#[derive(Debug, Clone)]
pub struct Curve {
    /// The file name, without `.svg`.
    pub key: &'static str,
    pub title: String,
    pub x_label: &'static str,
    pub y_label: &'static str,
    /// Sizes spanning decades (10k, 100k, 1M) are drawn on a logarithmic x axis.
    pub log_x: bool,
    pub series: Vec<Series>,
}

/// One line of a [`Curve`]: its points as (size, figure).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug)]
pub struct Report {
    quick: bool,
    /// The command line that produced this report, as a person would type it again.
    command: String,
    machine: Value,
    tuning: Tuning,
    scenarios: Vec<Scenario>,
    /// The scale scenarios' size factor (`--scale-factor`), when they ran.
    scale_factor: Option<f64>,
    curves: Vec<Curve>,
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

/// `/proc/meminfo`'s `MemTotal` value (`"24576000 kB"`) in GiB; as read when it is not in kB.
fn memory(value: &Value) -> String {
    let Some(text) = value.as_str() else {
        return "unknown".to_owned();
    };
    match text.strip_suffix(" kB").map(|kb| kb.trim().parse::<f64>()) {
        Some(Ok(kb)) => format!("{:.1} GiB", kb / (1024.0 * 1024.0)),
        _ => text.to_owned(),
    }
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
    pub async fn new(
        quick: bool,
        command: String,
        admin_url: &str,
        tuning: Tuning,
    ) -> Result<Self> {
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
            command,
            machine,
            tuning,
            scenarios: Vec::new(),
            scale_factor: None,
            curves: Vec::new(),
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

    /// Pushes a row of the scale scenarios (the "Scale" section), run at `factor` × their
    /// full sizes.
    pub fn push_scale(&mut self, mut scenario: Scenario, factor: f64) {
        scenario.scale = true;
        self.scale_factor = Some(factor);
        self.push(scenario);
    }

    /// Adds a curve of the scale scenarios (drawn with the Markdown report and the JSON one).
    pub fn push_curve(&mut self, curve: Curve) {
        self.curves.push(curve);
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

    /// The Markdown table of the scenarios of one section (`scale`: the scale scenarios'), on
    /// stdout and in the Markdown report.
    pub fn table(&self, scale: bool) -> String {
        let mut out = String::from("| scenario | figure | target | met |\n|---|---:|---|---|\n");
        for s in self.scenarios.iter().filter(|s| s.scale == scale) {
            let met = match s.target.met(s.figure) {
                None => "",
                Some(true) => "yes",
                Some(false) => "**no**",
            };
            out.push_str(&format!(
                "| `{}`: {} | {} {} | {} | {met} |\n",
                s.key,
                s.what.replace('|', "\\|"),
                thousands(s.figure),
                s.unit,
                s.target.describe(s.unit)
            ));
        }
        out
    }

    /// The keys of the scenarios whose target was not met.
    fn missed(&self) -> Vec<&str> {
        self.scenarios
            .iter()
            .filter(|s| s.target.met(s.figure) == Some(false))
            .map(|s| s.key.as_str())
            .collect()
    }

    fn tuning_flags(&self) -> String {
        format!(
            "--notifications-lease-count {} --notifications-store-sync-buffer-size {} --notifications-store-sync-interval {}ms",
            self.tuning.lease_count, self.tuning.buffer, self.tuning.sync_interval_ms
        )
    }

    /// The report as a Markdown page: the command that produced it, the machine, the table
    /// (each figure beside its target and whether it was met) and the targets missed.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let text = |value: &Value| value.as_str().unwrap_or("unknown").to_owned();
        let scenarios = self.scenarios.len();
        let targets = self
            .scenarios
            .iter()
            .filter(|s| s.target.met(s.figure).is_some())
            .count();
        let missed = self.missed();
        let mut out = String::from("# Benchmark report\n\n");
        out.push_str(&format!(
            "Written by `{}` on {} ({} run); run it again to replace this page. What each \
             scenario measures is described in `tests/bench/main.rs`; baselines are raw limits \
             measured in the same run, so compare figures within one report, not across \
             machines.\n\n",
            self.command,
            text(&m["date"]),
            if self.quick { "quick" } else { "full" }
        ));
        out.push_str("## Machine\n\n| | |\n|---|---|\n");
        let postgres = &m["postgres"];
        let rows = [
            ("CPU", format!("{} × {}", text(&m["cpu_model"]), m["cpus"])),
            ("Memory", memory(&m["memory"])),
            ("Kernel", text(&m["kernel"])),
            (
                "PostgreSQL",
                format!(
                    "{} (fsync {}, synchronous_commit {}, shared_buffers {}, max_connections {}, autovacuum {})",
                    text(&postgres["version"]),
                    text(&postgres["fsync"]),
                    text(&postgres["synchronous_commit"]),
                    text(&postgres["shared_buffers"]),
                    text(&postgres["max_connections"]),
                    text(&postgres["autovacuum"]),
                ),
            ),
            ("Herald tuning", format!("`{}`", self.tuning_flags())),
        ];
        for (name, value) in rows {
            out.push_str(&format!("| {name} | {} |\n", value.replace('|', "\\|")));
        }
        out.push_str("\n## Results\n\n");
        out.push_str(&self.table(false));
        out.push('\n');
        if let Some(factor) = self.scale_factor {
            out.push_str(&self.scale_section(factor));
        }
        if missed.is_empty() {
            out.push_str(&format!(
                "{scenarios} scenarios; every target met ({targets} of {targets}).\n"
            ));
        } else {
            out.push_str(&format!(
                "{scenarios} scenarios; {} of {targets} targets met; missed: {}.\n",
                targets - missed.len(),
                missed
                    .iter()
                    .map(|key| format!("`{key}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out
    }

    /// The "Scale" section: the scale scenarios' table, then each curve's plot (`bench/<key>.svg`
    /// beside the page).
    fn scale_section(&self, factor: f64) -> String {
        let mut out = String::from("## Scale\n\n");
        out.push_str(
            "How the cost grows with the work (`--scale`): a backlog after an outage, months of \
             sent history, the purge of a week's history under load, a huge inbox, an event to a \
             whole organisation, replicas sharing a drain. Large tables are seeded by PostgreSQL \
             itself (`generate_series`) in the benchmark's database; each target is checked \
             against figures of the same run.",
        );
        if factor != 1.0 {
            out.push_str(&format!(
                " Sizes are {factor} × the full ones (`--scale-factor {factor}`): a development \
                 run, not the figures to publish."
            ));
        }
        out.push_str("\n\n");
        out.push_str(&self.table(true));
        out.push('\n');
        for curve in &self.curves {
            out.push_str(&format!(
                "![{}](bench/{}.svg)\n\n",
                curve.title.replace(['[', ']'], ""),
                curve.key
            ));
        }
        out
    }

    /// Writes [`Report::markdown`] to `path`, and the curves' plots to `bench/` beside it.
    pub fn write_markdown(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir)?;
        self.write_plots(&dir.join("bench"))?;
        std::fs::write(path, self.markdown()).with_context(|| format!("writing {}", path.display()))
    }

    /// Writes each curve as `<dir>/<key>.svg`.
    fn write_plots(&self, dir: &Path) -> Result<()> {
        if self.curves.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(dir)?;
        for curve in &self.curves {
            let path = dir.join(format!("{}.svg", curve.key));
            std::fs::write(&path, crate::plot::svg(curve)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    pub fn print(&self) {
        println!("{}\n", self.machine_line());
        println!("herald tuning: {}\n", self.tuning_flags());
        if self.scenarios.iter().any(|s| !s.scale) {
            print!("{}", self.table(false));
        }
        if self.scale_factor.is_some() {
            println!("\nscale:\n");
            print!("{}", self.table(true));
        }
        let missed = self.missed();
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
                    "scale": s.scale,
                })
            })
            .collect();
        let curves: Vec<Value> = self
            .curves
            .iter()
            .map(|c| {
                json!({
                    "key": c.key,
                    "title": c.title,
                    "x": c.x_label,
                    "y": c.y_label,
                    "series": c.series.iter().map(|s| json!({
                        "name": s.name,
                        "points": s.points.iter().map(|(x, y)| json!([x, y])).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let report = json!({
            "quick": self.quick,
            "command": self.command,
            "machine": self.machine,
            "tuning": {
                "lease_count": self.tuning.lease_count,
                "store_sync_buffer_size": self.tuning.buffer,
                "store_sync_interval_ms": self.tuning.sync_interval_ms,
            },
            "scenarios": scenarios,
            "scale_factor": self.scale_factor,
            "curves": curves,
        });
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir)?;
        // Beside the JSON too, so a run without the Markdown report (`--only scale`) has them.
        self.write_plots(dir)?;
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            quick: true,
            command: "cargo xtask bench --quick --clients 8".to_owned(),
            machine: json!({
                "cpus": 2,
                "cpu_model": "Example CPU 9000",
                "memory": "25165824 kB",
                "kernel": "6.1.0-test",
                "postgres": {
                    "version": "15.4", "fsync": "on", "synchronous_commit": "on",
                    "shared_buffers": "128MB", "max_connections": "100", "autovacuum": "off",
                },
                "date": "2026-12-05T01:00:00Z",
            }),
            tuning: Tuning {
                lease_count: 100,
                buffer: 1_000,
                sync_interval_ms: 200,
            },
            scenarios: vec![
                Scenario::baseline("raw_insert", "raw | limit".to_owned(), 10_000.0, "rows/s"),
                Scenario::measured(
                    "single",
                    "one event per request".to_owned(),
                    5_000.0,
                    "events/s",
                    Target::RatioOf {
                        baseline: "raw_insert",
                        at_least: 0.6,
                        value: 10_000.0,
                    },
                ),
                Scenario::measured(
                    "memory",
                    "peak RSS".to_owned(),
                    30.0,
                    "MiB",
                    Target::AtMost(64.0),
                ),
            ],
            scale_factor: None,
            curves: Vec::new(),
        }
    }

    #[test]
    fn the_markdown_report_names_the_command_and_the_machine() {
        let page = sample().markdown();

        assert!(page.starts_with("# Benchmark report\n"), "{page}");
        assert!(
            page.contains(
                "`cargo xtask bench --quick --clients 8` on 2026-12-05T01:00:00Z (quick run)"
            ),
            "{page}"
        );
        assert!(page.contains("| CPU | Example CPU 9000 × 2 |"), "{page}");
        assert!(page.contains("| Memory | 24.0 GiB |"), "{page}");
        assert!(page.contains("| Kernel | 6.1.0-test |"), "{page}");
        assert!(
            page.contains("| PostgreSQL | 15.4 (fsync on, synchronous_commit on, shared_buffers 128MB, max_connections 100, autovacuum off) |"),
            "{page}"
        );
        assert!(
            page.contains("--notifications-lease-count 100 --notifications-store-sync-buffer-size 1000 --notifications-store-sync-interval 200ms"),
            "{page}"
        );
    }

    #[test]
    fn each_figure_stands_beside_its_target_and_whether_it_was_met() {
        let page = sample().markdown();

        assert!(
            page.contains("| `raw_insert`: raw \\| limit | 10,000 rows/s | (baseline) |  |\n"),
            "{page}"
        );
        assert!(
            page.contains("| `single`: one event per request | 5,000 events/s | ≥ 60 % of raw_insert = 6,000 | **no** |\n"),
            "{page}"
        );
        assert!(
            page.contains("| `memory`: peak RSS | 30.0 MiB | ≤ 64.0 MiB | yes |\n"),
            "{page}"
        );
        assert!(
            page.ends_with("3 scenarios; 1 of 2 targets met; missed: `single`.\n"),
            "{page}"
        );
    }

    #[test]
    fn a_report_meeting_every_target_says_so() {
        let mut report = sample();
        report.scenarios.remove(1);

        assert!(
            report
                .markdown()
                .ends_with("2 scenarios; every target met (1 of 1).\n"),
            "{}",
            report.markdown()
        );
    }

    fn with_scale(factor: f64) -> Report {
        let mut report = sample();
        report.push_scale(
            Scenario::measured(
                "backlog_drain_1m",
                "drain of 1,000,000".to_owned(),
                4_800.0,
                "messages/s",
                Target::RatioOf {
                    baseline: "backlog_drain_10k",
                    at_least: 0.9,
                    value: 5_000.0,
                },
            ),
            factor,
        );
        report.push_curve(Curve {
            key: "backlog",
            title: "Drain rate by backlog".to_owned(),
            x_label: "messages waiting",
            y_label: "messages/s",
            log_x: true,
            series: vec![Series {
                name: "drain".to_owned(),
                points: vec![(10_000.0, 5_000.0), (1e6, 4_800.0)],
            }],
        });
        report
    }

    #[test]
    fn scale_rows_and_plots_have_a_section_of_their_own() {
        let page = with_scale(1.0).markdown();

        let (results, scale) = page
            .split_once("## Scale\n")
            .unwrap_or_else(|| panic!("no Scale section: {page}"));
        assert!(!results.contains("backlog_drain_1m"), "{page}");
        assert!(
            scale.contains("| `backlog_drain_1m`: drain of 1,000,000 | 4,800 messages/s | ≥ 90 % of backlog_drain_10k = 4,500 | yes |\n"),
            "{page}"
        );
        assert!(
            scale.contains("![Drain rate by backlog](bench/backlog.svg)"),
            "{page}"
        );
        assert!(!scale.contains("--scale-factor"), "{page}");
        assert!(
            page.ends_with("4 scenarios; 2 of 3 targets met; missed: `single`.\n"),
            "{page}"
        );
        assert!(
            !sample().markdown().contains("## Scale"),
            "a run without --scale has no Scale section"
        );
    }

    #[test]
    fn a_scale_run_at_a_factor_says_it_is_not_the_full_size() {
        let page = with_scale(0.05).markdown();

        assert!(
            page.contains("Sizes are 0.05 × the full ones (`--scale-factor 0.05`)"),
            "{page}"
        );
    }

    #[test]
    fn the_json_report_keeps_the_scale_rows_and_curves_and_the_plots_are_written() {
        let dir = std::env::temp_dir().join(format!("bench-report-{}", uuid::Uuid::new_v4()));
        let report = with_scale(1.0);

        report
            .write(&dir.join("report.json"))
            .unwrap_or_else(|err| panic!("{err}"));
        report
            .write_markdown(&dir.join("docs").join("benchmark.md"))
            .unwrap_or_else(|err| panic!("{err}"));

        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("report.json")).unwrap_or_default(),
        )
        .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(json["scenarios"][3]["key"], "backlog_drain_1m");
        assert_eq!(json["scenarios"][3]["scale"], true);
        assert_eq!(json["scenarios"][0]["scale"], false);
        assert_eq!(json["scale_factor"], 1.0);
        assert_eq!(json["curves"][0]["key"], "backlog");
        assert_eq!(
            json["curves"][0]["series"][0]["points"][1],
            json!([1e6, 4_800.0])
        );
        for svg in [dir.join("backlog.svg"), dir.join("docs/bench/backlog.svg")] {
            let text = std::fs::read_to_string(&svg).unwrap_or_default();
            assert!(text.starts_with("<svg"), "{}: {text}", svg.display());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn memory_is_shown_in_gib_when_read_in_kb_and_as_read_otherwise() {
        assert_eq!(memory(&json!("1048576 kB")), "1.0 GiB");
        assert_eq!(memory(&json!("2 GB")), "2 GB");
        assert_eq!(memory(&Value::Null), "unknown");
    }
}
