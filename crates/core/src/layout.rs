//! How a table's data files are laid out in the lake: partition columns, file size, Parquet
//! codec and row-group size. Parsed from the table's declared settings.

use crate::{Error, Result};

/// The Parquet codec of a table's data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd at a level from 1 to 22.
    Zstd(i32),
    Snappy,
    Lz4,
    Uncompressed,
}

impl Codec {
    /// zstd level 1: on the benchmark table it writes as fast as snappy and its files are
    /// smaller (docs/performance.md).
    pub const DEFAULT: Codec = Codec::Zstd(1);

    pub fn parse(text: &str) -> Result<Codec> {
        let bad = || {
            Error::config(
                "compression",
                format!(
                    "\"{text}\" is not a codec: use zstd, zstd(LEVEL) with LEVEL from 1 to 22, snappy, lz4 or none"
                ),
            )
        };
        let t = text.trim().to_ascii_lowercase();
        match t.as_str() {
            "zstd" => Ok(Codec::DEFAULT),
            "snappy" => Ok(Codec::Snappy),
            "lz4" => Ok(Codec::Lz4),
            "none" | "uncompressed" => Ok(Codec::Uncompressed),
            _ => {
                let level = t
                    .strip_prefix("zstd(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .and_then(|level| level.trim().parse::<i32>().ok())
                    .filter(|level| (1..=22).contains(level))
                    .ok_or_else(bad)?;
                Ok(Codec::Zstd(level))
            }
        }
    }
}

/// The data-file layout a load writes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Delta partition columns (destination names); empty for an unpartitioned table.
    pub partition_by: Vec<String>,
    /// A writer starts a new data file once the current one reaches this many bytes.
    pub target_file_size: u64,
    pub codec: Codec,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
}

impl Layout {
    pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * MIB;
    /// For tables loaded by merging: a merge rewrites every file that holds a changed key,
    /// so smaller files make the usual merge cheaper (docs/performance.md has the figures).
    pub const DEFAULT_MERGE_TARGET_FILE_SIZE: u64 = 32 * MIB;
    pub const MIN_TARGET_FILE_SIZE: u64 = MIB;
    pub const MAX_TARGET_FILE_SIZE: u64 = 4 * 1024 * MIB;
    /// A writer holds the row group it is encoding in memory: 256 Ki rows of the benchmark
    /// table are about 17 MB encoded, 1 Mi rows about 68 MB.
    pub const DEFAULT_ROW_GROUP_ROWS: usize = 256 * 1024;
    pub const MIN_ROW_GROUP_ROWS: usize = 1024;
    pub const MAX_ROW_GROUP_ROWS: usize = 16 * 1024 * 1024;
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            partition_by: vec![],
            target_file_size: Self::DEFAULT_TARGET_FILE_SIZE,
            codec: Codec::DEFAULT,
            row_group_rows: Self::DEFAULT_ROW_GROUP_ROWS,
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// Parses `128MiB`, `128MB` (taken as MiB, as data engineers mean it), `1GiB`, `1GB`, `512KiB`
/// or a plain number of bytes.
pub fn parse_size(field: &str, text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit_bytes = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => Some(1),
        "k" | "kb" | "kib" => Some(1024),
        "m" | "mb" | "mib" => Some(MIB),
        "g" | "gb" | "gib" => Some(1024 * MIB),
        _ => None,
    };
    number
        .parse::<u64>()
        .ok()
        .zip(unit_bytes)
        .and_then(|(n, unit)| n.checked_mul(unit))
        .ok_or_else(|| {
            Error::config(
                field,
                format!(
                    "\"{text}\" is not a size: write a number with MiB or GiB, for example 128MiB"
                ),
            )
        })
}

/// The layout from a table's declared settings; unset ones take the defaults, the file size
/// the one for merged tables when `merges`.
pub(crate) fn layout_from(
    merges: bool,
    partition_by: &[String],
    target_file_size: Option<&str>,
    compression: Option<&str>,
    row_group_rows: Option<i64>,
) -> Result<Layout> {
    let mut layout = Layout::default();
    if merges {
        layout.target_file_size = Layout::DEFAULT_MERGE_TARGET_FILE_SIZE;
    }
    for (i, column) in partition_by.iter().enumerate() {
        // A table-name segment may hold `-`; a column name may not.
        if !crate::naming::is_plain_name(column) || column.contains('-') {
            return Err(Error::config(
                "partition_by",
                format!("\"{column}\" is not a plain column name (letters, digits and _)"),
            ));
        }
        if partition_by[..i].contains(column) {
            return Err(Error::config(
                "partition_by",
                format!("column \"{column}\" is named twice"),
            ));
        }
    }
    layout.partition_by = partition_by.to_vec();
    if let Some(size) = target_file_size {
        let bytes = parse_size("target_file_size", size)?;
        if !(Layout::MIN_TARGET_FILE_SIZE..=Layout::MAX_TARGET_FILE_SIZE).contains(&bytes) {
            return Err(Error::config(
                "target_file_size",
                format!("\"{size}\" is outside 1MiB to 4GiB"),
            ));
        }
        layout.target_file_size = bytes;
    }
    if let Some(codec) = compression {
        layout.codec = Codec::parse(codec)?;
    }
    if let Some(rows) = row_group_rows {
        let rows = usize::try_from(rows)
            .ok()
            .filter(|r| (Layout::MIN_ROW_GROUP_ROWS..=Layout::MAX_ROW_GROUP_ROWS).contains(r))
            .ok_or_else(|| {
                Error::config(
                    "row_group_rows",
                    format!(
                        "{rows} is outside {} to {}",
                        Layout::MIN_ROW_GROUP_ROWS,
                        Layout::MAX_ROW_GROUP_ROWS
                    ),
                )
            })?;
        layout.row_group_rows = rows;
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_parse_and_bad_ones_name_the_choices() {
        assert_eq!(Codec::parse("zstd").unwrap(), Codec::Zstd(1));
        assert_eq!(Codec::parse(" ZSTD(9) ").unwrap(), Codec::Zstd(9));
        assert_eq!(Codec::parse("snappy").unwrap(), Codec::Snappy);
        assert_eq!(Codec::parse("none").unwrap(), Codec::Uncompressed);
        for bad in ["zstd(0)", "zstd(23)", "brotli", "zstd(x)", ""] {
            let e = Codec::parse(bad).unwrap_err().to_string();
            assert!(e.contains("snappy, lz4 or none"), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("f", "128MiB").unwrap(), 128 * MIB);
        assert_eq!(parse_size("f", "128 MB").unwrap(), 128 * MIB);
        assert_eq!(parse_size("f", "1GiB").unwrap(), 1024 * MIB);
        assert_eq!(parse_size("f", "4096").unwrap(), 4096);
        for bad in ["", "MB", "12 parsecs", "-1MB", "99999999999999999999GB"] {
            assert!(parse_size("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn layout_checks_its_bounds() {
        let layout = layout_from(
            false,
            &["region".into()],
            Some("64MiB"),
            Some("snappy"),
            Some(131072),
        )
        .unwrap();
        assert_eq!(layout.partition_by, vec!["region".to_string()]);
        assert_eq!(layout.target_file_size, 64 * MIB);
        assert_eq!(layout.codec, Codec::Snappy);
        assert_eq!(layout.row_group_rows, 131072);
        assert_eq!(
            layout_from(false, &[], None, None, None).unwrap(),
            Layout::default()
        );
        assert_eq!(
            layout_from(true, &[], None, None, None)
                .unwrap()
                .target_file_size,
            Layout::DEFAULT_MERGE_TARGET_FILE_SIZE
        );
        assert_eq!(
            layout_from(true, &[], Some("1GiB"), None, None)
                .unwrap()
                .target_file_size,
            1024 * MIB
        );
        assert!(layout_from(false, &[], Some("512KiB"), None, None).is_err());
        assert!(layout_from(false, &[], Some("5GiB"), None, None).is_err());
        assert!(layout_from(false, &[], None, None, Some(10)).is_err());
        assert!(layout_from(false, &["a".into(), "a".into()], None, None, None).is_err());
        assert!(layout_from(false, &["a-b".into()], None, None, None).is_err());
    }
}
