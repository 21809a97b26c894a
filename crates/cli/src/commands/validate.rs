//! `dataloader validate`: every table_control row that cannot be loaded as it stands, and why:
//! rows DataLoader cannot read (a value edited by SQL into something it does not know) and
//! rows whose settings break a rule (a cron that never fires, a key the strategy needs). The
//! scheduler skips such rows one by one and records why; this lists them all at once.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::app::App;
use crate::print;

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct Problem {
    table: String,
    table_id: i64,
    problem: String,
}

pub(crate) async fn validate(app: &App) -> Result<()> {
    let mut problems: Vec<Problem> = app
        .store
        .invalid_tables()
        .await?
        .into_iter()
        .map(|bad| Problem {
            table: bad.destination,
            table_id: bad.table_id,
            problem: format!("cannot be read: {}", bad.problem),
        })
        .collect();
    let tables = app.store.tables().await?;
    let count = tables.len();
    for bad in tables.into_iter().filter_map(|t| t.loadable().err()) {
        problems.push(Problem {
            table: bad.destination,
            table_id: bad.table_id,
            problem: bad.problem,
        });
    }
    problems.sort();
    if app.json {
        print::json(&problems)?;
    } else if problems.is_empty() {
        println!("every table_control row is valid ({count} tables)");
    } else {
        let rows: Vec<Vec<String>> = problems
            .iter()
            .map(|p| vec![p.table.clone(), p.table_id.to_string(), p.problem.clone()])
            .collect();
        println!("{}", print::table(&["table", "table_id", "problem"], &rows));
    }
    if !problems.is_empty() {
        bail!(
            "{} table_control row(s) cannot be loaded as they stand and are skipped by the scheduler: correct them with `dataloader table update` or SQL",
            problems.len()
        );
    }
    Ok(())
}
