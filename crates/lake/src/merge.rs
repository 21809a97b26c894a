//! Upsert by primary key without a query engine, for the usual table: the change set has the
//! table's columns, and the table is unpartitioned and uses no feature a plain writer must
//! honour (see [`plain_table`]).
//!
//! 1. The change set is staged in a local Parquet file while its keys are indexed; for each key
//!    the row with the greatest order value wins (NULL is the smallest; on a tie the later row).
//! 2. A target file can hold a changed key only if the range of its key statistics holds one
//!    of the winners' keys; other files are not read.
//! 3. Each remaining file's key columns are read; a file without a changed key stays as it is.
//!    The others are rewritten without their changed rows, several at once.
//! 4. The winners are written as new files, and one commit removes the rewritten files and
//!    adds the new ones.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use dataloader_core::{BatchStream, Error, Result};
use deltalake::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add, Remove};
use deltalake::logstore::ObjectStoreRef;
use deltalake::operations::write::writer::{DeltaWriter, WriterConfig};
use deltalake::operations::write::WriterStatsConfig;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
// parquet 59 deprecates ParquetObjectReader without a replacement short of writing an
// AsyncFileReader; delta-rs reads its data files through it too.
use deltalake::parquet::arrow::arrow_reader::ArrowReaderMetadata;
#[allow(deprecated)]
use deltalake::parquet::arrow::async_reader::ParquetObjectReader;
use deltalake::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use deltalake::parquet::arrow::{ArrowWriter, ProjectionMask};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, MergePredicate};
use deltalake::table::state::DeltaTableState;
use deltalake::DeltaTable;
use futures::{StreamExt, TryStreamExt};

use crate::delta::{CommitTag, DeltaDestination, WriteSummary};

const READ_BATCH_ROWS: usize = 65_536;

/// Whether `table` can take the engine-free merge with `schema` as its change set's columns;
/// the generic MERGE handles the rest (new columns, partitions, column mapping, deletion
/// vectors, change data feed, constraints).
pub(crate) fn plain_table(snapshot: &DeltaTableState, schema: &SchemaRef) -> bool {
    let table_schema = snapshot.snapshot().arrow_schema();
    let same_columns = same_columns(&table_schema, schema);
    // The kernel's protocol and metadata accessors are crate-private; their JSON form is not.
    let protocol = serde_json::to_value(snapshot.protocol()).unwrap_or_default();
    let plain_features = |key: &str| {
        protocol[key]
            .as_array()
            .is_none_or(|features| features.iter().all(|f| f.as_str() == Some("timestampNtz")))
    };
    let metadata = serde_json::to_value(snapshot.metadata()).unwrap_or_default();
    let unpartitioned = metadata["partitionColumns"]
        .as_array()
        .is_some_and(|p| p.is_empty());
    let configuration_allows = metadata["configuration"].as_object().is_none_or(|config| {
        config.iter().all(|(key, value)| {
            let on = value
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            match key.as_str() {
                "delta.appendOnly"
                | "delta.enableChangeDataFeed"
                | "delta.enableDeletionVectors"
                | "delta.enableRowTracking" => !on,
                "delta.columnMapping.mode" => value.as_str() == Some("none"),
                // Under WriteSerializable a concurrent blind append is not checked against
                // the keys this merge matched.
                "delta.isolationLevel" => value.as_str() == Some("Serializable"),
                k => !k.starts_with("delta.constraints."),
            }
        })
    });
    let no_invariants = table_schema
        .fields()
        .iter()
        .all(|f| !f.metadata().contains_key("delta.invariants"));
    same_columns
        // Writer versions 3 to 6 bring constraints, generated and identity columns implicitly.
        && matches!(protocol["minWriterVersion"].as_i64(), Some(1 | 2 | 7))
        && plain_features("readerFeatures")
        && plain_features("writerFeatures")
        && unpartitioned
        && configuration_allows
        && no_invariants
}

/// The same column names and types in the same order (nullability and metadata aside).
fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// Key (row format) → (order value in row format, row position in the staged file).
type Winners = HashMap<Box<[u8]>, (Box<[u8]>, u64)>;

/// The change set's winning row per key, and where to find it in the staged file.
struct ChangeIndex {
    winners: Winners,
    rows: u64,
    /// The sorted distinct values of the pruning column among the winners; `None` when a
    /// change has a NULL key, which pruning by value cannot place, so every file is read.
    prune_values: Option<Vec<i64>>,
}

/// Turns key columns into comparable byte strings; the same fields give the same bytes, so
/// the staged keys and the target's keys meet in one hash map.
#[derive(Clone)]
struct KeyEncoder {
    /// Name and type of each key column.
    fields: Vec<(String, DataType)>,
}

impl KeyEncoder {
    fn new(schema: &SchemaRef, keys: &[String]) -> std::result::Result<Self, String> {
        let fields = keys
            .iter()
            .map(|k| {
                schema
                    .field_with_name(k)
                    .map(|f| (k.clone(), f.data_type().clone()))
                    .map_err(|_| format!("the key column \"{k}\" is not in the table"))
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(KeyEncoder { fields })
    }

    fn converter(&self) -> std::result::Result<RowConverter, String> {
        RowConverter::new(
            self.fields
                .iter()
                .map(|(_, data_type)| SortField::new(data_type.clone()))
                .collect(),
        )
        .map_err(|e| e.to_string())
    }

    /// Encodes the key columns found by name in `batch` (which may hold only those).
    fn encode(
        &self,
        converter: &RowConverter,
        batch: &RecordBatch,
    ) -> std::result::Result<deltalake::arrow::row::Rows, String> {
        let columns = self
            .fields
            .iter()
            .map(|(name, data_type)| {
                let column = batch
                    .column_by_name(name)
                    .ok_or_else(|| format!("a data file lacks the key column \"{name}\""))?;
                if column.data_type() == data_type {
                    Ok(column.clone())
                } else {
                    strict_cast(column, data_type)
                }
            })
            .collect::<std::result::Result<Vec<ArrayRef>, String>>()?;
        converter
            .convert_columns(&columns)
            .map_err(|e| e.to_string())
    }
}

/// The first integer key column: its file statistics bound which files can hold a key.
fn prune_column(schema: &SchemaRef, keys: &[String]) -> Option<String> {
    keys.iter()
        .find(|k| {
            schema.field_with_name(k).is_ok_and(|f| {
                matches!(
                    f.data_type(),
                    DataType::Int8
                        | DataType::Int16
                        | DataType::Int32
                        | DataType::Int64
                        | DataType::UInt8
                        | DataType::UInt16
                        | DataType::UInt32
                )
            })
        })
        .cloned()
}

/// A cast that fails on a value it cannot convert, where arrow's default would make it NULL.
fn strict_cast(column: &ArrayRef, to: &DataType) -> std::result::Result<ArrayRef, String> {
    let options = deltalake::arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    deltalake::arrow::compute::cast_with_options(column, to, &options).map_err(|e| e.to_string())
}

fn int64_values(column: &ArrayRef) -> std::result::Result<Int64Array, String> {
    let cast = strict_cast(column, &DataType::Int64)?;
    cast.as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| "key values are not integers".to_string())
}

/// Aligns a batch with the table's Arrow schema: Parquet may hand back other field metadata or
/// a cast-compatible type, and a file written before a column was added lacks it (NULL, as
/// every Delta reader takes it).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let Some(column) = batch.column_by_name(field.name()) else {
                return Ok(deltalake::arrow::array::new_null_array(
                    field.data_type(),
                    batch.num_rows(),
                ));
            };
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                strict_cast(column, field.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

pub(crate) struct PlainMerge<'a> {
    pub destination: &'a DeltaDestination,
    pub table: DeltaTable,
    pub schema: SchemaRef,
    pub keys: &'a [String],
    pub order_by: &'a str,
    pub tag: &'a CommitTag,
}

impl PlainMerge<'_> {
    fn error(&self, step: &'static str, e: impl std::fmt::Display) -> Error {
        self.destination.error(step, e)
    }

    pub(crate) async fn run(self, batches: BatchStream) -> Result<WriteSummary> {
        let staging = tempfile::Builder::new()
            .prefix("dataloader-merge-")
            .tempdir()
            .map_err(|e| self.error("create the merge staging folder", e))?;
        let staged = staging.path().join("changes.parquet");
        let encoder = KeyEncoder::new(&self.schema, self.keys)
            .map_err(|e| self.error("index the changes", e))?;
        let prune = prune_column(&self.schema, self.keys);
        let index = self
            .stage_and_index(&staged, &encoder, prune.as_deref(), batches)
            .await?;
        if index.rows == 0 {
            return Ok(WriteSummary::default());
        }
        let snapshot = self
            .table
            .snapshot()
            .map_err(|e| self.error("read the table state", e))?;
        let table_schema = snapshot.snapshot().arrow_schema();
        let stats = WriterStatsConfig::from_config(snapshot.snapshot().table_configuration());
        let config = WriterConfig::new(
            table_schema.clone(),
            vec![],
            Some(self.destination.writer_properties()),
            NonZeroU64::new(self.destination.layout().target_file_size),
            None,
            stats.num_indexed_cols,
            stats.stats_columns.clone(),
        );
        let store = self.table.log_store().object_store(None);

        let total_files = snapshot.log_data().num_files();
        let candidates: Vec<(Remove, deltalake::Path, u64)> = snapshot
            .log_data()
            .iter()
            .filter(|file| match (&prune, &index.prune_values) {
                (Some(column), Some(values)) => may_hold(file.stats().as_deref(), column, values),
                _ => true,
            })
            .map(|file| {
                (
                    file.remove_action(true),
                    file.object_store_path(),
                    file.size().max(0) as u64,
                )
            })
            .collect();
        let scanned = candidates.len();

        let winners = Arc::new(index.winners);
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let rewrites: Vec<Option<(Remove, Rewritten)>> = futures::stream::iter(candidates)
            .map(|(remove, path, size)| {
                let store = store.clone();
                let encoder = encoder.clone();
                let winners = winners.clone();
                let config = config.clone();
                let table_schema = table_schema.clone();
                let file = remove.path.clone();
                let task = tokio::spawn(async move {
                    rewrite_without_changed(
                        store,
                        path,
                        size,
                        &encoder,
                        &winners,
                        config,
                        &table_schema,
                    )
                    .await
                    .map(|r| r.map(|rewritten| (remove, rewritten)))
                });
                async move {
                    match task.await {
                        Ok(result) => result.map_err(|e| format!("data file {file}: {e}")),
                        Err(e) => Err(format!("data file {file}: the rewriting task failed: {e}")),
                    }
                }
            })
            .buffer_unordered(workers)
            .try_collect()
            .await
            .map_err(|e| self.error("rewrite the files holding changed rows", e))?;

        let mut actions = Vec::new();
        // A key the target held twice (loaded before it was a key) counts once.
        let mut matched_keys = std::collections::HashSet::new();
        let mut rewritten = 0usize;
        let mut added_files = 0usize;
        for (remove, file) in rewrites.into_iter().flatten() {
            matched_keys.extend(file.matched_keys);
            rewritten += 1;
            added_files += file.adds.len();
            actions.push(Action::Remove(remove));
            actions.extend(file.adds.into_iter().map(Action::Add));
        }
        let updated = matched_keys.len() as u64;
        drop(matched_keys);
        let winner_count = winners.len() as u64;
        let positions = {
            let mut p: Vec<u64> = winners.values().map(|(_, position)| *position).collect();
            p.sort_unstable();
            p
        };
        drop(winners);
        let added = self
            .write_winners(&staged, &positions, store, config, &table_schema)
            .await?;
        added_files += added.len();
        actions.extend(added.into_iter().map(Action::Add));
        let inserted = winner_count.saturating_sub(updated);

        let on = crate::delta::key_predicate(self.keys, "target", "source");
        let operation = DeltaOperation::Merge {
            predicate: None,
            merge_predicate: Some(on),
            matched_predicates: vec![MergePredicate {
                action_type: "update".into(),
                predicate: None,
            }],
            not_matched_predicates: vec![MergePredicate {
                action_type: "insert".into(),
                predicate: None,
            }],
            not_matched_by_source_predicates: vec![],
        };
        let metrics = serde_json::json!({
            "num_source_rows": index.rows,
            "num_target_rows_updated": updated,
            "num_target_rows_inserted": inserted,
            "num_target_files_scanned": scanned,
            "num_target_files_skipped_during_scan": total_files - scanned,
            "num_target_files_removed": rewritten,
            "num_target_files_added": added_files,
        });
        let properties = DeltaDestination::commit_properties(
            self.tag,
            [("operationMetrics".to_string(), metrics)],
        );
        let commit = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), self.table.log_store(), operation)
            .await
            .map_err(|e| self.error("commit the merge", e))?;
        tracing::info!(
            table = %self.destination.name,
            files = total_files,
            scanned,
            rewritten,
            added = added_files,
            updated,
            inserted,
            "merged by key"
        );
        Ok(WriteSummary {
            version: Some(commit.version as i64),
            rows_written: winner_count,
            rows_inserted: inserted,
            rows_updated: updated,
        })
    }

    /// Writes the change set to `path` as it arrives and indexes its keys.
    async fn stage_and_index(
        &self,
        path: &std::path::Path,
        encoder: &KeyEncoder,
        prune: Option<&str>,
        mut batches: BatchStream,
    ) -> Result<ChangeIndex> {
        let step = "stage the changes";
        let file = std::fs::File::create(path).map_err(|e| self.error(step, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = ArrowWriter::try_new(file, self.schema.clone(), Some(props))
            .map_err(|e| self.error(step, e))?;
        let keys = encoder.converter().map_err(|e| self.error(step, e))?;
        let order_column = self.schema.index_of(self.order_by).map_err(|_| {
            self.error(step, format!("no column \"{}\" to order by", self.order_by))
        })?;
        let order = RowConverter::new(vec![SortField::new(
            self.schema.field(order_column).data_type().clone(),
        )])
        .map_err(|e| self.error(step, e))?;
        let mut winners = Winners::new();
        let mut prune_values = Vec::new();
        let mut null_key = false;
        let mut rows = 0u64;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            if !same_columns(&batch.schema(), &self.schema) {
                return Err(self.error(
                    step,
                    "a batch of changes does not have the change set's columns",
                ));
            }
            null_key |= self
                .keys
                .iter()
                .any(|k| batch.column_by_name(k).is_some_and(|c| c.null_count() > 0));
            let key_rows = encoder
                .encode(&keys, &batch)
                .map_err(|e| self.error(step, e))?;
            let order_rows = order
                .convert_columns(&[batch.column(order_column).clone()])
                .map_err(|e| self.error(step, e))?;
            let batch_prune_values = match prune {
                Some(column) => Some(
                    batch
                        .column_by_name(column)
                        .ok_or_else(|| format!("the changes lack the key column \"{column}\""))
                        .and_then(int64_values)
                        .map_err(|e| self.error(step, e))?,
                ),
                None => None,
            };
            for i in 0..batch.num_rows() {
                let position = rows + i as u64;
                let key = key_rows.row(i);
                let order_value = order_rows.row(i);
                match winners.get_mut(key.as_ref()) {
                    Some((best, at)) => {
                        if order_value.as_ref() >= &best[..] {
                            *best = order_value.as_ref().into();
                            *at = position;
                        }
                    }
                    None => {
                        winners
                            .insert(key.as_ref().into(), (order_value.as_ref().into(), position));
                        if let Some(values) = &batch_prune_values {
                            if values.is_valid(i) {
                                prune_values.push(values.value(i));
                            }
                        }
                    }
                }
            }
            rows += batch.num_rows() as u64;
            writer.write(&batch).map_err(|e| self.error(step, e))?;
        }
        writer.close().map_err(|e| self.error(step, e))?;
        let prune_values = (!null_key).then(|| {
            prune_values.sort_unstable();
            prune_values.dedup();
            prune_values
        });
        Ok(ChangeIndex {
            winners,
            rows,
            prune_values,
        })
    }

    /// Writes the staged rows at `positions` (sorted) as new data files.
    async fn write_winners(
        &self,
        staged: &std::path::Path,
        positions: &[u64],
        store: ObjectStoreRef,
        config: WriterConfig,
        table_schema: &SchemaRef,
    ) -> Result<Vec<Add>> {
        let step = "write the changed rows";
        let file = std::fs::File::open(staged).map_err(|e| self.error(step, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(READ_BATCH_ROWS).build())
            .map_err(|e| self.error(step, e))?;
        let mut writer = DeltaWriter::new(store, config);
        let mut offset = 0u64;
        let mut next = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| self.error(step, e))?;
            let end = offset + batch.num_rows() as u64;
            let mut keep = vec![false; batch.num_rows()];
            while next < positions.len() && positions[next] < end {
                keep[(positions[next] - offset) as usize] = true;
                next += 1;
            }
            offset = end;
            let kept = filter_record_batch(&batch, &BooleanArray::from(keep))
                .map_err(|e| self.error(step, e))?;
            if kept.num_rows() > 0 {
                let kept = conform(&kept, table_schema).map_err(|e| self.error(step, e))?;
                writer.write(&kept).await.map_err(|e| self.error(step, e))?;
            }
        }
        writer.close().await.map_err(|e| self.error(step, e))
    }
}

/// Whether a file whose statistics are `stats` may hold one of `values` (sorted) in `column`.
/// Missing statistics mean it may.
fn may_hold(stats: Option<&str>, column: &str, values: &[i64]) -> bool {
    let Some(stats) = stats.and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()) else {
        return true;
    };
    let bound = |which: &str| stats[which][column].as_i64();
    let (Some(min), Some(max)) = (bound("minValues"), bound("maxValues")) else {
        return true;
    };
    let first_at_or_above_min = values.partition_point(|v| *v < min);
    values.get(first_at_or_above_min).is_some_and(|v| *v <= max)
}

/// A data file rewritten without its changed rows.
struct Rewritten {
    adds: Vec<Add>,
    /// The changed keys the file held.
    matched_keys: Vec<Box<[u8]>>,
}

/// Rewrites one data file without the rows whose key is among `winners`; `None` when it holds
/// none of them (the file stays).
#[allow(clippy::too_many_arguments)]
async fn rewrite_without_changed(
    store: ObjectStoreRef,
    path: deltalake::Path,
    size: u64,
    encoder: &KeyEncoder,
    winners: &Winners,
    config: WriterConfig,
    table_schema: &SchemaRef,
) -> std::result::Result<Option<Rewritten>, String> {
    let converter = encoder.converter()?;
    #[allow(deprecated)]
    let mut reader = ParquetObjectReader::new(store.clone(), path.clone()).with_file_size(size);
    // The footer is read once for both passes.
    let metadata = ArrowReaderMetadata::load_async(&mut reader, Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let open =
        || ParquetRecordBatchStreamBuilder::new_with_metadata(reader.clone(), metadata.clone());
    // A first pass over the key columns alone decides whether the file must change at all.
    let builder = open();
    let mask = ProjectionMask::columns(
        builder.parquet_schema(),
        encoder.fields.iter().map(|(name, _)| name.as_str()),
    );
    let mut keys_only = builder
        .with_projection(mask)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| e.to_string())?;
    let mut matched = 0u64;
    while let Some(batch) = keys_only.next().await {
        let rows = encoder.encode(&converter, &batch.map_err(|e| e.to_string())?)?;
        matched += rows
            .iter()
            .filter(|r| winners.contains_key(r.as_ref()))
            .count() as u64;
    }
    if matched == 0 {
        return Ok(None);
    }
    let mut all = open()
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| e.to_string())?;
    let mut writer = DeltaWriter::new(store.clone(), config);
    let mut matched_keys = Vec::new();
    while let Some(batch) = all.next().await {
        let batch = batch.map_err(|e| e.to_string())?;
        let rows = encoder.encode(&converter, &batch)?;
        let keep: BooleanArray = rows
            .iter()
            .map(|r| {
                let changed = winners.contains_key(r.as_ref());
                if changed {
                    matched_keys.push(Box::<[u8]>::from(r.as_ref()));
                }
                Some(!changed)
            })
            .collect();
        let kept = filter_record_batch(&batch, &keep).map_err(|e| e.to_string())?;
        if kept.num_rows() > 0 {
            writer
                .write(&conform(&kept, table_schema)?)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    if matched_keys.len() as u64 != matched {
        let _ = writer.abort().await;
        return Err(format!(
            "its key columns held {matched} changed rows, but the full read {}",
            matched_keys.len()
        ));
    }
    let adds = writer.close().await.map_err(|e| e.to_string())?;
    Ok(Some(Rewritten { adds, matched_keys }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dataloader_core::{BatchStream, Layout};
    use deltalake::arrow::array::{Array, Int64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use deltalake::arrow::record_batch::RecordBatch;

    use super::may_hold;
    use crate::{CommitTag, DeltaDestination};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("version", DataType::Int64, true),
        ]))
    }

    fn batch(rows: &[(i64, &str, Option<i64>)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    fn stream(batches: Vec<RecordBatch>) -> BatchStream {
        Box::pin(futures::stream::iter(batches.into_iter().map(Ok)))
    }

    fn tag(version: i64) -> CommitTag {
        CommitTag {
            app_id: "test".into(),
            version,
            state: Default::default(),
        }
    }

    /// Merges `changes` by `id`, the newest `version` winning, as run `run`.
    async fn merge_by_id(
        dest: &DeltaDestination,
        schema: SchemaRef,
        changes: RecordBatch,
        run: i64,
    ) -> crate::WriteSummary {
        dest.merge(
            schema,
            stream(vec![changes]),
            &["id".into()],
            "version",
            &tag(run),
        )
        .await
        .unwrap()
    }

    fn rows(batches: &[RecordBatch]) -> Vec<(i64, String, Option<i64>)> {
        let mut out = vec![];
        for b in batches {
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            // DataFusion may hand strings back as views.
            let names = deltalake::arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
            let names = names.as_any().downcast_ref::<StringArray>().unwrap();
            let versions = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                let v = (!versions.is_null(i)).then(|| versions.value(i));
                out.push((ids.value(i), names.value(i).to_string(), v));
            }
        }
        out
    }

    #[tokio::test]
    async fn merge_keeps_the_newest_row_per_key_and_rewrites_only_files_with_changed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let dest = DeltaDestination::new(url.as_str(), "bronze.test.t")
            .unwrap()
            .with_layout(Layout::default());
        // Two appends: two files, keys 1..=3 and 10..=12.
        for (n, part) in [[1, 2, 3], [10, 11, 12]].iter().enumerate() {
            let rows: Vec<_> = part.iter().map(|id| (*id, "old", Some(1))).collect();
            dest.append(schema(), stream(vec![batch(&rows)]), &tag(n as i64))
                .await
                .unwrap();
        }
        let before: std::collections::BTreeSet<String> = dest
            .open()
            .await
            .unwrap()
            .unwrap()
            .get_file_uris()
            .unwrap()
            .collect();
        // Key 11 three times across two batches: version 5 wins over 3 and over NULL.
        // Key 20 is new, twice with equal versions: the later row wins.
        let changes = vec![
            batch(&[
                (11, "v3", Some(3)),
                (20, "first", Some(7)),
                (11, "v5", Some(5)),
            ]),
            batch(&[(11, "null", None), (20, "second", Some(7))]),
        ];
        let summary = dest
            .merge(
                schema(),
                stream(changes),
                &["id".into()],
                "version",
                &tag(2),
            )
            .await
            .unwrap();
        assert_eq!(
            (
                summary.rows_written,
                summary.rows_updated,
                summary.rows_inserted
            ),
            (2, 1, 1)
        );
        let got = rows(&dest.read_all(&["id"]).await.unwrap());
        let want: Vec<(i64, String, Option<i64>)> = vec![
            (1, "old".into(), Some(1)),
            (2, "old".into(), Some(1)),
            (3, "old".into(), Some(1)),
            (10, "old".into(), Some(1)),
            (11, "v5".into(), Some(5)),
            (12, "old".into(), Some(1)),
            (20, "second".into(), Some(7)),
        ];
        assert_eq!(got, want);
        let table = dest.open().await.unwrap().unwrap();
        let after: std::collections::BTreeSet<String> = table.get_file_uris().unwrap().collect();
        assert_eq!(
            before.intersection(&after).count(),
            1,
            "the file of keys 1..=3 stays: {before:?} → {after:?}"
        );
        // The commit is an idempotent run commit like every other.
        assert_eq!(dest.committed_version("test").await.unwrap(), Some(2));
        assert_eq!(summary.version, table.version().map(|v| v as i64));
    }

    #[tokio::test]
    async fn a_key_held_twice_or_null_is_replaced_once_and_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let dest = DeltaDestination::new(url.as_str(), "bronze.test.t").unwrap();
        // A NULL key and key 100: the file's statistics say 100..=100.
        let with_null_id = |name: &str| {
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from(vec![None, Some(100)])),
                    Arc::new(StringArray::from(vec![name, "c"])),
                    Arc::new(Int64Array::from(vec![Some(1), Some(1)])),
                ],
            )
            .unwrap()
        };
        // Key 5 in two files (appended before it was a key); a NULL key in a third file whose
        // key range does not hold 5, so pruning by value alone would skip it.
        dest.append(
            schema(),
            stream(vec![batch(&[(1, "a", Some(1)), (5, "x", Some(1))])]),
            &tag(0),
        )
        .await
        .unwrap();
        dest.append(
            schema(),
            stream(vec![batch(&[(5, "y", Some(1)), (9, "b", Some(1))])]),
            &tag(1),
        )
        .await
        .unwrap();
        dest.append(schema(), stream(vec![with_null_id("null")]), &tag(2))
            .await
            .unwrap();
        let changes = deltalake::arrow::compute::concat_batches(
            &schema(),
            &[
                batch(&[(5, "new", Some(2))]),
                with_null_id("null2").slice(0, 1),
            ],
        )
        .unwrap();
        let summary = merge_by_id(&dest, schema(), changes, 3).await;
        assert_eq!((summary.rows_updated, summary.rows_inserted), (2, 0));
        let all = dest.read_all(&["id"]).await.unwrap();
        let mut names: Vec<String> = all
            .iter()
            .flat_map(|b| {
                let names = deltalake::arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
                let names = names
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone();
                (0..names.len()).map(move |i| names.value(i).to_string())
            })
            .collect();
        names.sort();
        assert_eq!(names, vec!["a", "b", "c", "new", "null2"]);
    }

    #[tokio::test]
    async fn merge_with_a_new_column_takes_the_generic_path_and_stays_exact() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let dest = DeltaDestination::new(url.as_str(), "bronze.test.t").unwrap();
        // Two files, so the file of keys 0 and 1 is left alone by the first merge and keeps
        // the narrower schema.
        for (run, rows) in [vec![(0, "z"), (1, "a")], vec![(2, "b")]]
            .into_iter()
            .enumerate()
        {
            let rows: Vec<_> = rows
                .into_iter()
                .map(|(id, name)| (id, name, Some(1)))
                .collect();
            dest.append(schema(), stream(vec![batch(&rows)]), &tag(run as i64))
                .await
                .unwrap();
        }
        let wider = Arc::new(Schema::new(
            schema()
                .fields()
                .iter()
                .cloned()
                .chain([Arc::new(Field::new("extra", DataType::Utf8, true))])
                .collect::<Vec<_>>(),
        ));
        let b = batch(&[(2, "b2", Some(2)), (3, "c", Some(2))]);
        let mut columns = b.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec![Some("x"), None])));
        let changes = RecordBatch::try_new(wider.clone(), columns).unwrap();
        let summary = merge_by_id(&dest, wider.clone(), changes, 2).await;
        assert_eq!((summary.rows_updated, summary.rows_inserted), (1, 1));
        let got = rows(&dest.read_all(&["id"]).await.unwrap());
        assert_eq!(
            got,
            vec![
                (0, "z".into(), Some(1)),
                (1, "a".into(), Some(1)),
                (2, "b2".into(), Some(2)),
                (3, "c".into(), Some(2))
            ]
        );
        let table = dest.open().await.unwrap().unwrap();
        assert!(
            super::plain_table(table.snapshot().unwrap(), &wider),
            "{:?} vs {:?}",
            table.snapshot().unwrap().snapshot().arrow_schema(),
            wider
        );
        // The next merge has the table's columns and takes the engine-free path; it rewrites
        // the first file, written before `extra` existed, whose other row reads NULL there.
        let b = batch(&[(1, "a2", Some(3))]);
        let mut columns = b.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec![Some("y")])));
        let changes = RecordBatch::try_new(wider.clone(), columns).unwrap();
        let summary = merge_by_id(&dest, wider, changes, 3).await;
        assert_eq!((summary.rows_updated, summary.rows_inserted), (1, 0));
        let all = dest.read_all(&["id"]).await.unwrap();
        assert_eq!(
            rows(&all),
            vec![
                (0, "z".into(), Some(1)),
                (1, "a2".into(), Some(3)),
                (2, "b2".into(), Some(2)),
                (3, "c".into(), Some(2))
            ]
        );
        let extra: Vec<Option<String>> = all
            .iter()
            .flat_map(|b| {
                let column = deltalake::arrow::compute::cast(
                    b.column_by_name("extra").unwrap(),
                    &DataType::Utf8,
                )
                .unwrap();
                let column = column.as_any().downcast_ref::<StringArray>().unwrap();
                (0..column.len())
                    .map(|i| (!column.is_null(i)).then(|| column.value(i).to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(extra, vec![None, Some("y".into()), Some("x".into()), None]);
    }

    #[test]
    fn a_file_may_hold_a_key_only_inside_its_statistics_range() {
        let stats =
            r#"{"numRecords":3,"minValues":{"id":10},"maxValues":{"id":20},"nullCount":{"id":0}}"#;
        assert!(may_hold(Some(stats), "id", &[1, 15, 30]));
        assert!(may_hold(Some(stats), "id", &[10]));
        assert!(may_hold(Some(stats), "id", &[20]));
        assert!(!may_hold(Some(stats), "id", &[1, 9, 21, 30]));
        assert!(!may_hold(Some(stats), "id", &[]));
        // Without statistics for the column, or at all, the file has to be read.
        assert!(may_hold(Some(stats), "other", &[1]));
        assert!(may_hold(None, "id", &[1]));
        assert!(may_hold(Some("not json"), "id", &[1]));
    }

    #[tokio::test]
    async fn key_counts_find_keys_held_twice_and_a_missing_table() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let dest = DeltaDestination::new(url.as_str(), "bronze.test.t").unwrap();
        assert_eq!(dest.key_counts(&["id".into()]).await.unwrap(), None);
        dest.append(
            schema(),
            stream(vec![batch(&[
                (1, "a", None),
                (2, "b", None),
                (3, "c", None),
            ])]),
            &tag(1),
        )
        .await
        .unwrap();
        let counts = dest.key_counts(&["id".into()]).await.unwrap().unwrap();
        assert_eq!((counts.rows, counts.duplicated_keys), (3, 0));
        // Appending keys 2 and 3 again holds two keys twice; (id, name) stays unique for 3.
        dest.append(
            schema(),
            stream(vec![batch(&[(2, "b", None), (3, "changed", None)])]),
            &tag(2),
        )
        .await
        .unwrap();
        let counts = dest.key_counts(&["id".into()]).await.unwrap().unwrap();
        assert_eq!((counts.rows, counts.duplicated_keys), (5, 2));
        let counts = dest
            .key_counts(&["id".into(), "name".into()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(counts.duplicated_keys, 1);
        assert_eq!(
            dest.key_counts(&[]).await.unwrap().unwrap().duplicated_keys,
            0
        );
    }
}
