//! The first load of a merged table: nothing to merge into yet, so its change set becomes the
//! table, with its keys reduced exactly as every later merge reduces them.

use std::sync::Arc;

use dataloader_core::{BatchStream, Error, Result};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::execution::memory_pool::FairSpillPool;
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::protocol::SaveMode;
use futures::StreamExt;

use crate::destination::DeltaDestination;
use crate::sql::{count, newest_per_key, quoted_list, KEY_GROUPING_MEMORY};
use crate::stage::Staging;
use crate::tag::CommitTag;
use crate::write::WriteSummary;

impl DeltaDestination {
    /// The first load of a merged table: nothing to merge into, so the change set is the
    /// table, with its keys reduced exactly as a later merge reduces them (the row with the
    /// greatest `order_by` value per key). A source without an enforced key (a view,
    /// Snowflake, ClickHouse) may hold a key twice; the table must not. The change set is
    /// staged first, and only reduced (a spilling sort) when a key repeats.
    pub(super) async fn create_by_key(
        &self,
        schema: SchemaRef,
        batches: BatchStream,
        keys: &[String],
        order_by: &str,
        tag: &CommitTag,
    ) -> Result<WriteSummary> {
        let staged = self
            .stage(
                Staging::FirstLoadRows,
                Compression::ZSTD(ZstdLevel::default()),
                schema.clone(),
                batches,
                |_| Ok(()),
            )
            .await?;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(KEY_GROUPING_MEMORY)))
            .build_arc()
            .map_err(|e| self.error("reduce duplicate keys", e))?;
        // The rows go back to the writer in their own types, not DataFusion's string views.
        let mut config = SessionConfig::new();
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.register_parquet(
            "source_rows",
            staged.path.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| self.error("read the staged rows", e))?;
        let key_list = quoted_list(keys);
        let repeated = count(
            &ctx,
            &format!("SELECT COUNT(*) FROM (SELECT {key_list} FROM source_rows GROUP BY {key_list} HAVING COUNT(*) > 1) d"),
        )
        .await
        .map_err(|e| self.error("count duplicate keys", e))?;
        let sql = if repeated == 0 {
            "SELECT * FROM source_rows".to_string()
        } else {
            tracing::warn!(table = %self.name, keys = repeated, "the source holds keys more than once: keeping the newest row of each");
            newest_per_key(keys, order_by)
        };
        let rows = ctx
            .sql(&sql)
            .await
            .map_err(|e| self.error("plan the first load", e))?
            .execute_stream()
            .await
            .map_err(|e| self.error("read the staged rows", e))?;
        let shaped = schema.clone();
        let (name, vended) = (self.name.clone(), self.vended_storage().clone());
        let batches = rows.map(move |batch| {
            let batch = batch.map_err(|e| {
                vended.write_error(&name, "read the staged rows", e.to_string(), Some(e.into()))
            })?;
            RecordBatch::try_new(shaped.clone(), batch.columns().to_vec())
                .map_err(|e| Error::Internal(format!("shaping the first load's rows: {e}")))
        });
        // What `append` does, called directly so that no operation depends on another.
        self.write(schema, Box::pin(batches), tag, SaveMode::Append)
            .await
    }
}
