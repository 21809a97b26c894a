//! SQL rendering shared by the SQL sources: identifiers are always quoted, watermark values are
//! typed literals built from validated [`Watermark`]s, never configuration pasted into SQL —
//! except a table's `source_query`, validated as one reading SELECT and read as a derived table.

use dataloader_core::{
    Error, Predicate, Result, SourceObject, SourceTable, Watermark, WatermarkKind,
};

pub trait SqlDialect {
    /// Quotes an identifier; embedded quotes are doubled.
    fn quote_ident(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    fn table(&self, table: &SourceTable) -> String {
        match &table.schema {
            Some(schema) => format!(
                "{}.{}",
                self.quote_ident(schema),
                self.quote_ident(&table.name)
            ),
            None => self.quote_ident(&table.name),
        }
    }

    /// What a statement reads `FROM`: the quoted table, or the query as a derived table.
    fn from(&self, object: &SourceObject) -> String {
        match object {
            SourceObject::Table(table) => self.table(table),
            SourceObject::Query { sql, .. } => derived(sql),
        }
    }

    /// A literal of the watermark's type.
    fn literal(&self, value: &Watermark) -> Result<String>;

    /// `expr`'s value as the source's own text (exact for decimals), for a column that
    /// loads as `string` (`column_types`).
    fn text(&self, expr: &str) -> String;

    /// `object` read as a query whose `columns` keep their order and names, those in
    /// `as_text` converted to text by the source. Qualified by the alias `src`, so no
    /// database mistakes an output name for the column it converts.
    fn text_projection(
        &self,
        object: &SourceObject,
        columns: &[String],
        as_text: &[&str],
    ) -> SourceObject {
        let list = columns
            .iter()
            .map(|c| {
                let quoted = self.quote_ident(c);
                let value = format!("src.{quoted}");
                if as_text.contains(&c.as_str()) {
                    format!("{} AS {quoted}", self.text(&value))
                } else {
                    value
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let from = match object {
            SourceObject::Table(table) => format!("{} src", self.table(table)),
            SourceObject::Query { sql, .. } => derived(sql),
        };
        SourceObject::Query {
            sql: format!("SELECT {list} FROM {from}"),
            label: object.label().clone(),
        }
    }

    fn render(&self, predicate: &Predicate) -> Result<String> {
        Ok(match predicate {
            Predicate::Gt(col, v) => format!("{} > {}", self.quote_ident(col), self.literal(v)?),
            Predicate::Ge(col, v) => format!("{} >= {}", self.quote_ident(col), self.literal(v)?),
            Predicate::Lt(col, v) => format!("{} < {}", self.quote_ident(col), self.literal(v)?),
            Predicate::Le(col, v) => format!("{} <= {}", self.quote_ident(col), self.literal(v)?),
            Predicate::IsNull(col) => format!("{} IS NULL", self.quote_ident(col)),
            Predicate::And(parts) => self.join(parts, " AND ", "1 = 1")?,
            Predicate::Or(parts) => self.join(parts, " OR ", "1 = 0")?,
        })
    }
}

/// A source query as a derived table, aliased without `AS` (Oracle has none for tables). The
/// query sits on lines of its own, so a trailing `-- comment` cannot swallow the `)`.
pub fn derived(sql: &str) -> String {
    format!("(\n{sql}\n) src")
}

/// Parts in parentheses joined by `op`; `empty` when there are none.
trait Join {
    fn join(&self, parts: &[Predicate], op: &str, empty: &str) -> Result<String>;
}

impl<D: SqlDialect + ?Sized> Join for D {
    fn join(&self, parts: &[Predicate], op: &str, empty: &str) -> Result<String> {
        if parts.is_empty() {
            return Ok(empty.to_string());
        }
        Ok(parts
            .iter()
            .map(|p| self.render(p).map(|s| format!("({s})")))
            .collect::<Result<Vec<_>>>()?
            .join(op))
    }
}

/// `'it''s'`: a standard SQL string literal. NUL cannot be sent to most databases.
pub fn quote_string(value: &str) -> Result<String> {
    if value.contains('\0') {
        return Err(Error::config(
            "incremental_value",
            "contains a NUL character",
        ));
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

/// Numbers are validated by [`Watermark::new`]; re-checked here because they go in bare.
pub fn number_literal(value: &Watermark) -> Result<String> {
    let ok = match value.kind {
        WatermarkKind::Integer | WatermarkKind::Decimal => {
            dataloader_core::decimal::is_decimal_literal(&value.value)
        }
        _ => false,
    };
    if ok {
        Ok(value.value.clone())
    } else {
        Err(Error::config(
            "incremental_value",
            format!("\"{}\" is not a number", value.value),
        ))
    }
}

/// `And` of `(op, column, kind, value)` comparisons: the predicates the connectors' rendering
/// tests render in their dialects.
#[cfg(test)]
pub fn comparisons(parts: &[(&str, &str, WatermarkKind, &str)]) -> Predicate {
    Predicate::And(
        parts
            .iter()
            .map(|&(op, column, kind, value)| {
                let (c, v) = (column.to_string(), Watermark::new(kind, value).unwrap());
                match op {
                    ">" => Predicate::Gt(c, v),
                    ">=" => Predicate::Ge(c, v),
                    "<" => Predicate::Lt(c, v),
                    "<=" => Predicate::Le(c, v),
                    other => panic!("no comparison {other}"),
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ansi;
    impl SqlDialect for Ansi {
        fn text(&self, expr: &str) -> String {
            format!("CAST({expr} AS VARCHAR)")
        }

        fn literal(&self, value: &Watermark) -> Result<String> {
            match value.kind {
                WatermarkKind::Integer | WatermarkKind::Decimal => number_literal(value),
                _ => quote_string(&value.value),
            }
        }
    }

    #[test]
    fn text_projection_keeps_names_and_order() {
        let table = SourceTable::parse("sales.orders").unwrap();
        let columns = vec!["id".to_string(), "free num".to_string()];
        let query =
            Ansi.text_projection(&SourceObject::Table(table.clone()), &columns, &["free num"]);
        assert_eq!(
            query,
            SourceObject::Query {
                sql: "SELECT src.\"id\", CAST(src.\"free num\" AS VARCHAR) AS \"free num\" FROM \"sales\".\"orders\" src".into(),
                label: table.clone(),
            }
        );
        let inner = SourceObject::Query {
            sql: "SELECT 1 AS id".into(),
            label: table,
        };
        let SourceObject::Query { sql, .. } = Ansi.text_projection(&inner, &columns[..1], &[])
        else {
            panic!("a query")
        };
        assert_eq!(sql, "SELECT src.\"id\" FROM (\nSELECT 1 AS id\n) src");
    }

    #[test]
    fn quotes_identifiers_and_strings() {
        assert_eq!(Ansi.quote_ident("we\"ird"), "\"we\"\"ird\"");
        let p = Predicate::And(vec![
            Predicate::Gt(
                "name".into(),
                Watermark::new(WatermarkKind::Text, "o'hara").unwrap(),
            ),
            Predicate::Le(
                "id".into(),
                Watermark::new(WatermarkKind::Integer, "10").unwrap(),
            ),
        ]);
        assert_eq!(
            Ansi.render(&p).unwrap(),
            "(\"name\" > 'o''hara') AND (\"id\" <= 10)"
        );
    }
}
