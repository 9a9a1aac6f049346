//! One summary record: what is kept of a table's rows in one bucket (a minute, an hour or a
//! day), column by column, and its encoding.
//!
//! A record changes by adding and removing rows, so it follows inserts, updates and deletes
//! without reading the other rows of its bucket. Counts and sums stay exact under removal.
//! A minimum or maximum cannot be recomputed after its own value is removed, so the record
//! then says its extremes are no longer exact (queries for them read the rows instead) until
//! its bucket empties.
//!
//! Encoding: `rows` (varint), then per column a kind byte and its fields: counts as varints,
//! integers as zigzag varints, an i128 sum as 16 big-endian bytes, floats as their 8 bytes
//! (big-endian bits) and a flags byte.

use crate::catalog::Table;
use crate::error::{Error, Result};
use crate::storage::varint;
use crate::types::value::float_total_cmp as float_cmp;
use crate::types::{DataType, Value};
use std::cmp::Ordering;

/// The rows of one bucket (or, merged, of a window of buckets).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Rows in the bucket.
    pub rows: u64,
    /// One summary per column of the table, in column order.
    pub columns: Vec<ColumnSummary>,
}

/// What a record keeps of one column.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnSummary {
    /// The count of non-NULL values (columns of types with no sum: text, numeric, times...).
    Count(u64),
    Int(IntSummary),
    Float(FloatSummary),
}

/// The non-NULL values of a smallint, integer or bigint column.
#[derive(Clone, Debug, PartialEq)]
pub struct IntSummary {
    pub count: u64,
    pub sum: i128,
    pub min: i64,
    pub max: i64,
    /// False once a value equal to the minimum or the maximum was removed.
    pub extremes_exact: bool,
}

/// The non-NULL values of a real or double precision column.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatSummary {
    /// Values, NaN and infinities included.
    pub count: u64,
    /// The finite values' sum and its running compensation (Neumaier's summation), so adding
    /// and removing values keeps the sum of those present to within rounding.
    finite: f64,
    compensation: f64,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
    /// Ordered as PostgreSQL orders floats: NaN above every number.
    pub min: f64,
    pub max: f64,
    pub extremes_exact: bool,
    /// False once the finite sum overflowed (the rows give the answer then).
    pub sum_exact: bool,
}

impl ColumnSummary {
    /// The empty summary of a column of type `t`.
    pub fn empty(t: &DataType) -> Self {
        match t {
            DataType::Int2 | DataType::Int4 | DataType::Int8 => ColumnSummary::Int(IntSummary::EMPTY),
            DataType::Float4 | DataType::Float8 => ColumnSummary::Float(FloatSummary::EMPTY),
            _ => ColumnSummary::Count(0),
        }
    }

    /// The number of non-NULL values.
    pub fn count(&self) -> u64 {
        match self {
            ColumnSummary::Count(n) => *n,
            ColumnSummary::Int(s) => s.count,
            ColumnSummary::Float(s) => s.count,
        }
    }

    /// Adds (`add`) or removes a value.
    fn update(&mut self, value: &Value, add: bool) {
        if value.is_null() {
            return;
        }
        match self {
            ColumnSummary::Count(n) => *n = if add { *n + 1 } else { n.saturating_sub(1) },
            ColumnSummary::Int(s) => s.update(value.as_i64().unwrap_or(0), add),
            ColumnSummary::Float(s) => s.update(value.as_f64().unwrap_or(f64::NAN), add),
        }
    }

    /// Adds another summary of the same column.
    fn merge(&mut self, other: &ColumnSummary) {
        match (self, other) {
            (ColumnSummary::Count(a), ColumnSummary::Count(b)) => *a += b,
            (ColumnSummary::Int(a), ColumnSummary::Int(b)) => a.merge(b),
            (ColumnSummary::Float(a), ColumnSummary::Float(b)) => a.merge(b),
            // Records of one table always have the same kinds (checked when decoded).
            _ => {}
        }
    }

    fn kind(&self) -> u8 {
        match self {
            ColumnSummary::Count(_) => 0,
            ColumnSummary::Int(_) => 1,
            ColumnSummary::Float(_) => 2,
        }
    }
}

impl IntSummary {
    const EMPTY: IntSummary = IntSummary { count: 0, sum: 0, min: 0, max: 0, extremes_exact: true };

    fn update(&mut self, v: i64, add: bool) {
        if add {
            if self.count == 0 {
                (self.min, self.max) = (v, v);
            } else {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
            self.count += 1;
            self.sum += v as i128;
            return;
        }
        self.count = self.count.saturating_sub(1);
        self.sum -= v as i128;
        if self.count == 0 {
            *self = IntSummary::EMPTY;
        } else if v == self.min || v == self.max {
            self.extremes_exact = false;
        }
    }

    fn merge(&mut self, other: &IntSummary) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (other.min, other.max);
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count += other.count;
        self.sum += other.sum;
        self.extremes_exact &= other.extremes_exact;
    }
}

impl FloatSummary {
    const EMPTY: FloatSummary = FloatSummary {
        count: 0,
        finite: 0.0,
        compensation: 0.0,
        nan: 0,
        pos_inf: 0,
        neg_inf: 0,
        min: 0.0,
        max: 0.0,
        extremes_exact: true,
        sum_exact: true,
    };

    fn update(&mut self, v: f64, add: bool) {
        if add {
            if self.count == 0 {
                (self.min, self.max) = (v, v);
            } else {
                if float_cmp(v, self.min) == Ordering::Less {
                    self.min = v;
                }
                if float_cmp(v, self.max) == Ordering::Greater {
                    self.max = v;
                }
            }
            self.count += 1;
        } else {
            self.count = self.count.saturating_sub(1);
            if self.count == 0 {
                *self = FloatSummary::EMPTY;
                return;
            }
            if float_cmp(v, self.min) == Ordering::Equal || float_cmp(v, self.max) == Ordering::Equal {
                self.extremes_exact = false;
            }
        }
        let step = |n: &mut u64| *n = if add { *n + 1 } else { n.saturating_sub(1) };
        if v.is_nan() {
            step(&mut self.nan);
        } else if v == f64::INFINITY {
            step(&mut self.pos_inf);
        } else if v == f64::NEG_INFINITY {
            step(&mut self.neg_inf);
        } else {
            self.add_finite(if add { v } else { -v });
        }
    }

    /// Neumaier's compensated addition.
    fn add_finite(&mut self, v: f64) {
        let t = self.finite + v;
        if !t.is_finite() {
            self.sum_exact = false;
            return;
        }
        if self.finite.abs() >= v.abs() {
            self.compensation += (self.finite - t) + v;
        } else {
            self.compensation += (v - t) + self.finite;
        }
        self.finite = t;
    }

    fn merge(&mut self, other: &FloatSummary) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (other.min, other.max);
        } else {
            if float_cmp(other.min, self.min) == Ordering::Less {
                self.min = other.min;
            }
            if float_cmp(other.max, self.max) == Ordering::Greater {
                self.max = other.max;
            }
        }
        self.count += other.count;
        self.nan += other.nan;
        self.pos_inf += other.pos_inf;
        self.neg_inf += other.neg_inf;
        self.add_finite(other.finite);
        self.add_finite(other.compensation);
        self.extremes_exact &= other.extremes_exact;
        self.sum_exact &= other.sum_exact;
    }

    /// The sum of the values: NaN with a NaN or with both infinities, an infinity with one.
    pub fn sum(&self) -> f64 {
        if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            f64::NAN
        } else if self.pos_inf > 0 {
            f64::INFINITY
        } else if self.neg_inf > 0 {
            f64::NEG_INFINITY
        } else {
            self.finite + self.compensation
        }
    }
}

impl Record {
    /// The empty record of `table`.
    pub fn empty(table: &Table) -> Self {
        Record { rows: 0, columns: table.columns.iter().map(|c| ColumnSummary::empty(&c.data_type)).collect() }
    }

    /// Adds a row (of the table's width).
    pub fn add(&mut self, row: &[Value]) {
        self.rows += 1;
        for (summary, value) in self.columns.iter_mut().zip(row) {
            summary.update(value, true);
        }
    }

    /// Removes a row added before.
    pub fn remove(&mut self, row: &[Value]) {
        self.rows = self.rows.saturating_sub(1);
        for (summary, value) in self.columns.iter_mut().zip(row) {
            summary.update(value, false);
        }
    }

    /// Adds the rows of another record of the same table.
    pub fn merge(&mut self, other: &Record) {
        self.rows += other.rows;
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            a.merge(b);
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.columns.len() * 24);
        varint::put(&mut out, self.rows);
        for column in &self.columns {
            out.push(column.kind());
            match column {
                ColumnSummary::Count(n) => varint::put(&mut out, *n),
                ColumnSummary::Int(s) => {
                    varint::put(&mut out, s.count);
                    out.extend_from_slice(&s.sum.to_be_bytes());
                    varint::put(&mut out, varint::zigzag(s.min));
                    varint::put(&mut out, varint::zigzag(s.max));
                    out.push(s.extremes_exact as u8);
                }
                ColumnSummary::Float(s) => {
                    for n in [s.count, s.nan, s.pos_inf, s.neg_inf] {
                        varint::put(&mut out, n);
                    }
                    for f in [s.finite, s.compensation, s.min, s.max] {
                        out.extend_from_slice(&f.to_bits().to_be_bytes());
                    }
                    out.push(s.extremes_exact as u8 | (s.sum_exact as u8) << 1);
                }
            }
        }
        out
    }

    /// Decodes a record of `table`; a record that does not match the table's columns is
    /// corruption.
    pub fn decode(table: &Table, bytes: &[u8]) -> Result<Self> {
        let corrupt = || Error::Corruption(format!("malformed summary record of table {}", table.name));
        let mut input = bytes;
        let rows = varint::take(&mut input)?;
        let mut columns = Vec::with_capacity(table.columns.len());
        for column in &table.columns {
            let mut summary = ColumnSummary::empty(&column.data_type);
            let (&kind, rest) = input.split_first().ok_or_else(corrupt)?;
            input = rest;
            if kind != summary.kind() {
                return Err(corrupt());
            }
            match &mut summary {
                ColumnSummary::Count(n) => *n = varint::take(&mut input)?,
                ColumnSummary::Int(s) => {
                    s.count = varint::take(&mut input)?;
                    s.sum = i128::from_be_bytes(take_bytes(&mut input).ok_or_else(corrupt)?);
                    s.min = varint::unzigzag(varint::take(&mut input)?);
                    s.max = varint::unzigzag(varint::take(&mut input)?);
                    s.extremes_exact = take_bytes::<1>(&mut input).ok_or_else(corrupt)?[0] & 1 != 0;
                }
                ColumnSummary::Float(s) => {
                    for n in [&mut s.count, &mut s.nan, &mut s.pos_inf, &mut s.neg_inf] {
                        *n = varint::take(&mut input)?;
                    }
                    for f in [&mut s.finite, &mut s.compensation, &mut s.min, &mut s.max] {
                        *f = f64::from_bits(u64::from_be_bytes(take_bytes(&mut input).ok_or_else(corrupt)?));
                    }
                    let flags = take_bytes::<1>(&mut input).ok_or_else(corrupt)?[0];
                    (s.extremes_exact, s.sum_exact) = (flags & 1 != 0, flags & 2 != 0);
                }
            }
            columns.push(summary);
        }
        if !input.is_empty() {
            return Err(corrupt());
        }
        Ok(Record { rows, columns })
    }
}

fn take_bytes<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = input.split_first_chunk::<N>()?;
    *input = rest;
    Some(*head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Column;
    use proptest::prelude::*;

    fn table() -> Table {
        let column = |name: &str, data_type| Column::new(name.into(), data_type);
        let columns = vec![column("i", DataType::Int4), column("f", DataType::Float8), column("s", DataType::Text)];
        Table { id: 1, ..Table::new("t".into(), columns, Vec::new()) }
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-1000i32..1000).prop_map(|i| i as f64 / 4.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
        ]
    }

    fn row() -> impl Strategy<Value = Vec<Value>> {
        (prop::option::of(any::<i32>()), prop::option::of(float()), prop::option::of("[a-c]{0,2}")).prop_map(
            |(i, f, s)| {
                vec![
                    i.map_or(Value::Null, Value::Int4),
                    f.map_or(Value::Null, Value::Float8),
                    s.map_or(Value::Null, Value::Text),
                ]
            },
        )
    }

    /// The record of exactly `rows`, computed from them at once.
    fn direct(rows: &[Vec<Value>]) -> Record {
        let mut record = Record::empty(&table());
        for r in rows {
            record.add(r);
        }
        record
    }

    proptest! {
        /// Adding rows, removing some and merging records agree with the record of the rows
        /// that remain: counts and sums always, extremes whenever they say they are exact;
        /// every record decodes to itself.
        #[test]
        fn removal_and_merging_agree_with_the_remaining_rows(
            rows in prop::collection::vec(row(), 0..40),
            removed in prop::collection::vec(any::<bool>(), 40),
            split in 0usize..40,
        ) {
            let table = table();
            let mut record = Record::empty(&table);
            for r in &rows {
                record.add(r);
            }
            let mut kept = Vec::new();
            for (r, &gone) in rows.iter().zip(&removed) {
                if gone { record.remove(r) } else { kept.push(r.clone()) }
            }
            let split = split.min(kept.len());
            let mut merged = direct(&kept[..split]);
            merged.merge(&direct(&kept[split..]));
            let expected = direct(&kept);
            for candidate in [&record, &merged] {
                prop_assert_eq!(Record::decode(&table, &candidate.encode()).unwrap().encode(), candidate.encode());
                prop_assert_eq!(candidate.rows, expected.rows);
                for (got, want) in candidate.columns.iter().zip(&expected.columns) {
                    prop_assert_eq!(got.count(), want.count());
                    match (got, want) {
                        (ColumnSummary::Int(g), ColumnSummary::Int(w)) => {
                            prop_assert_eq!(g.sum, w.sum);
                            if g.extremes_exact && g.count > 0 {
                                prop_assert_eq!((g.min, g.max), (w.min, w.max));
                            }
                        }
                        (ColumnSummary::Float(g), ColumnSummary::Float(w)) => {
                            // Quarters below 2^10 add exactly, in any order.
                            let (gs, ws) = (g.sum(), w.sum());
                            prop_assert!(gs == ws || gs.is_nan() && ws.is_nan(), "{gs} != {ws}");
                            if g.extremes_exact && g.count > 0 {
                                prop_assert_eq!(float_cmp(g.min, w.min), Ordering::Equal);
                                prop_assert_eq!(float_cmp(g.max, w.max), Ordering::Equal);
                            }
                        }
                        (ColumnSummary::Count(_), ColumnSummary::Count(_)) => {}
                        _ => prop_assert!(false, "kinds differ"),
                    }
                }
            }
        }
    }

    #[test]
    fn damaged_records_are_corruption() {
        let table = table();
        let mut record = Record::empty(&table);
        record.add(&[Value::Int4(3), Value::Float8(1.5), Value::Text("a".into())]);
        let bytes = record.encode();
        for cut in 0..bytes.len() {
            assert!(Record::decode(&table, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Record::decode(&table, &longer).is_err());
    }
}
