//! SQL injection, three ways: a quote that makes the database complain (error text the
//! baseline lacks), a true and a false condition that answer differently (the true one like
//! the baseline), and, in `deep` only, a sleep that delays the answer while a zero sleep
//! does not.

use std::time::Duration;

use super::{
    Depth, Endpoint, Evidence, Exchange, Finding, Probe, ProbeRequest, ScanType, Severity,
    Technique, endpoint_label, similar,
};

/// Database error texts (lower case). Specific enough that an ordinary page never holds them.
const ERROR_SIGNATURES: &[&str] = &[
    "you have an error in your sql syntax",
    "warning: mysql",
    "mysqli_",
    "unclosed quotation mark after the character string",
    "quoted string not properly terminated",
    "syntax error at or near",
    "unterminated quoted string",
    "pg_query()",
    "sqlstate[",
    "sqlite_error",
    "sqlite3.operationalerror",
    "unrecognized token:",
    ": syntax error",
    "ora-00933",
    "ora-01756",
    "microsoft ole db provider for",
    "odbc sql server driver",
    "jdbc.sqlserverexception",
    "org.postgresql.util.psqlexception",
];

/// The sleep of a time-based probe, and how much slower than the baseline its answer must be.
pub const SLEEP: Duration = Duration::from_secs(3);
pub const TIME_MARGIN: Duration = Duration::from_secs(2);

fn probe(endpoint: &Endpoint, param: &str, technique: Technique, values: &[String]) -> Probe {
    Probe {
        scan_type: ScanType::SqlInjection,
        parameter: Some(param.to_string()),
        technique,
        requests: values
            .iter()
            .map(|v| ProbeRequest::values(endpoint.with_value(param, v)))
            .collect(),
    }
}

pub fn probes(endpoint: &Endpoint, depth: Depth) -> Vec<Probe> {
    let mut out = Vec::new();
    for p in &endpoint.params {
        let base = &p.value;
        let mut errors = vec![format!("{base}'")];
        // Numeric context first; string context in deep.
        let mut booleans = vec![(format!("{base} AND 1=1"), format!("{base} AND 1=2"))];
        if depth == Depth::Deep {
            errors.push(format!("{base}\""));
            errors.push(format!("{base})"));
            booleans.push((format!("{base}' AND '1'='1"), format!("{base}' AND '1'='2")));
        }
        for payload in errors {
            out.push(probe(
                endpoint,
                &p.name,
                Technique::SqlError {
                    payload: payload.clone(),
                },
                &[payload],
            ));
        }
        for (t, f) in booleans {
            out.push(probe(
                endpoint,
                &p.name,
                Technique::SqlBoolean {
                    when_true: t.clone(),
                    when_false: f.clone(),
                },
                &[t, f],
            ));
        }
        if depth == Depth::Deep {
            let secs = SLEEP.as_secs();
            let sleeps = [
                (
                    format!("{base} AND SLEEP({secs})"),
                    format!("{base} AND SLEEP(0)"),
                ),
                (
                    format!("{base}' AND SLEEP({secs}) AND '1'='1"),
                    format!("{base}' AND SLEEP(0) AND '1'='1"),
                ),
                (
                    format!("{base}; SELECT pg_sleep({secs})--"),
                    format!("{base}; SELECT pg_sleep(0)--"),
                ),
            ];
            for (slow, control) in sleeps {
                let mut pr = probe(
                    endpoint,
                    &p.name,
                    Technique::SqlTime {
                        sleep: SLEEP,
                        payload: slow.clone(),
                        margin: TIME_MARGIN,
                    },
                    &[slow, control],
                );
                pr.requests[0].min_timeout = Some(SLEEP + TIME_MARGIN + TIME_MARGIN);
                out.push(pr);
            }
        }
    }
    out
}

/// The first error signature in `body`, if any.
pub fn error_signature(body: &str) -> Option<&'static str> {
    let lower = body.to_ascii_lowercase();
    ERROR_SIGNATURES.iter().copied().find(|s| lower.contains(s))
}

const REMEDIATION: &str = "build queries with bound parameters (prepared statements), never by \
                           pasting input into SQL text; validate types (an id is a number); do \
                           not show database errors to clients";

pub fn judge(
    probe: &Probe,
    endpoint: &Endpoint,
    baseline: &Exchange,
    got: &[Exchange],
) -> Option<Finding> {
    let param = probe.parameter.clone().unwrap_or_default();
    let (title, evidence) = match &probe.technique {
        Technique::SqlError { .. } => by_error(&param, baseline, got)?,
        Technique::SqlBoolean {
            when_true,
            when_false,
        } => {
            let base_value = endpoint
                .params
                .iter()
                .find(|p| p.name == param)
                .map(|p| p.value.as_str())
                .unwrap_or_default();
            let echoed = [when_true.as_str(), when_false.as_str(), base_value];
            by_boolean(&param, baseline, got, (when_true, when_false), &echoed)?
        }
        Technique::SqlTime {
            sleep,
            payload,
            margin,
        } => by_time(&param, baseline, got, payload, *sleep, *margin)?,
        _ => return None,
    };
    Some(Finding {
        scan_type: ScanType::SqlInjection,
        severity: Severity::Critical,
        endpoint: endpoint_label(endpoint),
        parameter: probe.parameter.clone(),
        title,
        evidence,
        remediation: REMEDIATION.into(),
    })
}

/// A quote that makes the answer show a database error the baseline did not.
fn by_error(param: &str, baseline: &Exchange, got: &[Exchange]) -> Option<(String, Evidence)> {
    let x = got.first()?;
    let sig = error_signature(&x.response.body)?;
    if error_signature(&baseline.response.body).is_some() {
        return None;
    }
    // Find the signature as written, for the excerpt.
    let lower = x.response.body.to_ascii_lowercase();
    let at = lower.find(sig)?;
    let needle = &x.response.body[at..at + sig.len()];
    Some((
        format!("SQL injection: a quote in {param:?} causes a database error"),
        Evidence::around(x, needle),
    ))
}

/// A true condition answered like the baseline, a false one differently.
fn by_boolean(
    param: &str,
    baseline: &Exchange,
    got: &[Exchange],
    (when_true, when_false): (&str, &str),
    echoed: &[&str],
) -> Option<(String, Evidence)> {
    let [t, f] = got else { return None };
    let true_like_baseline = similar(&t.response, &baseline.response, echoed);
    let false_differs = !similar(&f.response, &t.response, echoed)
        && !similar(&f.response, &baseline.response, echoed);
    if !(true_like_baseline && false_differs) {
        return None;
    }
    let note = format!(
        "{when_true:?} answered {} like the baseline ({} bytes); {when_false:?} answered {} ({} bytes): {}",
        t.response.status,
        t.response.body.len(),
        f.response.status,
        f.response.body.len(),
        f.response.body
    );
    Some((
        format!(
            "SQL injection: {param:?} takes boolean conditions (true and false answer differently)"
        ),
        Evidence::noting(f, note),
    ))
}

/// A sleep that delays the answer by the margin, while the same with a zero sleep does not.
fn by_time(
    param: &str,
    baseline: &Exchange,
    got: &[Exchange],
    payload: &str,
    sleep: std::time::Duration,
    margin: std::time::Duration,
) -> Option<(String, Evidence)> {
    let [slow, control] = got else { return None };
    let base = baseline.response.elapsed;
    let slowed = slow.response.elapsed >= base + margin;
    let control_fast = control.response.elapsed < base + margin;
    if !(slowed && control_fast) {
        return None;
    }
    let note = format!(
        "{payload:?} answered after {} ms; the same with a zero sleep after {} ms; baseline {} ms (sleep {} s, margin {} s)",
        slow.response.elapsed.as_millis(),
        control.response.elapsed.as_millis(),
        base.as_millis(),
        sleep.as_secs(),
        margin.as_secs()
    );
    Some((
        format!("SQL injection: a sleep in {param:?} delays the answer (time-based)"),
        Evidence::noting(slow, note),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::security::{Param, Response, SentRequest};

    fn endpoint() -> Endpoint {
        Endpoint {
            path: "/item".into(),
            method: "GET".into(),
            params: vec![Param {
                name: "id".into(),
                value: "1".into(),
            }],
        }
    }

    fn x(status: u16, body: &str, ms: u64) -> Exchange {
        Exchange {
            request: SentRequest {
                method: "GET".into(),
                url: "http://127.0.0.1/item?id=1".into(),
                body: None,
                headers: vec![],
            },
            response: Response {
                status,
                headers: vec![],
                body: body.into(),
                elapsed: Duration::from_millis(ms),
            },
        }
    }

    fn by(probes: &[Probe], f: impl Fn(&Technique) -> bool) -> &Probe {
        probes.iter().find(|p| f(&p.technique)).unwrap()
    }

    #[test]
    fn quick_sends_no_sleep_and_deep_does() {
        let e = endpoint();
        let quick = probes(&e, Depth::Quick);
        assert_eq!(quick.len(), 2);
        assert!(
            !quick
                .iter()
                .any(|p| matches!(p.technique, Technique::SqlTime { .. }))
        );
        let deep = probes(&e, Depth::Deep);
        let timed: Vec<&Probe> = deep
            .iter()
            .filter(|p| matches!(p.technique, Technique::SqlTime { .. }))
            .collect();
        assert_eq!(timed.len(), 3);
        assert!(
            timed
                .iter()
                .all(|p| p.requests[0].min_timeout > Some(SLEEP))
        );
    }

    #[test]
    fn error_text_is_found_once_absent_from_the_baseline() {
        let e = endpoint();
        let ps = probes(&e, Depth::Quick);
        let p = by(&ps, |t| matches!(t, Technique::SqlError { .. }));
        let base = x(200, "apple", 1);
        let err = x(500, "database error: unrecognized token: \"'\"", 1);
        let f = judge(p, &e, &base, std::slice::from_ref(&err)).unwrap();
        assert!(f.evidence.excerpt.contains("unrecognized token"));
        assert_eq!(judge(p, &e, &base, &[x(404, "not found", 1)]), None);
        // A page that always shows the text (a SQL tutorial) proves nothing.
        let tutorial = x(200, "a page about: syntax error handling", 1);
        assert_eq!(judge(p, &e, &tutorial, &[err]), None);
    }

    #[test]
    fn boolean_needs_true_like_baseline_and_false_different() {
        let e = endpoint();
        let ps = probes(&e, Depth::Quick);
        let p = by(&ps, |t| matches!(t, Technique::SqlBoolean { .. }));
        let base = x(200, "item: apple", 1);
        let f = judge(
            p,
            &e,
            &base,
            &[x(200, "item: apple", 1), x(404, "no such item", 1)],
        );
        assert!(f.is_some());
        // Parameterized: both conditions are just a bad id.
        let both_bad = [x(404, "no such item", 1), x(404, "no such item", 1)];
        assert_eq!(judge(p, &e, &base, &both_bad), None);
        // A page echoing the value differs only by the echo.
        let echo = |v: &str| x(200, &format!("you asked for {v}"), 1);
        let base = echo("1");
        assert_eq!(
            judge(p, &e, &base, &[echo("1 AND 1=1"), echo("1 AND 1=2")]),
            None
        );
    }

    #[test]
    fn time_needs_the_sleep_slow_and_the_control_fast() {
        let e = endpoint();
        let ps = probes(&e, Depth::Deep);
        let p = by(&ps, |t| matches!(t, Technique::SqlTime { .. }));
        let base = x(200, "ok", 20);
        assert!(judge(p, &e, &base, &[x(200, "ok", 3020), x(200, "ok", 25)]).is_some());
        // Everything slow: a slow server, not an injection.
        assert_eq!(
            judge(p, &e, &base, &[x(200, "ok", 3020), x(200, "ok", 3000)]),
            None
        );
        assert_eq!(
            judge(p, &e, &base, &[x(200, "ok", 900), x(200, "ok", 25)]),
            None
        );
    }
}
