//! The files `mcpt run` writes beside its text report: `--output` (JSON), `--html`, `--junit`
//! and `--csv DIR`, each a renderer of the one report.

use std::path::Path;

use anyhow::Context as _;

use super::RunArgs;
use crate::stats::csv::Table;
use crate::task::report::Report;

/// Writes every file `args` asks for, saying each on stderr.
pub fn write_outputs(report: &Report, args: &RunArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.output {
        write(path, &serde_json::to_string_pretty(report)?)?;
        eprintln!("report written to {}", path.display());
    }
    if let Some(path) = &args.html {
        write(path, &crate::stats::html::render(report))?;
        eprintln!("HTML report written to {}", path.display());
    }
    if let Some(path) = &args.junit {
        write(path, &crate::stats::junit::render(report))?;
        eprintln!("JUnit XML written to {}", path.display());
    }
    if let Some(dir) = &args.csv {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--csv: cannot make {}", dir.display()))?;
        for table in Table::ALL {
            write(
                &dir.join(format!("{}.csv", table.name())),
                &table.render(report),
            )?;
        }
        eprintln!(
            "CSV written to {} (timeline.csv, requests.csv)",
            dir.display()
        );
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
