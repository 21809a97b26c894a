//! Typed table settings: what a table's flat columns mean, parsed once.
//!
//! [`TableSpec`]'s flat fields stay the storage contract: they are the `table_control` columns
//! people edit with SQL, the keys of `apply` files and the CLI's flags. Code that loads a
//! table works with [`TableSettings`] instead, where each strategy carries exactly the
//! parameters it needs, already parsed and defaulted, so no strategy checks or defaults a
//! required option. [`TableSpec::settings`] is the one conversion; it validates first, so
//! every setting that enters (control row, YAML entry, CLI flag) is refused in the same words.

use crate::column_types::ColumnTypes;
use crate::layout::Layout;
use crate::table::{Parallelism, TableSpec};
use crate::{CheckMode, DeleteDetection, Error, LoadStrategy, NullWatermark, Result, Span};

/// A table's settings as a load uses them.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSettings {
    pub strategy: StrategyConfig,
    pub layout: Layout,
    /// `None`: one plain read.
    pub parallelism: Option<Parallelism>,
    pub column_types: ColumnTypes,
}

/// Each strategy with its own parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategyConfig {
    Full(Full),
    Incremental(Incremental),
    AppendOnly(AppendOnly),
    Rolling(Rolling),
    ChunkedBackfill(ChunkedBackfill),
    CheckAndLoad(CheckAndLoad),
}

/// `full`: no parameters of its own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Full;

/// `incremental`: merge the rows past the watermark by key.
#[derive(Debug, Clone, PartialEq)]
pub struct Incremental {
    pub keys: Vec<String>,
    pub column: String,
    /// Re-read this far below the watermark.
    pub lookback: Option<Span>,
    pub nulls: NullWatermark,
    pub key_scan: Option<KeyScan>,
}

/// `append_only`: append the rows past the watermark; NULL watermark rows are never read.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendOnly {
    pub column: String,
}

/// `rolling`: keep the last `window` of `column`, merged by key.
#[derive(Debug, Clone, PartialEq)]
pub struct Rolling {
    pub keys: Vec<String>,
    pub column: String,
    pub window: Span,
    /// Largest share of the table a window moving on may delete.
    pub max_delete_ratio: f64,
}

/// `chunked_backfill`: load the table in chunks of `chunk` along `column`, then go on
/// incrementally.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkedBackfill {
    pub keys: Vec<String>,
    pub column: String,
    pub chunk: Span,
    pub nulls: NullWatermark,
    pub key_scan: Option<KeyScan>,
}

/// Deletes found by comparing the source's keys with the destination's.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyScan {
    /// Least time between two scans, in microseconds; every run when `None`.
    pub interval_micros: Option<i64>,
    /// Largest share of the table a scan may delete.
    pub max_delete_ratio: f64,
}

/// `check_and_load`: a probe, and the strategy that loads when it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckAndLoad {
    pub probe: CheckProbe,
    pub inner: InnerStrategy,
}

/// What `check_and_load` probes.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckProbe {
    Max(String),
    RowCount,
    Query(String),
}

impl CheckProbe {
    pub fn mode(&self) -> CheckMode {
        match self {
            CheckProbe::Max(_) => CheckMode::Max,
            CheckProbe::RowCount => CheckMode::RowCount,
            CheckProbe::Query(_) => CheckMode::Query,
        }
    }
}

/// The strategies `check_and_load` may load with.
#[derive(Debug, Clone, PartialEq)]
pub enum InnerStrategy {
    Full(Full),
    Incremental(Incremental),
    AppendOnly(AppendOnly),
}

impl StrategyConfig {
    pub fn strategy(&self) -> LoadStrategy {
        match self {
            StrategyConfig::Full(_) => LoadStrategy::Full,
            StrategyConfig::Incremental(_) => LoadStrategy::Incremental,
            StrategyConfig::AppendOnly(_) => LoadStrategy::AppendOnly,
            StrategyConfig::Rolling(_) => LoadStrategy::Rolling,
            StrategyConfig::ChunkedBackfill(_) => LoadStrategy::ChunkedBackfill,
            StrategyConfig::CheckAndLoad(_) => LoadStrategy::CheckAndLoad,
        }
    }
}

impl TableSpec {
    /// The settings a load uses; fails as [`TableSpec::validate`] does.
    pub fn settings(&self) -> Result<TableSettings> {
        self.validate()?;
        Ok(TableSettings {
            strategy: self.strategy_config()?,
            layout: self.layout()?,
            parallelism: self.parallelism()?,
            column_types: self.column_types()?,
        })
    }

    /// The per-column type overrides. A column the source compares (the watermark, the
    /// rolling window's, a parallel read's key) cannot become text.
    pub fn column_types(&self) -> Result<ColumnTypes> {
        let mut compared: Vec<&str> = self
            .incremental_column
            .iter()
            .chain(&self.rolling_column)
            .map(String::as_str)
            .collect();
        if self.parallelism()?.is_some() {
            compared.extend(self.primary_keys.iter().map(String::as_str));
        }
        ColumnTypes::parse(&self.column_types, &compared)
    }

    fn strategy_config(&self) -> Result<StrategyConfig> {
        Ok(match self.strategy {
            LoadStrategy::Full => StrategyConfig::Full(Full),
            LoadStrategy::Incremental => StrategyConfig::Incremental(self.incremental()?),
            LoadStrategy::AppendOnly => StrategyConfig::AppendOnly(self.append_only()?),
            LoadStrategy::Rolling => StrategyConfig::Rolling(Rolling {
                keys: self.primary_keys.clone(),
                column: self.required("rolling_column", &self.rolling_column)?,
                window: Span::parse(
                    "rolling_window",
                    &self.required("rolling_window", &self.rolling_window)?,
                )?,
                max_delete_ratio: self.max_delete_ratio,
            }),
            LoadStrategy::ChunkedBackfill => StrategyConfig::ChunkedBackfill(ChunkedBackfill {
                keys: self.primary_keys.clone(),
                column: self.required("incremental_column", &self.incremental_column)?,
                chunk: Span::parse(
                    "chunk_size",
                    &self.required("chunk_size", &self.chunk_size)?,
                )?,
                nulls: self.effective_null_watermark(),
                key_scan: self.key_scan()?,
            }),
            LoadStrategy::CheckAndLoad => StrategyConfig::CheckAndLoad(CheckAndLoad {
                probe: match self.effective_check_mode() {
                    CheckMode::Max => CheckProbe::Max(
                        self.required("incremental_column", &self.incremental_column)?,
                    ),
                    CheckMode::RowCount => CheckProbe::RowCount,
                    CheckMode::Query => {
                        CheckProbe::Query(self.required("check_query", &self.check_query)?)
                    }
                },
                inner: match self.effective_strategy() {
                    LoadStrategy::Incremental => InnerStrategy::Incremental(self.incremental()?),
                    LoadStrategy::AppendOnly => InnerStrategy::AppendOnly(self.append_only()?),
                    _ => InnerStrategy::Full(Full),
                },
            }),
        })
    }

    fn incremental(&self) -> Result<Incremental> {
        Ok(Incremental {
            keys: self.primary_keys.clone(),
            column: self.required("incremental_column", &self.incremental_column)?,
            lookback: self
                .lookback
                .as_deref()
                .map(|l| Span::parse("lookback", l))
                .transpose()?,
            nulls: self.effective_null_watermark(),
            key_scan: self.key_scan()?,
        })
    }

    fn append_only(&self) -> Result<AppendOnly> {
        Ok(AppendOnly {
            column: self.required("incremental_column", &self.incremental_column)?,
        })
    }

    fn key_scan(&self) -> Result<Option<KeyScan>> {
        if self.delete_detection != DeleteDetection::PkScan {
            return Ok(None);
        }
        let interval_micros = match self.delete_detection_interval.as_deref() {
            None => None,
            Some(text) => match Span::parse("delete_detection_interval", text)? {
                Span::Duration(micros) => Some(micros),
                Span::Amount(_) => {
                    return Err(Error::config(
                        "delete_detection_interval",
                        "must be a duration, for example 1 day",
                    ))
                }
            },
        };
        Ok(Some(KeyScan {
            interval_micros,
            max_delete_ratio: self.max_delete_ratio,
        }))
    }

    /// A setting validation guarantees; the error is for a caller that skipped validation.
    fn required(&self, field: &str, value: &Option<String>) -> Result<String> {
        value.clone().ok_or_else(|| {
            Error::config(
                field,
                format!(
                    "{}: the {} strategy needs {field}",
                    self.destination, self.strategy
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SourceTable, TargetTable};

    fn spec(strategy: LoadStrategy) -> TableSpec {
        let mut spec = TableSpec::new(
            "pg",
            SourceTable::parse("public.t").unwrap(),
            TargetTable::parse("bronze.s.t").unwrap(),
        );
        spec.strategy = strategy;
        spec
    }

    #[test]
    fn each_strategy_gets_its_parameters_parsed_and_defaulted() {
        let mut s = spec(LoadStrategy::Incremental);
        s.primary_keys = vec!["id".into()];
        s.incremental_column = Some("at".into());
        s.lookback = Some("2h".into());
        s.delete_detection = DeleteDetection::PkScan;
        s.delete_detection_interval = Some("1 day".into());
        let StrategyConfig::Incremental(i) = s.settings().unwrap().strategy else {
            panic!("incremental")
        };
        assert_eq!(i.column, "at");
        assert_eq!(i.lookback, Some(Span::Duration(7_200_000_000)));
        assert_eq!(i.nulls, NullWatermark::Include);
        assert_eq!(i.key_scan.unwrap().interval_micros, Some(86_400_000_000));

        let mut c = spec(LoadStrategy::CheckAndLoad);
        c.incremental_column = Some("at".into());
        c.inner_strategy = Some(LoadStrategy::AppendOnly);
        let StrategyConfig::CheckAndLoad(check) = c.settings().unwrap().strategy else {
            panic!("check_and_load")
        };
        assert_eq!(check.probe, CheckProbe::Max("at".into()));
        assert!(matches!(check.inner, InnerStrategy::AppendOnly(_)));
    }

    #[test]
    fn an_invalid_combination_never_becomes_settings() {
        let mut s = spec(LoadStrategy::Rolling);
        s.primary_keys = vec!["id".into()];
        s.rolling_column = Some("at".into());
        let err = s.settings().unwrap_err().to_string();
        assert!(err.starts_with("rolling_window:"), "{err}");
    }
}
