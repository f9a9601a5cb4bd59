//! Custom metrics pushed to a node from outside (`POST /health/metrics`) or from code
//! (`SetCustomMetric` to its `NodeMonitor`): a named value with optional `warning` and
//! `critical` thresholds. The node keeps the latest value of each (at most
//! [`MAX_CUSTOM_METRICS`]) and turns it into a check result `metric:<name>` every round, so
//! the consecutive-failure alert rule, the health score and the reports treat it like any
//! custom check.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CheckKind, CheckResult, Status};
use crate::validate::{FieldErrors, Obj};

/// How many distinct custom metrics a node keeps.
pub const MAX_CUSTOM_METRICS: usize = 100;

/// One custom metric's latest value and levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomMetric {
    /// `[a-z_][a-z0-9_]{0,63}`.
    #[schema(pattern = "^[a-z_][a-z0-9_]{0,63}$")]
    pub name: String,
    pub value: f64,
    /// Shown after the value in messages; at most 32 characters.
    #[schema(max_length = 32)]
    pub unit: Option<String>,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    /// `true` (the default): at or above a threshold is bad; `false`: at or below.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub higher_is_worse: bool,
}

fn yes() -> bool {
    true
}

/// Whether `name` is `[a-z_][a-z0-9_]{0,63}`.
pub fn valid_name(name: &str) -> bool {
    crate::validate::metric_name(name)
}

impl CustomMetric {
    /// Reads and validates a JSON body; every problem names its field.
    pub fn from_json(v: &Value) -> Result<CustomMetric, FieldErrors> {
        let mut e = FieldErrors::default();
        let Some(mut o) = Obj::new(v, "", &mut e) else {
            return Err(e);
        };
        let name: Option<String> = o.req("name", &mut e);
        if let Some(n) = &name
            && !valid_name(n)
        {
            e.push(
                "name",
                format!("expected [a-z_][a-z0-9_]{{0,63}}, got {n:?}"),
            );
        }
        let value: Option<f64> = o.req("value", &mut e);
        // A JSON API: a number is no unit (the settings' reader takes numbers as strings).
        if v.get("unit")
            .is_some_and(|u| !(u.is_string() || u.is_null()))
        {
            e.push("unit", "expected a string");
        }
        let unit: Option<String> = o.opt("unit", &mut e);
        if unit.as_ref().is_some_and(|u| u.chars().count() > 32) {
            e.push("unit", "must be at most 32 characters");
        }
        let warning: Option<f64> = o.opt("warning", &mut e);
        let critical: Option<f64> = o.opt("critical", &mut e);
        let higher_is_worse = o.or("higher_is_worse", true, &mut e);
        o.finish(&mut e);
        for (field, x) in [
            ("value", value),
            ("warning", warning),
            ("critical", critical),
        ] {
            if x.is_some_and(|x| !x.is_finite()) {
                e.push(field, "must be a finite number");
            }
        }
        if let (Some(w), Some(c)) = (warning, critical)
            && let Some(why) = crate::validate::critical_after_warning(w, c, higher_is_worse)
        {
            e.push("critical", why);
        }
        match (name, value) {
            (Some(name), Some(value)) if e.is_empty() => Ok(CustomMetric {
                name,
                value,
                unit,
                warning,
                critical,
                higher_is_worse,
            }),
            _ => Err(e),
        }
    }

    /// Its level: critical at or past `critical`, warning at or past `warning`.
    pub fn status(&self) -> Status {
        let past = |t: Option<f64>| {
            t.is_some_and(|t| {
                if self.higher_is_worse {
                    self.value >= t
                } else {
                    self.value <= t
                }
            })
        };
        if past(self.critical) {
            Status::Critical
        } else if past(self.warning) {
            Status::Warning
        } else {
            Status::Healthy
        }
    }

    /// The check result of this round: `metric:<name>`.
    pub fn check(&self) -> CheckResult {
        self.result(format!("metric:{}", self.name), CheckKind::Metric)
    }

    /// Its value judged by its levels as the check `check_id` of `kind`: what a pushed metric
    /// and a prometheus check's series both report.
    pub fn result(&self, check_id: String, kind: CheckKind) -> CheckResult {
        let status = self.status();
        let unit = self
            .unit
            .as_deref()
            .map_or(String::new(), |u| format!(" {u}"));
        let v = self.value;
        let message = match status {
            Status::Healthy => format!("{} is {v}{unit}", self.name),
            Status::Warning => format!(
                "{} is {v}{unit}, at or past the warning threshold {}",
                self.name,
                self.warning.unwrap_or_default()
            ),
            Status::Critical => format!(
                "{} is {v}{unit}, at or past the critical threshold {}",
                self.name,
                self.critical.unwrap_or_default()
            ),
        };
        CheckResult {
            check_id,
            name: self.name.clone(),
            kind,
            status,
            message,
            value: Some(v),
            unit: self.unit.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Vec<String> {
        CustomMetric::from_json(&v)
            .unwrap_err()
            .0
            .into_iter()
            .map(|f| f.field)
            .collect()
    }

    #[test]
    fn names_and_values_are_checked() {
        assert!(valid_name("queue_depth") && valid_name("_x9") && valid_name(&"a".repeat(64)));
        for bad in ["", "Queue", "9x", "a-b", "a.b", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(fields(json!({"value": 1})), ["name"]);
        assert_eq!(fields(json!({"name": "Bad", "value": 1})), ["name"]);
        assert_eq!(fields(json!({"name": "q"})), ["value"]);
        assert_eq!(fields(json!({"name": "q", "value": "x"})), ["value"]);
        assert_eq!(
            fields(json!({"name": "q", "value": 1, "colour": 2})),
            ["colour"]
        );
        assert_eq!(
            fields(json!({"name": "q", "value": 1, "warning": 9, "critical": 5})),
            ["critical"]
        );
        assert_eq!(fields(json!([1])), [""]);
        // Found by schemathesis: a number is no unit.
        assert_eq!(
            fields(json!({"name": "q", "value": 1, "unit": 5})),
            ["unit"]
        );
        assert!(CustomMetric::from_json(&json!({"name": "q", "value": 1, "unit": null})).is_ok());
        let m = CustomMetric::from_json(&json!({"name": "q", "value": 1.5})).unwrap();
        assert!(m.higher_is_worse && m.warning.is_none() && m.unit.is_none());
    }

    #[test]
    fn levels_follow_the_thresholds() {
        let m = |value: f64, higher_is_worse: bool| CustomMetric {
            name: "q".into(),
            value,
            unit: Some("jobs".into()),
            warning: Some(if higher_is_worse { 10.0 } else { 5.0 }),
            critical: Some(if higher_is_worse { 20.0 } else { 1.0 }),
            higher_is_worse,
        };
        assert_eq!(m(9.9, true).status(), Status::Healthy);
        assert_eq!(m(10.0, true).status(), Status::Warning);
        assert_eq!(m(20.0, true).status(), Status::Critical);
        assert_eq!(m(6.0, false).status(), Status::Healthy);
        assert_eq!(m(5.0, false).status(), Status::Warning);
        assert_eq!(m(0.5, false).status(), Status::Critical);
        let c = m(25.0, true).check();
        assert_eq!(
            (c.check_id.as_str(), c.kind),
            ("metric:q", CheckKind::Metric)
        );
        assert_eq!(c.value, Some(25.0));
        assert_eq!(c.unit.as_deref(), Some("jobs"));
        assert!(c.message.contains("25 jobs"), "{}", c.message);
        let none = CustomMetric {
            warning: None,
            critical: None,
            ..m(1e9, true)
        };
        assert_eq!(
            none.status(),
            Status::Healthy,
            "no thresholds: never alerts"
        );
    }
}
