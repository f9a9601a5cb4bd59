//! The request forms of placement: scenarios, strategy and weights read from a JSON document
//! with every problem reported at its key path ([`FromValue`]), the checks that serde's derive
//! cannot make ([`Scenario::check`], [`Weights::check`], [`check_workload`]), and the serde
//! form of a duration (seconds, or a string with a unit).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Scenario, Strategy, TEST_TYPES, Weights};
use crate::validate::{FieldErrors, FromValue, Obj, describe, join};

pub(super) fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl Scenario {
    /// Reports what serde accepts but placement cannot use: an empty id, an unknown test type,
    /// an empty capability name, a negative or non-finite requirement, parameters that are not
    /// a mapping.
    pub fn check(&self, path: &str, errors: &mut FieldErrors) {
        check_id(&self.scenario_id, path, errors);
        check_test_type(&self.test_type, path, errors);
        check_capabilities(&self.required_capabilities, path, errors);
        check_requirements(&self.resource_requirements, path, errors);
        check_parameters(&self.parameters, path, errors);
    }
}

fn check_id(id: &str, path: &str, errors: &mut FieldErrors) {
    if id.trim().is_empty() {
        errors.push(join(path, "scenario_id"), "must not be empty");
    }
}

fn check_test_type(test_type: &str, path: &str, errors: &mut FieldErrors) {
    if !TEST_TYPES.contains(&test_type) {
        errors.push(
            join(path, "test_type"),
            format!(
                "unknown test type {test_type:?}: expected one of {}",
                TEST_TYPES.join(", ")
            ),
        );
    }
}

fn check_capabilities(caps: &[String], path: &str, errors: &mut FieldErrors) {
    for (i, c) in caps.iter().enumerate() {
        if c.trim().is_empty() {
            errors.push(
                format!("{}[{i}]", join(path, "required_capabilities")),
                "must not be empty",
            );
        }
    }
}

fn check_requirements(reqs: &BTreeMap<String, f64>, path: &str, errors: &mut FieldErrors) {
    for (r, amount) in reqs {
        if !(amount.is_finite() && *amount >= 0.0) {
            errors.push(
                join(&join(path, "resource_requirements"), r),
                format!("must be a finite number >= 0, got {amount}"),
            );
        }
    }
}

fn check_parameters(parameters: &Value, path: &str, errors: &mut FieldErrors) {
    if !parameters.is_object() {
        errors.push(
            join(path, "parameters"),
            format!("expected a mapping, got {}", describe(parameters)),
        );
    }
}

/// Checks every scenario of a workload (at `path[i]`) and that no two share an id.
pub fn check_workload(scenarios: &[Scenario], path: &str, errors: &mut FieldErrors) {
    let mut seen = HashSet::new();
    for (i, s) in scenarios.iter().enumerate() {
        let at = format!("{path}[{i}]");
        s.check(&at, errors);
        if !seen.insert(s.scenario_id.as_str()) {
            errors.push(
                join(&at, "scenario_id"),
                format!("duplicate scenario_id {:?}", s.scenario_id),
            );
        }
    }
}

fn requirements(
    v: Option<&Value>,
    path: &str,
    errors: &mut FieldErrors,
) -> Option<BTreeMap<String, f64>> {
    let Some(v) = v else {
        return Some(BTreeMap::new());
    };
    let Value::Object(map) = v else {
        errors.push(
            path,
            format!(
                "expected a mapping of resource to amount, got {}",
                describe(v)
            ),
        );
        return None;
    };
    let before = errors.0.len();
    let out: BTreeMap<String, f64> = map
        .iter()
        .filter_map(|(k, x)| {
            let amount = crate::resources::read_amount(
                &crate::resources::normalize(k),
                x,
                &join(path, k),
                errors,
            )?;
            Some((k.clone(), amount))
        })
        .collect();
    (errors.0.len() == before).then_some(out)
}

impl FromValue for Scenario {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        let before = errors.0.len();
        let mut o = Obj::new(v, path, errors)?;
        let scenario_id: Option<String> = o.req("scenario_id", errors);
        let name = o.or("name", String::new(), errors);
        let description = o.or("description", String::new(), errors);
        let test_type: Option<String> = o
            .req::<crate::validate::Keyword>("test_type", errors)
            .map(|k| k.0);
        let parameters = o.raw("parameters").cloned().unwrap_or_else(empty_object);
        let required_capabilities: Option<Vec<String>> = match o.raw("required_capabilities") {
            None => Some(Vec::new()),
            Some(_) => o.opt("required_capabilities", errors),
        };
        let estimated_duration = o.or("estimated_duration", Duration::ZERO, errors);
        let req_path = o.key_path("resource_requirements");
        let resource_requirements = requirements(o.raw("resource_requirements"), &req_path, errors);
        let preferred_location = o.opt("preferred_location", errors);
        o.finish(errors);
        // Each part that parsed is checked, so one document reports every problem at once.
        if let Some(id) = &scenario_id {
            check_id(id, path, errors);
        }
        if let Some(t) = &test_type {
            check_test_type(t, path, errors);
        }
        if let Some(caps) = &required_capabilities {
            check_capabilities(caps, path, errors);
        }
        if let Some(reqs) = &resource_requirements {
            check_requirements(reqs, path, errors);
        }
        check_parameters(&parameters, path, errors);
        if errors.0.len() != before {
            return None;
        }
        Some(Scenario {
            scenario_id: scenario_id?,
            name,
            description,
            test_type: test_type?,
            parameters,
            required_capabilities: required_capabilities?,
            estimated_duration,
            resource_requirements: resource_requirements?,
            preferred_location,
        })
    }
}

impl FromValue for Strategy {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        let Value::String(_) = v else {
            errors.push(
                path,
                format!("expected a strategy name, got {}", describe(v)),
            );
            return None;
        };
        let name = crate::validate::Keyword::from_value(v, path, errors)?;
        name.parse()
            .map_err(|e: super::UnknownStrategy| errors.push(path, e.to_string()))
            .ok()
    }
}

impl Weights {
    /// Reports a negative or non-finite weight.
    pub fn check(&self, path: &str, errors: &mut FieldErrors) {
        for (key, w) in [
            ("capacity", self.capacity),
            ("load", self.load),
            ("health", self.health),
            ("locality", self.locality),
            ("performance", self.performance),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                errors.push(
                    join(path, key),
                    format!("must be a finite number >= 0, got {w}"),
                );
            }
        }
    }
}

/// A mapping of the five weights; a missing one takes its default.
impl FromValue for Weights {
    fn from_value(v: &Value, path: &str, errors: &mut FieldErrors) -> Option<Self> {
        let before = errors.0.len();
        let d = Weights::default();
        let mut o = Obj::new(v, path, errors)?;
        let w = Weights {
            capacity: o.or("capacity", d.capacity, errors),
            load: o.or("load", d.load, errors),
            health: o.or("health", d.health, errors),
            locality: o.or("locality", d.locality, errors),
            performance: o.or("performance", d.performance, errors),
        };
        o.finish(errors);
        w.check(path, errors);
        (errors.0.len() == before).then_some(w)
    }
}

/// serde for a `Duration`: written as seconds (whole seconds as an integer), read from seconds
/// or from a string with a unit (`"250ms"`, `"30m"`, `"1h30m"`).
pub(super) mod seconds {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    use crate::validate::parse_duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_nanos() == 0 {
            s.serialize_u64(d.as_secs())
        } else {
            s.serialize_f64(d.as_secs_f64())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(Secs)
    }

    struct Secs;

    impl Visitor<'_> for Secs {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration: seconds, or a string like \"250ms\", \"30s\", \"5m\"")
        }

        fn visit_u64<E: de::Error>(self, x: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(x))
        }

        fn visit_i64<E: de::Error>(self, x: i64) -> Result<Duration, E> {
            u64::try_from(x)
                .map(Duration::from_secs)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(x), &self))
        }

        fn visit_f64<E: de::Error>(self, x: f64) -> Result<Duration, E> {
            (x.is_finite() && x >= 0.0)
                .then(|| Duration::try_from_secs_f64(x).ok())
                .flatten()
                .ok_or_else(|| E::invalid_value(de::Unexpected::Float(x), &self))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            parse_duration(s).ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
        }
    }
}
