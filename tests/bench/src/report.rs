//! Results and their markdown rendering: one table of absolute figures per
//! scenario (a row per broker) and one table of firehose / peer ratios.

use std::fmt::Write as _;

use crate::brokers::BrokerKind;

/// Which direction of a metric is better (decides whether it gets a ratio).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// Context only, no ratio.
    Info,
}

#[derive(Clone, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub value: f64,
    pub decimals: usize,
    pub better: Better,
}

impl Metric {
    pub fn new(name: &'static str, value: f64, decimals: usize, better: Better) -> Metric {
        Metric {
            name,
            value,
            decimals,
            better,
        }
    }

    fn formatted(&self) -> String {
        if !self.value.is_finite() {
            return "-".into();
        }
        group_thousands(&format!("{:.*}", self.decimals, self.value))
    }
}

#[derive(Clone, Debug)]
pub enum Status {
    Ok,
    /// The run completed but broke a rule (e.g. a QoS 1 message lost).
    Failed(String),
    /// The run could not complete.
    Error(String),
}

/// One broker's figures in one scenario.
#[derive(Clone, Debug)]
pub struct BrokerResult {
    pub broker: BrokerKind,
    pub metrics: Vec<Metric>,
    pub status: Status,
    pub notes: Vec<String>,
}

impl BrokerResult {
    pub fn new(broker: BrokerKind) -> BrokerResult {
        BrokerResult {
            broker,
            metrics: Vec::new(),
            status: Status::Ok,
            notes: Vec::new(),
        }
    }

    pub fn error(broker: BrokerKind, err: &anyhow::Error) -> BrokerResult {
        BrokerResult {
            broker,
            metrics: Vec::new(),
            status: Status::Error(format!("{err:#}")),
            notes: Vec::new(),
        }
    }

    fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    fn status_cell(&self) -> String {
        match &self.status {
            Status::Ok => "ok".into(),
            Status::Failed(why) => format!("**FAILED**: {why}"),
            Status::Error(why) => {
                format!("**ERROR**: {}", why.replace('\n', " ").replace('|', "/"))
            }
        }
    }

    /// One line for the console.
    pub fn summary(&self) -> String {
        let figures: Vec<String> = self
            .metrics
            .iter()
            .map(|m| format!("{} {}", m.name, m.formatted()))
            .collect();
        format!(
            "{:<9} {} | {}",
            self.broker.name(),
            self.status_cell(),
            figures.join(", ")
        )
    }
}

/// All brokers' results for one scenario.
pub struct ScenarioResult {
    pub title: String,
    pub description: String,
    pub results: Vec<BrokerResult>,
}

impl ScenarioResult {
    pub fn markdown(&self, n: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {n}. {}\n\n{}\n", self.title, self.description);
        // Columns: the union of metric names, in first-seen order.
        let mut cols: Vec<&'static str> = Vec::new();
        for r in &self.results {
            for m in &r.metrics {
                if !cols.contains(&m.name) {
                    cols.push(m.name);
                }
            }
        }
        let _ = writeln!(out, "| broker | status | {} |", cols.join(" | "));
        let _ = writeln!(out, "|---|---|{}", "---:|".repeat(cols.len()));
        for r in &self.results {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| r.metric(c).map_or_else(|| "-".into(), Metric::formatted))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                r.broker,
                r.status_cell(),
                cells.join(" | ")
            );
        }
        let notes: Vec<String> = self
            .results
            .iter()
            .flat_map(|r| r.notes.iter().map(move |n| format!("- {}: {n}", r.broker)))
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(out, "\n{}", notes.join("\n"));
        }
        out.push_str(&self.ratios());
        out
    }

    /// firehose / peer for every metric with a better direction.
    fn ratios(&self) -> String {
        let Some(fh) = self
            .results
            .iter()
            .find(|r| r.broker == BrokerKind::Firehose)
        else {
            return String::new();
        };
        let peers: Vec<&BrokerResult> = self
            .results
            .iter()
            .filter(|r| r.broker != BrokerKind::Firehose)
            .collect();
        if peers.is_empty() {
            return String::new();
        }
        let mut out = String::new();
        let heads: Vec<String> = peers
            .iter()
            .map(|p| format!("firehose / {}", p.broker))
            .collect();
        let _ = writeln!(out, "\n| ratio | better | {} |", heads.join(" | "));
        let _ = writeln!(out, "|---|---|{}", "---:|".repeat(peers.len()));
        for m in fh.metrics.iter().filter(|m| m.better != Better::Info) {
            let cells: Vec<String> = peers
                .iter()
                .map(|p| match p.metric(m.name) {
                    Some(pm) if pm.value > 0.0 && m.value.is_finite() && pm.value.is_finite() => {
                        format!("{:.2}x", m.value / pm.value)
                    }
                    _ => "-".into(),
                })
                .collect();
            let dir = if m.better == Better::Higher {
                "higher"
            } else {
                "lower"
            };
            let _ = writeln!(out, "| {} | {dir} | {} |", m.name, cells.join(" | "));
        }
        out
    }
}

/// Inserts thousands separators into the integer part of a decimal number.
fn group_thousands(s: &str) -> String {
    let (sign, rest) = s.strip_prefix('-').map_or(("", s), |r| ("-", r));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch.
pub fn utc_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands() {
        assert_eq!(group_thousands("1234567.25"), "1,234,567.25");
        assert_eq!(group_thousands("999"), "999");
        assert_eq!(group_thousands("-1000"), "-1,000");
    }

    #[test]
    fn dates() {
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_time(1_709_210_096), "2024-02-29 12:34 UTC");
    }
}
