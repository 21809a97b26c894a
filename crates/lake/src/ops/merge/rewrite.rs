//! Steps 2 and 3 of the plain merge: which target files may hold a changed key (by their key
//! statistics), and rewriting a file without its changed rows; also [`conform`], which every
//! data file the merge writes goes through. Each file is rewritten on its own task, so this
//! per-file work reads only the finished change index and shares no state with the merge.

use deltalake::arrow::array::BooleanArray;
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::Add;
use deltalake::logstore::ObjectStoreRef;
use deltalake::operations::write::writer::{DeltaWriter, WriterConfig};
// parquet 59 deprecates ParquetObjectReader without a replacement short of writing an
// AsyncFileReader; delta-rs reads its data files through it too.
use deltalake::parquet::arrow::arrow_reader::ArrowReaderMetadata;
#[allow(deprecated)]
use deltalake::parquet::arrow::async_reader::ParquetObjectReader;
use deltalake::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use deltalake::parquet::arrow::ProjectionMask;
use futures::StreamExt;

use super::change_index::{strict_cast, KeyEncoder, Winners};

/// Rows per batch when reading a data file or the staged change set back.
pub(super) const READ_BATCH_ROWS: usize = 65_536;

/// Aligns a batch with the table's Arrow schema: Parquet may hand back other field metadata or
/// a cast-compatible type, and a file written before a column was added lacks it (NULL, as
/// every Delta reader takes it).
pub(super) fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, String> {
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

/// Whether a file whose statistics are `stats` may hold one of `values` (sorted) in `column`.
/// Missing statistics mean it may.
pub(super) fn may_hold(stats: Option<&str>, column: &str, values: &[i64]) -> bool {
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
pub(super) struct Rewritten {
    pub(super) adds: Vec<Add>,
    /// The changed keys the file held.
    pub(super) matched_keys: Vec<Box<[u8]>>,
}

/// Rewrites one data file without the rows whose key is among `winners`; `None` when it holds
/// none of them (the file stays).
#[allow(clippy::too_many_arguments)]
pub(super) async fn rewrite_without_changed(
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
    use super::may_hold;

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
}
