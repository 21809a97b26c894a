//! PostgreSQL binary wire values → Arrow builder appends, for query results and binary COPY
//! alike: the value encoding is identical.

use crate::batch::ColumnBuilder;

use super::types::Decode;

/// Microseconds (and days) between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// Why a value could not be stored exactly; the caller adds table and column.
pub type ValueError = String;

fn fixed<const N: usize>(raw: &[u8]) -> Result<[u8; N], ValueError> {
    raw.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", raw.len()))
}

pub fn append(
    builder: &mut ColumnBuilder,
    decode: Decode,
    raw: Option<&[u8]>,
) -> Result<(), ValueError> {
    let Some(raw) = raw else {
        builder.append_null();
        return Ok(());
    };
    match (decode, builder) {
        (Decode::I16, ColumnBuilder::Int16(b)) => b.append_value(i16::from_be_bytes(fixed(raw)?)),
        (Decode::I32, ColumnBuilder::Int32(b)) => b.append_value(i32::from_be_bytes(fixed(raw)?)),
        (Decode::I64, ColumnBuilder::Int64(b)) => b.append_value(i64::from_be_bytes(fixed(raw)?)),
        (Decode::F32, ColumnBuilder::Float32(b)) => b.append_value(f32::from_be_bytes(fixed(raw)?)),
        (Decode::F64, ColumnBuilder::Float64(b)) => b.append_value(f64::from_be_bytes(fixed(raw)?)),
        (Decode::Bool, ColumnBuilder::Boolean(b)) => b.append_value(raw.first() == Some(&1)),
        (Decode::Text, ColumnBuilder::Utf8(b)) => {
            b.append_value(std::str::from_utf8(raw).map_err(|e| format!("invalid UTF-8: {e}"))?)
        }
        (Decode::Bytes, ColumnBuilder::Binary(b)) => b.append_value(raw),
        (Decode::Numeric, ColumnBuilder::Decimal(b, p, s)) => b.append_value(numeric(raw, *p, *s)?),
        (Decode::Date, ColumnBuilder::Date32(b)) => {
            let days = i32::from_be_bytes(fixed(raw)?);
            if days == i32::MAX || days == i32::MIN {
                return Err("date is ±infinity, which Delta cannot store".into());
            }
            b.append_value(
                days.checked_add(PG_EPOCH_DAYS)
                    .ok_or("date is out of Delta's range")?,
            )
        }
        (Decode::Timestamp, ColumnBuilder::TimestampMicros(b, _)) => {
            let micros = i64::from_be_bytes(fixed(raw)?);
            if micros == i64::MAX || micros == i64::MIN {
                return Err("timestamp is ±infinity, which Delta cannot store".into());
            }
            b.append_value(
                micros
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or("timestamp is out of Delta's range")?,
            )
        }
        (decode, _) => {
            return Err(format!(
                "internal: decoder {decode:?} does not fit the column builder"
            ))
        }
    }
    Ok(())
}

/// A binary `numeric` as the integer of a decimal(precision, scale): exact or an error.
pub fn numeric(raw: &[u8], precision: u8, scale: i8) -> Result<i128, ValueError> {
    if raw.len() < 8 {
        return Err("truncated numeric".into());
    }
    let word = |i: usize| u16::from_be_bytes([raw[i], raw[i + 1]]);
    let ndigits = word(0) as usize;
    let weight = word(2) as i16 as i32;
    let sign = word(4);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("numeric NaN, which Delta's decimal cannot store".into()),
        0xD000 | 0xF000 => {
            return Err("numeric ±infinity, which Delta's decimal cannot store".into())
        }
        other => return Err(format!("unknown numeric sign {other:#x}")),
    }
    if raw.len() != 8 + 2 * ndigits {
        return Err("numeric length does not match its digit count".into());
    }
    let too_big = || format!("numeric does not fit decimal({precision},{scale})");
    // value = Σ digit[i] · 10000^(weight − i); each group is shifted straight to `scale`, so
    // fraction groups past the scale never inflate the intermediate value.
    let mut scaled: i128 = 0;
    for i in 0..ndigits {
        let digit = i128::from(word(8 + 2 * i));
        if digit == 0 {
            continue;
        }
        let exponent = 4 * (weight - i as i32) + i32::from(scale);
        let part = if exponent >= 0 {
            10i128
                .checked_pow(exponent as u32)
                .and_then(|f| digit.checked_mul(f))
                .ok_or_else(too_big)?
        } else {
            let f = 10i128.pow((-exponent).min(4) as u32);
            if -exponent >= 4 || digit % f != 0 {
                return Err(format!(
                    "numeric has more than {scale} decimal places; decimal({precision},{scale}) would round it"
                ));
            }
            digit / f
        };
        scaled = scaled.checked_add(part).ok_or_else(too_big)?;
    }
    if scaled.unsigned_abs() >= 10u128.pow(u32::from(precision)) {
        return Err(too_big());
    }
    Ok(if sign == 0x4000 { -scaled } else { scaled })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_decode_exactly() {
        // 12345.67 = [1, 2345, 6700], weight 1
        assert_eq!(
            numeric(&enc(3, 1, 0, 2, &[1, 2345, 6700]), 12, 2).unwrap(),
            1_234_567
        );
        // -0.005
        assert_eq!(numeric(&enc(1, -1, 0x4000, 3, &[50]), 10, 3).unwrap(), -5);
        // 0
        assert_eq!(numeric(&enc(0, 0, 0, 0, &[]), 10, 2).unwrap(), 0);
        // 1e8 = [1], weight 2
        assert_eq!(
            numeric(&enc(1, 2, 0, 0, &[1]), 38, 9).unwrap(),
            100_000_000_000_000_000
        );
        assert!(numeric(&enc(1, -1, 0, 4, &[1]), 10, 2)
            .unwrap_err()
            .contains("decimal places"));
        assert!(numeric(&enc(0, 0, 0xC000, 0, &[]), 10, 2)
            .unwrap_err()
            .contains("NaN"));
        assert!(numeric(&enc(1, 10, 0, 0, &[1]), 38, 9).is_err());
    }
}
