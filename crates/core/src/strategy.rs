//! Load strategies and the per-table options that shape them. Each strategy is implemented by
//! one module of the engine.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A closed set of names stored and written as snake_case strings.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    Error::config(
                        $field,
                        format!(
                            "unknown {} \"{s}\" (valid: {})",
                            $field.replace('_', " "),
                            $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    )
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// How a table is loaded; `docs/strategies.md` states each one's exact semantics.
    LoadStrategy, "strategy", {
        /// Whole table, overwritten in one Delta commit.
        Full => "full",
        /// Rows past the watermark, merged by primary key.
        Incremental => "incremental",
        /// Rows past the watermark, appended exactly once.
        AppendOnly => "append_only",
        /// The rows inside a window, merged; rows that left the window deleted.
        Rolling => "rolling",
        /// A cheap probe first; a load only when it changed.
        CheckAndLoad => "check_and_load",
        /// Range chunks of a column, one commit each, resumable; then incremental.
        ChunkedBackfill => "chunked_backfill",
    }
);

impl LoadStrategy {
    /// Strategies that read past a stored watermark.
    pub fn uses_watermark(self) -> bool {
        matches!(
            self,
            LoadStrategy::Incremental
                | LoadStrategy::AppendOnly
                | LoadStrategy::Rolling
                | LoadStrategy::ChunkedBackfill
        )
    }

    /// Strategies that merge by primary key.
    pub fn needs_primary_key(self) -> bool {
        matches!(
            self,
            LoadStrategy::Incremental | LoadStrategy::Rolling | LoadStrategy::ChunkedBackfill
        )
    }
}

named_enum!(
    /// What `check_and_load` probes.
    CheckMode, "check_mode", {
        /// `MAX(incremental_column)`.
        Max => "max",
        /// `COUNT(*)`.
        RowCount => "row_count",
        /// The one value `check_query` returns.
        Query => "query",
    }
);

named_enum!(
    /// Rows whose watermark column is NULL.
    NullWatermark, "null_watermark", {
        /// Re-read every run with `col IS NULL` and merged by key (merge strategies only).
        Include => "include",
        /// Never read; each run counts them in its history row.
        Skip => "skip",
    }
);

named_enum!(
    /// What a load does when the source's columns differ from the Delta table's.
    SchemaEvolution, "schema_evolution", {
        /// Add new columns, keep dropped ones (NULL), refuse other changes.
        AddColumns => "add_columns",
        /// Refuse any difference.
        Strict => "strict",
    }
);

named_enum!(
    /// How rows deleted in the source leave the destination.
    DeleteDetection, "delete_detection", {
        None => "none",
        /// Compare the source's primary keys with the destination's.
        PkScan => "pk_scan",
    }
);
