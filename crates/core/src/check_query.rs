//! `check_and_load`'s custom check query and a table's `source_query` run on the source with
//! the loader's credentials, so they must only read. What can be checked without a database is checked here, before it ever
//! runs: one statement (no `;` at all: SQL Server needs none between statements, so a
//! statement is also refused if it names a write anywhere), beginning with `SELECT` or `WITH`.
//! Sources that have one also run it in a read-only transaction, which catches what words
//! cannot (a function that writes).
//!
//! The rules are deliberately blunt: a word is refused even inside a string literal or a
//! comment, because string and comment syntax differ between databases (backslash escapes,
//! dollar quoting) and a check that misreads one could be walked around.

use crate::{Error, Result};

/// Words that start or make a statement that writes, changes a session or runs code.
const REFUSED: [&str; 28] = [
    "insert", "update", "delete", "merge", "upsert", "drop", "create", "alter", "truncate",
    "grant", "revoke", "exec", "execute", "call", "copy", "into", "attach", "detach", "vacuum",
    "pragma", "lock", "unlock", "commit", "rollback", "begin", "declare", "set", "do",
];

/// Whether `sql` may run as a check query (see the module header).
pub fn validate(sql: &str) -> Result<()> {
    read_only_select("check_query", sql)
}

/// Whether `sql` is one reading `SELECT` (see the module header); an error names `field`.
pub fn read_only_select(field: &str, sql: &str) -> Result<()> {
    let refuse = |why: String| {
        Error::config(
            field,
            format!("must be one SELECT (or WITH … SELECT) statement that only reads: {why}"),
        )
    };
    if sql.contains(';') {
        return Err(refuse(
            "\";\" is not allowed (one statement, without a trailing semicolon)".into(),
        ));
    }
    let words: Vec<String> = without_leading_comments(sql)
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    match words.first().map(String::as_str) {
        Some("select" | "with") => {}
        Some(first) => return Err(refuse(format!("it starts with \"{first}\""))),
        None => return Err(refuse("it is empty".into())),
    }
    if let Some(word) = words.iter().find(|w| REFUSED.contains(&w.as_str())) {
        return Err(refuse(format!(
            "\"{}\" is not allowed anywhere in it",
            word.to_ascii_uppercase()
        )));
    }
    Ok(())
}

/// Whether `sql` begins with `WITH` (a common table expression), after comments: SQL Server
/// cannot read one as a derived table.
pub fn starts_with_with(sql: &str) -> bool {
    without_leading_comments(sql)
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("with"))
}

/// `sql` from its first token on: leading blanks, `-- …` lines and `/* … */` blocks skipped.
fn without_leading_comments(mut sql: &str) -> &str {
    loop {
        sql = sql.trim_start();
        if let Some(rest) = sql.strip_prefix("--") {
            sql = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = sql.strip_prefix("/*") {
            sql = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return sql;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_reading_statement_passes() {
        for ok in [
            "SELECT max(updated_at) FROM orders",
            "select count(*) from t where status <> 'deleted'",
            "WITH x AS (SELECT id FROM t) SELECT count(*) FROM x",
            "SELECT max(update_count) FROM settings",
            "  (SELECT 1)",
            "-- the newest change\n/* any table */ SELECT max(at) FROM t",
        ] {
            validate(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("SELECT 1; INSERT INTO t VALUES (1)", "\";\" is not allowed"),
            ("SELECT 1;", "\";\" is not allowed"),
            // SQL Server runs the second statement without a separator.
            ("SELECT 1 INSERT t VALUES (1)", "\"INSERT\" is not allowed"),
            (
                "1) AS int) DELETE FROM t SELECT ((1",
                "it starts with \"1\"",
            ),
            ("DELETE FROM t RETURNING 1", "it starts with \"delete\""),
            ("SELECT * INTO copy_of_t FROM t", "\"INTO\" is not allowed"),
            (
                "WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d",
                "\"DELETE\"",
            ),
            ("SELECT 1 FOR UPDATE", "\"UPDATE\""),
            ("", "it is empty"),
            ("-- nothing", "it is empty"),
            ("/* a */ UPDATE t SET x = 1", "it starts with \"update\""),
        ] {
            let err = validate(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("check_query: must be one SELECT"),
                "{bad}: {err}"
            );
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
