//! Grouping and aggregate functions with PostgreSQL's result types.

use super::arith::numeric_div;
use super::eval::{eval, truth};
use super::ops::{compare_keys, ProbeFilter};
use super::{Context, Row, Sink};
use crate::error::{Error, Result};
use crate::sql::functions::json;
use crate::sql::planner::plan::{Aggregate, AggregateFunction, Expr, Node, Statistic};
use crate::types::interval;
use crate::types::timezone::Zone;
use crate::types::value::Interval;
use crate::types::{DataType, Value};
use rust_decimal::{Decimal, MathematicalOps, RoundingStrategy};
use std::collections::{HashMap, HashSet};

pub fn execute(
    source: &Node,
    group_by: &[Expr],
    aggregates: &[Aggregate],
    ctx: &mut Context,
    sink: &mut Sink,
) -> Result<()> {
    let mut groups = Groups::default();
    // Ordered aggregates buffer (sort key, arguments) per group and aggregate.
    let mut ordered: HashMap<(usize, usize), Vec<(Row, Row)>> = HashMap::new();
    let mut key = Vec::with_capacity(group_by.len());
    let mut args = Vec::new();
    // Groups, and the inputs of aggregates that keep them (array_agg, string_agg, ordered or
    // DISTINCT aggregates, percentiles), are held against the statement's memory budget.
    let mut held = ctx.memory.reserve();
    let group_bytes = 64 * aggregates.len().max(1);
    if let Some(list) = super::summaries::answer(source, group_by, aggregates, ctx)? {
        groups.list = list;
    } else if !from_snapshot(source, group_by, aggregates, &mut groups, ctx)? {
        super::execute(source, ctx, &mut |ctx, row| {
            key.clear();
            for e in group_by {
                key.push(eval(e, &row, ctx)?);
            }
            let before = groups.list.len();
            let slot = groups.slot(&key, aggregates);
            if groups.list.len() > before {
                held.grow(super::memory::row_bytes(&key) * 2 + group_bytes)?;
            }
            for (i, (agg, acc)) in aggregates.iter().zip(groups.list[slot].1.iter_mut()).enumerate() {
                if let Some(filter) = &agg.filter {
                    if truth(eval(filter, &row, ctx)?)? != Some(true) {
                        continue;
                    }
                }
                args.clear();
                for a in &agg.args {
                    args.push(eval(a, &row, ctx)?);
                }
                if agg.distinct || !agg.order_by.is_empty() || agg.function.keeps_inputs() {
                    held.add_row(&args)?;
                }
                if agg.order_by.is_empty() {
                    acc.add(&args)?;
                } else {
                    let mut key = Vec::with_capacity(agg.order_by.len());
                    for k in &agg.order_by {
                        key.push(eval(&k.expr, &row, ctx)?);
                    }
                    ordered.entry((slot, i)).or_default().push((key, args.clone()));
                }
            }
            Ok(true)
        })?;
    }
    let mut groups = groups.list;
    for ((slot, i), mut inputs) in ordered {
        inputs.sort_by(|a, b| compare_keys(&a.0, &b.0, &aggregates[i].order_by));
        for (_, values) in inputs {
            groups[slot].1[i].add(&values)?;
        }
    }
    if groups.is_empty() && group_by.is_empty() {
        groups.push((Vec::new(), aggregates.iter().map(Accumulator::new).collect()));
    }
    for (key, accs) in groups {
        let mut row = key;
        for acc in accs {
            row.push(acc.finish(&ctx.session.zone)?);
        }
        if !sink(ctx, row)? {
            break;
        }
    }
    Ok(())
}

/// A group's key and its aggregates' accumulators.
pub type Group = (Row, Vec<Accumulator>);

/// Groups in the order they were first seen, each with its accumulators.
#[derive(Default)]
struct Groups {
    index: HashMap<Row, usize>,
    list: Vec<Group>,
}

impl Groups {
    /// The group of `key`, created when new.
    fn slot(&mut self, key: &[Value], aggregates: &[Aggregate]) -> usize {
        // Without GROUP BY there is one group: no hashing.
        if key.is_empty() && !self.list.is_empty() {
            return 0;
        }
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        self.list.push((key.to_vec(), aggregates.iter().map(Accumulator::new).collect()));
        self.index.insert(key.to_vec(), self.list.len() - 1);
        self.list.len() - 1
    }
}

/// Feeds the aggregates straight from the table's column snapshot, without building rows, when
/// the input is a full scan, every grouping key and argument is a column, and no aggregate
/// has FILTER or ORDER BY. The scan's filter runs on a [`ProbeFilter`]. Rows arrive in the same order as through the scan, so the results are
/// the same. False (nothing done) when that does not apply.
fn from_snapshot(
    source: &Node,
    group_by: &[Expr],
    aggregates: &[Aggregate],
    groups: &mut Groups,
    ctx: &mut Context,
) -> Result<bool> {
    let Node::Scan { table, filter, with_key: false, columns } = source else { return Ok(false) };
    let width = table.columns.len();
    let mut probe = match filter {
        None => None,
        Some(f) => match ProbeFilter::new(f, columns.as_deref(), width) {
            Some(probe) => Some(probe),
            None => return Ok(false),
        },
    };
    let column = |e: &Expr| match e {
        Expr::Column(c) if *c < width => Some(*c),
        _ => None,
    };
    let Some(keys) = group_by.iter().map(column).collect::<Option<Vec<usize>>>() else { return Ok(false) };
    let mut inputs = Vec::with_capacity(aggregates.len());
    for agg in aggregates {
        if agg.filter.is_some() || !agg.order_by.is_empty() {
            return Ok(false);
        }
        let Some(columns) = agg.args.iter().map(column).collect::<Option<Vec<usize>>>() else { return Ok(false) };
        inputs.push(columns);
    }
    let Some(snapshot) = ctx.txn.column_snapshot(&table.row_prefix()) else { return Ok(false) };
    let version = ctx.txn.read_version();
    let mut key = Vec::with_capacity(keys.len());
    let mut args = Vec::new();
    // Grouping by one text column: each distinct value of a chunk finds its group once.
    let single = match keys[..] {
        [column] => Some(column),
        _ => None,
    };
    for chunk in snapshot.chunks() {
        ctx.check_cancel()?;
        let mut slots = vec![usize::MAX; single.map_or(0, |c| chunk.dictionary_len(c))];
        for row in 0..chunk.rows() {
            if !chunk.visible(row, version) {
                continue;
            }
            if let Some(probe) = &mut probe {
                if !probe.passes(chunk, row, ctx)? {
                    continue;
                }
            }
            let code = single.and_then(|c| chunk.code(row, c)).map(|code| code as usize);
            let slot = match code {
                Some(code) if slots[code] != usize::MAX => slots[code],
                _ => {
                    key.clear();
                    key.extend(keys.iter().map(|&c| chunk.value(row, c)));
                    let slot = groups.slot(&key, aggregates);
                    if let Some(code) = code {
                        slots[code] = slot;
                    }
                    slot
                }
            };
            for (acc, columns) in groups.list[slot].1.iter_mut().zip(&inputs) {
                args.clear();
                args.extend(columns.iter().map(|&c| chunk.value(row, c)));
                acc.add(&args)?;
            }
        }
    }
    Ok(true)
}

/// The sum of values added at once ([`Accumulator::from_totals`]).
pub enum Total {
    None,
    Int(i128),
    Float(f64),
}

/// The running state of one aggregate over one group.
pub struct Accumulator {
    function: AggregateFunction,
    return_type: DataType,
    distinct: Option<HashSet<Value>>,
    count: i64,
    int_sum: i128,
    float_sum: f64,
    /// Sum of squared deviations of float input (Youngs-Cramer, as PostgreSQL computes it).
    float_sxx: f64,
    /// (y, x) statistics: sums of x and y and of their squared and cross deviations.
    regression: Regression,
    dec_sum: Decimal,
    dec_sum_sq: Decimal,
    extreme: Value,
    strings: Option<String>,
    items: Vec<Value>,
    /// A percentile's fraction (or array of fractions), from its first input row.
    fraction: Value,
    boolean: Option<bool>,
    /// The running value of `bit_and`, `bit_or` or `bit_xor`.
    bits: Option<i64>,
    interval_sum: Interval,
    numeric_input: bool,
    /// A NUMERIC NaN was added.
    nan: bool,
    /// A NUMERIC `Infinity` / `-Infinity` was added.
    positive_infinity: bool,
    negative_infinity: bool,
}

impl Accumulator {
    pub fn new(agg: &Aggregate) -> Self {
        Self::for_function(agg.function, agg.return_type.clone(), agg.distinct)
    }

    pub fn for_function(function: AggregateFunction, return_type: DataType, distinct: bool) -> Self {
        Self {
            function,
            return_type,
            distinct: if distinct { Some(HashSet::new()) } else { None },
            count: 0,
            int_sum: 0,
            float_sum: 0.0,
            float_sxx: 0.0,
            regression: Regression::default(),
            dec_sum: Decimal::ZERO,
            dec_sum_sq: Decimal::ZERO,
            extreme: Value::Null,
            strings: None,
            items: Vec::new(),
            fraction: Value::Null,
            boolean: None,
            bits: None,
            interval_sum: Interval::default(),
            numeric_input: false,
            nan: false,
            positive_infinity: false,
            negative_infinity: false,
        }
    }

    /// The state after adding `count` values whose sum (for sums and averages) or extreme
    /// (for min and max) is known: an aggregate answered from summaries.
    pub fn from_totals(agg: &Aggregate, count: u64, total: Total, extreme: Value) -> Result<Self> {
        let mut acc = Self::new(agg);
        acc.count = i64::try_from(count).map_err(|_| Error::NumericOutOfRange("bigint out of range".into()))?;
        acc.extreme = extreme;
        match total {
            Total::Int(sum) => {
                acc.int_sum = sum;
                if agg.function != AggregateFunction::Sum || !matches!(agg.return_type, DataType::Int8) {
                    acc.numeric_input = true;
                    acc.dec_sum = Decimal::try_from_i128_with_scale(sum, 0)
                        .map_err(|_| Error::NumericOutOfRange("value overflows numeric format".into()))?;
                }
            }
            Total::Float(sum) => acc.float_sum = sum,
            Total::None => {}
        }
        Ok(acc)
    }

    /// Adds one input row's argument values.
    pub fn add(&mut self, args: &[Value]) -> Result<()> {
        use AggregateFunction::*;
        if self.function == CountStar {
            self.count += 1;
            return Ok(());
        }
        let v = args.first().cloned().unwrap_or(Value::Null);
        if v.is_null() && !matches!(self.function, ArrayAgg | JsonbAgg) {
            if self.function == JsonbObjectAgg {
                return Err(Error::InvalidParameter("field name must not be null".into()));
            }
            return Ok(());
        }
        if matches!(self.function, Regression(_)) && args.get(1).is_none_or(Value::is_null) {
            return Ok(());
        }
        if let Some(seen) = &mut self.distinct {
            if !seen.insert(v.clone()) {
                return Ok(());
            }
        }
        self.count += 1;
        let overflow = || Error::NumericOutOfRange("value overflows numeric format".into());
        match self.function {
            CountStar | Count => {}
            Sum | Avg | StddevSamp | StddevPop | VarSamp | VarPop => match &v {
                Value::Int2(_) | Value::Int4(_) | Value::Int8(_) => {
                    let i = v.as_i64().unwrap_or(0);
                    self.int_sum += i as i128;
                    if self.function != Sum || !matches!(self.return_type, DataType::Int8) {
                        self.numeric_input = true;
                        let d = Decimal::from(i);
                        self.dec_sum = self.dec_sum.checked_add(d).ok_or_else(overflow)?;
                        if matches!(self.function, StddevSamp | StddevPop | VarSamp | VarPop) {
                            let sq = d.checked_mul(d).ok_or_else(overflow)?;
                            self.dec_sum_sq = self.dec_sum_sq.checked_add(sq).ok_or_else(overflow)?;
                        }
                    }
                }
                Value::NumericNaN => {
                    self.numeric_input = true;
                    self.nan = true;
                }
                Value::NumericInf { negative } => {
                    self.numeric_input = true;
                    if *negative {
                        self.negative_infinity = true;
                    } else {
                        self.positive_infinity = true;
                    }
                }
                Value::Interval(iv) => self.interval_sum = interval::add(&self.interval_sum, iv)?,
                Value::Numeric(d) => {
                    self.numeric_input = true;
                    self.dec_sum = self.dec_sum.checked_add(*d).ok_or_else(overflow)?;
                    if matches!(self.function, StddevSamp | StddevPop | VarSamp | VarPop) {
                        let sq = d.checked_mul(*d).ok_or_else(overflow)?;
                        self.dec_sum_sq = self.dec_sum_sq.checked_add(sq).ok_or_else(overflow)?;
                    }
                }
                other => {
                    let f = other
                        .as_f64()
                        .ok_or_else(|| Error::DatatypeMismatch("aggregate over a non-numeric value".into()))?;
                    self.float_sum += f;
                    let n = self.count as f64;
                    if n > 1.0 {
                        let deviation = f * n - self.float_sum;
                        self.float_sxx += deviation * deviation / (n * (n - 1.0));
                    }
                }
            },
            Min | Max => {
                let replace = self.extreme.is_null()
                    || match v.compare(&self.extreme) {
                        Some(std::cmp::Ordering::Less) => self.function == Min,
                        Some(std::cmp::Ordering::Greater) => self.function == Max,
                        _ => false,
                    };
                if replace {
                    self.extreme = v;
                }
            }
            StringAgg => {
                let delimiter = match args.get(1) {
                    Some(Value::Text(d)) => d.as_str(),
                    _ => "",
                };
                let text = match &v {
                    Value::Text(s) => s.clone(),
                    other => other.to_string(),
                };
                match &mut self.strings {
                    Some(s) => {
                        crate::sql::functions::check_value_size(s.len() + delimiter.len() + text.len())?;
                        s.push_str(delimiter);
                        s.push_str(&text);
                    }
                    None => self.strings = Some(text),
                }
            }
            ArrayAgg | JsonbAgg | Mode => self.items.push(v),
            Regression(_) => {
                let (y, x) = (v.as_f64().unwrap_or(f64::NAN), args[1].as_f64().unwrap_or(f64::NAN));
                self.regression.add(self.count as f64, y, x);
            }
            PercentileCont | PercentileDisc => {
                if self.items.is_empty() {
                    self.fraction = args.get(1).cloned().unwrap_or(Value::Null);
                }
                self.items.push(v);
            }
            JsonbObjectAgg => {
                self.items.push(v);
                self.items.push(args.get(1).cloned().unwrap_or(Value::Null));
            }
            BitAnd | BitOr | BitXor => {
                let b = v.as_i64().unwrap_or(0);
                self.bits = Some(match (self.function, self.bits) {
                    (BitAnd, Some(prev)) => prev & b,
                    (BitOr, Some(prev)) => prev | b,
                    (BitXor, Some(prev)) => prev ^ b,
                    _ => b,
                });
            }
            BoolAnd | BoolOr => {
                let b = matches!(v, Value::Bool(true));
                self.boolean = Some(match (self.function, self.boolean) {
                    (BoolAnd, Some(prev)) => prev && b,
                    (BoolOr, Some(prev)) => prev || b,
                    _ => b,
                });
            }
        }
        Ok(())
    }

    /// The aggregate's value.
    /// The aggregate's value; `zone` is the session's time zone (`jsonb_agg` prints in it).
    pub fn finish(&self, zone: &Zone) -> Result<Value> {
        use AggregateFunction::*;
        let overflow = || Error::NumericOutOfRange("value overflows numeric format".into());
        Ok(match self.function {
            CountStar | Count | Regression(Statistic::Count) => Value::Int8(self.count),
            _ if self.count == 0 && self.function != ArrayAgg => Value::Null,
            // A NUMERIC NaN makes sums, averages and variances NaN, and so do infinities of both
            // signs; one infinity makes sums and averages that infinity and variances NaN.
            Sum | Avg | StddevSamp | StddevPop | VarSamp | VarPop
                if self.nan || (self.positive_infinity && self.negative_infinity) =>
            {
                Value::NumericNaN
            }
            Sum | Avg if self.positive_infinity || self.negative_infinity => {
                Value::NumericInf { negative: self.negative_infinity }
            }
            StddevSamp | StddevPop | VarSamp | VarPop if self.positive_infinity || self.negative_infinity => {
                Value::NumericNaN
            }
            Sum | Avg if self.return_type == DataType::Interval => match self.function {
                Sum => Value::Interval(self.interval_sum),
                _ => Value::Interval(interval::scale(&self.interval_sum, self.count as f64, true)?),
            },
            Sum => match self.return_type {
                DataType::Int8 => Value::Int8(
                    i64::try_from(self.int_sum).map_err(|_| Error::NumericOutOfRange("bigint out of range".into()))?,
                ),
                DataType::Numeric(_) => Value::Numeric(self.dec_sum),
                DataType::Float4 => Value::Float4(self.float_sum as f32),
                _ => Value::Float8(self.float_sum),
            },
            Avg => {
                if self.numeric_input {
                    Value::Numeric(numeric_div(self.dec_sum, Decimal::from(self.count))?)
                } else {
                    Value::Float8(self.float_sum / self.count as f64)
                }
            }
            StddevSamp | StddevPop | VarSamp | VarPop => {
                let sample = matches!(self.function, StddevSamp | VarSamp);
                if sample && self.count < 2 {
                    return Ok(Value::Null);
                }
                let n = self.count;
                if self.numeric_input {
                    let nd = Decimal::from(n);
                    let numerator = nd
                        .checked_mul(self.dec_sum_sq)
                        .and_then(|a| self.dec_sum.checked_mul(self.dec_sum).and_then(|b| a.checked_sub(b)))
                        .ok_or_else(overflow)?;
                    let denominator = if sample { nd.checked_mul(Decimal::from(n - 1)) } else { nd.checked_mul(nd) }
                        .ok_or_else(overflow)?;
                    let variance = numeric_div(numerator, denominator)?;
                    if matches!(self.function, VarSamp | VarPop) {
                        Value::Numeric(variance)
                    } else {
                        let scale = variance.scale();
                        let root = variance.sqrt().ok_or_else(overflow)?;
                        let mut root = root.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
                        root.rescale(scale);
                        Value::Numeric(root)
                    }
                } else {
                    let nf = n as f64;
                    let variance = self.float_sxx / if sample { nf - 1.0 } else { nf };
                    Value::Float8(if matches!(self.function, VarSamp | VarPop) { variance } else { variance.sqrt() })
                }
            }
            Min | Max => self.extreme.clone(),
            StringAgg => self.strings.clone().map(Value::Text).unwrap_or(Value::Null),
            ArrayAgg => {
                if self.count == 0 {
                    Value::Null
                } else {
                    Value::Array(self.items.clone())
                }
            }
            JsonbAgg => {
                Value::Jsonb(serde_json::Value::Array(self.items.iter().map(|v| json::to_json(v, zone)).collect()))
            }
            JsonbObjectAgg => {
                let mut map = serde_json::Map::new();
                for pair in self.items.chunks(2) {
                    let key = match &pair[0] {
                        Value::Text(s) => s.clone(),
                        other => other.in_zone(zone).to_string(),
                    };
                    map.insert(key, json::to_json(&pair[1], zone));
                }
                Value::Jsonb(serde_json::Value::Object(map))
            }
            PercentileCont | PercentileDisc => match &self.fraction {
                Value::Array(fractions) => {
                    Value::Array(fractions.iter().map(|f| self.percentile(f)).collect::<Result<Vec<_>>>()?)
                }
                single => self.percentile(single)?,
            },
            Mode => {
                // The most frequent value; ties go to the first in the sort order.
                let (mut best, mut best_count) = (&Value::Null, 0);
                let mut run = 0;
                for (i, v) in self.items.iter().enumerate() {
                    run = if i > 0 && self.items[i - 1].compare(v) == Some(std::cmp::Ordering::Equal) {
                        run + 1
                    } else {
                        1
                    };
                    if run > best_count {
                        (best, best_count) = (v, run);
                    }
                }
                best.clone()
            }
            BoolAnd | BoolOr => self.boolean.map(Value::Bool).unwrap_or(Value::Null),
            // The inputs are of the result's type, so the bits fit it.
            BitAnd | BitOr | BitXor => match (self.bits, &self.return_type) {
                (None, _) => Value::Null,
                (Some(b), DataType::Int2) => Value::Int2(b as i16),
                (Some(b), DataType::Int4) => Value::Int4(b as i32),
                (Some(b), _) => Value::Int8(b),
            },
            Regression(statistic) => self.regression.finish(statistic, self.count as f64),
        })
    }

    /// `percentile_cont` / `percentile_disc` at `fraction` over the sorted values.
    fn percentile(&self, fraction: &Value) -> Result<Value> {
        let Some(f) = fraction.as_f64() else { return Ok(Value::Null) };
        if !(0.0..=1.0).contains(&f) {
            return Err(Error::NumericOutOfRange(format!("percentile value {f} is not between 0 and 1")));
        }
        let n = self.items.len();
        if self.function == AggregateFunction::PercentileDisc {
            let position = ((f * n as f64).ceil() as usize).max(1);
            return Ok(self.items[position.min(n) - 1].clone());
        }
        let at = f * (n - 1) as f64;
        let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
        let value = |i: usize| self.items[i].as_f64().unwrap_or(f64::NAN);
        Ok(Value::Float8(if lo == hi { value(lo) } else { value(lo) + (value(hi) - value(lo)) * (at - lo as f64) }))
    }
}

/// Running sums for the (y, x) statistics, updated as PostgreSQL's float8_regr_accum does
/// (deviations accumulated directly, which keeps them exact for exact input).
#[derive(Default)]
struct Regression {
    sx: f64,
    sxx: f64,
    sy: f64,
    syy: f64,
    sxy: f64,
}

impl Regression {
    /// Adds the `n`-th pair.
    fn add(&mut self, n: f64, y: f64, x: f64) {
        self.sx += x;
        self.sy += y;
        if n > 1.0 {
            let (dx, dy) = (x * n - self.sx, y * n - self.sy);
            let scale = 1.0 / (n * (n - 1.0));
            self.sxx += dx * dx * scale;
            self.syy += dy * dy * scale;
            self.sxy += dx * dy * scale;
        }
    }

    /// The statistic over `n` pairs (NULL where PostgreSQL's is).
    fn finish(&self, statistic: Statistic, n: f64) -> Value {
        let value = match statistic {
            _ if n < 1.0 => None,
            Statistic::Count => Some(n),
            Statistic::CovarPop => Some(self.sxy / n),
            Statistic::CovarSamp => (n >= 2.0).then(|| self.sxy / (n - 1.0)),
            Statistic::Corr => (self.sxx != 0.0 && self.syy != 0.0).then(|| self.sxy / (self.sxx * self.syy).sqrt()),
            Statistic::Slope => (self.sxx != 0.0).then(|| self.sxy / self.sxx),
            Statistic::Intercept => (self.sxx != 0.0).then(|| (self.sy - self.sx * self.sxy / self.sxx) / n),
            Statistic::R2 => match (self.sxx == 0.0, self.syy == 0.0) {
                (true, _) => None,
                (false, true) => Some(1.0),
                (false, false) => Some(self.sxy * self.sxy / (self.sxx * self.syy)),
            },
            Statistic::AvgX => Some(self.sx / n),
            Statistic::AvgY => Some(self.sy / n),
            Statistic::Sxx => Some(self.sxx),
            Statistic::Syy => Some(self.syy),
            Statistic::Sxy => Some(self.sxy),
        };
        value.map_or(Value::Null, Value::Float8)
    }
}
