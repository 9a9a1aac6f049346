//! The column layout of sealed time-series segments: a [`SegmentCodec`] that stores a
//! segment's rows column by column with the codecs of [`super::codec`].
//!
//! ```text
//! block   := FORMAT  count  versions  keys  widths  column*
//! versions:= min (varint)  ints(version − min)
//! keys    := prefix  SPLIT  heads  ints(head code)  timestamps(tail)    every key ≥ 8 bytes past the prefix
//!          | prefix  RAW  lz4(suffixes)
//! widths  := ints(values per row)                                        (ALTER TABLE ADD COLUMN)
//! column  := kind  nulls  data                                           one per position, rows that have it
//! ```
//!
//! Keys are the common prefix of the segment (the table, often the device) and what follows
//! it: everything but the last eight bytes as a dictionary code, and the last eight bytes
//! (the order-preserving time of a time-series key) as a delta-of-delta integer, so a key
//! costs about a bit. Versions are stored exactly (sync's last-writer-wins reads them).
//! Columns are typed by their values: floats with Chimp128 or decimal scaling, integers,
//! dates and booleans bit-packed, timestamps delta-of-delta, text as a dictionary; any other
//! type as encoded values, LZ4-compressed. Every length is framed, so a damaged block is an
//! error (XX001), never a panic.

use super::codec::{floats, ints, text, timestamps};
use crate::error::{Error, Result};
use crate::mvcc::{DecodedBlock, SegmentCodec, SegmentRow};
use crate::storage::{rowcodec, varint};
use crate::types::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The tag of this codec in segment headers.
pub const COLUMNS: u8 = 1;

const FORMAT: u8 = 1;
const SPLIT: u8 = 0;
const RAW: u8 = 1;

/// How a column's values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Null = 0,
    Float8 = 1,
    Bool = 2,
    Int2 = 3,
    Int4 = 4,
    Int8 = 5,
    Date = 6,
    Time = 7,
    Timestamp = 8,
    TimestampTz = 9,
    Text = 10,
    /// Anything else: each value encoded alone, LZ4-compressed together.
    Values = 11,
}

impl Kind {
    fn of(value: &Value) -> Kind {
        match value {
            Value::Null => Kind::Null,
            Value::Float8(_) => Kind::Float8,
            Value::Bool(_) => Kind::Bool,
            Value::Int2(_) => Kind::Int2,
            Value::Int4(_) => Kind::Int4,
            Value::Int8(_) => Kind::Int8,
            Value::Date(_) => Kind::Date,
            Value::Time(_) => Kind::Time,
            Value::Timestamp(_) => Kind::Timestamp,
            Value::TimestampTz(_) => Kind::TimestampTz,
            Value::Text(_) => Kind::Text,
            _ => Kind::Values,
        }
    }

    fn from_tag(tag: u8) -> Result<Kind> {
        const ALL: [Kind; 12] = [
            Kind::Null,
            Kind::Float8,
            Kind::Bool,
            Kind::Int2,
            Kind::Int4,
            Kind::Int8,
            Kind::Date,
            Kind::Time,
            Kind::Timestamp,
            Kind::TimestampTz,
            Kind::Text,
            Kind::Values,
        ];
        ALL.get(tag as usize).copied().ok_or_else(|| damaged("a column kind"))
    }

    fn int(value: &Value) -> i64 {
        match value {
            Value::Bool(b) => *b as i64,
            Value::Int2(v) => *v as i64,
            Value::Int4(v) | Value::Date(v) => *v as i64,
            Value::Int8(v) | Value::Time(v) => *v,
            _ => 0,
        }
    }

    fn value(self, v: i64) -> Result<Value> {
        let narrow = || damaged("an integer column");
        Ok(match self {
            Kind::Bool => Value::Bool(v != 0),
            Kind::Int2 => Value::Int2(i16::try_from(v).map_err(|_| narrow())?),
            Kind::Int4 => Value::Int4(i32::try_from(v).map_err(|_| narrow())?),
            Kind::Date => Value::Date(i32::try_from(v).map_err(|_| narrow())?),
            Kind::Int8 => Value::Int8(v),
            Kind::Time => Value::Time(v),
            Kind::Timestamp => Value::Timestamp(v),
            Kind::TimestampTz => Value::TimestampTz(v),
            _ => return Err(damaged("a column kind")),
        })
    }
}

fn damaged(what: &str) -> Error {
    Error::Corruption(format!("{what} of a sealed segment is damaged"))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    varint::put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn take_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8]> {
    let len = varint::take(input)?;
    if len > input.len() as u64 {
        return Err(damaged("a length"));
    }
    let (head, rest) = input.split_at(len as usize);
    *input = rest;
    Ok(head)
}

fn take_u8(input: &mut &[u8]) -> Result<u8> {
    let (&b, rest) = input.split_first().ok_or_else(|| damaged("a block"))?;
    *input = rest;
    Ok(b)
}

/// Decodes a column of `count` values, refusing another count.
fn exactly<T>(values: Vec<T>, count: usize, what: &str) -> Result<Vec<T>> {
    if values.len() != count {
        return Err(damaged(what));
    }
    Ok(values)
}

/// The time-series column layout.
pub struct ColumnCodec;

impl SegmentCodec for ColumnCodec {
    fn tag(&self) -> u8 {
        COLUMNS
    }

    fn encode(&self, rows: &[SegmentRow]) -> Result<Vec<u8>> {
        let mut out = vec![FORMAT];
        varint::put(&mut out, rows.len() as u64);
        let min = rows.iter().map(|r| r.version).min().unwrap_or(0);
        varint::put(&mut out, min);
        put_bytes(&mut out, &ints::encode(&rows.iter().map(|r| (r.version - min) as i64).collect::<Vec<_>>()));
        encode_keys(rows, &mut out);
        let decoded: Vec<Vec<Value>> = rows.iter().map(|r| rowcodec::decode_row(&r.value)).collect::<Result<_>>()?;
        put_bytes(&mut out, &ints::encode(&decoded.iter().map(|r| r.len() as i64).collect::<Vec<_>>()));
        let width = decoded.iter().map(Vec::len).max().unwrap_or(0);
        for column in 0..width {
            let values: Vec<&Value> = decoded.iter().filter_map(|r| r.get(column)).collect();
            encode_column(&values, &mut out);
        }
        Ok(out)
    }

    fn decode(&self, block: &[u8]) -> Result<Arc<dyn DecodedBlock>> {
        let mut input = block;
        if take_u8(&mut input)? != FORMAT {
            return Err(damaged("the format"));
        }
        let count = varint::take(&mut input)?;
        if count > block.len() as u64 * 8 {
            return Err(damaged("the row count"));
        }
        let count = count as usize;
        let min = varint::take(&mut input)?;
        let versions = exactly(ints::decode(take_bytes(&mut input)?)?, count, "the versions")?;
        let versions = versions.into_iter().map(|v| min.wrapping_add(v as u64)).collect();
        let (keys, ends) = decode_keys(&mut input, count)?;
        let widths = exactly(ints::decode(take_bytes(&mut input)?)?, count, "the row widths")?;
        if widths.iter().any(|w| !(0..=MAX_WIDTH).contains(w)) {
            return Err(damaged("the row widths"));
        }
        let widths: Vec<u16> = widths.into_iter().map(|w| w as u16).collect();
        let width = widths.iter().copied().max().unwrap_or(0) as usize;
        let mut columns = Vec::with_capacity(width);
        for column in 0..width {
            let present = widths.iter().filter(|w| **w as usize > column).count();
            let positions = (present < count).then(|| {
                let mut next = 0u32;
                widths
                    .iter()
                    .map(|w| {
                        let at = next;
                        if *w as usize > column {
                            next += 1;
                        }
                        at
                    })
                    .collect()
            });
            columns.push(Column { positions, ..decode_column(&mut input, present)? });
        }
        Ok(Arc::new(ColumnBlock { keys, ends, versions, widths, columns }))
    }
}

/// The most columns a row may have (PostgreSQL's limit).
const MAX_WIDTH: i64 = 1600;

/// A decoded block: keys in one buffer, versions, and each column as a typed vector.
struct ColumnBlock {
    keys: Vec<u8>,
    /// Where each key ends in `keys`.
    ends: Vec<u32>,
    versions: Vec<u64>,
    widths: Vec<u16>,
    columns: Vec<Column>,
}

/// One column of a decoded block: a slot per row that has the column.
struct Column {
    data: Data,
    nulls: Option<Vec<bool>>,
    /// The slot of each row, when some rows lack the column (shorter rows from before an
    /// ADD COLUMN); else row i is slot i.
    positions: Option<Vec<u32>>,
}

enum Data {
    Null,
    Float8(Vec<f64>),
    Int(Kind, Vec<i64>),
    /// Distinct values and a code per slot.
    Text(Vec<String>, Vec<u32>),
    Values(Vec<Value>),
}

impl Column {
    fn value(&self, row: usize) -> Result<Value> {
        let slot = self.positions.as_ref().map_or(row, |p| p[row] as usize);
        if self.nulls.as_ref().is_some_and(|n| n[slot]) {
            return Ok(Value::Null);
        }
        Ok(match &self.data {
            Data::Null => Value::Null,
            Data::Float8(v) => Value::Float8(v[slot]),
            Data::Int(kind, v) => kind.value(v[slot])?,
            Data::Text(dictionary, codes) => Value::Text(dictionary[codes[slot] as usize].clone()),
            Data::Values(v) => v[slot].clone(),
        })
    }

    fn size(&self) -> usize {
        let data = match &self.data {
            Data::Null => 0,
            Data::Float8(v) => v.len() * 8,
            Data::Int(_, v) => v.len() * 8,
            Data::Text(dictionary, codes) => {
                dictionary.iter().map(|s| s.capacity() + 24).sum::<usize>() + codes.len() * 4
            }
            Data::Values(v) => v.len() * 48,
        };
        data + self.nulls.as_ref().map_or(0, Vec::len) + self.positions.as_ref().map_or(0, |p| p.len() * 4)
    }
}

impl DecodedBlock for ColumnBlock {
    fn len(&self) -> usize {
        self.versions.len()
    }

    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.keys[start..self.ends[i] as usize]
    }

    fn version(&self, i: usize) -> u64 {
        self.versions[i]
    }

    fn value(&self, i: usize) -> Vec<u8> {
        let row: Vec<Value> =
            (0..self.widths[i] as usize).map(|c| self.columns[c].value(i).unwrap_or(Value::Null)).collect();
        rowcodec::encode_row(&row)
    }

    fn size(&self) -> usize {
        self.keys.len()
            + self.ends.len() * 4
            + self.versions.len() * 10
            + self.columns.iter().map(Column::size).sum::<usize>()
    }
}

fn common_prefix(rows: &[SegmentRow]) -> usize {
    let Some(first) = rows.first() else { return 0 };
    rows.iter().fold(first.key.len(), |n, r| first.key[..n].iter().zip(&r.key).take_while(|(a, b)| a == b).count())
}

fn encode_keys(rows: &[SegmentRow], out: &mut Vec<u8>) {
    // The prefix stops short of the time (the last eight bytes), which is coded on its own
    // even where the times of every row share their first bytes.
    let shortest = rows.iter().map(|r| r.key.len()).min().unwrap_or(0);
    let prefix = if shortest >= 8 { common_prefix(rows).min(shortest - 8) } else { common_prefix(rows) };
    put_bytes(out, rows.first().map_or(&[][..], |r| &r.key[..prefix]));
    if rows.iter().all(|r| r.key.len() >= prefix + 8) {
        out.push(SPLIT);
        let mut heads: Vec<&[u8]> = Vec::new();
        let mut codes_of: HashMap<&[u8], i64> = HashMap::new();
        let mut codes = Vec::with_capacity(rows.len());
        let mut tails = Vec::with_capacity(rows.len());
        for row in rows {
            let (head, tail) = row.key[prefix..].split_at(row.key.len() - prefix - 8);
            let next = heads.len() as i64;
            codes.push(*codes_of.entry(head).or_insert_with(|| {
                heads.push(head);
                next
            }));
            tails.push(u64::from_be_bytes(tail.try_into().expect("eight bytes")) as i64);
        }
        varint::put(out, heads.len() as u64);
        for head in heads {
            put_bytes(out, head);
        }
        put_bytes(out, &ints::encode(&codes));
        put_bytes(out, &timestamps::encode(&tails));
    } else {
        out.push(RAW);
        let mut suffixes = Vec::new();
        for row in rows {
            put_bytes(&mut suffixes, &row.key[prefix..]);
        }
        put_bytes(out, &lz4_flex::compress_prepend_size(&suffixes));
    }
}

/// The most bytes the keys of one block may take once decoded.
const MAX_KEY_BYTES: usize = 1 << 28;

fn decode_keys(input: &mut &[u8], count: usize) -> Result<(Vec<u8>, Vec<u32>)> {
    let prefix = take_bytes(input)?;
    // A damaged header must not make the prefix, repeated per key, exhaust memory.
    if prefix.len().saturating_mul(count) > MAX_KEY_BYTES {
        return Err(damaged("the key prefix"));
    }
    let mut keys = Vec::new();
    let mut ends = Vec::with_capacity(count);
    let mut push = |parts: &[&[u8]]| -> Result<()> {
        keys.extend_from_slice(prefix);
        for part in parts {
            keys.extend_from_slice(part);
        }
        ends.push(u32::try_from(keys.len()).map_err(|_| damaged("the keys"))?);
        Ok(())
    };
    match take_u8(input)? {
        SPLIT => {
            let distinct = varint::take(input)?;
            if distinct > input.len() as u64 {
                return Err(damaged("the key dictionary"));
            }
            let heads: Vec<&[u8]> = (0..distinct).map(|_| take_bytes(input)).collect::<Result<_>>()?;
            let codes = exactly(ints::decode(take_bytes(input)?)?, count, "the key codes")?;
            let tails = exactly(timestamps::decode(take_bytes(input)?)?, count, "the key times")?;
            for (&code, tail) in codes.iter().zip(tails) {
                let head =
                    usize::try_from(code).ok().and_then(|c| heads.get(c)).ok_or_else(|| damaged("a key code"))?;
                push(&[head, &(tail as u64).to_be_bytes()])?;
            }
        }
        RAW => {
            let suffixes = lz4_flex::decompress_size_prepended(take_bytes(input)?).map_err(|_| damaged("the keys"))?;
            let mut rest = suffixes.as_slice();
            for _ in 0..count {
                push(&[take_bytes(&mut rest)?])?;
            }
        }
        _ => return Err(damaged("the key layout")),
    }
    Ok((keys, ends))
}

fn encode_column(values: &[&Value], out: &mut Vec<u8>) {
    let mut kinds = values.iter().map(|v| Kind::of(v)).filter(|k| *k != Kind::Null);
    let kind = match kinds.next() {
        None => Kind::Null,
        Some(first) if kinds.all(|k| k == first) => first,
        Some(_) => Kind::Values,
    };
    out.push(kind as u8);
    if kind == Kind::Null {
        return;
    }
    // NULLs: a bitmap when there are any (the values skip them), except for encoded values,
    // which hold their NULLs.
    let nulls: Vec<bool> = values.iter().map(|v| v.is_null()).collect();
    if kind != Kind::Values && nulls.iter().any(|n| *n) {
        let mut bitmap = vec![0u8; nulls.len().div_ceil(8)];
        for (i, _) in nulls.iter().enumerate().filter(|(_, n)| **n) {
            bitmap[i / 8] |= 1 << (i % 8);
        }
        out.push(1);
        put_bytes(out, &bitmap);
    } else {
        out.push(0);
    }
    let present = || values.iter().filter(|v| !v.is_null());
    let data = match kind {
        Kind::Float8 => {
            floats::encode(&present().map(|v| if let Value::Float8(f) = v { *f } else { 0.0 }).collect::<Vec<_>>())
        }
        Kind::Bool | Kind::Int2 | Kind::Int4 | Kind::Int8 | Kind::Date | Kind::Time => {
            ints::encode(&present().map(|v| Kind::int(v)).collect::<Vec<_>>())
        }
        Kind::Timestamp | Kind::TimestampTz => timestamps::encode(
            &present()
                .map(|v| if let Value::Timestamp(t) | Value::TimestampTz(t) = v { *t } else { 0 })
                .collect::<Vec<_>>(),
        ),
        Kind::Text => {
            text::encode(&present().map(|v| if let Value::Text(s) = v { s.as_str() } else { "" }).collect::<Vec<_>>())
        }
        Kind::Values | Kind::Null => {
            let mut all = Vec::new();
            for v in values {
                put_bytes(&mut all, &rowcodec::encode_row(std::slice::from_ref(*v)));
            }
            lz4_flex::compress_prepend_size(&all)
        }
    };
    put_bytes(out, &data);
}

fn decode_column(input: &mut &[u8], count: usize) -> Result<Column> {
    let column = |data, nulls| Ok(Column { data, nulls, positions: None });
    let kind = Kind::from_tag(take_u8(input)?)?;
    if kind == Kind::Null {
        return column(Data::Null, None);
    }
    let nulls: Option<Vec<bool>> = match take_u8(input)? {
        0 => None,
        1 => {
            let bitmap = take_bytes(input)?;
            if bitmap.len() != count.div_ceil(8) {
                return Err(damaged("a NULL bitmap"));
            }
            Some((0..count).map(|i| bitmap[i / 8] & (1 << (i % 8)) != 0).collect())
        }
        _ => return Err(damaged("a NULL marker")),
    };
    let present = nulls.as_ref().map_or(count, |n| n.iter().filter(|n| !**n).count());
    let data = take_bytes(input)?;
    // Present values, spread over every slot (NULL slots hold a placeholder).
    fn spread<T: Clone + Default>(values: Vec<T>, nulls: &Option<Vec<bool>>) -> Vec<T> {
        let Some(nulls) = nulls else { return values };
        let mut values = values.into_iter();
        nulls.iter().map(|null| if *null { T::default() } else { values.next().unwrap_or_default() }).collect()
    }
    match kind {
        Kind::Float8 => {
            let values = exactly(floats::decode(data)?, present, "a float column")?;
            column(Data::Float8(spread(values, &nulls)), nulls)
        }
        Kind::Bool
        | Kind::Int2
        | Kind::Int4
        | Kind::Int8
        | Kind::Date
        | Kind::Time
        | Kind::Timestamp
        | Kind::TimestampTz => {
            let raw = if matches!(kind, Kind::Timestamp | Kind::TimestampTz) {
                timestamps::decode(data)?
            } else {
                ints::decode(data)?
            };
            let values = exactly(raw, present, "an integer column")?;
            // Out-of-range values are refused here rather than when a row is read.
            for v in &values {
                kind.value(*v)?;
            }
            column(Data::Int(kind, spread(values, &nulls)), nulls)
        }
        Kind::Text => {
            let values = exactly(text::decode(data)?, present, "a text column")?;
            let mut dictionary = Vec::new();
            let mut lookup: HashMap<String, u32> = HashMap::new();
            let codes = values
                .into_iter()
                .map(|v| {
                    *lookup.entry(v).or_insert_with_key(|v| {
                        dictionary.push(v.clone());
                        dictionary.len() as u32 - 1
                    })
                })
                .collect();
            column(Data::Text(dictionary, spread(codes, &nulls)), nulls)
        }
        Kind::Values | Kind::Null => {
            let all = lz4_flex::decompress_size_prepended(data).map_err(|_| damaged("a value column"))?;
            let mut rest = all.as_slice();
            let mut values = Vec::with_capacity(count.min(1 << 16));
            for _ in 0..count {
                let mut row = rowcodec::decode_row(take_bytes(&mut rest)?)?;
                if row.len() != 1 {
                    return Err(damaged("a value column"));
                }
                values.push(row.pop().expect("one value"));
            }
            column(Data::Values(values), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<f64>().prop_map(Value::Float8),
            any::<u64>().prop_map(|bits| Value::Float8(f64::from_bits(bits))),
            (-50i64..50).prop_map(|v| Value::Float8(v as f64 / 10.0)),
            any::<i64>().prop_map(Value::Int8),
            any::<i32>().prop_map(Value::Int4),
            any::<i16>().prop_map(Value::Int2),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::Date),
            any::<i64>().prop_map(Value::TimestampTz),
            "[a-c]{0,3}".prop_map(Value::Text),
            any::<u128>().prop_map(Value::Uuid),
        ]
    }

    /// Rows with keys in order: a shared prefix, a head of a few kinds, and a time tail (or
    /// short keys, which take the raw layout).
    fn rows() -> impl Strategy<Value = Vec<SegmentRow>> {
        let row = (prop::collection::vec(value(), 0..5), any::<u64>(), 0u8..3, any::<u64>(), any::<bool>());
        prop::collection::vec(row, 1..80).prop_map(|rows| {
            let mut out: Vec<SegmentRow> = rows
                .into_iter()
                .map(|(values, version, head, tail, short)| {
                    let mut key = vec![0x02, 0, 0, 0, 9];
                    key.extend(std::iter::repeat_n(b'd', head as usize + 1));
                    key.push(0);
                    if !short {
                        key.extend_from_slice(&tail.to_be_bytes());
                    }
                    SegmentRow { key, value: rowcodec::encode_row(&values), version }
                })
                .collect();
            out.sort_by(|a, b| a.key.cmp(&b.key));
            out.dedup_by(|a, b| a.key == b.key);
            out
        })
    }

    fn decoded(rows: &[SegmentRow]) -> Vec<(Vec<u8>, Vec<Value>, u64)> {
        rows.iter().map(|r| (r.key.clone(), rowcodec::decode_row(&r.value).unwrap(), r.version)).collect()
    }

    /// Values compared by their encoding, so NaN payloads and -0.0 count.
    fn same(a: &[(Vec<u8>, Vec<Value>, u64)], b: &[(Vec<u8>, Vec<Value>, u64)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && x.2 == y.2 && rowcodec::encode_row(&x.1) == rowcodec::encode_row(&y.1))
    }

    proptest! {
        #[test]
        fn segments_round_trip_every_row(rows in rows()) {
            let block = ColumnCodec.encode(&rows).unwrap();
            let back = crate::mvcc::block_rows(ColumnCodec.decode(&block).unwrap().as_ref());
            prop_assert!(same(&decoded(&rows), &decoded(&back)));
        }

        #[test]
        fn damaged_blocks_are_errors_not_panics(rows in rows(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
            let block = ColumnCodec.encode(&rows).unwrap();
            let at = cut.index(block.len());
            let _ = ColumnCodec.decode(&block[..at]);
            let mut changed = block.clone();
            changed[at] ^= flip | 1;
            let _ = ColumnCodec.decode(&changed);
        }
    }

    /// One device, a reading every 10 s rounded to 0.1: bytes per row, with every row from
    /// one bulk load (one version) or each from a commit of its own.
    fn sensor_block_bytes_per_row(one_version: bool) -> f64 {
        let rows: Vec<SegmentRow> = (0..8192i64)
            .map(|i| {
                let ts = 1_700_000_000_000_000 + i * 10_000_000;
                let mut key = vec![0x02, 0, 0, 0, 9];
                crate::storage::keycode::encode_value(&Value::Text("d1".into()), &mut key);
                crate::storage::keycode::encode_value(&Value::TimestampTz(ts), &mut key);
                let temp = ((20.0 + (i as f64 / 50.0).sin() * 5.0) * 10.0).round() / 10.0;
                let row = [Value::Text("d1".into()), Value::TimestampTz(ts), Value::Float8(temp)];
                let version = if one_version { 1 << 60 } else { (1 << 60) + i as u64 * 7_000_000_000 };
                SegmentRow { key, value: rowcodec::encode_row(&row), version }
            })
            .collect();
        let block = ColumnCodec.encode(&rows).unwrap();
        let back = crate::mvcc::block_rows(ColumnCodec.decode(&block).unwrap().as_ref());
        assert!(same(&decoded(&rows), &decoded(&back)));
        block.len() as f64 / rows.len() as f64
    }

    #[test]
    fn sensor_rows_cost_a_few_bytes() {
        // Key and time about a bit each, the reading about eight: the times of a block share
        // their first bytes, which must not pull the key layout off the time.
        let bulk = sensor_block_bytes_per_row(true);
        assert!(bulk < 1.5, "{bulk} bytes per row");
        // A version per row adds its delta.
        let single = sensor_block_bytes_per_row(false);
        assert!(single < 6.0, "{single} bytes per row");
    }
}
