//! `dataloader connection add|test|show|list|remove`: the source databases, with their
//! arguments. Passwords are kept as references (env:NAME, file:/path), never as values.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use dataloader_core::secret::SecretRef;
use dataloader_core::ConnectionConfig;

use crate::app::App;
use crate::print;

#[derive(Subcommand)]
pub(crate) enum ConnectionCommand {
    /// Add or replace a connection.
    Add(ConnectionArgs),
    /// Connect and print the server version.
    Test { name: String },
    /// Show one connection (secrets are shown only as their references).
    Show { name: String },
    /// List connections.
    List,
    /// Remove a connection that no table uses.
    Remove { name: String },
}

#[derive(Args)]
pub(crate) struct ConnectionArgs {
    name: String,
    // The list comes from the connectors' registry, so a new one is in the help by itself.
    #[arg(long = "type", help = db_type_help())]
    db_type: String,
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    port: Option<u16>,
    /// Database name (for sqlite: the file path).
    #[arg(long)]
    database: Option<String>,
    #[arg(long)]
    user: Option<String>,
    /// Read the password from this environment variable at load time.
    #[arg(long, conflicts_with_all = ["password_file", "password"])]
    password_env: Option<String>,
    /// Read the password from this file at load time.
    #[arg(long, conflicts_with = "password")]
    password_file: Option<String>,
    /// A secret reference: env:NAME, file:/path, azure-keyvault://VAULT/SECRET[/VERSION] or
    /// aws-sm://SECRET_ID[#KEY] (never the password itself).
    #[arg(long)]
    password: Option<String>,
    /// Driver option KEY=VALUE (repeatable); a key the connector does not take is refused.
    #[arg(long = "option", value_parser = parse_key_value)]
    options: Vec<(String, String)>,
    /// Loads running at once against this database, at most (the scheduler waits for a slot).
    #[arg(long)]
    max_connections: Option<u32>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("\"{s}\" is not KEY=VALUE"))
}

pub(crate) async fn connection(app: &App, c: ConnectionCommand) -> Result<()> {
    match c {
        ConnectionCommand::Add(a) => {
            let password = match (a.password_env, a.password_file, a.password) {
                (Some(var), _, _) => Some(format!("env:{var}")),
                (_, Some(path), _) => Some(format!("file:{path}")),
                (_, _, Some(reference)) => Some(reference),
                _ => None,
            };
            let config = ConnectionConfig {
                name: a.name,
                db_type: dataloader_sources::db_type(&a.db_type)?,
                host: a.host,
                port: a.port,
                database: a.database,
                user: a.user,
                password,
                options: a.options.into_iter().collect(),
                max_connections: a.max_connections,
            };
            dataloader_sources::validate(&config)?;
            app.store.upsert_connection(&config).await?;
            if app.json {
                print::json(&config)?;
            } else {
                println!(
                    "connection {} saved ({} at {})",
                    config.name,
                    config.db_type,
                    dataloader_sources::address(&config)
                );
            }
        }
        ConnectionCommand::Test { name } => {
            let config = app.store.require_connection(&name).await?;
            let started = std::time::Instant::now();
            let source = dataloader_sources::connect(&config).await?;
            let version = source.server_version().await?;
            let ms = started.elapsed().as_millis();
            if app.json {
                print::json(
                    &serde_json::json!({"connection": name, "ok": true, "server_version": version, "ms": ms}),
                )?;
            } else {
                println!("connection {name}: ok in {ms} ms — {version}");
            }
        }
        ConnectionCommand::Show { name } => {
            let config = app.store.require_connection(&name).await?.masked();
            let secret = match config.password.as_deref().map(SecretRef::parse) {
                Some(Ok(reference)) => Some(match reference.resolve().await {
                    Ok(_) => format!("{reference} (available)"),
                    // The error names the reference and the reason, never a value.
                    Err(e) => format!("{reference} (NOT available here: {})", reason(&e)),
                }),
                Some(Err(_)) => Some("(invalid reference)".into()),
                None => None,
            };
            if app.json {
                print::json(&config)?;
            } else {
                let rows = vec![
                    vec!["name".into(), config.name.clone()],
                    vec!["type".into(), config.db_type.to_string()],
                    vec!["host".into(), print::opt(&config.host)],
                    vec!["port".into(), print::opt(&config.port)],
                    vec!["database".into(), print::opt(&config.database)],
                    vec!["user".into(), print::opt(&config.user)],
                    vec!["password".into(), print::opt(&secret)],
                    vec!["options".into(), format!("{:?}", config.options)],
                ];
                println!("{}", print::table(&["field", "value"], &rows));
            }
        }
        ConnectionCommand::List => {
            let all = app.store.connections().await?;
            if app.json {
                print::json(&all)?;
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            c.db_type.to_string(),
                            dataloader_sources::address(c),
                            print::opt(&c.user),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    print::table(&["name", "type", "address", "user"], &rows)
                );
            }
        }
        ConnectionCommand::Remove { name } => {
            if !app.store.delete_connection(&name).await? {
                bail!("connection: no connection named \"{name}\"");
            }
            if !app.json {
                println!("connection {name} removed");
            }
        }
    }
    Ok(())
}

/// `--type`'s help: every connector of this build, with the other names it takes.
fn db_type_help() -> String {
    let names: Vec<String> = dataloader_sources::connectors()
        .iter()
        .map(|c| match c.aliases {
            [] => c.name.to_string(),
            aliases => format!("{} (or {})", c.name, aliases.join(", ")),
        })
        .collect();
    format!("One of: {}.", names.join(", "))
}

/// Why a secret is not available, without repeating its reference (its message never shows a
/// value).
fn reason(e: &dataloader_core::Error) -> String {
    match e {
        dataloader_core::Error::Secret { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
