//! [`RowCounts`]: the rows a load read and what it did with them, one struct for every layer
//! (a Delta write, a strategy's outcome, the load report, the run's record) so the counts
//! cannot drift apart.

use std::ops::AddAssign;

use serde::Serialize;

/// Rows read from the source and written, inserted, updated and deleted in the table.
///
/// Serializes as `rows_read`, `rows_written`, …: reports flatten it, so `dataloader load
/// --json` (which the Dagster package reads) keeps its top-level field names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RowCounts {
    #[serde(rename = "rows_read")]
    pub read: u64,
    /// Rows the commits wrote: inserted plus updated for a merge.
    #[serde(rename = "rows_written")]
    pub written: u64,
    #[serde(rename = "rows_inserted")]
    pub inserted: u64,
    #[serde(rename = "rows_updated")]
    pub updated: u64,
    #[serde(rename = "rows_deleted")]
    pub deleted: u64,
}

/// Adds every count: chunks and steps of one run sum into the run's counts.
impl AddAssign for RowCounts {
    fn add_assign(&mut self, other: RowCounts) {
        self.read += other.read;
        self.written += other.written;
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_assign_sums_every_count() {
        let mut total = RowCounts {
            read: 1,
            written: 2,
            inserted: 3,
            updated: 4,
            deleted: 5,
        };
        total += RowCounts {
            read: 10,
            written: 20,
            inserted: 30,
            updated: 40,
            deleted: 50,
        };
        assert_eq!(
            total,
            RowCounts {
                read: 11,
                written: 22,
                inserted: 33,
                updated: 44,
                deleted: 55,
            }
        );
    }

    #[test]
    fn serializes_with_the_report_field_names() {
        let json = serde_json::to_value(RowCounts {
            read: 1,
            written: 2,
            inserted: 3,
            updated: 4,
            deleted: 5,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "rows_read": 1, "rows_written": 2, "rows_inserted": 3,
                "rows_updated": 4, "rows_deleted": 5,
            })
        );
    }
}
