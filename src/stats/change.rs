//! A live change to a running task (its rates, its users, a pause) as the cluster carries it in
//! the task's share table and the report records it. What a change does to a plan is the
//! engine's (`crate::engine::schedule::adjust`).

use serde::{Deserialize, Serialize};

/// What one live change does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Every rate of the rest of the plan times this factor.
    RateFactor(f64),
    /// New base and peak rates: the rest of the plan's rates are mapped from the old
    /// `[base, peak]` onto the new one (a constant plan's rate becomes `base_rps`); without a
    /// peak, the plan moves by the change of its base.
    Rates {
        base_rps: f64,
        #[serde(default)]
        peak_rps: Option<f64>,
    },
    /// The closed model's users, over the whole cluster.
    ConcurrentUsers(u32),
    /// Pause (`true`) or resume (`false`).
    Paused(bool),
}

/// One change to a running task, as the orchestrator recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Adjustment {
    /// Milliseconds after the task's start from which it holds.
    pub from_ms: u64,
    pub change: Change,
    /// Who made it: the surface (`rest`, `mcp`) and, when known, the client's address.
    pub by: String,
    /// When it was asked for, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl Change {
    /// In words, for the reports: `rate ×2`, `rates 300–500 rps`, `users 50`, `paused`.
    pub fn describe(&self) -> String {
        match *self {
            Change::RateFactor(f) => format!("rate ×{f}"),
            Change::Rates {
                base_rps,
                peak_rps: Some(p),
            } => format!("rates {base_rps}–{p} rps"),
            Change::Rates { base_rps, .. } => format!("base rate {base_rps} rps"),
            Change::ConcurrentUsers(u) => format!("users {u}"),
            Change::Paused(true) => "paused".into(),
            Change::Paused(false) => "resumed".into(),
        }
    }
}

/// The task's live changes in the text report (nothing without any).
pub fn text(adjustments: &[Adjustment], out: &mut String) {
    use std::fmt::Write as _;
    if adjustments.is_empty() {
        return;
    }
    let _ = writeln!(out, "  live changes:");
    for a in adjustments {
        let _ = writeln!(
            out,
            "    at {:>7.1} s  {:<24} by {}",
            a.from_ms as f64 / 1000.0,
            a.change.describe(),
            a.by
        );
    }
}

/// The task's live changes in the HTML report: when each held, what it did, who made it.
pub fn html(adjustments: &[Adjustment], out: &mut String) {
    use std::fmt::Write as _;
    if adjustments.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Live changes</h3><table class=\"adjustments\"><thead><tr><th>From (s)</th>\
         <th>Change</th><th>By</th><th>Asked at</th></tr></thead><tbody>",
    );
    for a in adjustments {
        let _ = write!(
            out,
            "<tr><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.from_ms as f64 / 1000.0,
            super::html::escape(&a.change.describe()),
            super::html::escape(&a.by),
            super::html::utc(a.at_unix_ms)
        );
    }
    out.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_in_words_and_escape_in_html() {
        let list = vec![
            Adjustment {
                from_ms: 5200,
                change: Change::RateFactor(2.0),
                by: "rest <127.0.0.1>".into(),
                at_unix_ms: 0,
            },
            Adjustment {
                from_ms: 7000,
                change: Change::Paused(true),
                by: "mcp".into(),
                at_unix_ms: 0,
            },
        ];
        let mut t = String::new();
        text(&list, &mut t);
        assert!(t.contains("at     5.2 s  rate ×2"), "{t}");
        assert!(t.contains("paused"), "{t}");
        let mut h = String::new();
        html(&list, &mut h);
        assert!(h.contains("rest &lt;127.0.0.1&gt;"), "{h}");
        assert_eq!(h.matches("<tr>").count(), 3, "{h}");
        let mut none = String::new();
        text(&[], &mut none);
        html(&[], &mut none);
        assert!(none.is_empty());
    }
}
