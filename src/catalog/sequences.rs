//! Sequences (`CREATE SEQUENCE`, `SERIAL`, identity columns): their definitions are catalog
//! records under [`SEQUENCE`]; their state (the last value reserved and whether it was
//! handed out) is a counter under [`META`] that nodes advance a block at a time (see
//! [`crate::mvcc::CounterBlock`]).

use super::META;
use crate::error::{Error, Result};
use crate::mvcc::{CounterBlock, Transaction};
use crate::storage::keyspace::Keyspace;
use crate::types::DataType;
use serde::{Deserialize, Serialize};

/// Keyspace of sequence definitions.
pub const SEQUENCE: Keyspace = Keyspace::Sequence;

/// A sequence definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    /// Unique for the life of the database: a sequence dropped and created again under the
    /// same name gets a fresh counter, so no node hands out values of the old one.
    pub id: u32,
    pub name: String,
    pub data_type: DataType,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cycle: bool,
    /// The column whose default or identity it feeds (`SERIAL`): dropped with it.
    pub owned_by: Option<(String, String)>,
}

impl Sequence {
    /// A sequence with PostgreSQL's defaults for its type and direction.
    pub fn new(name: String, data_type: DataType, increment: i64) -> Self {
        let (type_min, type_max) = type_bounds(&data_type);
        let (min, max) = if increment > 0 { (1, type_max) } else { (type_min, -1) };
        Sequence {
            id: 0,
            name,
            data_type,
            start: if increment > 0 { min } else { max },
            increment,
            min,
            max,
            cycle: false,
            owned_by: None,
        }
    }

    /// The key of its state counter.
    pub fn counter_key(&self) -> Vec<u8> {
        super::record_key(META, &format!("sequence/{}", self.id))
    }

    /// The next `count` values after `stored` (the counter: last value and whether it was
    /// handed out; None before the first), and the counter that reserves them.
    pub fn reserve(&self, stored: Option<&[u8]>, count: i64) -> Result<(CounterBlock, Vec<u8>)> {
        let first = match decode_state(stored)? {
            None => self.start,
            Some((last, false)) => last,
            Some((last, true)) => {
                match last.checked_add(self.increment).filter(|v| (self.min..=self.max).contains(v)) {
                    Some(v) => v,
                    None if self.cycle => {
                        if self.increment > 0 {
                            self.min
                        } else {
                            self.max
                        }
                    }
                    None => {
                        let (end, bound) =
                            if self.increment > 0 { ("maximum", self.max) } else { ("minimum", self.min) };
                        return Err(Error::DataException(
                            "2200H",
                            format!("nextval: reached {end} value of sequence \"{}\" ({bound})", self.name),
                        ));
                    }
                }
            }
        };
        let span = self.increment.saturating_mul(count.max(1) - 1);
        let last = first.saturating_add(span).clamp(self.min, self.max);
        Ok((CounterBlock { next: first, last, step: self.increment }, encode_state(last, true)))
    }

    /// Checks the options against each other and the type, as CREATE SEQUENCE does.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidParameter(m));
        let (type_min, type_max) = type_bounds(&self.data_type);
        if self.increment == 0 {
            return bad("INCREMENT must not be zero".into());
        }
        if self.min < type_min || self.max > type_max {
            return bad(format!(
                "MINVALUE ({}) or MAXVALUE ({}) is out of range for the sequence's type",
                self.min, self.max
            ));
        }
        if self.min >= self.max {
            return bad(format!("MINVALUE ({}) must be less than MAXVALUE ({})", self.min, self.max));
        }
        if !(self.min..=self.max).contains(&self.start) {
            return bad(format!(
                "START value ({}) cannot be {} than {} ({})",
                self.start,
                if self.start < self.min { "less" } else { "greater" },
                if self.start < self.min { "MINVALUE" } else { "MAXVALUE" },
                if self.start < self.min { self.min } else { self.max }
            ));
        }
        Ok(())
    }
}

/// The range of a sequence type (bigint unless smallint or integer).
fn type_bounds(t: &DataType) -> (i64, i64) {
    match t {
        DataType::Int2 => (i16::MIN as i64, i16::MAX as i64),
        DataType::Int4 => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

/// A counter: the last value and whether it was handed out (`setval(s, v, false)` stores one
/// that was not).
pub fn encode_state(last: i64, called: bool) -> Vec<u8> {
    let mut out = last.to_be_bytes().to_vec();
    out.push(called as u8);
    out
}

fn decode_state(stored: Option<&[u8]>) -> Result<Option<(i64, bool)>> {
    match stored {
        None => Ok(None),
        Some([a, b, c, d, e, f, g, h, called]) => {
            Ok(Some((i64::from_be_bytes([*a, *b, *c, *d, *e, *f, *g, *h]), *called != 0)))
        }
        Some(_) => Err(Error::Corruption("sequence counter".into())),
    }
}

pub fn get_sequence(txn: &mut Transaction, name: &str) -> Result<Option<Sequence>> {
    super::get_record(txn, SEQUENCE, name, &format!("sequence {name}"))
}

/// 42P01 when there is no such sequence, as PostgreSQL reports it.
pub fn must_get_sequence(txn: &mut Transaction, name: &str) -> Result<Sequence> {
    get_sequence(txn, name)?.ok_or_else(|| Error::UndefinedTable(name.to_string()))
}

pub fn list_sequences(txn: &mut Transaction) -> Result<Vec<Sequence>> {
    super::list_records(txn, SEQUENCE, "sequence")
}

pub fn save_sequence(txn: &mut Transaction, sequence: &Sequence) -> Result<()> {
    super::put_record(txn, SEQUENCE, &sequence.name, sequence)
}

/// Removes a sequence's definition and its counter.
pub fn remove_sequence(txn: &mut Transaction, sequence: &Sequence) {
    txn.delete(super::record_key(SEQUENCE, &sequence.name));
    txn.delete(sequence.counter_key());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_the_counter_and_stop_or_cycle_at_the_bounds() {
        let mut s = Sequence::new("s".into(), DataType::Int4, 1);
        let (block, state) = s.reserve(None, 32).unwrap();
        assert_eq!(block, CounterBlock { next: 1, last: 32, step: 1 });
        let (block, _) = s.reserve(Some(&state), 32).unwrap();
        assert_eq!(block.next, 33);
        // setval(s, 10, false): 10 comes next.
        let (block, _) = s.reserve(Some(&encode_state(10, false)), 1).unwrap();
        assert_eq!(block.next, 10);
        s.max = 40;
        let (block, state) = s.reserve(Some(&encode_state(30, true)), 32).unwrap();
        assert_eq!((block.next, block.last), (31, 40));
        assert_eq!(s.reserve(Some(&state), 32).unwrap_err().sqlstate(), "2200H");
        s.cycle = true;
        assert_eq!(s.reserve(Some(&state), 32).unwrap().0.next, 1);
        let down = Sequence::new("d".into(), DataType::Int8, -1);
        assert_eq!((down.start, down.max, down.min), (-1, -1, i64::MIN));
    }
}
