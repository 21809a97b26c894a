//! The state a run's Delta commit carries (commit metadata `dataloader.state`): what the run
//! will record once the commit is in. The load context writes it with each commit; recovery
//! reads it back when a run committed but its process stopped before the bookkeeping. One
//! serde type, so writer and reader cannot drift. Its keys are a storage contract: commits
//! written by earlier versions must still be read.

use dataloader_core::{Error, LoadStrategy, Result, StateUpdate, Watermark, WatermarkKind};
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<TaggedWatermark>,
    /// Present and null: the commit cleared the cursor (`Some(None)`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub backfill_cursor: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<LoadStrategy>,
    /// `connection:source` the run loaded from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_from: Option<String>,
}

/// A watermark as a commit carries it: its kind's name and its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaggedWatermark {
    #[serde(default = "text_kind")]
    pub kind: String,
    #[serde(default)]
    pub value: String,
}

fn text_kind() -> String {
    WatermarkKind::Text.as_str().to_string()
}

/// A key that is present deserializes to `Some`, even when its value is null.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl CommitState {
    /// The state a commit of a run carries.
    pub fn new(watermark: Option<&Watermark>, state: &StateUpdate, loaded_from: String) -> Self {
        CommitState {
            watermark: watermark.map(|w| TaggedWatermark {
                kind: w.kind.as_str().to_string(),
                value: w.value.clone(),
            }),
            backfill_cursor: state.backfill_cursor.clone(),
            check_value: state.check_value.clone(),
            strategy: state.strategy,
            loaded_from: Some(loaded_from),
        }
    }

    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            // A struct of strings always serializes to an object.
            _ => serde_json::Map::new(),
        }
    }

    /// Reads the state a commit of `table` carried.
    pub fn from_map(table: &str, map: serde_json::Map<String, serde_json::Value>) -> Result<Self> {
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| Error::Write {
            table: table.to_string(),
            step: "read the state a commit carried",
            message: e.to_string(),
            source: Some(e.into()),
        })
    }

    /// The committed watermark, if the commit moved it.
    pub fn watermark(&self) -> Result<Option<Watermark>> {
        self.watermark
            .as_ref()
            .map(|w| Watermark::new(w.kind.parse::<WatermarkKind>()?, &w.value))
            .transpose()
    }

    /// The state changes the run would have recorded.
    pub fn state_update(&self) -> StateUpdate {
        StateUpdate {
            backfill_cursor: self.backfill_cursor.clone(),
            check_value: self.check_value.clone(),
            delete_scan_at: None,
            strategy: self.strategy,
            loaded_from: self.loaded_from.clone(),
        }
    }
}
