//! `dataloader alert`: the alert rules (on failure, recovery, a long run, a stale table) and
//! what they delivered. The scheduler (`dataloader run`) finds the events and sends them.

use anyhow::{bail, Result};
use clap::Subcommand;
use dataloader_core::alert::{AlertEvent, AlertFormat, AlertRule};
use dataloader_core::{Clock, SystemClock};

use crate::app::App;
use crate::duration_arg::parse_duration;
use crate::print;

#[derive(Subcommand)]
pub(crate) enum AlertCommand {
    /// Add or replace a rule.
    Add {
        name: String,
        /// failure, recovery, long-run or freshness.
        #[arg(long)]
        on: String,
        /// long-run: a run longer than this; freshness: no success for this long (e.g. 90m, 26h).
        #[arg(long, value_parser = parse_duration)]
        after: Option<std::time::Duration>,
        /// A destination, or a prefix ending in * (bronze.sales.*); every table when left out.
        #[arg(long)]
        tables: Option<String>,
        /// The webhook's URL, or a reference to it (env:, file:, azure-keyvault://, aws-sm://):
        /// a Slack webhook's URL is a secret.
        #[arg(long)]
        webhook: String,
        /// json (the event as an object) or slack (an incoming webhook's {"text": …}).
        #[arg(long, default_value = "json")]
        format: String,
        /// Add it paused.
        #[arg(long)]
        inactive: bool,
    },
    /// The rules (a webhook shown by its host, or its reference).
    List,
    /// Remove a rule; its deliveries stay.
    Remove { name: String },
    /// The newest deliveries and how each went.
    Deliveries {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

pub(crate) async fn alert(app: &App, command: AlertCommand) -> Result<()> {
    match command {
        AlertCommand::Add {
            name,
            on,
            after,
            tables,
            webhook,
            format,
            inactive,
        } => {
            let rule = AlertRule {
                name,
                event: on.parse::<AlertEvent>()?,
                threshold_minutes: after.map(AlertRule::minutes).transpose()?,
                tables,
                url: webhook,
                format: format.parse::<AlertFormat>()?,
                is_active: !inactive,
            };
            app.store.save_alert_rule(&rule, SystemClock.now()).await?;
            println!("alert {} saved", rule.name);
        }
        AlertCommand::List => {
            let rules = app.store.alert_rules().await?;
            let shown: Vec<serde_json::Value> = rules
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    v["webhook"] = r.shown_url().into();
                    v
                })
                .collect();
            if app.json {
                return print::json(&shown);
            }
            let rows: Vec<Vec<String>> = rules
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.event.as_str().into(),
                        print::opt(&r.threshold_minutes.map(|m| format!("{m}m"))),
                        r.tables.clone().unwrap_or_else(|| "*".into()),
                        r.format.as_str().into(),
                        r.shown_url(),
                        if r.is_active { "yes" } else { "paused" }.into(),
                    ]
                })
                .collect();
            println!(
                "{}",
                print::table(
                    &["NAME", "ON", "AFTER", "TABLES", "FORMAT", "WEBHOOK", "ACTIVE"],
                    &rows
                )
            );
        }
        AlertCommand::Remove { name } => {
            if !app.store.delete_alert_rule(&name).await? {
                bail!("no alert rule {name} (dataloader alert list)");
            }
            println!("alert {name} removed");
        }
        AlertCommand::Deliveries { limit } => {
            let deliveries = app.store.deliveries(limit).await?;
            if app.json {
                return print::json(&deliveries);
            }
            let rows: Vec<Vec<String>> = deliveries
                .iter()
                .map(|d| {
                    vec![
                        d.delivery_id.to_string(),
                        d.rule.clone(),
                        d.event_key.clone(),
                        d.status.as_str().into(),
                        d.attempts.to_string(),
                        d.created_at.to_rfc3339(),
                        print::opt(&d.last_error),
                    ]
                })
                .collect();
            println!(
                "{}",
                print::table(
                    &[
                        "ID",
                        "RULE",
                        "EVENT",
                        "STATUS",
                        "ATTEMPTS",
                        "QUEUED",
                        "LAST ERROR"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}
