//! Text columns: a dictionary with bit-packed codes when values repeat (device ids, units,
//! states), otherwise the values LZ4-compressed.
//!
//! Dictionary layout: tag 0, count (varint), the distinct values in order of first appearance
//! (varint length and bytes each), then one code per value in `width(distinct − 1)` bits.
//! Plain layout: tag 1, count (varint), the LZ4 block (its size first) of every value as varint
//! length and bytes.

use super::bits::{take_bytes, take_count, varint, width, BitReader, BitWriter};
use crate::error::{Error, Result};
use std::collections::HashMap;

const DICTIONARY: u8 = 0;
const PLAIN: u8 = 1;
/// Dictionaries stop here; a column with more distinct values is stored plain.
pub const MAX_DICTIONARY: usize = 1 << 16;

pub fn encode(values: &[&str]) -> Vec<u8> {
    let mut codes = Vec::with_capacity(values.len());
    let mut index: HashMap<&str, u64> = HashMap::new();
    let mut distinct: Vec<&str> = Vec::new();
    for &v in values {
        let next = distinct.len() as u64;
        let code = *index.entry(v).or_insert_with(|| {
            distinct.push(v);
            next
        });
        if distinct.len() > MAX_DICTIONARY || distinct.len() > values.len() / 2 + 1 {
            return plain(values);
        }
        codes.push(code);
    }
    let mut out = vec![DICTIONARY];
    varint::put(&mut out, values.len() as u64);
    varint::put(&mut out, distinct.len() as u64);
    for v in &distinct {
        varint::put(&mut out, v.len() as u64);
        out.extend_from_slice(v.as_bytes());
    }
    let w = width(distinct.len().saturating_sub(1) as u64);
    let mut bits = BitWriter::new();
    for code in codes {
        bits.write(code, w);
    }
    out.extend(bits.finish());
    out
}

fn plain(values: &[&str]) -> Vec<u8> {
    let mut raw = Vec::new();
    for v in values {
        varint::put(&mut raw, v.len() as u64);
        raw.extend_from_slice(v.as_bytes());
    }
    let mut out = vec![PLAIN];
    varint::put(&mut out, values.len() as u64);
    out.extend(lz4_flex::compress_prepend_size(&raw));
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<String>> {
    let mut input = bytes;
    let tag = take_bytes(&mut input, 1)?[0];
    let count = take_count(&mut input, 0)?;
    match tag {
        DICTIONARY => {
            let distinct = take_count(&mut input, 8)?;
            let mut dictionary = Vec::with_capacity(distinct);
            for _ in 0..distinct {
                let len = varint::take(&mut input)? as usize;
                dictionary.push(utf8(take_bytes(&mut input, len)?)?);
            }
            if count > 0 && dictionary.is_empty() {
                return Err(Error::Corruption("a dictionary column has values but no dictionary".into()));
            }
            let w = width(distinct.saturating_sub(1) as u64);
            let mut bits = BitReader::new(input);
            (0..count)
                .map(|_| {
                    let code = bits.read(w)? as usize;
                    dictionary
                        .get(code)
                        .cloned()
                        .ok_or_else(|| Error::Corruption("a dictionary column's code is past its dictionary".into()))
                })
                .collect()
        }
        PLAIN => {
            // LZ4 expands at most about 255 times; a larger stated size is damage.
            let size = take_bytes(&mut &input[..], 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))?;
            if size as usize > input.len().saturating_mul(255) + 16 {
                return Err(Error::Corruption("a text column states an impossible size".into()));
            }
            let raw = lz4_flex::decompress_size_prepended(input)
                .map_err(|e| Error::Corruption(format!("a text column does not decompress: {e}")))?;
            let mut rest = &raw[..];
            let values = (0..count)
                .map(|_| {
                    let len = varint::take(&mut rest)? as usize;
                    utf8(take_bytes(&mut rest, len)?)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(values)
        }
        _ => Err(Error::Corruption("a text column names an unknown codec".into())),
    }
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::Corruption("a text column holds invalid UTF-8".into()))
}
