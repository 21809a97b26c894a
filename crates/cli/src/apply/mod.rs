//! `dataloader apply -f tables.yaml` and `dataloader export`: the control tables as code.
//!
//! The file has `connections`, `defaults` and `tables`. Applying makes `table_control` match
//! it: tables in the file are created or changed, active tables missing from it are
//! deactivated (never deleted: their history stays).
//!
//! `file` is the format and how it is read, `plan` what applying changes and how, `export` the
//! control tables written back as a file. This module runs the `apply` command itself.

mod export;
mod file;
mod plan;

use std::path::Path;

use anyhow::{Context, Result};

pub(crate) use export::export;
pub(crate) use file::parse;
pub(crate) use plan::plan;

use crate::app::App;
use crate::print;

/// `dataloader apply`: prints the plan, then carries it out unless `dry_run`.
pub(crate) async fn apply(app: &App, file: &Path, dry_run: bool) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let desired = parse(&text).with_context(|| file.display().to_string())?;
    let plan = plan(app.store.as_ref(), desired).await?;
    if app.json {
        print::json(&serde_json::json!({"changes": plan.changes, "applied": !dry_run}))?;
    } else {
        for c in &plan.changes {
            println!("{c}");
        }
        println!("{}", plan.summary());
    }
    if !dry_run {
        plan.execute(app.store.as_ref(), None).await?;
        if !app.json && !plan.changes.is_empty() {
            println!("Applied.");
        }
    } else if !app.json {
        println!("Dry run: nothing was changed.");
    }
    Ok(())
}
