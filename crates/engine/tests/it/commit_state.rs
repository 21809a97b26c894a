//! The state a commit carries reads back as written, and as earlier versions wrote it.

use dataloader_core::{LoadStrategy, StateUpdate, Watermark, WatermarkKind};
use dataloader_engine::commit_state::CommitState;

#[test]
fn a_state_reads_back_as_written() {
    let watermark = Watermark::new(WatermarkKind::Integer, "42").unwrap();
    let update = StateUpdate {
        backfill_cursor: Some(None),
        check_value: Some("7".into()),
        strategy: Some(LoadStrategy::Incremental),
        ..StateUpdate::default()
    };
    let state = CommitState::new(Some(&watermark), &update, "pg:public.t".into());
    let map = state.to_map();
    assert_eq!(map["backfill_cursor"], serde_json::Value::Null);
    assert_eq!(map["strategy"], "incremental");
    let back = CommitState::from_map("t", map).unwrap();
    assert_eq!(back, state);
    assert_eq!(back.watermark().unwrap(), Some(watermark));
    assert_eq!(back.state_update().backfill_cursor, Some(None));
}

#[test]
fn a_state_written_by_earlier_versions_still_reads() {
    let written = serde_json::json!({
        "watermark": {"kind": "timestamp", "value": "2024-01-02 03:04:05"},
        "backfill_cursor": "17",
        "loaded_from": "pg:public.t"
    });
    let serde_json::Value::Object(map) = written else {
        unreachable!()
    };
    let state = CommitState::from_map("t", map).unwrap();
    assert_eq!(state.backfill_cursor, Some(Some("17".into())));
    assert_eq!(state.check_value, None);
    assert_eq!(state.watermark.unwrap().kind, "timestamp");
}
