//! The Prometheus text exposition format, read (what an application serves on `/metrics`),
//! and a series selector (`app_queue_depth{queue="orders"}`) that picks one sample of it: what
//! a `prometheus` health check needs. A leaf module: the settings parse selectors with it and
//! the health checks read expositions with it.
//!
//! The exposition is read as Prometheus reads it: `#` lines (HELP, TYPE, comments) and blank
//! lines are skipped; a sample is `name{label="value",...} value [timestamp]`, tokens apart by
//! blanks, label values with the escapes `\\`, `\"` and `\n`, values as floats (`+Inf`, `-Inf`,
//! `NaN` too), the timestamp in integer milliseconds (or OpenMetrics' seconds). The quoted
//! names of the UTF-8 form (`{"my.metric", "a.b"="c"} 1`) and an OpenMetrics exemplar after the
//! value (`... 1 # {trace_id="x"} 0.5`) are taken too. A line that is none of these makes the
//! whole exposition unreadable, naming the line, as it makes a Prometheus scrape fail.

use std::fmt;

/// One sample line of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Why an exposition could not be read: the line (from 1) and what was wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub why: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// Every sample of an exposition, in order.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_matches([' ', '\t', '\r']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = sample_line(line).map_err(|why| ParseError { line: i + 1, why })?;
        out.push(sample);
    }
    Ok(out)
}

fn sample_line(line: &str) -> Result<Sample, String> {
    let mut c = Cursor::new(line);
    let mut name = if c.peek() == Some('{') {
        None
    } else {
        Some(c.metric_name()?)
    };
    // A blank may part a name from its labels, and must part it from its value.
    let blank = c.blanks();
    let mut labels = Vec::new();
    let braces = c.eat('{');
    if braces {
        // The UTF-8 form: a quoted name first among the labels.
        c.blanks();
        if name.is_none() && c.peek() == Some('"') {
            name = Some(c.quoted()?);
            c.blanks();
            if !c.eat(',') && c.peek() != Some('}') {
                return Err(c.expected("',' or '}' after the quoted metric name"));
            }
        }
        labels = c.label_pairs()?;
    }
    let name = name.ok_or_else(|| "no metric name".to_string())?;
    // A bare name needs a blank before its value; a closing brace does not.
    if !c.blanks() && !braces && !blank {
        return Err(c.expected("a blank before the value"));
    }
    let value = c.word();
    let value = parse_float(value).ok_or_else(|| format!("{value:?} is not a number"))?;
    c.blanks();
    if !c.at_end() && c.peek() != Some('#') {
        // Integer milliseconds in this format; OpenMetrics writes seconds with a fraction.
        let ts = c.word();
        if !parse_float(ts).is_some_and(f64::is_finite) {
            return Err(format!("{ts:?} is not a timestamp"));
        }
        c.blanks();
    }
    // An OpenMetrics exemplar (`# {labels} value`) says nothing about the sample's value.
    if !c.at_end() && c.peek() != Some('#') {
        return Err(c.expected("the end of the line"));
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// A float as Prometheus writes them: decimal, `+Inf`, `-Inf`, `NaN` (any case).
fn parse_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let named = ["inf", "infinity", "nan"]
        .iter()
        .any(|n| body.eq_ignore_ascii_case(n));
    let numeric = !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if named || numeric {
        s.parse().ok()
    } else {
        None
    }
}

/// A series selector: a metric name and label matchers, as in PromQL
/// (`name{a="x", b!="y", c=~"re", d!~"re"}`). A label a sample lacks matches as the empty
/// string; a regular expression must match the whole value.
#[derive(Debug, Clone)]
pub struct Selector {
    pub name: String,
    pub matchers: Vec<Matcher>,
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
    /// The anchored regular expression of `=~` and `!~`.
    regex: Option<regex::Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        (&self.label, self.op, &self.value) == (&other.label, other.op, &other.value)
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Selector) -> bool {
        self.name == other.name && self.matchers == other.matchers
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.matchers.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = self
            .matchers
            .iter()
            .map(|m| format!("{}{}{:?}", m.label, m.op.as_str(), m.value))
            .collect();
        write!(f, "{{{}}}", parts.join(","))
    }
}

impl Matcher {
    fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (_, None) => false,
        }
    }
}

impl std::str::FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Selector, String> {
        let mut c = Cursor::new(s.trim());
        let name = c.metric_name()?;
        let mut matchers = Vec::new();
        if c.eat('{') {
            loop {
                c.blanks();
                if c.eat('}') {
                    break;
                }
                matchers.push(c.matcher()?);
                c.blanks();
                if c.eat('}') {
                    break;
                }
                if !c.eat(',') {
                    return Err(c.expected("',' or '}'"));
                }
            }
        }
        if !c.at_end() {
            return Err(c.expected("the end of the selector"));
        }
        Ok(Selector { name, matchers })
    }
}

impl Selector {
    /// Whether `sample` is of this series.
    pub fn matches(&self, sample: &Sample) -> bool {
        sample.name == self.name
            && self.matchers.iter().all(|m| {
                let v = sample
                    .labels
                    .iter()
                    .find(|(k, _)| *k == m.label)
                    .map_or("", |(_, v)| v.as_str());
                m.matches(v)
            })
    }
}

/// Why a selector found no single sample in an exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectError {
    Unreadable(ParseError),
    /// No sample matched; `named` samples have the metric's name.
    NotFound {
        named: usize,
    },
    /// Several samples matched: how many, and the labels of the first two.
    Several {
        count: usize,
        first: Vec<String>,
    },
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::Unreadable(e) => write!(f, "not the text exposition format: {e}"),
            SelectError::NotFound { named: 0 } => f.write_str("no such metric"),
            SelectError::NotFound { named } => write!(
                f,
                "no sample matches the labels ({named} of that name do not)"
            ),
            SelectError::Several { count, first } => write!(
                f,
                "{count} samples match, not one (e.g. {}): narrow the labels",
                first.join(", ")
            ),
        }
    }
}

/// The value of the one sample of `text` that `selector` matches.
pub fn select(text: &str, selector: &Selector) -> Result<f64, SelectError> {
    let samples = parse(text).map_err(SelectError::Unreadable)?;
    let found: Vec<&Sample> = samples.iter().filter(|s| selector.matches(s)).collect();
    match found.as_slice() {
        [one] => Ok(one.value),
        [] => Err(SelectError::NotFound {
            named: samples.iter().filter(|s| s.name == selector.name).count(),
        }),
        many => Err(SelectError::Several {
            count: many.len(),
            first: many
                .iter()
                .take(2)
                .map(|s| labels_text(&s.labels))
                .collect(),
        }),
    }
}

fn labels_text(labels: &[(String, String)]) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(","))
}

/// A reader over one line.
struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Cursor<'a> {
        Cursor { s, at: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.at == self.s.len()
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.at += c.len_utf8();
        }
        hit
    }

    /// Skips spaces and tabs; whether there were any.
    fn blanks(&mut self) -> bool {
        let n = self.rest().len() - self.rest().trim_start_matches([' ', '\t']).len();
        self.at += n;
        n > 0
    }

    /// Up to the next blank.
    fn word(&mut self) -> &'a str {
        let rest = self.rest();
        let n = rest.find([' ', '\t']).unwrap_or(rest.len());
        self.at += n;
        &rest[..n]
    }

    fn expected(&self, what: &str) -> String {
        match self.peek() {
            Some(c) => format!("expected {what} at column {}, found {c:?}", self.at + 1),
            None => format!("expected {what} at the end"),
        }
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` (with `colons`) or `[a-zA-Z_][a-zA-Z0-9_]*`.
    fn ident(&mut self, colons: bool, what: &str) -> Result<String, String> {
        let ok = |c: char, first: bool| {
            c.is_ascii_alphabetic()
                || c == '_'
                || (colons && c == ':')
                || (!first && c.is_ascii_digit())
        };
        let rest = self.rest();
        let n = rest
            .char_indices()
            .find(|&(i, c)| !ok(c, i == 0))
            .map_or(rest.len(), |(i, _)| i);
        if n == 0 {
            return Err(self.expected(what));
        }
        self.at += n;
        Ok(rest[..n].to_string())
    }

    fn metric_name(&mut self) -> Result<String, String> {
        self.ident(true, "a metric name")
    }

    fn label_name(&mut self) -> Result<String, String> {
        if self.peek() == Some('"') {
            self.quoted()
        } else {
            self.ident(false, "a label name")
        }
    }

    /// A string in double quotes (or single quotes in a selector) with its escapes undone:
    /// `\\`, `\"`, `\'` and `\n`; another escaped character is kept with its backslash, as
    /// Prometheus keeps it.
    fn quoted(&mut self) -> Result<String, String> {
        let quote = match self.peek() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err(self.expected("a quoted string")),
        };
        self.at += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.at += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, e @ ('\\' | '"' | '\''))) => out.push(e),
                    Some((_, e)) => {
                        out.push('\\');
                        out.push(e);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("a quoted string is not closed".into())
    }

    /// `name="value", ...}` after a sample's `{`, the closing brace eaten.
    fn label_pairs(&mut self) -> Result<Vec<(String, String)>, String> {
        let mut labels = Vec::new();
        loop {
            self.blanks();
            if self.eat('}') {
                return Ok(labels);
            }
            let name = self.label_name()?;
            self.blanks();
            if !self.eat('=') {
                return Err(self.expected("'='"));
            }
            self.blanks();
            if self.peek() != Some('"') {
                return Err(self.expected("a label value in double quotes"));
            }
            labels.push((name, self.quoted()?));
            self.blanks();
            if self.eat('}') {
                return Ok(labels);
            }
            if !self.eat(',') {
                return Err(self.expected("',' or '}'"));
            }
        }
    }

    /// `label op "value"` in a selector.
    fn matcher(&mut self) -> Result<Matcher, String> {
        let label = self.label_name()?;
        self.blanks();
        let op = if self.rest().starts_with("=~") {
            MatchOp::Regex
        } else if self.rest().starts_with("!~") {
            MatchOp::NotRegex
        } else if self.rest().starts_with("!=") {
            MatchOp::NotEqual
        } else if self.rest().starts_with('=') {
            MatchOp::Equal
        } else {
            return Err(self.expected("'=', '!=', '=~' or '!~'"));
        };
        self.at += op.as_str().len();
        self.blanks();
        let value = self.quoted()?;
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("{label}{}{value:?}: {e}", op.as_str()))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            label,
            op,
            value,
            regex,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Selector {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const TEXT: &str = r#"# HELP app_queue_depth Jobs waiting.
# TYPE app_queue_depth gauge
app_queue_depth{queue="orders"} 42
app_queue_depth{queue="mail",region="eu"} 7 1700000000000
app_queue_depth { queue = "odd, \"quoted\" = {x}" , } 3
app_up 1

http_requests_total{code="200",path="/a\\b\nc"} 1.5e3
temperature_celsius -Inf
ratio NaN
"#;

    #[test]
    fn expositions_are_read_with_their_escapes() {
        let s = parse(TEXT).unwrap();
        assert_eq!(s.len(), 7);
        assert_eq!(s[0].name, "app_queue_depth");
        assert_eq!(s[0].labels, [("queue".into(), "orders".into())]);
        assert_eq!(s[1].value, 7.0, "a timestamp after the value");
        assert_eq!(s[2].labels[0].1, "odd, \"quoted\" = {x}");
        assert_eq!((s[3].name.as_str(), s[3].value), ("app_up", 1.0));
        assert_eq!(s[4].labels[1].1, "/a\\b\nc");
        assert_eq!(s[4].value, 1500.0);
        assert_eq!(s[5].value, f64::NEG_INFINITY);
        assert!(s[6].value.is_nan());
    }

    #[test]
    fn utf8_names_exemplars_and_crlf_are_taken() {
        let text = "{\"my.metric\", \"a.b\"=\"c\"} 2\r\nx_total{a=\"1\"} 5 # {trace_id=\"t\"} 1\n";
        let s = parse(text).unwrap();
        assert_eq!(s[0].name, "my.metric");
        assert_eq!(s[0].labels, [("a.b".into(), "c".into())]);
        assert_eq!(s[1].value, 5.0);
        let open_metrics = "x 3 1520879607.789\n# EOF\n";
        assert_eq!(parse(open_metrics).unwrap()[0].value, 3.0);
        assert_eq!(parse("{\"only.name\"} 4").unwrap()[0].name, "only.name");
        assert_eq!(parse("x{a=\"b\"}1").unwrap()[0].value, 1.0);
    }

    #[test]
    fn a_bad_line_names_its_number() {
        for (text, line) in [
            ("ok 1\nbad{a=\"x} 2\n", 2),
            ("ok 1\n\nno_value\n", 3),
            ("x{a=b} 1", 1),
            ("x{a=\"b\" c=\"d\"} 1", 1),
            ("x 1 2 3", 1),
            ("x one", 1),
            ("x 1 soon", 1),
            ("9x 1", 1),
            ("x 0x1F", 1),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
    }

    /// A label value as the text format writes it.
    fn escape(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    proptest::proptest! {
        /// Any label values and value, written as the format says, read back the same, and
        /// a selector naming a value (escaped the same way) picks its sample alone.
        #[test]
        fn written_samples_read_back(
            values in proptest::collection::vec("[\\PC\\n]*", 1..4),
            x in proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
        ) {
            let labels: Vec<(String, String)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("l{i}"), v.clone()))
                .collect();
            let written: Vec<String> =
                labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let text = format!(
                "# TYPE m gauge\nm{{{}}} {x:?}\nm{{l0=\"{}\"}} 1\n",
                written.join(","),
                escape(&format!("{}-other", values[0]))
            );
            let samples = parse(&text).unwrap();
            proptest::prop_assert_eq!(&samples[0].labels, &labels);
            proptest::prop_assert_eq!(samples[0].value, x);
            let selector: Selector = format!("m{{l0=\"{}\"}}", escape(&values[0])).parse().unwrap();
            proptest::prop_assert_eq!(select(&text, &selector), Ok(x));
        }
    }

    /// What prometheus_client (our own `/metrics`) writes is read whole.
    #[test]
    fn a_prometheus_client_exposition_is_read() {
        let node = crate::metrics::NodeMetrics::new("node \"1\"\\a");
        let text = node.encode().unwrap();
        let samples = parse(&text).unwrap();
        let lines = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        assert_eq!(samples.len(), lines);
        assert!(samples.len() > 10, "{text}");
        let s = sel("mcp_load_generator_errors_total{kind=\"timeout\"}");
        assert_eq!(select(&text, &s), Ok(0.0));
        assert!(
            samples
                .iter()
                .all(|s| s.labels[0] == ("node_id".into(), "node \"1\"\\a".into()))
        );
    }

    #[test]
    fn selectors_are_read_and_shown() {
        let s = sel("app_queue_depth{queue=\"orders\"}");
        assert_eq!(s.name, "app_queue_depth");
        assert_eq!(s.matchers.len(), 1);
        assert_eq!(s.to_string(), "app_queue_depth{queue=\"orders\"}");
        let s = sel(" x{ a != 'b' , c=~\"o.*\", d!~\"\" ,} ");
        let ops: Vec<MatchOp> = s.matchers.iter().map(|m| m.op).collect();
        use MatchOp::*;
        assert_eq!(ops, [NotEqual, Regex, NotRegex]);
        assert_eq!(sel("x{}").matchers.len(), 0);
        assert_eq!(sel("ns:rate5m").to_string(), "ns:rate5m");
        for bad in [
            "",
            "{a=\"b\"}",
            "x{a}",
            "x{a=b}",
            "x{a=\"b\"",
            "x{a==\"b\"}",
            "x{a=~\"(\"}",
            "x y",
            "x{a=\"b\"} 1",
            "x{a=\"b\" c=\"d\"}",
        ] {
            assert!(bad.parse::<Selector>().is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn one_sample_is_selected_or_the_reason_is_given() {
        assert_eq!(
            select(TEXT, &sel("app_queue_depth{queue=\"orders\"}")),
            Ok(42.0)
        );
        assert_eq!(select(TEXT, &sel("app_up")), Ok(1.0));
        assert_eq!(
            select(TEXT, &sel("app_queue_depth{region=\"eu\"}")),
            Ok(7.0)
        );
        // A label a sample lacks matches as "": the one without a region.
        assert_eq!(
            select(TEXT, &sel("app_queue_depth{region=\"\",queue=~\"or.*\"}")),
            Ok(42.0)
        );
        assert_eq!(
            select(TEXT, &sel("app_queue_depth{queue!~\"orders|mail\"}")),
            Ok(3.0)
        );
        assert_eq!(
            select(TEXT, &sel("app_queue_depth{queue=~\"order\"}")),
            Err(SelectError::NotFound { named: 3 }),
            "a regular expression matches the whole value"
        );
        assert_eq!(
            select(TEXT, &sel("nope")),
            Err(SelectError::NotFound { named: 0 })
        );
        let several = select(TEXT, &sel("app_queue_depth")).unwrap_err();
        assert!(
            matches!(&several, SelectError::Several { count: 3, .. }),
            "{several:?}"
        );
        assert!(
            several.to_string().contains("queue=\"orders\""),
            "{several}"
        );
        let unreadable = select("x{ 1", &sel("x")).unwrap_err();
        assert!(unreadable.to_string().contains("line 1"), "{unreadable}");
    }
}
