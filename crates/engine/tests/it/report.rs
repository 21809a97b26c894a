//! The load report's JSON: `dataloader load --json` prints it and the Dagster package reads
//! it by these names, so its shape holds whatever the structs inside it become.

use dataloader_core::{LoadStrategy, RowCounts, RunStatus};
use dataloader_engine::LoadReport;

#[test]
fn report_json_keeps_its_field_names_and_order() {
    let report = LoadReport {
        run_id: 7,
        table: "bronze.orders".into(),
        strategy: LoadStrategy::Full,
        status: RunStatus::Succeeded,
        rows: RowCounts {
            read: 1,
            written: 2,
            inserted: 3,
            updated: 4,
            deleted: 5,
        },
        watermark_before: None,
        watermark_after: Some("9".into()),
        delta_version: Some(0),
        schema_changes: vec![],
        notes: vec![],
        table_url: "file:///lake/orders".into(),
        duration_ms: 12,
    };
    let json = serde_json::to_string(&report).unwrap();
    // The order is read from the text: a serde_json Value need not keep it.
    let keys: Vec<&str> = json
        .split(['{', ','])
        .filter_map(|part| part.strip_prefix('"')?.split('"').next())
        .collect();
    assert_eq!(
        keys,
        [
            "run_id",
            "table",
            "strategy",
            "status",
            "rows_read",
            "rows_written",
            "rows_inserted",
            "rows_updated",
            "rows_deleted",
            "watermark_before",
            "watermark_after",
            "delta_version",
            "schema_changes",
            "notes",
            "table_url",
            "duration_ms",
        ]
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let counts = [
        "rows_read",
        "rows_written",
        "rows_inserted",
        "rows_updated",
        "rows_deleted",
    ]
    .map(|key| value[key].as_u64());
    assert_eq!(counts, [1, 2, 3, 4, 5].map(Some));
}
