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

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
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
fn uuid_text(h: &str) -> Cell {
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
fn json_array(items: Vec<Cell>) -> Cell {
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

/// The settings that make a modern server's ArrowStream answer carry plain strings, plain (not
/// dictionary) low-cardinality columns and uncompressed buffers, as [`arrow_cell`] reads them.
pub const ARROW_SETTINGS: [(&str, &str); 3] = [
    ("output_format_arrow_string_as_string", "1"),
    ("output_format_arrow_low_cardinality_as_dictionary", "0"),
    ("output_format_arrow_compression_method", "none"),
];

/// Row `row` of a column of a ClickHouse ArrowStream answer, as the same [`Cell`] the
/// RowBinary reader gives for that value.
pub fn arrow_cell(t: &ChType, array: &dyn Array, row: usize) -> Result<Cell, String> {
    if array.is_null(row) {
        return Ok(Cell::Null);
    }
    let unexpected = || format!("ClickHouse sent {} for {t:?}", array.data_type());
    let integer = |array: &dyn Array| -> Option<i128> {
        Some(match array.data_type() {
            DataType::Int8 => i128::from(array.as_primitive_opt::<Int8Type>()?.value(row)),
            DataType::Int16 => i128::from(array.as_primitive_opt::<Int16Type>()?.value(row)),
            DataType::Int32 => i128::from(array.as_primitive_opt::<Int32Type>()?.value(row)),
            DataType::Int64 => i128::from(array.as_primitive_opt::<Int64Type>()?.value(row)),
            DataType::UInt8 => i128::from(array.as_primitive_opt::<UInt8Type>()?.value(row)),
            DataType::UInt16 => i128::from(array.as_primitive_opt::<UInt16Type>()?.value(row)),
            DataType::UInt32 => i128::from(array.as_primitive_opt::<UInt32Type>()?.value(row)),
            DataType::UInt64 => i128::from(array.as_primitive_opt::<UInt64Type>()?.value(row)),
            DataType::Date32 => i128::from(array.as_primitive_opt::<Date32Type>()?.value(row)),
            DataType::Decimal128(..) => array.as_primitive_opt::<Decimal128Type>()?.value(row),
            _ => return None,
        })
    };
    let bytes = |array: &dyn Array| -> Option<Vec<u8>> {
        Some(match array.data_type() {
            DataType::Utf8 => array.as_string_opt::<i32>()?.value(row).as_bytes().to_vec(),
            DataType::LargeUtf8 => array.as_string_opt::<i64>()?.value(row).as_bytes().to_vec(),
            DataType::Binary => array.as_binary_opt::<i32>()?.value(row).to_vec(),
            DataType::LargeBinary => array.as_binary_opt::<i64>()?.value(row).to_vec(),
            DataType::FixedSizeBinary(_) => array.as_fixed_size_binary_opt()?.value(row).to_vec(),
            _ => return None,
        })
    };
    let text = |b: Vec<u8>| String::from_utf8(b).map_err(|e| format!("invalid UTF-8: {e}"));
    Ok(match t {
        ChType::Nullable(inner) => arrow_cell(inner, array, row)?,
        ChType::Int(_) | ChType::UInt(_) | ChType::Decimal(..) => {
            Cell::Int(integer(array).ok_or_else(unexpected)?)
        }
        ChType::Float32 => Cell::F32(
            array
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(unexpected)?
                .value(row),
        ),
        ChType::Float64 => Cell::F64(
            array
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(unexpected)?
                .value(row),
        ),
        ChType::String => Cell::Text(text(bytes(array).ok_or_else(unexpected)?)?),
        ChType::FixedString(_) => {
            let mut b = bytes(array).ok_or_else(unexpected)?;
            let end = b.iter().rposition(|c| *c != 0).map(|i| i + 1).unwrap_or(0);
            b.truncate(end);
            Cell::Text(text(b)?)
        }
        ChType::Enum(_, values) => {
            let v = integer(array).ok_or_else(unexpected)?;
            let label = values
                .iter()
                .find(|(k, _)| i128::from(*k) == v)
                .map(|(_, l)| l.clone());
            Cell::Text(label.ok_or_else(|| format!("enum value {v} has no label"))?)
        }
        ChType::Uuid => {
            // The arrow.uuid extension: the 16 bytes in their usual (big-endian) order.
            let b = bytes(array).ok_or_else(unexpected)?;
            if b.len() != 16 {
                return Err(unexpected());
            }
            uuid_text(&b.iter().map(|x| format!("{x:02x}")).collect::<String>())
        }
        ChType::Date => Cell::Date(
            i32::try_from(integer(array).ok_or_else(unexpected)?).map_err(|_| unexpected())?,
        ),
        ChType::DateTime => Cell::Micros(
            i64::try_from(integer(array).ok_or_else(unexpected)?).map_err(|_| unexpected())?
                * 1_000_000,
        ),
        ChType::DateTime64(_) => {
            let DataType::Timestamp(unit, _) = array.data_type() else {
                return Err(unexpected());
            };
            let micros = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .checked_mul(1_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .checked_mul(1_000),
                TimeUnit::Microsecond => {
                    Some(array.as_primitive::<TimestampMicrosecondType>().value(row))
                }
                TimeUnit::Nanosecond => {
                    let ns = array.as_primitive::<TimestampNanosecondType>().value(row);
                    if ns % 1000 != 0 {
                        return Err("DateTime64 value has more than microsecond precision, which Delta cannot store".into());
                    }
                    Some(ns / 1000)
                }
            };
            Cell::Micros(micros.ok_or_else(|| "DateTime64 value out of range".to_string())?)
        }
        ChType::Array(inner) => {
            let list = array.as_list_opt::<i32>().ok_or_else(unexpected)?;
            let values = list.value(row);
            let items = (0..values.len())
                .map(|i| arrow_cell(inner, values.as_ref(), i))
                .collect::<Result<Vec<_>, _>>()?;
            json_array(items)
        }
    })
}

/// An ArrowStream answer decoded as its bytes arrive, however they are cut.
#[derive(Default)]
pub struct ArrowStream {
    decoder: arrow::ipc::reader::StreamDecoder,
}

impl ArrowStream {
    /// The batches completed by `chunk`.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<arrow::record_batch::RecordBatch>, String> {
        let mut buffer = arrow::buffer::Buffer::from(chunk.to_vec());
        let mut batches = Vec::new();
        while !buffer.is_empty() {
            if let Some(batch) = self
                .decoder
                .decode(&mut buffer)
                .map_err(|e| format!("unreadable ArrowStream: {e}"))?
            {
                batches.push(batch);
            }
        }
        Ok(batches)
    }

    /// Checks that the answer did not stop inside a message.
    pub fn finish(mut self) -> Result<(), String> {
        self.decoder
            .finish()
            .map_err(|e| format!("the ArrowStream answer ended early: {e}"))
    }
}

/// Whether a server (by `version()`) answers in ArrowStream with [`ARROW_SETTINGS`]: 23.3 and
/// later; older ones (18.16 has no Arrow output at all) are read as RowBinary.
pub fn speaks_arrow(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (23, 3)
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

    /// The same rows from a modern ClickHouse (26.9, through chdb) in both formats —
    /// `testdata/all_types.sql` made them — decode to the same cells.
    #[test]
    fn arrow_stream_and_row_binary_decode_alike() {
        let types: Vec<ChType> = include_str!("testdata/all_types.types")
            .lines()
            .map(|l| parse(&l.split('\t').nth(1).unwrap().replace("\\'", "'")).unwrap())
            .collect();
        let row_binary: &[u8] = include_bytes!("testdata/all_types.rowbinary");
        let mut reader = Reader {
            buf: row_binary,
            pos: 0,
        };
        let mut expected = Vec::new();
        while reader.pos < row_binary.len() {
            let row: Vec<Cell> = types
                .iter()
                .map(|t| reader.cell(t).unwrap().unwrap())
                .collect();
            expected.push(row);
        }
        assert_eq!(expected.len(), 2);
        // Cut into pieces that end inside messages, as HTTP chunks do.
        let mut stream = ArrowStream::default();
        let mut batches = Vec::new();
        for piece in include_bytes!("testdata/all_types.arrows").chunks(100) {
            batches.extend(stream.push(piece).unwrap());
        }
        stream.finish().unwrap();
        let mut decoded = Vec::new();
        for batch in batches {
            for row in 0..batch.num_rows() {
                decoded.push(
                    types
                        .iter()
                        .enumerate()
                        .map(|(c, t)| arrow_cell(t, batch.column(c).as_ref(), row).unwrap())
                        .collect::<Vec<_>>(),
                );
            }
        }
        assert_eq!(decoded, expected);
        assert_eq!(
            decoded[0][16],
            Cell::Text("61f0c404-5cb3-11e7-907b-a6006ad3dba0".into())
        );
        assert_eq!(decoded[0][15], Cell::Text("large".into()));
        assert_eq!(decoded[1][22], Cell::Null);
    }

    #[test]
    fn arrow_stream_only_from_servers_that_have_it() {
        assert!(!speaks_arrow("18.16.1"));
        assert!(!speaks_arrow("23.2.5.46"));
        assert!(speaks_arrow("23.3.1.1"));
        assert!(speaks_arrow("26.9.2.1"));
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
