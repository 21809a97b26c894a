//! A table's `source_query`: a SELECT read instead of the source table, as a custom-query
//! stream is in dlt, Sling or Airbyte. `source_table` stays the table's name — in messages,
//! `loaded_from`, history and destination templates — but only as a label: nothing reads it.
//!
//! The query is read as a derived table, so every strategy's filter, probe and parallel range
//! wraps it the same way it would a table: `SELECT <columns> FROM (<query>) src WHERE <filter>`.
//! It runs with the loader's credentials, so it must be one reading SELECT, by the same rule as
//! `check_query` ([`crate::check_query`]).

use crate::{Result, SourceObject, TableSpec};

/// Whether `sql` may be a table's source query.
pub fn validate(sql: &str) -> Result<()> {
    crate::check_query::read_only_select("source_query", sql)
}

impl TableSpec {
    /// What a load reads: the query when the table has one, else the source table.
    pub fn source_object(&self) -> SourceObject {
        match &self.source_query {
            Some(sql) => SourceObject::Query {
                sql: sql.trim().to_string(),
                label: self.source.clone(),
            },
            None => SourceObject::Table(self.source.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LoadStrategy, SourceTable, TargetTable};

    fn spec(query: &str) -> TableSpec {
        let mut spec = TableSpec::new(
            "pg",
            SourceTable::parse("orders_enriched").unwrap(),
            TargetTable::parse("bronze.erp.orders").unwrap(),
        );
        spec.strategy = LoadStrategy::Incremental;
        spec.primary_keys = vec!["id".into()];
        spec.incremental_column = Some("updated_at".into());
        spec.source_query = Some(query.into());
        spec
    }

    #[test]
    fn a_query_replaces_the_table_and_keeps_its_name_as_label() {
        let s = spec(
            "  SELECT o.id, o.updated_at FROM orders o JOIN customers c ON c.id = o.customer\n",
        );
        s.validate().unwrap();
        let object = s.source_object();
        assert_eq!(
            object,
            SourceObject::Query {
                sql:
                    "SELECT o.id, o.updated_at FROM orders o JOIN customers c ON c.id = o.customer"
                        .into(),
                label: SourceTable::parse("orders_enriched").unwrap(),
            }
        );
        assert_eq!(object.label().to_string(), "orders_enriched");
        assert_eq!(object.to_string(), "orders_enriched (source query)");
        let mut plain = s.clone();
        plain.source_query = None;
        assert_eq!(
            plain.source_object(),
            SourceObject::Table(SourceTable::parse("orders_enriched").unwrap())
        );
    }

    #[test]
    fn only_one_reading_select_is_a_source_query() {
        for (bad, why) in [
            ("DELETE FROM orders", "it starts with \"delete\""),
            ("SELECT 1; DROP TABLE orders", "\";\" is not allowed"),
            ("SELECT * INTO x FROM orders", "\"INTO\" is not allowed"),
            ("   ", "it is empty"),
        ] {
            let err = spec(bad).validate().unwrap_err().to_string();
            assert!(
                err.starts_with("source_query: must be one SELECT"),
                "{bad}: {err}"
            );
            assert!(err.contains(why), "{bad}: {err}");
        }
        spec("WITH x AS (SELECT 1 AS id) SELECT * FROM x")
            .validate()
            .unwrap();
    }
}
