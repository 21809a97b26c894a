//! Load strategies. Each one is implemented by one module of the engine.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadStrategy {
    /// Whole table, overwritten in one Delta commit.
    Full,
    /// Rows past the watermark, merged by primary key.
    Incremental,
}

impl LoadStrategy {
    pub const ALL: &'static [LoadStrategy] = &[LoadStrategy::Full, LoadStrategy::Incremental];

    pub fn as_str(self) -> &'static str {
        match self {
            LoadStrategy::Full => "full",
            LoadStrategy::Incremental => "incremental",
        }
    }

    pub fn uses_watermark(self) -> bool {
        matches!(self, LoadStrategy::Incremental)
    }

    pub fn needs_primary_key(self) -> bool {
        matches!(self, LoadStrategy::Incremental)
    }
}

impl FromStr for LoadStrategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        LoadStrategy::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                Error::config(
                    "strategy",
                    format!(
                        "unknown strategy \"{s}\" (valid: {})",
                        LoadStrategy::ALL
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }
}

impl std::fmt::Display for LoadStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
