//! What a run does between its start and its end: checks the table's settings against the
//! source and the Delta table, plans schema evolution, and runs the table's strategy.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dataloader_core::{
    ColumnTypes, Error, LoadStrategy, Result, RunId, Source, SourceObject, SourceSchema,
    StateUpdate, StrategyConfig, TableControl, TableSpec,
};
use dataloader_lake::DeltaDestination;

use crate::context::LoadContext;
use crate::{evolution, guards, strategies, Engine, Outcome, ProgressFn, LOADED_AT, RUN_ID};

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn execute(
        &self,
        table: &TableControl,
        run_id: RunId,
        started_at: DateTime<Utc>,
        destination: DeltaDestination,
        progress: Option<ProgressFn>,
        full_refresh: bool,
        schema_changes: &mut Vec<String>,
    ) -> Result<Outcome> {
        let spec = &table.spec;
        let settings = spec.settings()?;
        let (existing, version_before) = match destination.schema_and_version().await? {
            Some((schema, version)) => (Some(schema), Some(version)),
            None => (None, None),
        };
        if !full_refresh {
            guards::stored_state_fits(table, &destination, existing.is_some()).await?;
        }
        let connection = self.store.require_connection(&spec.connection).await?;
        let source = dataloader_sources::connect(&connection).await?;
        let (object, schema) = describe(source.as_ref(), spec, &settings.column_types).await?;
        check_columns(table, &schema)?;
        let dest_names = spec
            .column_naming
            .apply_all(&spec.source.to_string(), &schema.column_names())?;
        if let Some(clash) = dest_names.iter().find(|n| *n == LOADED_AT || *n == RUN_ID) {
            return Err(Error::config(
                "column_naming",
                format!("{}: source column becomes \"{clash}\", a name DataLoader reserves for its audit columns", spec.source),
            ));
        }
        let rewrites_all = full_refresh || spec.effective_strategy() == LoadStrategy::Full;
        let evolution = evolution::plan(
            spec,
            &schema,
            &dest_names,
            existing.as_deref(),
            rewrites_all,
            &settings.column_types,
        )?;
        schema_changes.extend(evolution.changes.iter().cloned());
        let ctx = LoadContext {
            table,
            source,
            object,
            schema,
            dest_names,
            destination,
            run_id,
            worker: &self.worker,
            loaded_at: started_at,
            batch_size: self.batch_size,
            progress,
            store: self.store.clone(),
            evolution,
            max_connections: connection.max_connections,
            table_exists: existing.is_some(),
            rows_read: Arc::default(),
        };
        let mut outcome = if full_refresh {
            strategies::full::refresh(&ctx).await?
        } else {
            match &settings.strategy {
                StrategyConfig::Full(_) => {
                    strategies::full::run(&ctx, StateUpdate::default()).await?
                }
                StrategyConfig::Incremental(s) => {
                    strategies::incremental::run(&ctx, s, StateUpdate::default()).await?
                }
                StrategyConfig::AppendOnly(s) => {
                    strategies::append_only::run(&ctx, s, StateUpdate::default()).await?
                }
                StrategyConfig::Rolling(s) => strategies::rolling::run(&ctx, s).await?,
                StrategyConfig::CheckAndLoad(s) => strategies::check_and_load::run(&ctx, s).await?,
                StrategyConfig::ChunkedBackfill(s) => {
                    strategies::chunked_backfill::run(&ctx, s).await?
                }
            }
        };
        if let Some(version) = outcome.delta_version {
            outcome.bytes_written = ctx.destination.bytes_added(version_before, version).await?;
        }
        Ok(outcome)
    }
}

/// What the table's loads read, and its columns: the source object, or a query in which the
/// source converts the columns that load as `string` to text, so a value no mapped type holds
/// (a 42-digit `numeric`) arrives exactly.
async fn describe(
    source: &dyn Source,
    spec: &TableSpec,
    column_types: &ColumnTypes,
) -> Result<(SourceObject, SourceSchema)> {
    let object = spec.source_object();
    let as_text = column_types.text_columns();
    // Names first when some columns become text: their types may be ones no describe maps.
    let (names, schema) = if as_text.is_empty() {
        let schema = source.describe(&object).await?;
        (schema.column_names(), Some(schema))
    } else {
        (source.column_names(&object).await?, None)
    };
    if let Some(missing) = column_types
        .columns()
        .find(|c| !names.iter().any(|n| n.as_str() == *c))
    {
        return Err(Error::ColumnNotFound {
            table: spec.source.to_string(),
            column: missing.to_string(),
            role: "column_types",
            columns: names,
        });
    }
    match schema {
        Some(schema) => Ok((object, schema)),
        None => {
            let projected = source.text_projection(&object, &names, &as_text)?;
            let schema = source.describe(&projected).await?;
            Ok((projected, schema))
        }
    }
}

/// Every column the table's configuration names must exist in the source.
fn check_columns(table: &TableControl, schema: &SourceSchema) -> Result<()> {
    let spec = &table.spec;
    let named = spec
        .primary_keys
        .iter()
        .map(|k| ("primary key", k))
        .chain(spec.incremental_column.iter().map(|c| ("incremental", c)))
        .chain(spec.rolling_column.iter().map(|c| ("rolling", c)));
    for (role, column) in named {
        if schema.column(column).is_none() {
            return Err(Error::ColumnNotFound {
                table: spec.source.to_string(),
                column: column.clone(),
                role,
                columns: schema.column_names(),
            });
        }
    }
    Ok(())
}
