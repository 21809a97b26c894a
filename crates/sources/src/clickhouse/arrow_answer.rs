//! ClickHouse's ArrowStream answers (servers 23.3 and later): the settings that shape them,
//! the decoder that reads them as their bytes arrive, and each value as the same [`Cell`] the
//! RowBinary reader in `types.rs` gives, so both formats load alike.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};

use super::types::{json_array, uuid_text, Cell, ChType};

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
    use crate::clickhouse::types::{parse, Reader};

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
}
