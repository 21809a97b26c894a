//! Column names as they appear in Delta. Delta (without column mapping) refuses
//! ` ,;{}()\n\t=` in names, and lakehouse users expect one consistent case.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Letters, digits, `_` and `-`, starting with a letter or `_`: safe as a path segment and as
/// a catalog identifier.
pub fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnNaming {
    /// `OrderID` → `order_id`, `Modified At` → `modified_at`.
    #[default]
    SnakeCase,
    /// `OrderID` → `orderid`; other characters as in `snake_case`.
    Lowercase,
    /// The source name, with only the characters Delta refuses replaced by `_`.
    Source,
}

impl ColumnNaming {
    pub const ALL: &'static [ColumnNaming] = &[
        ColumnNaming::SnakeCase,
        ColumnNaming::Lowercase,
        ColumnNaming::Source,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ColumnNaming::SnakeCase => "snake_case",
            ColumnNaming::Lowercase => "lowercase",
            ColumnNaming::Source => "source",
        }
    }

    pub fn apply(self, name: &str) -> String {
        let out = match self {
            ColumnNaming::SnakeCase => snake_case(name),
            ColumnNaming::Lowercase => sanitize(&name.to_lowercase(), true),
            ColumnNaming::Source => sanitize(name, false),
        };
        if out.is_empty() {
            "_".to_string()
        } else if out.starts_with(|c: char| c.is_ascii_digit()) {
            format!("_{out}")
        } else {
            out
        }
    }

    /// Normalises every name and refuses two source columns that end up with one name.
    pub fn apply_all(self, table: &str, names: &[String]) -> Result<Vec<String>> {
        let out: Vec<String> = names.iter().map(|n| self.apply(n)).collect();
        for (i, a) in out.iter().enumerate() {
            if let Some(j) = out[..i].iter().position(|b| b == a) {
                return Err(Error::config(
                    "column_naming",
                    format!(
                        "{table}: columns \"{}\" and \"{}\" both become \"{a}\" under {} naming; choose another column_naming or rename one in a custom query",
                        names[j], names[i], self.as_str()
                    ),
                ));
            }
        }
        Ok(out)
    }
}

fn is_delta_forbidden(c: char) -> bool {
    matches!(
        c,
        ' ' | ',' | ';' | '{' | '}' | '(' | ')' | '\n' | '\t' | '='
    )
}

fn sanitize(name: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let keep = if ascii_only {
            c.is_ascii_alphanumeric() || c == '_'
        } else {
            !is_delta_forbidden(c) && !c.is_control()
        };
        if keep {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && i > 0 {
                let prev = chars[i - 1];
                let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
                // A new word starts at an upper-case letter after a lower-case letter or digit
                // (`orderId`), or at the last capital of an acronym (`HTTPServer` → http_server).
                let boundary = prev.is_ascii_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_ascii_uppercase() && next_is_lower);
                if boundary && !out.ends_with('_') {
                    out.push('_');
                }
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

impl FromStr for ColumnNaming {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ColumnNaming::ALL
            .iter()
            .copied()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| {
                Error::config(
                    "column_naming",
                    format!("unknown column naming \"{s}\" (valid: snake_case, lowercase, source)"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_examples() {
        let cases = [
            ("OrderID", "order_id"),
            ("ModifiedAt", "modified_at"),
            ("modified_at", "modified_at"),
            ("HTTPServer", "http_server"),
            ("Modified At", "modified_at"),
            ("customer-id", "customer_id"),
            ("Line2Total", "line2_total"),
            ("2fa", "_2fa"),
            ("Größe", "gr_e"),
            ("__x__", "x"),
            ("a  b", "a_b"),
        ];
        for (input, want) in cases {
            assert_eq!(ColumnNaming::SnakeCase.apply(input), want, "{input}");
        }
    }

    #[test]
    fn source_naming_keeps_case_and_replaces_forbidden() {
        assert_eq!(ColumnNaming::Source.apply("Order ID"), "Order_ID");
        assert_eq!(ColumnNaming::Source.apply("Größe"), "Größe");
        assert_eq!(ColumnNaming::Lowercase.apply("OrderID"), "orderid");
    }

    #[test]
    fn collisions_are_errors() {
        let err = ColumnNaming::SnakeCase
            .apply_all("t", &["OrderId".into(), "order_id".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("both become \"order_id\""), "{err}");
    }
}
