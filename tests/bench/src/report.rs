//! Results and their markdown rendering: one table of absolute figures per
//! scenario (a row per broker), one table of firehose / peer ratios and one
//! of firehose+policies / firehose (the cost of policies); in the source
//! scenario a row per variant of firehose (wasm source, native publisher)
//! and their ratio (the cost of a WASM source).

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
    /// Names a variant of the same broker (the source scenario's "wasm
    /// source" and "native publisher"); shown instead of the broker's name.
    pub label: Option<&'static str>,
    pub metrics: Vec<Metric>,
    pub status: Status,
    pub notes: Vec<String>,
}

impl BrokerResult {
    pub fn new(broker: BrokerKind) -> BrokerResult {
        BrokerResult {
            broker,
            label: None,
            metrics: Vec::new(),
            status: Status::Ok,
            notes: Vec::new(),
        }
    }

    /// The same result as a named variant of its broker.
    pub fn labeled(mut self, label: &'static str) -> BrokerResult {
        self.label = Some(label);
        self
    }

    /// The row's name: the variant's label, else the broker's name.
    pub fn name(&self) -> &'static str {
        self.label.unwrap_or(self.broker.name())
    }

    pub fn error(broker: BrokerKind, err: &anyhow::Error) -> BrokerResult {
        BrokerResult {
            broker,
            label: None,
            metrics: Vec::new(),
            status: Status::Error(format!("{err:#}")),
            notes: Vec::new(),
        }
    }

    pub fn metric(&self, name: &str) -> Option<&Metric> {
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
            "{:<17} {} | {}",
            self.name(),
            self.status_cell(),
            figures.join(", ")
        )
    }
}

/// All brokers' results for one scenario (one round of it).
pub struct ScenarioResult {
    /// The scenario, the same in every round.
    pub scenario: String,
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
                r.name(),
                r.status_cell(),
                cells.join(" | ")
            );
        }
        let notes: Vec<String> = self
            .results
            .iter()
            .flat_map(|r| r.notes.iter().map(move |n| format!("- {}: {n}", r.name())))
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(out, "\n{}", notes.join("\n"));
        }
        out.push_str(&self.peer_ratios());
        out.push_str(&self.policy_ratios());
        out.push_str(&self.variant_ratios());
        out
    }

    /// The result labeled `label`, unless its run could not complete.
    fn variant(&self, label: &str) -> Option<&BrokerResult> {
        self.results
            .iter()
            .find(|r| r.label == Some(label) && !matches!(r.status, Status::Error(_)))
    }

    /// Each labeled variant / the last one (the reference), a table each.
    fn variant_ratios(&self) -> String {
        let labeled: Vec<&BrokerResult> = self
            .results
            .iter()
            .filter(|r| r.label.is_some() && !matches!(r.status, Status::Error(_)))
            .collect();
        match labeled.split_last() {
            Some((reference, others)) => others
                .iter()
                .map(|of| ratio_table(of, &[*reference]))
                .collect(),
            None => String::new(),
        }
    }

    /// `broker`'s result, unless its run could not complete.
    fn result(&self, broker: BrokerKind) -> Option<&BrokerResult> {
        self.results
            .iter()
            .find(|r| r.broker == broker && !matches!(r.status, Status::Error(_)))
    }

    /// firehose / peer for every metric with a better direction.
    fn peer_ratios(&self) -> String {
        let Some(fh) = self
            .result(BrokerKind::Firehose)
            .filter(|r| r.label.is_none())
        else {
            return String::new();
        };
        let peers: Vec<&BrokerResult> = self
            .results
            .iter()
            .filter(|r| !r.broker.is_firehose())
            .collect();
        ratio_table(fh, &peers)
    }

    /// firehose+policies / firehose: what the ACL component and the
    /// transform chain cost.
    fn policy_ratios(&self) -> String {
        let (Some(with), Some(without)) = (
            self.result(BrokerKind::FirehosePolicies),
            self.result(BrokerKind::Firehose),
        ) else {
            return String::new();
        };
        let mut out = String::from("\nCost of policies:\n");
        out.push_str(&ratio_table(with, &[without]));
        out
    }
}

/// `of` / each of `to` for every metric of `of` with a better direction.
fn ratio_table(of: &BrokerResult, to: &[&BrokerResult]) -> String {
    if to.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let heads: Vec<String> = to
        .iter()
        .map(|p| format!("{} / {}", of.name(), p.name()))
        .collect();
    let _ = writeln!(out, "\n| ratio | better | {} |", heads.join(" | "));
    let _ = writeln!(out, "|---|---|{}", "---:|".repeat(to.len()));
    for m in of.metrics.iter().filter(|m| m.better != Better::Info) {
        let cells: Vec<String> = to
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

/// The distinct scenarios of `results`, in first-seen order.
fn scenario_names(results: &[ScenarioResult]) -> Vec<&str> {
    let mut scenarios: Vec<&str> = Vec::new();
    for s in results {
        if !scenarios.contains(&s.scenario.as_str()) {
            scenarios.push(&s.scenario);
        }
    }
    scenarios
}

/// Median, minimum and maximum; `None` for no values.
fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    let median = median(values)?;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((median, min, max))
}

/// The (numerator, denominator) pairs of every round of every scenario
/// that has both, `pick` choosing them; and for each metric with a better
/// direction, its values in each pair.
fn paired_rounds<'a>(
    results: &'a [ScenarioResult],
    pick: impl Fn(&'a ScenarioResult) -> Option<(&'a BrokerResult, &'a BrokerResult)>,
) -> Vec<(&'a str, Vec<(&'a BrokerResult, &'a BrokerResult)>)> {
    scenario_names(results)
        .into_iter()
        .map(|scenario| {
            let rounds = results
                .iter()
                .filter(|s| s.scenario == scenario)
                .filter_map(&pick)
                .collect();
            (scenario, rounds)
        })
        .collect()
}

/// `(a, b)` of metric `name` in every pair where both are finite and `b`
/// is positive.
fn metric_pairs(pairs: &[(&BrokerResult, &BrokerResult)], name: &str) -> Vec<(f64, f64)> {
    pairs
        .iter()
        .filter_map(|(of, to)| {
            let a = of.metric(name)?.value;
            let b = to.metric(name)?.value;
            (a.is_finite() && b.is_finite() && b > 0.0).then_some((a, b))
        })
        .collect()
}

fn direction(better: Better) -> &'static str {
    if better == Better::Higher {
        "higher"
    } else {
        "lower"
    }
}

/// firehose+policies / firehose over the rounds of each scenario: the
/// median, the range and every round's ratio, for each metric with a better
/// direction. Empty without both firehose kinds.
pub fn policy_cost_summary(results: &[ScenarioResult]) -> String {
    let mut rows = String::new();
    let paired = paired_rounds(results, |s| {
        Some((
            s.result(BrokerKind::FirehosePolicies)?,
            s.result(BrokerKind::Firehose)?,
        ))
    });
    for (scenario, rounds) in paired {
        let Some((first, _)) = rounds.first() else {
            continue;
        };
        for m in first.metrics.iter().filter(|m| m.better != Better::Info) {
            let ratios: Vec<f64> = metric_pairs(&rounds, m.name)
                .into_iter()
                .map(|(a, b)| a / b)
                .collect();
            let Some((median, min, max)) = spread(&ratios) else {
                continue;
            };
            let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            let _ = writeln!(
                rows,
                "| {scenario} | {} | {} | {median:.2}x | {min:.2}x - {max:.2}x | {} |",
                m.name,
                direction(m.better),
                each.join(", ")
            );
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "### Cost of policies over the rounds: firehose+policies / firehose\n\n\
         | scenario | metric | better | median | range | each round |\n\
         |---|---|---|---:|---:|---|\n{rows}"
    )
}

/// Variant `of` against variant `to` (labels of [`BrokerResult`]) over the
/// rounds of each scenario: each one's median and range of the absolute
/// figures, and the median, range and every round of `of` / `to`, for each
/// metric with a better direction. Empty without both variants.
pub fn variant_summary(results: &[ScenarioResult], of: &str, to: &str) -> String {
    let mut rows = String::new();
    let paired = paired_rounds(results, |s| Some((s.variant(of)?, s.variant(to)?)));
    for (scenario, rounds) in paired {
        let Some((first, _)) = rounds.first() else {
            continue;
        };
        for m in first.metrics.iter().filter(|m| m.better != Better::Info) {
            let pairs = metric_pairs(&rounds, m.name);
            let ratios: Vec<f64> = pairs.iter().map(|(a, b)| a / b).collect();
            let Some((median, min, max)) = spread(&ratios) else {
                continue;
            };
            let absolute = |values: Vec<f64>| {
                spread(&values).map_or_else(String::new, |(median, min, max)| {
                    let f = |v: f64| {
                        Metric {
                            value: v,
                            ..m.clone()
                        }
                        .formatted()
                    };
                    format!("{} ({} - {})", f(median), f(min), f(max))
                })
            };
            let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            let _ = writeln!(
                rows,
                "| {scenario} | {} | {} | {} | {} | {median:.2}x | {min:.2}x - {max:.2}x | {} |",
                m.name,
                direction(m.better),
                absolute(pairs.iter().map(|p| p.0).collect()),
                absolute(pairs.iter().map(|p| p.1).collect()),
                each.join(", ")
            );
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "### {of} / {to} over the rounds\n\n\
         | scenario | metric | better | {of}: median (range) | {to}: median (range) | \
         {of} / {to}: median | range | each round |\n\
         |---|---|---|---:|---:|---:|---:|---|\n{rows}"
    )
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
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

    fn result(broker: BrokerKind, msgs: f64, cpu: f64) -> BrokerResult {
        let mut r = BrokerResult::new(broker);
        r.metrics = vec![
            Metric::new("delivered msg/s", msgs, 0, Better::Higher),
            Metric::new("broker CPU us/msg", cpu, 3, Better::Lower),
            Metric::new("seconds", 1.0, 2, Better::Info),
        ];
        r
    }

    #[test]
    fn policy_cost_over_rounds() {
        let round = |with: f64, without: f64| ScenarioResult {
            scenario: "Fan-out".into(),
            title: "Fan-out (round)".into(),
            description: String::new(),
            results: vec![
                result(BrokerKind::Firehose, without, 0.2),
                result(BrokerKind::FirehosePolicies, with, 0.3),
                result(BrokerKind::Mosquitto, 1.0, 5.0),
            ],
        };
        let rounds = [round(80.0, 100.0), round(90.0, 100.0), round(50.0, 100.0)];
        let md = policy_cost_summary(&rounds);
        assert!(
            md.contains(
                "| Fan-out | delivered msg/s | higher | 0.80x | 0.50x - 0.90x | 0.80, 0.90, 0.50 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| Fan-out | broker CPU us/msg | lower | 1.50x |"),
            "{md}"
        );
        assert!(!md.contains("seconds"), "{md}");
        // Per scenario: firehose / peers leave firehose+policies out.
        let table = rounds[0].markdown(1);
        assert!(
            table.contains("| ratio | better | firehose / mosquitto |"),
            "{table}"
        );
        assert!(
            table.contains("| ratio | better | firehose+policies / firehose |"),
            "{table}"
        );
        assert!(
            table.contains("| delivered msg/s | higher | 0.80x |"),
            "{table}"
        );
        // Without firehose+policies there is nothing to summarize.
        let plain = ScenarioResult {
            scenario: "Fan-out".into(),
            title: "Fan-out".into(),
            description: String::new(),
            results: vec![result(BrokerKind::Firehose, 1.0, 1.0)],
        };
        assert_eq!(policy_cost_summary(&[plain]), "");
    }

    #[test]
    fn variants_of_one_broker() {
        let round = |wasm: f64, native: f64| ScenarioResult {
            scenario: "Source, 1 subscriber".into(),
            title: "Source (round)".into(),
            description: String::new(),
            results: vec![
                result(BrokerKind::Firehose, wasm, 2.0).labeled("wasm source"),
                result(BrokerKind::Firehose, native, 1.0).labeled("native publisher"),
            ],
        };
        let rounds = [
            round(80.0, 100.0),
            round(90.0, 100.0),
            round(1000.0, 2000.0),
        ];
        let table = rounds[0].markdown(1);
        assert!(table.contains("| wasm source | ok | 80 |"), "{table}");
        assert!(
            table.contains("| ratio | better | wasm source / native publisher |"),
            "{table}"
        );
        assert!(
            table.contains("| delivered msg/s | higher | 0.80x |"),
            "{table}"
        );
        // Not a firehose / peer comparison.
        assert!(!table.contains("firehose /"), "{table}");
        let md = variant_summary(&rounds, "wasm source", "native publisher");
        assert!(
            md.contains(
                "| Source, 1 subscriber | delivered msg/s | higher | 90 (80 - 1,000) | 100 (100 - \
                 2,000) | 0.80x | 0.50x - 0.90x | 0.80, 0.90, 0.50 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| broker CPU us/msg | lower | 2.000 (2.000 - 2.000) |"),
            "{md}"
        );
        assert_eq!(variant_summary(&rounds, "wasm source", "other"), "");
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn dates() {
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_time(1_709_210_096), "2024-02-29 12:34 UTC");
    }
}
