//! `dataloader serve`: the console, the REST API and `/metrics` over the control database, with
//! loads asked for in the console run in this process by the load engine. Also `run --serve`,
//! the same beside the scheduler, and `dataloader token`, the console's bearer tokens.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use clap::Subcommand;
use dataloader_core::access::Role;
use std::sync::Mutex;

use dataloader_core::{
    Claim, Clock, ConnectionConfig, NewRun, Store, SystemClock, TableControl, TableSpec,
    TableStorage, Trigger,
};
use dataloader_engine::{spawn_heartbeat, Engine, LoadRequest};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::print;
use crate::signals;

/// What the console does through the rest of DataLoader: loads as the scheduler runs them
/// (queued first, leased to this process, kept alive by a heartbeat), connections as
/// `connection add` and `test` check them, files as `apply` plans them.
struct ConsoleActions {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    lease: std::time::Duration,
    /// Cancels the loads this process started, when it stops.
    stop: CancellationToken,
    loads: Mutex<JoinSet<()>>,
}

#[async_trait]
impl dataloader_console::Actions for ConsoleActions {
    async fn start_load(
        &self,
        table: &TableControl,
        full_refresh: bool,
    ) -> dataloader_core::Result<i64> {
        let now = SystemClock.now();
        let worker = self.engine.worker().to_string();
        let run_id = self
            .store
            .create_run(&NewRun {
                table_id: table.table_id,
                trigger: Trigger::Manual,
                queued_at: now,
                watermark_before: table.incremental_value.clone(),
                worker: worker.clone(),
                lease_until: now
                    + chrono::Duration::from_std(self.lease)
                        .unwrap_or(chrono::Duration::seconds(60)),
            })
            .await?;
        let claim = Claim {
            run_id,
            table: table.clone(),
        };
        let cancel = self.stop.child_token();
        let heartbeat = spawn_heartbeat(
            self.store.clone(),
            Arc::new(SystemClock),
            run_id,
            worker,
            self.lease,
            cancel.clone(),
        );
        let engine = self.engine.clone();
        let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        // Ended loads leave the set, so a long-running server keeps only the live ones.
        while loads.try_join_next().is_some() {}
        loads.spawn(async move {
            let request = LoadRequest::claimed(&claim, heartbeat.lease())
                .full_refresh(full_refresh)
                .cancel_on(cancel);
            // The run's outcome is in its history; this is for the server's log.
            if let Err(f) = engine.load(request).await {
                tracing::warn!(run_id, error = %f.error, "a load started in the console failed");
            }
            drop(heartbeat);
        });
        Ok(run_id)
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        let mut loads = std::mem::take(&mut *self.loads.lock().unwrap_or_else(|e| e.into_inner()));
        while loads.join_next().await.is_some() {}
    }

    fn db_types(&self) -> Vec<String> {
        dataloader_sources::connectors()
            .iter()
            .map(|c| c.name.to_string())
            .collect()
    }

    fn validate_connection(
        &self,
        connection: &ConnectionConfig,
    ) -> dataloader_core::Result<ConnectionConfig> {
        let mut checked = connection.clone();
        checked.db_type = dataloader_sources::db_type(connection.db_type.as_str())?;
        dataloader_sources::validate(&checked)?;
        Ok(checked)
    }

    async fn test_connection(
        &self,
        connection: &ConnectionConfig,
    ) -> dataloader_core::Result<String> {
        dataloader_sources::connect(connection)
            .await?
            .server_version()
            .await
    }

    async fn storage(&self, table: &TableSpec) -> dataloader_core::Result<TableStorage> {
        self.engine.storage(table).await
    }

    async fn plan(
        &self,
        yaml: &str,
        apply_as: Option<&str>,
    ) -> dataloader_core::Result<Vec<String>> {
        // apply's errors are anyhow's: a store's error keeps its kind (a database down is not
        // the file's fault); the others are the file's, with their whole chain.
        let said = |e: anyhow::Error| match e.downcast::<dataloader_core::Error>() {
            Ok(e) => e,
            Err(e) => dataloader_core::Error::config("file", format!("{e:#}")),
        };
        let desired = crate::apply::parse(yaml).map_err(said)?;
        let plan = crate::apply::plan(self.store.as_ref(), desired)
            .await
            .map_err(said)?;
        let mut lines: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
        lines.push(plan.summary());
        if let Some(by) = apply_as {
            plan.execute(self.store.as_ref(), Some(by))
                .await
                .map_err(said)?;
            lines.push("Applied.".into());
        }
        Ok(lines)
    }
}

/// Binds `listen` and says where the console is and whether it needs a token.
pub(crate) async fn bind(
    app: &App,
    listen: SocketAddr,
) -> Result<(tokio::net::TcpListener, Arc<dataloader_console::Console>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("serve: cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    // Anything but loopback needs a token: the console can start loads and edit tables.
    let open = address.ip().is_loopback();
    let console = dataloader_console::Console::new(
        app.store.clone(),
        Arc::new(ConsoleActions {
            engine: Arc::new(app.engine()?),
            store: app.store.clone(),
            lease: app.lease,
            stop: CancellationToken::new(),
            loads: Mutex::new(JoinSet::new()),
        }),
        open,
    );
    let access = match open {
        true => "on this machine only; no token needed",
        false => "tokens required: dataloader token create --role viewer|operator|admin",
    };
    eprintln!("DataLoader console: http://{address}/ ({access})");
    Ok((listener, console))
}

pub(crate) async fn serve(app: &App, listen: SocketAddr) -> Result<()> {
    let (listener, console) = bind(app, listen).await?;
    dataloader_console::serve(listener, console, signals::stop_requested())
        .await
        .context("serve")?;
    Ok(())
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a token for the console and API; it is printed once and only its hash is kept.
    Create {
        /// A name for the token: who or what uses it (shown in the audit trail).
        name: String,
        /// viewer reads; operator also loads, pauses and resumes; admin also edits.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// The tokens, without their values.
    List,
    /// Refuse a token from now on (its name stays, for the audit trail).
    Revoke { name: String },
}

pub(crate) async fn token(app: &App, command: TokenCommand) -> Result<()> {
    let now = SystemClock.now();
    match command {
        TokenCommand::Create { name, role } => {
            let role: Role = role.parse()?;
            let token = dataloader_console::new_token();
            app.store
                .create_token(&name, role, &dataloader_console::hash_token(&token), now)
                .await?;
            if app.json {
                print::json(&serde_json::json!({"name": name, "role": role, "token": token}))?;
            } else {
                println!("{token}");
                eprintln!("token {name} ({role}) made: keep it now, it is not shown again");
            }
        }
        TokenCommand::List => {
            let tokens = app.store.tokens().await?;
            if app.json {
                return print::json(&tokens);
            }
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.role.to_string(),
                        t.created_at.to_rfc3339(),
                        print::opt(&t.last_used_at.map(|d| d.to_rfc3339())),
                        print::opt(&t.revoked_at.map(|d| d.to_rfc3339())),
                    ]
                })
                .collect();
            println!(
                "{}",
                print::table(&["NAME", "ROLE", "CREATED", "LAST USED", "REVOKED"], &rows)
            );
        }
        TokenCommand::Revoke { name } => {
            if !app.store.revoke_token(&name, now).await? {
                bail!("no token {name} that is not revoked already (dataloader token list)");
            }
            println!("token {name} revoked");
        }
    }
    Ok(())
}
