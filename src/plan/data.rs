//! The `data` of a flow: `data: {NAME: {file, order}}`, each file read when the plan is read
//! (as TLS PEM files are), so the rows travel with the task and nodes need no shared disk.
//! A file is CSV (`.csv`, its header row naming the columns) or JSON lines (`.jsonl`,
//! `.ndjson`: one object of scalars per line, every line with the same keys). The files of a
//! task hold at most [`MAX_DATA_BYTES`] and [`MAX_DATA_ROWS`] in all; an empty file, a
//! missing header, ragged rows or an unknown kind of file are errors.

use std::path::Path;

use serde_json::Value;

use super::read_name;
use crate::engine::flow::{BUILTINS, DataSource, ITEM, Order};
use crate::validate::{FieldErrors, Obj, describe, join, kind};

/// The most bytes the data files of one task may hold, in all (they travel with the task).
pub const MAX_DATA_BYTES: u64 = 64 * 1024 * 1024;
/// The most rows the data files of one task may hold, in all.
pub const MAX_DATA_ROWS: usize = 1_000_000;

/// A data source the plan declares; `source` is `None` when it could not be read (the
/// problem is reported), so templates naming it are not reported again.
#[derive(Debug, Clone)]
pub struct Declared {
    pub name: String,
    pub source: Option<DataSource>,
}

/// What is left of a task's data budget.
struct Budget {
    bytes: u64,
    rows: usize,
}

/// Reads the `data` key of `o`, relative file paths taken from `base` (the directory the
/// plan's paths are relative to; an empty path for the working directory).
pub fn read_data(o: &mut Obj<'_>, base: &Path, e: &mut FieldErrors) -> Vec<Declared> {
    let path = o.key_path("data");
    let Some(map) = o.map(
        "data",
        "names to data sources, like {users: {file: users.csv}}",
        e,
    ) else {
        return Vec::new();
    };
    let mut budget = Budget {
        bytes: MAX_DATA_BYTES,
        rows: MAX_DATA_ROWS,
    };
    map.iter()
        .map(|(name, spec)| {
            let at = join(&path, name);
            if let Err(why) = check_name(name) {
                e.push(at.clone(), why);
            }
            Declared {
                name: name.clone(),
                source: read_source(name, spec, &at, base, &mut budget, e),
            }
        })
        .collect()
}

/// A name a template can read: an identifier that is not a builtin.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier {
        return Err(format!(
            "{name:?} is not a valid name: use letters, digits and _ (not first a digit)"
        ));
    }
    if BUILTINS.contains(&name) || name == ITEM {
        return Err(format!(
            "{name:?} is a builtin variable ({}, {ITEM}); choose another name",
            BUILTINS.join(", ")
        ));
    }
    Ok(())
}

fn read_source(
    name: &str,
    spec: &Value,
    path: &str,
    base: &Path,
    budget: &mut Budget,
    e: &mut FieldErrors,
) -> Option<DataSource> {
    let mut o = Obj::new(spec, path, e)?;
    let file: Option<String> = o.req("file", e);
    let order = read_name(&mut o, "order", "order", &Order::NAMES, Order::from_name, e);
    o.finish(e);
    let file = file?;
    match load(&file, base, budget) {
        Ok((columns, rows)) => Some(DataSource {
            name: name.to_string(),
            file,
            order,
            columns,
            rows,
        }),
        Err(why) => {
            e.push(join(path, "file"), why);
            None
        }
    }
}

type Table = (Vec<String>, Vec<Vec<String>>);

/// The columns and rows of the file `file` (relative to `base`), within `budget`.
fn load(file: &str, base: &Path, budget: &mut Budget) -> Result<Table, String> {
    if file.trim().is_empty() {
        return Err("expected the path of a data file, got an empty string".into());
    }
    let full = base.join(file);
    let extension = full
        .extension()
        .map(|x| x.to_string_lossy().to_ascii_lowercase());
    let parse: fn(&str, &[u8]) -> Result<Table, String> = match extension.as_deref() {
        Some("csv") => parse_csv,
        Some("jsonl" | "ndjson") => parse_json_lines,
        _ => {
            return Err(format!(
                "{file:?} is not a data file this reads: name it .csv (CSV with a header row) or .jsonl/.ndjson (JSON lines)"
            ));
        }
    };
    let too_big = |size: u64| {
        format!(
            "{file:?} is {size} bytes, more than the {} bytes left of the {MAX_DATA_BYTES} bytes (64 MiB) the data files of a task may hold in all",
            budget.bytes
        )
    };
    let size = std::fs::metadata(&full)
        .map_err(|err| format!("cannot read {file:?}: {err}"))?
        .len();
    if size > budget.bytes {
        return Err(too_big(size));
    }
    let bytes = std::fs::read(&full).map_err(|err| format!("cannot read {file:?}: {err}"))?;
    if bytes.len() as u64 > budget.bytes {
        return Err(too_big(bytes.len() as u64));
    }
    let (columns, rows) = parse(file, &bytes)?;
    if rows.len() > budget.rows {
        return Err(format!(
            "{file:?} holds more than the {} rows left of the {MAX_DATA_ROWS} rows the data files of a task may hold in all",
            budget.rows
        ));
    }
    budget.bytes -= bytes.len() as u64;
    budget.rows -= rows.len();
    Ok((columns, rows))
}

fn parse_csv(file: &str, bytes: &[u8]) -> Result<Table, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("{file:?} is empty"));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let bad = |err: csv::Error| format!("{file:?} is not valid CSV: {err}");
    let columns: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(str::to_string)
        .collect();
    check_columns(
        file,
        &columns,
        "its first line must be a header row naming the columns",
    )?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(bad)?;
        rows.push(record.iter().map(str::to_string).collect());
        if rows.len() > MAX_DATA_ROWS {
            break;
        }
    }
    if rows.is_empty() {
        return Err(format!("{file:?} has a header row but no rows of data"));
    }
    Ok((columns, rows))
}

/// Every column named, and each once.
fn check_columns(file: &str, columns: &[String], hint: &str) -> Result<(), String> {
    if let Some(i) = columns.iter().position(|c| c.trim().is_empty()) {
        return Err(format!("{file:?}: column {} has no name; {hint}", i + 1));
    }
    if let Some((i, c)) = columns
        .iter()
        .enumerate()
        .find(|(i, c)| columns[..*i].contains(c))
    {
        return Err(format!(
            "{file:?}: column {} repeats the name {c:?}; {hint}",
            i + 1
        ));
    }
    Ok(())
}

fn parse_json_lines(file: &str, bytes: &[u8]) -> Result<Table, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|err| format!("{file:?} is not UTF-8 text: {err}"))?;
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{file:?} line {}", i + 1);
        let object = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(format!(
                    "{at}: expected a JSON object, got {}",
                    kind(&other)
                ));
            }
            Err(err) => return Err(format!("{at} is not valid JSON: {err}")),
        };
        let columns = columns.get_or_insert_with(|| object.keys().cloned().collect());
        if columns.is_empty() {
            return Err(format!("{at}: the object names no column"));
        }
        let same_keys =
            object.len() == columns.len() && columns.iter().all(|c| object.contains_key(c));
        if !same_keys {
            let keys: Vec<&str> = object.keys().map(String::as_str).collect();
            return Err(format!(
                "{at} has the keys [{}]; every line must have the first line's [{}]",
                keys.join(", "),
                columns.join(", ")
            ));
        }
        let row = columns
            .iter()
            .map(|c| cell(&object[c]).map_err(|why| format!("{at}: {c:?} {why}")))
            .collect::<Result<Vec<String>, String>>()?;
        rows.push(row);
        if rows.len() > MAX_DATA_ROWS {
            break;
        }
    }
    match columns {
        Some(columns) => Ok((columns, rows)),
        None => Err(format!("{file:?} is empty")),
    }
}

/// A JSON scalar as a cell: a string as is, a number or a boolean as its JSON text, null as
/// an empty string.
fn cell(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Bool(_) | Value::Number(_) => Ok(v.to_string()),
        other => Err(format!(
            "is {} ({}); a row holds strings, numbers and booleans only",
            kind(other),
            describe(other)
        )),
    }
}
