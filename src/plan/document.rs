//! The plan document: YAML or JSON text read into one JSON value, which every reader takes.

use serde_json::Value;

use super::PlanError;
use crate::validate::join;

/// Parses YAML or JSON text into a document (JSON is YAML, but JSON's errors read better).
pub fn parse_document(text: &str) -> Result<Value, PlanError> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| PlanError::Syntax {
            format: "JSON",
            message: e.to_string(),
        });
    }
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| PlanError::Syntax {
        format: "YAML",
        message: e.to_string(),
    })?;
    match docs.as_slice() {
        [doc] => yaml_to_json(doc, ""),
        [] => Err(PlanError::Syntax {
            format: "YAML",
            message: "the document is empty".into(),
        }),
        _ => Err(PlanError::Syntax {
            format: "YAML",
            message: "expected one document, found several".into(),
        }),
    }
}

fn yaml_to_json(y: &yaml_rust2::Yaml, path: &str) -> Result<Value, PlanError> {
    use yaml_rust2::Yaml;
    let bad = |message: String| PlanError::Syntax {
        format: "YAML",
        message,
    };
    Ok(match y {
        Yaml::Null | Yaml::BadValue => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(s) => match s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            Some(n) => Value::Number(n),
            None => return Err(bad(format!("{path}: {s:?} is not a finite number"))),
        },
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => return Err(bad(format!("{path}: unsupported key {other:?}"))),
                };
                let child = yaml_to_json(v, &join(path, &key))?;
                out.insert(key, child);
            }
            Value::Object(out)
        }
        Yaml::Alias(_) => return Err(bad(format!("{path}: YAML aliases are not supported"))),
    })
}
