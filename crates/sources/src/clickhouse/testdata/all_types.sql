-- The query behind all_types.rowbinary and all_types.arrows, run in chdb 4.4 (ClickHouse 26.9) with
-- the settings of ARROW_SETTINGS; all_types.types is its DESCRIBE.
SELECT id, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, dec, dec128, s, fs, e, u, d, dt, dt64, arr, sarr, ns, ni, lc FROM (
SELECT toUInt32(1) AS id, toInt8(-128) i8, toInt16(-32768) i16, toInt32(-2147483648) i32, toInt64(-9223372036854775808) i64,
 toUInt8(255) u8, toUInt16(65535) u16, toUInt32(4294967295) u32, toUInt64(18446744073709551615) u64,
 toFloat32(1.5) f32, toFloat64(2.25) f64, toDecimal64('12345678901234.5678', 4) dec,
 toDecimal128('-1234567890123456789012345678.1234567890', 10) dec128, 'Zürich – 東京 🚀' s, toFixedString('NLD1', 4) fs,
 CAST('large', 'Enum8(\'small\' = 1, \'large\' = 2)') e, toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') u,
 toDate('2024-02-29') d, toDateTime('2024-02-29 13:14:15', 'UTC') dt, toDateTime64('2024-02-29 13:14:15.123456', 6, 'UTC') dt64,
 [toInt32(1), 2, 3] arr, ['a', 'b"c'] sarr, CAST('text', 'Nullable(String)') ns, CAST(42, 'Nullable(Int64)') ni, toLowCardinality('low') lc
UNION ALL
SELECT toUInt32(2), toInt8(127), toInt16(32767), toInt32(2147483647), toInt64(9223372036854775807), toUInt8(0), toUInt16(0), toUInt32(0), toUInt64(0),
 toFloat32(-0.5), toFloat64(1e300), toDecimal64('-0.0001', 4), toDecimal128('0', 10), '', toFixedString('ab', 4),
 CAST('small', 'Enum8(\'small\' = 1, \'large\' = 2)'), toUUID('00000000-0000-0000-0000-000000000000'),
 toDate('1970-01-02'), toDateTime('1970-01-01 00:00:01', 'UTC'), toDateTime64('1900-01-01 00:00:00.000001', 6, 'UTC'),
 CAST([], 'Array(Int32)'), CAST([], 'Array(String)'), CAST(NULL, 'Nullable(String)'), CAST(NULL, 'Nullable(Int64)'), toLowCardinality('')
) ORDER BY id 