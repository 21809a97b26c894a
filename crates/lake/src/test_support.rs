//! Test fixtures shared by the unit tests of several operations: a three-column table
//! (`id`, `name`, `version`), its batches as a stream, and a commit tag.

use std::sync::Arc;

use dataloader_core::BatchStream;
use deltalake::arrow::array::{Int64Array, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;

use crate::tag::CommitTag;

pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("version", DataType::Int64, true),
    ]))
}

pub(crate) fn batch(rows: &[(i64, &str, Option<i64>)]) -> RecordBatch {
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

pub(crate) fn stream(batches: Vec<RecordBatch>) -> BatchStream {
    Box::pin(futures::stream::iter(batches.into_iter().map(Ok)))
}

pub(crate) fn tag(version: i64) -> CommitTag {
    CommitTag {
        app_id: "test".into(),
        version,
        state: Default::default(),
    }
}
