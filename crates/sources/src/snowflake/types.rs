//! Snowflake's type map and its Arrow result encoding. Snowflake sends fixed-point numbers as
//! integers of whatever width fits the chunk (the unscaled value) or as Decimal128, times as
//! scaled integers, and timestamps as scaled integers or `{epoch, fraction[, timezone]}`
//! structs; every one of them becomes the exact Arrow type of [`Kind::arrow`].

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Int64Array, StringBuilder, StructArray,
    TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit,
};
use dataloader_core::WatermarkKind;
use serde::Deserialize;

/// One column of a result as Snowflake describes it (`rowtype`).
#[derive(Debug, Clone, Deserialize)]
pub struct RowType {
    pub name: String,
    #[serde(rename = "type")]
    pub sf_type: String,
    pub precision: Option<i64>,
    pub scale: Option<i64>,
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Decimal(u8, i8),
    Real,
    Text,
    Binary,
    Boolean,
    Date,
    /// Digits after the second.
    Time(u32),
    TimestampNtz(u32),
    /// `TIMESTAMP_LTZ` and `TIMESTAMP_TZ`: instants, stored in UTC.
    TimestampUtc(u32),
    /// `VARIANT`, `OBJECT`, `ARRAY`: JSON text.
    Json,
}

impl Kind {
    /// `NUMBER(p,0)` is a 64-bit integer up to 18 digits; wider ones stay exact as decimals
    /// unless the connection asks for 64-bit integers (`integers=bigint`).
    pub fn of(column: &RowType, bigint_integers: bool) -> Option<Kind> {
        let scale = u32::try_from(column.scale.unwrap_or(0)).ok()?;
        Some(match column.sf_type.to_ascii_lowercase().as_str() {
            "fixed" => {
                let precision = u8::try_from(column.precision.unwrap_or(38)).ok()?;
                if scale == 0 && (precision <= 18 || bigint_integers) {
                    Kind::Integer
                } else {
                    Kind::Decimal(precision, i8::try_from(scale).ok()?)
                }
            }
            "real" => Kind::Real,
            "text" => Kind::Text,
            "binary" => Kind::Binary,
            "boolean" => Kind::Boolean,
            "date" => Kind::Date,
            "time" => Kind::Time(scale.min(9)),
            "timestamp_ntz" => Kind::TimestampNtz(scale.min(9)),
            "timestamp_ltz" | "timestamp_tz" => Kind::TimestampUtc(scale.min(9)),
            "variant" | "object" | "array" => Kind::Json,
            _ => return None,
        })
    }

    pub fn arrow(self) -> DataType {
        match self {
            Kind::Integer => DataType::Int64,
            Kind::Decimal(p, s) => DataType::Decimal128(p, s),
            Kind::Real => DataType::Float64,
            Kind::Text | Kind::Json | Kind::Time(_) => DataType::Utf8,
            Kind::Binary => DataType::Binary,
            Kind::Boolean => DataType::Boolean,
            Kind::Date => DataType::Date32,
            Kind::TimestampNtz(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::TimestampUtc(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }

    pub fn watermark(self) -> Option<WatermarkKind> {
        Some(match self {
            Kind::Integer | Kind::Decimal(_, 0) => WatermarkKind::Integer,
            Kind::Decimal(..) => WatermarkKind::Decimal,
            Kind::Date => WatermarkKind::Date,
            Kind::TimestampNtz(_) => WatermarkKind::Timestamp,
            Kind::TimestampUtc(_) => WatermarkKind::TimestampTz,
            Kind::Text => WatermarkKind::Text,
            _ => return None,
        })
    }
}

/// The type as Snowflake's `DESCRIBE` shows it.
pub fn native_type(column: &RowType) -> String {
    let t = column.sf_type.to_ascii_uppercase();
    match (t.as_str(), column.precision, column.scale) {
        ("FIXED", p, s) => format!("NUMBER({},{})", p.unwrap_or(38), s.unwrap_or(0)),
        ("REAL", ..) => "FLOAT".into(),
        ("TEXT", ..) => "VARCHAR".into(),
        ("TIME" | "TIMESTAMP_NTZ" | "TIMESTAMP_LTZ" | "TIMESTAMP_TZ", _, Some(s)) => {
            format!("{t}({s})")
        }
        _ => t,
    }
}

/// One result column in Snowflake's encoding → the column of [`Kind::arrow`].
pub fn convert(kind: Kind, array: &ArrayRef) -> Result<ArrayRef, String> {
    let unexpected = || format!("Snowflake sent {} for a {kind:?} column", array.data_type());
    Ok(match kind {
        Kind::Integer => {
            let values = unscaled(array).ok_or_else(unexpected)?;
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                out.push(
                    v.map(|v| {
                        i64::try_from(v).map_err(|_| {
                            format!("{v} does not fit a 64-bit integer (drop the connection option integers=bigint to load NUMBER(p,0) wider than 18 digits as decimals)")
                        })
                    })
                    .transpose()?,
                );
            }
            Arc::new(Int64Array::from(out))
        }
        Kind::Decimal(p, s) => {
            let from_scale = match array.data_type() {
                DataType::Decimal128(_, from) => *from,
                _ => s,
            };
            let values = unscaled(array).ok_or_else(unexpected)?;
            let out = values
                .into_iter()
                .map(|v| v.map(|v| rescale(v, from_scale, s)).transpose())
                .collect::<Result<Decimal128Array, String>>()?;
            Arc::new(
                out.with_precision_and_scale(p, s)
                    .map_err(|e| e.to_string())?,
            )
        }
        Kind::Real => cast(array, &DataType::Float64).map_err(|_| unexpected())?,
        Kind::Text | Kind::Json => cast(array, &DataType::Utf8).map_err(|_| unexpected())?,
        Kind::Binary => cast(array, &DataType::Binary).map_err(|_| unexpected())?,
        Kind::Boolean if array.data_type() == &DataType::Boolean => array.clone(),
        Kind::Date => match array.data_type() {
            DataType::Date32 => array.clone(),
            DataType::Int32 => Arc::new(
                array
                    .as_primitive::<Int32Type>()
                    .reinterpret_cast::<Date32Type>(),
            ),
            _ => return Err(unexpected()),
        },
        Kind::Time(scale) => {
            let values = unscaled(array).ok_or_else(unexpected)?;
            let mut out = StringBuilder::new();
            for v in values {
                match v {
                    Some(v) => out.append_value(time_text(v, scale)?),
                    None => out.append_null(),
                }
            }
            Arc::new(out.finish())
        }
        Kind::TimestampNtz(scale) => Arc::new(micros(array, scale).ok_or_else(unexpected)??),
        Kind::TimestampUtc(scale) => Arc::new(
            micros(array, scale)
                .ok_or_else(unexpected)??
                .with_timezone("UTC"),
        ),
        Kind::Boolean => return Err(unexpected()),
    })
}

/// The integer values of an integer or Decimal128 column, nulls kept.
fn unscaled(array: &ArrayRef) -> Option<Vec<Option<i128>>> {
    fn collect<T: arrow::datatypes::ArrowPrimitiveType>(
        array: &ArrayRef,
        to: impl Fn(T::Native) -> i128,
    ) -> Vec<Option<i128>> {
        array
            .as_primitive::<T>()
            .iter()
            .map(|v| v.map(&to))
            .collect()
    }
    Some(match array.data_type() {
        DataType::Int8 => collect::<Int8Type>(array, i128::from),
        DataType::Int16 => collect::<Int16Type>(array, i128::from),
        DataType::Int32 => collect::<Int32Type>(array, i128::from),
        DataType::Int64 => collect::<Int64Type>(array, i128::from),
        DataType::Decimal128(..) => collect::<Decimal128Type>(array, |v| v),
        _ => return None,
    })
}

fn rescale(value: i128, from: i8, to: i8) -> Result<i128, String> {
    let factor = 10i128
        .checked_pow(u32::from(from.abs_diff(to)))
        .ok_or_else(|| format!("scale {from} cannot be brought to scale {to}"))?;
    if to >= from {
        value
            .checked_mul(factor)
            .ok_or_else(|| format!("{value} (scale {from}) overflows at scale {to}"))
    } else if value % factor == 0 {
        Ok(value / factor)
    } else {
        Err(format!(
            "{value} (scale {from}) has more digits than scale {to}"
        ))
    }
}

/// `HH:MM:SS[.fraction]` from a time of day scaled by 10^scale.
fn time_text(value: i128, scale: u32) -> Result<String, String> {
    let per_second = 10i128.pow(scale);
    let (seconds, fraction) = (value.div_euclid(per_second), value.rem_euclid(per_second));
    if !(0..86_400).contains(&seconds) {
        return Err(format!("{value} is not a time of day at scale {scale}"));
    }
    let mut text = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:0width$}", width = scale as usize);
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    Ok(text)
}

/// Microseconds since the epoch; a value with a non-zero sub-microsecond part is an error,
/// since Delta timestamps hold microseconds and rounding would change the data. `None` when
/// the encoding is not one Snowflake uses for timestamps.
fn micros(array: &ArrayRef, scale: u32) -> Option<Result<TimestampMicrosecondArray, String>> {
    let from_scaled = |v: i128| -> Result<i64, String> {
        let micros = if scale <= 6 {
            v.checked_mul(10i128.pow(6 - scale))
        } else {
            let factor = 10i128.pow(scale - 6);
            if v % factor != 0 {
                return Err(sub_micro(v.rem_euclid(factor) * 10i128.pow(9 - scale)));
            }
            Some(v / factor)
        };
        micros
            .and_then(|m| i64::try_from(m).ok())
            .ok_or_else(|| format!("{v} at scale {scale} is out of range"))
    };
    let values: Vec<Option<Result<i64, String>>> = match array.data_type() {
        DataType::Int64 => array
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(|v| from_scaled(i128::from(v))))
            .collect(),
        DataType::Struct(fields) => {
            let s: &StructArray = array.as_struct();
            let epoch = s.column_by_name("epoch")?.as_primitive_opt::<Int64Type>()?;
            match s.column_by_name("fraction") {
                // {epoch seconds, fraction nanoseconds[, timezone]}
                Some(fraction) => {
                    let fraction = fraction.as_primitive_opt::<Int32Type>()?;
                    (0..s.len())
                        .map(|i| {
                            s.is_valid(i).then(|| {
                                let ns = fraction.value(i);
                                if ns % 1000 != 0 {
                                    return Err(sub_micro(i128::from(ns % 1000)));
                                }
                                epoch
                                    .value(i)
                                    .checked_mul(1_000_000)
                                    .and_then(|m| m.checked_add(i64::from(ns / 1000)))
                                    .ok_or_else(|| format!("{} s is out of range", epoch.value(i)))
                            })
                        })
                        .collect()
                }
                // {epoch scaled by 10^scale, timezone}
                None if fields.len() == 2 => (0..s.len())
                    .map(|i| {
                        s.is_valid(i)
                            .then(|| from_scaled(i128::from(epoch.value(i))))
                    })
                    .collect(),
                None => return None,
            }
        }
        _ => return None,
    };
    Some(
        values
            .into_iter()
            .map(Option::transpose)
            .collect::<Result<TimestampMicrosecondArray, String>>(),
    )
}

fn sub_micro(nanos: i128) -> String {
    format!(
        "a timestamp has a sub-microsecond part ({nanos} ns past the microsecond); Delta timestamps hold microseconds, so the load stops rather than round it (cast the column to TIMESTAMP_NTZ(6) in a view to load it)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int8Array};
    use arrow::datatypes::{Field, Fields};

    fn rowtype(t: &str, p: Option<i64>, s: Option<i64>) -> RowType {
        RowType {
            name: "c".into(),
            sf_type: t.into(),
            precision: p,
            scale: s,
            nullable: true,
        }
    }

    #[test]
    fn type_map() {
        let k = |t, p, s| Kind::of(&rowtype(t, p, s), false).map(Kind::arrow);
        assert_eq!(k("fixed", Some(18), Some(0)), Some(DataType::Int64));
        assert_eq!(
            k("fixed", Some(38), Some(0)),
            Some(DataType::Decimal128(38, 0))
        );
        assert_eq!(
            Kind::of(&rowtype("fixed", Some(38), Some(0)), true).map(Kind::arrow),
            Some(DataType::Int64)
        );
        assert_eq!(
            k("fixed", Some(12), Some(2)),
            Some(DataType::Decimal128(12, 2))
        );
        assert_eq!(
            k("timestamp_ltz", Some(0), Some(9)),
            Some(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            ))
        );
        assert_eq!(k("variant", None, None), Some(DataType::Utf8));
        assert_eq!(k("geography", None, None), None);
        assert_eq!(
            native_type(&rowtype("fixed", Some(12), Some(2))),
            "NUMBER(12,2)"
        );
        assert_eq!(
            native_type(&rowtype("timestamp_tz", Some(0), Some(9))),
            "TIMESTAMP_TZ(9)"
        );
    }

    #[test]
    fn scaled_integers_become_exact_decimals() {
        // Snowflake picks the narrowest integer that holds the chunk's unscaled values.
        let narrow: ArrayRef = Arc::new(Int8Array::from(vec![Some(-128), None, Some(5)]));
        let out = convert(Kind::Decimal(12, 2), &narrow).unwrap();
        let d = out.as_primitive::<Decimal128Type>();
        assert_eq!(d.value_as_string(0), "-1.28");
        assert!(d.is_null(1));
        assert_eq!(d.value_as_string(2), "0.05");
        let wide: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(i128::MAX / 10)])
                .with_precision_and_scale(38, 0)
                .unwrap(),
        );
        let out = convert(Kind::Decimal(38, 0), &wide).unwrap();
        assert_eq!(
            out.as_primitive::<Decimal128Type>().value(0),
            i128::MAX / 10
        );
        let err = convert(Kind::Integer, &wide).unwrap_err();
        assert!(err.contains("does not fit a 64-bit integer"), "{err}");
    }

    #[test]
    fn timestamps_in_every_encoding() {
        let fields = Fields::from(vec![
            Field::new("epoch", DataType::Int64, false),
            Field::new("fraction", DataType::Int32, false),
        ]);
        let two = StructArray::new(
            fields.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1_704_164_645, 0])),
                Arc::new(Int32Array::from(vec![123_456_000, 0])),
            ],
            Some(vec![true, false].into()),
        );
        let out = convert(Kind::TimestampNtz(9), &(Arc::new(two) as ArrayRef)).unwrap();
        let t = out.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(t.value(0), 1_704_164_645_123_456);
        assert!(t.is_null(1));

        let scaled: ArrayRef = Arc::new(Int64Array::from(vec![1_704_164_645_123]));
        let out = convert(Kind::TimestampUtc(3), &scaled).unwrap();
        assert_eq!(
            out.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            out.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(0),
            1_704_164_645_123_000
        );

        let nanos = StructArray::new(
            fields,
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(Int32Array::from(vec![1])),
            ],
            None,
        );
        let err = convert(Kind::TimestampNtz(9), &(Arc::new(nanos) as ArrayRef)).unwrap_err();
        assert!(err.contains("sub-microsecond"), "{err}");
    }

    #[test]
    fn times_of_day() {
        assert_eq!(time_text(45_296_789_000_000, 9).unwrap(), "12:34:56.789");
        assert_eq!(time_text(0, 9).unwrap(), "00:00:00");
        assert_eq!(time_text(86_399, 0).unwrap(), "23:59:59");
        assert!(time_text(86_400, 0).is_err());
    }
}
