//! The table options that `table add` and `table update` share, and how they land on a
//! [`TableSpec`]. For `update`, an option not given keeps its value and `none` clears it.

use std::str::FromStr;

use anyhow::Result;
use clap::Args;
use dataloader_core::{
    CheckMode, ColumnNaming, DeleteDetection, LoadStrategy, NullWatermark, SchemaEvolution,
    TableSpec,
};

#[derive(Args, Debug, Default)]
pub struct SpecArgs {
    /// A SELECT to read instead of the source table, which then only names it (none: read the
    /// table again); see docs/configuration.md#source-queries.
    #[arg(long)]
    pub source_query: Option<String>,
    /// full, incremental, append_only, rolling, check_and_load or chunked_backfill.
    #[arg(long)]
    pub strategy: Option<String>,
    /// Primary key column(s), comma-separated or repeated.
    #[arg(long = "primary-key", value_delimiter = ',')]
    pub primary_key: Vec<String>,
    /// The watermark column (also the chunk column of chunked_backfill).
    #[arg(long)]
    pub incremental_column: Option<String>,
    /// Five-field cron, for example "0 2 * * *".
    #[arg(long)]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule.
    #[arg(long)]
    pub timezone: Option<String>,
    /// snake_case, lowercase or source.
    #[arg(long)]
    pub column_naming: Option<String>,
    #[arg(long)]
    pub priority: Option<i64>,
    #[arg(long)]
    pub max_retries: Option<i64>,
    #[arg(long)]
    pub timeout_minutes: Option<String>,
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// incremental: re-read below the watermark, a duration (2h) or an amount (1000).
    #[arg(long)]
    pub lookback: Option<String>,
    /// rolling: the column the window is on.
    #[arg(long)]
    pub rolling_column: Option<String>,
    /// rolling: the window, for example "30 days".
    #[arg(long)]
    pub rolling_window: Option<String>,
    /// chunked_backfill: key values per chunk (integers) or a duration (dates, timestamps).
    #[arg(long)]
    pub chunk_size: Option<String>,
    /// check_and_load: max, row_count or query.
    #[arg(long)]
    pub check_mode: Option<String>,
    /// check_and_load with --check-mode query: SQL returning one value.
    #[arg(long)]
    pub check_query: Option<String>,
    /// check_and_load: full (default), incremental or append_only.
    #[arg(long)]
    pub inner_strategy: Option<String>,
    /// include or skip rows whose watermark column is NULL.
    #[arg(long)]
    pub null_watermark: Option<String>,
    /// add_columns (default) or strict.
    #[arg(long)]
    pub schema_evolution: Option<String>,
    /// none (default) or pk_scan.
    #[arg(long)]
    pub delete_detection: Option<String>,
    /// Least time between two primary-key scans, for example "1 day".
    #[arg(long)]
    pub delete_detection_interval: Option<String>,
    /// Largest share of the table one key scan may delete (default 0.2).
    #[arg(long)]
    pub max_delete_ratio: Option<f64>,
    /// Split whole-table reads into N primary-key ranges, one connection each (a number, auto,
    /// or none).
    #[arg(long)]
    pub parallelism: Option<String>,
    /// Delta partition column(s), destination names, comma-separated or repeated (none: no
    /// partitions).
    #[arg(long = "partition-by", value_delimiter = ',')]
    pub partition_by: Vec<String>,
    /// Size a data file is rolled over at, for example 128MiB (the default) or 1GiB.
    #[arg(long)]
    pub target_file_size: Option<String>,
    /// Parquet codec: zstd (level 1, the default), zstd(LEVEL), snappy, lz4 or none
    /// (uncompressed); "" returns to the default.
    #[arg(long)]
    pub compression: Option<String>,
    /// Rows per Parquet row group (default 262144, or none).
    #[arg(long)]
    pub row_group_rows: Option<String>,
    /// Load a source column as another type: COLUMN=string (the source's exact text, for
    /// values no mapped type holds), or a wider bigint, double, decimal(p,s); repeated.
    /// COLUMN=none drops one override, none drops them all.
    #[arg(long = "column-type", value_name = "COLUMN=TYPE")]
    pub column_types: Vec<String>,
}

/// `None`: not given; `Some(None)`: `none`, clear it; `Some(Some(v))`: set it.
fn optional(value: &Option<String>) -> Option<Option<String>> {
    value
        .as_ref()
        .map(|v| (!v.eq_ignore_ascii_case("none") && !v.is_empty()).then(|| v.clone()))
}

fn parsed<T: FromStr<Err = dataloader_core::Error>>(
    value: &Option<String>,
) -> Result<Option<Option<T>>> {
    Ok(match optional(value) {
        None => None,
        Some(None) => Some(None),
        Some(Some(v)) => Some(Some(T::from_str(&v)?)),
    })
}

impl SpecArgs {
    fn apply_column_types(&self, spec: &mut TableSpec) -> Result<()> {
        for given in &self.column_types {
            if given.trim().eq_ignore_ascii_case("none") {
                spec.column_types.clear();
                continue;
            }
            let Some((column, type_name)) = given.split_once('=') else {
                return Err(dataloader_core::Error::config(
                    "column_types",
                    format!("\"{given}\" is not COLUMN=TYPE (for example --column-type free_num=string)"),
                )
                .into());
            };
            let (column, type_name) = (column.trim(), type_name.trim());
            if type_name.eq_ignore_ascii_case("none") {
                spec.column_types.remove(column);
            } else {
                spec.column_types
                    .insert(column.to_string(), type_name.to_string());
            }
        }
        Ok(())
    }

    pub fn apply(&self, spec: &mut TableSpec) -> Result<()> {
        if let Some(s) = &self.strategy {
            spec.strategy = LoadStrategy::from_str(s)?;
        }
        let keys: Vec<String> = self
            .primary_key
            .iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect();
        if !keys.is_empty() {
            spec.primary_keys = if keys == ["none"] { vec![] } else { keys };
        }
        let partitions: Vec<String> = self
            .partition_by
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        if !partitions.is_empty() {
            spec.partition_by = if partitions == ["none"] {
                vec![]
            } else {
                partitions
            };
        }
        let set = |target: &mut Option<String>, value: &Option<String>| {
            if let Some(v) = optional(value) {
                *target = v;
            }
        };
        set(&mut spec.source_query, &self.source_query);
        set(&mut spec.incremental_column, &self.incremental_column);
        set(&mut spec.schedule, &self.schedule);
        set(&mut spec.lookback, &self.lookback);
        set(&mut spec.rolling_column, &self.rolling_column);
        set(&mut spec.rolling_window, &self.rolling_window);
        set(&mut spec.chunk_size, &self.chunk_size);
        set(&mut spec.check_query, &self.check_query);
        set(&mut spec.parallelism, &self.parallelism);
        set(&mut spec.target_file_size, &self.target_file_size);
        // "none" is a codec here (uncompressed files), so only "" clears the setting.
        if let Some(c) = &self.compression {
            spec.compression = (!c.trim().is_empty()).then(|| c.clone());
        }
        set(
            &mut spec.delete_detection_interval,
            &self.delete_detection_interval,
        );
        if let Some(tz) = &self.timezone {
            spec.timezone = tz.clone();
        }
        if let Some(n) = &self.column_naming {
            spec.column_naming = ColumnNaming::from_str(n)?;
        }
        if let Some(p) = self.priority {
            spec.priority = p;
        }
        if let Some(r) = self.max_retries {
            spec.max_retries = r;
        }
        if let Some(t) = optional(&self.timeout_minutes) {
            spec.timeout_minutes = t.map(|t| t.parse::<i64>()).transpose().map_err(|_| {
                dataloader_core::Error::config(
                    "timeout_minutes",
                    "must be a whole number of minutes",
                )
            })?;
        }
        if let Some(r) = optional(&self.row_group_rows) {
            spec.row_group_rows = r
                .map(|r| r.trim().parse::<i64>())
                .transpose()
                .map_err(|_| {
                    dataloader_core::Error::config(
                        "row_group_rows",
                        "must be a whole number of rows",
                    )
                })?;
        }
        self.apply_column_types(spec)?;
        if !self.tags.is_empty() {
            spec.tags = if self.tags == ["none"] {
                vec![]
            } else {
                self.tags.clone()
            };
        }
        if let Some(m) = parsed::<CheckMode>(&self.check_mode)? {
            spec.check_mode = m;
        }
        if let Some(s) = parsed::<LoadStrategy>(&self.inner_strategy)? {
            spec.inner_strategy = s;
        }
        if let Some(n) = parsed::<NullWatermark>(&self.null_watermark)? {
            spec.null_watermark = n;
        }
        if let Some(s) = &self.schema_evolution {
            spec.schema_evolution = SchemaEvolution::from_str(s)?;
        }
        if let Some(d) = &self.delete_detection {
            spec.delete_detection = DeleteDetection::from_str(d)?;
        }
        if let Some(r) = self.max_delete_ratio {
            spec.max_delete_ratio = r;
        }
        Ok(())
    }
}
