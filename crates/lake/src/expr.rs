//! Predicates on Delta columns built from watermarks, typed by the column's Arrow type.

use dataloader_core::{Error, Result, Watermark};
use deltalake::arrow::datatypes::{DataType, TimeUnit};
use deltalake::datafusion::logical_expr::Expr;
use deltalake::datafusion::prelude::{col, lit};
use deltalake::datafusion::scalar::ScalarValue;

/// The watermark as a literal of `data_type`.
pub fn scalar(data_type: &DataType, value: &Watermark) -> Result<ScalarValue> {
    let bad = |e: String| {
        Error::config(
            "incremental_value",
            format!("\"{value}\" as {data_type}: {e}"),
        )
    };
    Ok(match data_type {
        DataType::Int16 => {
            ScalarValue::Int16(Some(value.value.parse().map_err(|e| bad(format!("{e}")))?))
        }
        DataType::Int32 => {
            ScalarValue::Int32(Some(value.value.parse().map_err(|e| bad(format!("{e}")))?))
        }
        DataType::Int64 => {
            ScalarValue::Int64(Some(value.value.parse().map_err(|e| bad(format!("{e}")))?))
        }
        DataType::Decimal128(p, s) => ScalarValue::Decimal128(
            Some(
                dataloader_core::decimal::parse_scaled(&value.value, *p, *s)
                    .map_err(|e| bad(e.to_string()))?,
            ),
            *p,
            *s,
        ),
        DataType::Date32 => ScalarValue::Date32(Some(value.date_days()?)),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            ScalarValue::TimestampMicrosecond(Some(value.timestamp_micros()?), tz.clone())
        }
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            ScalarValue::Utf8(Some(value.value.clone()))
        }
        other => return Err(bad(format!("no comparison for {other}"))),
    })
}

/// `"column" <= value`.
pub fn at_or_below(column: &str, data_type: &DataType, value: &Watermark) -> Result<Expr> {
    Ok(col(format!("\"{}\"", column.replace('"', "\"\""))).lt_eq(lit(scalar(data_type, value)?)))
}
