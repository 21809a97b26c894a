//! ClickHouse → Arrow type map (what the loader DataLoader replaces called its "custom type mapping") and the RowBinary decoder
//! for each type. `docs/connectors/clickhouse.md` is the same table for users.
//!
//! | ClickHouse | Arrow / Delta | notes |
//! |---|---|---|
//! | `Int8`, `Int16`, `UInt8` | Int16 / short | unsigned widened |
//! | `Int32`, `UInt16` | Int32 / integer | |
//! | `Int64`, `UInt32` | Int64 / long | |
//! | `UInt64` | Decimal128(20,0) | every value exactly |
//! | `Float32`, `Float64` | Float32, Float64 | |
//! | `Decimal(P,S)`, `Decimal32/64/128(S)` | Decimal128(P,S) | exact |
//! | `String` | Utf8 / string | must be UTF-8 |
//! | `FixedString(N)` | Utf8 | trailing NUL padding removed |
//! | `Enum8`, `Enum16` | Utf8 | the label |
//! | `UUID` | Utf8 | canonical hyphenated form |
//! | `Date` | Date32 / date | |
//! | `DateTime`, `DateTime('zone')` | Timestamp(µs, UTC) / timestamp | the instant |
//! | `DateTime64(p[, 'zone'])` | Timestamp(µs, UTC) | p ≤ 6 exact; finer values must be whole microseconds |
//! | `Array(T)` | Utf8, a JSON array | |
//! | `Nullable(T)`, `LowCardinality(T)` | as `T` | |
//! | `Tuple`, `Map`, `Nested`, IP and geo types | — | unsupported |

use arrow::datatypes::{DataType, TimeUnit};
use dataloader_core::WatermarkKind;

/// A parsed ClickHouse column type, as RowBinary lays its values out.
#[derive(Debug, Clone, PartialEq)]
pub enum ChType {
    Int(u8),
    UInt(u8),
    Float32,
    Float64,
    /// Precision, scale.
    Decimal(u8, u8),
    String,
    FixedString(usize),
    Enum(u8, Vec<(i16, String)>),
    Uuid,
    Date,
    DateTime,
    DateTime64(u8),
    Array(Box<ChType>),
    Nullable(Box<ChType>),
}

fn strip<'a>(t: &'a str, prefix: &str) -> Option<&'a str> {
    t.strip_prefix(prefix)?.strip_prefix('(')?.strip_suffix(')')
}

/// Splits `a, b('x, y'), c` at top-level commas.
fn split_args(s: &str) -> Vec<String> {
    let (mut depth, mut quoted, mut current, mut out) = (0, false, String::new(), Vec::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                current.push(c);
                if let Some(n) = chars.next() {
                    current.push(n);
                }
                continue;
            }
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

fn unquote(s: &str) -> Option<String> {
    let inner = s.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("\\'", "'").replace("\\\\", "\\"))
}

pub fn parse(t: &str) -> Option<ChType> {
    let t = t.trim();
    if let Some(inner) = strip(t, "Nullable") {
        return Some(ChType::Nullable(Box::new(parse(inner)?)));
    }
    if let Some(inner) = strip(t, "LowCardinality") {
        return parse(inner);
    }
    if let Some(inner) = strip(t, "Array") {
        return Some(ChType::Array(Box::new(parse(inner)?)));
    }
    if let Some(n) = strip(t, "FixedString") {
        return Some(ChType::FixedString(n.trim().parse().ok()?));
    }
    if let Some(args) = strip(t, "Decimal") {
        let a = split_args(args);
        return Some(ChType::Decimal(
            a.first()?.parse().ok()?,
            a.get(1)?.parse().ok()?,
        ));
    }
    for (name, p) in [("Decimal32", 9), ("Decimal64", 18), ("Decimal128", 38)] {
        if let Some(s) = strip(t, name) {
            return Some(ChType::Decimal(p, s.trim().parse().ok()?));
        }
    }
    for (name, width) in [("Enum8", 1), ("Enum16", 2)] {
        if let Some(args) = strip(t, name) {
            let values = split_args(args)
                .into_iter()
                .map(|pair| {
                    let (label, value) = pair.rsplit_once('=')?;
                    Some((value.trim().parse().ok()?, unquote(label)?))
                })
                .collect::<Option<Vec<_>>>()?;
            return Some(ChType::Enum(width, values));
        }
    }
    if let Some(args) = strip(t, "DateTime64") {
        return Some(ChType::DateTime64(split_args(args).first()?.parse().ok()?));
    }
    if t == "DateTime" || strip(t, "DateTime").is_some() {
        return Some(ChType::DateTime);
    }
    Some(match t {
        "Int8" => ChType::Int(1),
        "Int16" => ChType::Int(2),
        "Int32" => ChType::Int(4),
        "Int64" => ChType::Int(8),
        "UInt8" => ChType::UInt(1),
        "UInt16" => ChType::UInt(2),
        "UInt32" => ChType::UInt(4),
        "UInt64" => ChType::UInt(8),
        "Float32" => ChType::Float32,
        "Float64" => ChType::Float64,
        "String" => ChType::String,
        "UUID" => ChType::Uuid,
        "Date" => ChType::Date,
        _ => return None,
    })
}

impl ChType {
    fn base(&self) -> &ChType {
        match self {
            ChType::Nullable(t) => t.base(),
            t => t,
        }
    }

    /// The Arrow type; `None` for a precision Delta's decimal cannot hold.
    pub fn arrow(&self) -> Option<DataType> {
        Some(match self.base() {
            ChType::Int(1 | 2) | ChType::UInt(1) => DataType::Int16,
            ChType::Int(4) | ChType::UInt(2) => DataType::Int32,
            ChType::Int(_) | ChType::UInt(4) => DataType::Int64,
            ChType::UInt(_) => DataType::Decimal128(20, 0),
            ChType::Float32 => DataType::Float32,
            ChType::Float64 => DataType::Float64,
            ChType::Decimal(p, s) if *p <= 38 => DataType::Decimal128(*p, *s as i8),
            ChType::Decimal(..) => return None,
            ChType::String
            | ChType::FixedString(_)
            | ChType::Enum(..)
            | ChType::Uuid
            | ChType::Array(_) => DataType::Utf8,
            ChType::Date => DataType::Date32,
            ChType::DateTime | ChType::DateTime64(_) => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            ChType::Nullable(_) => return None,
        })
    }

    pub fn watermark(&self) -> Option<WatermarkKind> {
        Some(match self.base() {
            ChType::Int(_) | ChType::UInt(_) => WatermarkKind::Integer,
            ChType::Decimal(..) => WatermarkKind::Decimal,
            ChType::Date => WatermarkKind::Date,
            ChType::DateTime | ChType::DateTime64(_) => WatermarkKind::TimestampTz,
            ChType::String | ChType::FixedString(_) => WatermarkKind::Text,
            _ => return None,
        })
    }
}

/// One decoded value, before it goes to an Arrow builder.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i128),
    F32(f32),
    F64(f64),
    Text(String),
    Date(i32),
    Micros(i64),
}

/// Reads RowBinary from a buffer; `Ok(None)` means the buffer ends mid-value (wait for more).
pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

type Step<T> = Result<Option<T>, String>;

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.buf.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }

    fn varint(&mut self) -> Option<usize> {
        let mut value = 0usize;
        for shift in (0..64).step_by(7) {
            let b = *self.take(1)?.first()?;
            value |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn le_int(&mut self, width: usize, signed: bool) -> Option<i128> {
        let bytes = self.take(width)?;
        let mut v: u128 = 0;
        for (i, b) in bytes.iter().enumerate() {
            v |= u128::from(*b) << (8 * i);
        }
        if signed && width < 16 && bytes.last().is_some_and(|b| b & 0x80 != 0) {
            v |= u128::MAX << (8 * width);
        }
        Some(v as i128)
    }

    pub fn cell(&mut self, t: &ChType) -> Step<Cell> {
        macro_rules! need {
            ($e:expr) => {
                match $e {
                    Some(v) => v,
                    None => return Ok(None),
                }
            };
        }
        Ok(Some(match t {
            ChType::Nullable(inner) => {
                if need!(self.take(1))[0] == 1 {
                    Cell::Null
                } else {
                    return self.cell(inner);
                }
            }
            ChType::Int(w) => Cell::Int(need!(self.le_int(usize::from(*w), true))),
            ChType::UInt(w) => Cell::Int(need!(self.le_int(usize::from(*w), false))),
            ChType::Float32 => Cell::F32(f32::from_le_bytes(
                need!(self.take(4)).try_into().map_err(|_| "float")?,
            )),
            ChType::Float64 => Cell::F64(f64::from_le_bytes(
                need!(self.take(8)).try_into().map_err(|_| "double")?,
            )),
            ChType::Decimal(p, _) => {
                let width = if *p <= 9 {
                    4
                } else if *p <= 18 {
                    8
                } else {
                    16
                };
                Cell::Int(need!(self.le_int(width, true)))
            }
            ChType::String => {
                let n = need!(self.varint());
                let bytes = need!(self.take(n));
                Cell::Text(
                    String::from_utf8(bytes.to_vec()).map_err(|e| format!("invalid UTF-8: {e}"))?,
                )
            }
            ChType::FixedString(n) => {
                let bytes = need!(self.take(*n));
                let end = bytes
                    .iter()
                    .rposition(|b| *b != 0)
                    .map(|i| i + 1)
                    .unwrap_or(0);
                Cell::Text(
                    String::from_utf8(bytes[..end].to_vec())
                        .map_err(|e| format!("invalid UTF-8: {e}"))?,
                )
            }
            ChType::Enum(w, values) => {
                let v = need!(self.le_int(usize::from(*w), true)) as i16;
                let label = values.iter().find(|(k, _)| *k == v).map(|(_, l)| l.clone());
                Cell::Text(label.ok_or_else(|| format!("enum value {v} has no label"))?)
            }
            ChType::Uuid => {
                let b = need!(self.take(16));
                // Two little-endian 64-bit halves, high half first.
                let hi = u64::from_le_bytes(b[0..8].try_into().map_err(|_| "uuid")?);
                let lo = u64::from_le_bytes(b[8..16].try_into().map_err(|_| "uuid")?);
                uuid_text(&format!("{hi:016x}{lo:016x}"))
            }
            ChType::Date => Cell::Date(need!(self.le_int(2, false)) as i32),
            ChType::DateTime => Cell::Micros(need!(self.le_int(4, false)) as i64 * 1_000_000),
            ChType::DateTime64(p) => {
                let ticks = need!(self.le_int(8, true)) as i64;
                let micros = if *p <= 6 {
                    ticks * 10i64.pow(6 - u32::from(*p))
                } else {
                    let f = 10i64.pow(u32::from(*p) - 6);
                    if ticks % f != 0 {
                        return Err(format!("DateTime64({p}) value has more than microsecond precision, which Delta cannot store"));
                    }
                    ticks / f
                };
                Cell::Micros(micros)
            }
            ChType::Array(inner) => {
                let n = need!(self.varint());
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(need!(self.cell(inner)?));
                }
                json_array(items)
            }
        }))
    }
}

/// A UUID's 32 hex digits in the canonical hyphenated form.
pub(super) fn uuid_text(h: &str) -> Cell {
    Cell::Text(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// An `Array(T)` value as the JSON array text it loads as.
pub(super) fn json_array(items: Vec<Cell>) -> Cell {
    let values = items
        .into_iter()
        .map(|item| match item {
            Cell::Null => serde_json::Value::Null,
            Cell::Int(i) => i64::try_from(i)
                .map(serde_json::Value::from)
                .unwrap_or_else(|_| serde_json::Value::from(i.to_string())),
            Cell::F32(f) => serde_json::json!(f),
            Cell::F64(f) => serde_json::json!(f),
            Cell::Text(s) => serde_json::Value::String(s),
            Cell::Date(d) => serde_json::Value::from(d),
            Cell::Micros(m) => serde_json::Value::from(m),
        })
        .collect();
    Cell::Text(serde_json::Value::Array(values).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_type_strings() {
        assert_eq!(
            parse("Nullable(UInt64)").unwrap().arrow(),
            Some(DataType::Decimal128(20, 0))
        );
        assert_eq!(parse("LowCardinality(String)").unwrap(), ChType::String);
        assert_eq!(parse("Decimal(18, 4)").unwrap(), ChType::Decimal(18, 4));
        assert_eq!(parse("Decimal64(3)").unwrap(), ChType::Decimal(18, 3));
        assert_eq!(
            parse("Enum8('a' = 1, 'b,\\'c' = -2)").unwrap(),
            ChType::Enum(1, vec![(1, "a".into()), (-2, "b,'c".into())])
        );
        assert_eq!(
            parse("DateTime('Europe/Amsterdam')").unwrap(),
            ChType::DateTime
        );
        assert_eq!(
            parse("Array(Nullable(Int32))").unwrap(),
            ChType::Array(Box::new(ChType::Nullable(Box::new(ChType::Int(4)))))
        );
        assert!(parse("Tuple(Int8, String)").is_none());
    }

    #[test]
    fn decodes_row_binary() {
        let bytes = [
            0xff, // Int8 -1
            0x00, 0x05, b'h', b'e', b'l', b'l', b'o', // Nullable(String) "hello"
            0x01, // Nullable NULL
            0x02, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, // Array(Int32) [1, 2]
        ];
        let types = [
            ChType::Int(1),
            ChType::Nullable(Box::new(ChType::String)),
            ChType::Nullable(Box::new(ChType::String)),
            ChType::Array(Box::new(ChType::Int(4))),
        ];
        let mut r = Reader {
            buf: &bytes,
            pos: 0,
        };
        let cells: Vec<Cell> = types.iter().map(|t| r.cell(t).unwrap().unwrap()).collect();
        assert_eq!(
            cells,
            vec![
                Cell::Int(-1),
                Cell::Text("hello".into()),
                Cell::Null,
                Cell::Text("[1,2]".into())
            ]
        );
        let mut short = Reader {
            buf: &bytes[..4],
            pos: 1,
        };
        assert_eq!(
            short.cell(&types[1]).unwrap(),
            None,
            "incomplete: wait for more bytes"
        );
    }
}
