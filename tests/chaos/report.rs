//! The suite's result: a table on stdout, `report.json` and the Markdown page
//! (`docs/chaos.md` under `cargo xtask chaos`). A scenario passes when no message is lost,
//! none is delivered more often than it allows, `/healthz` answered every time it was asked,
//! and nothing else it checks went wrong.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// What one scenario found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub key: &'static str,
    /// What was done, in a sentence.
    pub what: String,
    pub messages: usize,
    /// Messages delivered at least once.
    pub delivered: usize,
    /// Deliveries beyond each message's first.
    pub duplicates: usize,
    /// The duplicates the scenario tolerates (a crash can resend what was in flight).
    pub duplicates_allowed: usize,
    pub health_checks: usize,
    pub health_failures: usize,
    /// Seconds from the end of the fault to the last delivery, where the fault ends before
    /// the drain does.
    pub recovered_s: Option<f64>,
    /// Seconds from the start of the drain to the last delivery.
    pub drained_s: f64,
    /// Measurements beside the counts (RSS, answers, sockets closed).
    pub notes: Vec<String>,
    /// What else went wrong (each fails the scenario).
    pub problems: Vec<String>,
}

impl Outcome {
    pub fn lost(&self) -> usize {
        self.messages.saturating_sub(self.delivered)
    }

    /// Why the scenario failed; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.lost() > 0 {
            why.push(format!("{} messages lost", self.lost()));
        }
        if self.duplicates > self.duplicates_allowed {
            why.push(format!(
                "{} duplicate deliveries (at most {} allowed)",
                self.duplicates, self.duplicates_allowed
            ));
        }
        if self.health_failures > 0 {
            why.push(format!(
                "/healthz failed {} of {} times",
                self.health_failures, self.health_checks
            ));
        }
        why.extend(self.problems.iter().cloned());
        why
    }

    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }
}

#[derive(Debug)]
pub struct Report {
    pub quick: bool,
    /// The command that produced it, as a person would type it again.
    pub command: String,
    pub machine: Value,
    pub outcomes: Vec<Outcome>,
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |s| format!("{s:.1} s"))
}

impl Report {
    /// The Markdown table, on stdout and on the page.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| scenario | messages | delivered | lost | duplicates | /healthz failed | recovered | drained | pass |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for o in &self.outcomes {
            let duplicates = if o.duplicates_allowed > 0 {
                format!("{} (≤ {})", o.duplicates, o.duplicates_allowed)
            } else {
                o.duplicates.to_string()
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {duplicates} | {} of {} | {} | {} | {} |\n",
                o.key,
                o.messages,
                o.delivered,
                o.lost(),
                o.health_failures,
                o.health_checks,
                seconds(o.recovered_s),
                seconds(Some(o.drained_s)),
                if o.passed() { "yes" } else { "**no**" }
            ));
        }
        out
    }

    /// Per scenario: what was done, what was measured, why it failed.
    pub fn details(&self) -> String {
        let mut out = String::new();
        for o in &self.outcomes {
            out.push_str(&format!("- `{}`: {}", o.key, o.what));
            for note in &o.notes {
                out.push_str(&format!(" {note}."));
            }
            let failures = o.failures();
            if !failures.is_empty() {
                out.push_str(&format!(" **Failed:** {}.", failures.join("; ")));
            }
            out.push('\n');
        }
        out
    }

    fn failed(&self) -> Vec<&'static str> {
        self.outcomes
            .iter()
            .filter(|o| !o.passed())
            .map(|o| o.key)
            .collect()
    }

    pub fn passed(&self) -> bool {
        self.failed().is_empty()
    }

    pub fn machine_line(&self) -> String {
        let m = &self.machine;
        format!(
            "{} CPUs ({}), PostgreSQL {}, {} run",
            m["cpus"],
            m["cpu_model"].as_str().unwrap_or("?"),
            m["postgres"].as_str().unwrap_or("?"),
            if self.quick { "quick" } else { "full" }
        )
    }

    pub fn print(&self) {
        println!("{}\n", self.machine_line());
        print!("{}", self.table());
        println!();
        print!("{}", self.details());
        let failed = self.failed();
        if failed.is_empty() {
            println!("\nevery scenario passed");
        } else {
            println!("\nscenarios failed: {}", failed.join(", "));
        }
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::from("# Fault-injection report\n\n");
        out.push_str(&format!(
            "Written by `{}` on {} ({} run, {}); run it again to replace this page. \
             Each scenario drains its messages through real processes (the release `herald` \
             binary, a PostgreSQL cluster of the suite's own, the test SMTP server, a webhook \
             receiver) while a fault is injected; `tests/chaos/main.rs` describes them. A \
             scenario passes when no message is lost, none is delivered twice (the kill -9 \
             scenario allows what the killed replica had dispatched and not written back: its \
             dispatches in flight and its buffered results), and `/healthz` answers throughout. \
             *Recovered*: from the end of the fault to the last delivery; *drained*: from the \
             start of the drain to the last delivery.\n\n",
            self.command,
            m["date"].as_str().unwrap_or("?"),
            if self.quick { "quick" } else { "full" },
            self.machine_line()
                .rsplit_once(", ")
                .map_or("", |(machine, _)| machine),
        ));
        out.push_str(&self.table());
        out.push('\n');
        out.push_str(&self.details());
        out.push('\n');
        let failed = self.failed();
        if failed.is_empty() {
            out.push_str(&format!(
                "{} scenarios; every one passed.\n",
                self.outcomes.len()
            ));
        } else {
            out.push_str(&format!(
                "{} scenarios; {} passed; failed: {}.\n",
                self.outcomes.len(),
                self.outcomes.len() - failed.len(),
                failed
                    .iter()
                    .map(|key| format!("`{key}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out
    }

    pub fn write_markdown(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.markdown()).with_context(|| format!("writing {}", path.display()))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let scenarios: Vec<Value> = self
            .outcomes
            .iter()
            .map(|o| {
                json!({
                    "scenario": o.key,
                    "what": o.what,
                    "messages": o.messages,
                    "delivered": o.delivered,
                    "lost": o.lost(),
                    "duplicates": o.duplicates,
                    "duplicates_allowed": o.duplicates_allowed,
                    "healthz_checks": o.health_checks,
                    "healthz_failures": o.health_failures,
                    "recovered_s": o.recovered_s,
                    "drained_s": o.drained_s,
                    "notes": o.notes,
                    "failures": o.failures(),
                    "passed": o.passed(),
                })
            })
            .collect();
        let report = json!({
            "quick": self.quick,
            "command": self.command,
            "machine": self.machine,
            "passed": self.passed(),
            "scenarios": scenarios,
        });
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(key: &'static str) -> Outcome {
        Outcome {
            key,
            what: "a drain with a fault".to_owned(),
            messages: 100,
            delivered: 100,
            health_checks: 40,
            drained_s: 2.0,
            ..Outcome::default()
        }
    }

    fn report(outcomes: Vec<Outcome>) -> Report {
        Report {
            quick: true,
            command: "cargo xtask chaos --quick".to_owned(),
            machine: json!({"cpus": 2, "cpu_model": "Example CPU", "postgres": "17.2",
                            "date": "2026-12-05T01:00:00Z"}),
            outcomes,
        }
    }

    #[test]
    fn a_scenario_passes_with_nothing_lost_no_duplicate_and_healthz_always_answering() {
        assert!(outcome("clean").passed());

        let lost = Outcome {
            delivered: 97,
            ..outcome("lost")
        };
        assert_eq!(lost.failures(), ["3 messages lost"]);

        let repeated = Outcome {
            duplicates: 1,
            ..outcome("repeated")
        };
        assert_eq!(
            repeated.failures(),
            ["1 duplicate deliveries (at most 0 allowed)"]
        );

        let unhealthy = Outcome {
            health_failures: 2,
            problems: vec!["12 junk requests answered otherwise than 401".to_owned()],
            ..outcome("unhealthy")
        };
        assert_eq!(
            unhealthy.failures(),
            [
                "/healthz failed 2 of 40 times",
                "12 junk requests answered otherwise than 401"
            ]
        );
    }

    #[test]
    fn duplicates_within_what_the_scenario_allows_pass() {
        let crash = Outcome {
            duplicates: 20,
            duplicates_allowed: 50,
            ..outcome("kill")
        };
        assert!(crash.passed());
        assert!(
            report(vec![crash])
                .table()
                .contains("| `kill` | 100 | 100 | 0 | 20 (≤ 50) | 0 of 40 | – | 2.0 s | yes |\n")
        );
    }

    #[test]
    fn the_page_names_the_command_and_says_which_scenarios_failed_and_why() {
        let page = report(vec![
            Outcome {
                recovered_s: Some(1.25),
                notes: vec!["RSS 20.0 MiB before, 21.0 MiB after".to_owned()],
                ..outcome("ok")
            },
            Outcome {
                delivered: 90,
                ..outcome("bad")
            },
        ])
        .markdown();

        assert!(page.starts_with("# Fault-injection report\n"), "{page}");
        assert!(
            page.contains("`cargo xtask chaos --quick` on 2026-12-05T01:00:00Z (quick run, 2 CPUs (Example CPU), PostgreSQL 17.2)"),
            "{page}"
        );
        assert!(
            page.contains("| `ok` | 100 | 100 | 0 | 0 | 0 of 40 | 1.2 s | 2.0 s | yes |\n"),
            "{page}"
        );
        assert!(
            page.contains("| `bad` | 100 | 90 | 10 | 0 | 0 of 40 | – | 2.0 s | **no** |\n"),
            "{page}"
        );
        assert!(
            page.contains("- `ok`: a drain with a fault RSS 20.0 MiB before, 21.0 MiB after.\n"),
            "{page}"
        );
        assert!(
            page.contains("- `bad`: a drain with a fault **Failed:** 10 messages lost.\n"),
            "{page}"
        );
        assert!(
            page.ends_with("2 scenarios; 1 passed; failed: `bad`.\n"),
            "{page}"
        );
    }
}
