//! Binding of aggregate and window function calls: which names are aggregates, their result
//! types, their arguments (also ordered-set and two-variable ones), FILTER, ORDER BY and
//! window frames.

use super::binder::{ident, Binder};
use super::plan::{
    Aggregate, AggregateFunction, BinaryOp, Expr, Frame, FrameBound, FrameExclusion, FrameUnits, Statistic, Window,
    WindowCall, WindowFunction,
};
use crate::error::{Error, Result};
use crate::types::{DataType, Value};
use sqlparser::ast;

pub(super) fn aggregate_function(name: &str) -> Option<AggregateFunction> {
    if let Some((function, _)) = window_aggregate(name) {
        return Some(function);
    }
    Some(match name {
        "count" => AggregateFunction::Count,
        "sum" => AggregateFunction::Sum,
        "avg" => AggregateFunction::Avg,
        "min" => AggregateFunction::Min,
        "max" => AggregateFunction::Max,
        "stddev" | "stddev_samp" => AggregateFunction::StddevSamp,
        "stddev_pop" => AggregateFunction::StddevPop,
        "variance" | "var_samp" => AggregateFunction::VarSamp,
        "var_pop" => AggregateFunction::VarPop,
        "string_agg" => AggregateFunction::StringAgg,
        "array_agg" => AggregateFunction::ArrayAgg,
        "jsonb_agg" => AggregateFunction::JsonbAgg,
        "jsonb_object_agg" => AggregateFunction::JsonbObjectAgg,
        "percentile_cont" => AggregateFunction::PercentileCont,
        "percentile_disc" => AggregateFunction::PercentileDisc,
        "mode" => AggregateFunction::Mode,
        "bool_and" | "every" => AggregateFunction::BoolAnd,
        "bool_or" => AggregateFunction::BoolOr,
        "bit_and" => AggregateFunction::BitAnd,
        "bit_or" => AggregateFunction::BitOr,
        "bit_xor" => AggregateFunction::BitXor,
        other => AggregateFunction::Regression(Statistic::ALL.iter().find(|(n, _)| *n == other)?.1),
    })
}

/// A window aggregate's function and window: `avg_1h` is `avg` over the last hour (see
/// [`Window`]); `avg`, `min`, `max`, `sum` and `count` each come with `_1h`, `_24h` and `_7d`.
pub(super) fn window_aggregate(name: &str) -> Option<(AggregateFunction, Window)> {
    let (base, suffix) = name.rsplit_once('_')?;
    let window = Window::from_suffix(suffix)?;
    let function = match base {
        "avg" => AggregateFunction::Avg,
        "min" => AggregateFunction::Min,
        "max" => AggregateFunction::Max,
        "sum" => AggregateFunction::Sum,
        "count" => AggregateFunction::Count,
        _ => return None,
    };
    Some((function, window))
}

/// An aggregate's SQL name, for messages.
pub(super) fn aggregate_name(function: AggregateFunction) -> String {
    match function {
        AggregateFunction::Regression(s) => s.name().to_string(),
        AggregateFunction::BoolAnd => "bool_and".into(),
        AggregateFunction::BoolOr => "bool_or".into(),
        AggregateFunction::BitAnd => "bit_and".into(),
        AggregateFunction::BitOr => "bit_or".into(),
        AggregateFunction::BitXor => "bit_xor".into(),
        AggregateFunction::StddevSamp => "stddev_samp".into(),
        AggregateFunction::StddevPop => "stddev_pop".into(),
        AggregateFunction::VarSamp => "var_samp".into(),
        AggregateFunction::VarPop => "var_pop".into(),
        AggregateFunction::StringAgg => "string_agg".into(),
        AggregateFunction::ArrayAgg => "array_agg".into(),
        AggregateFunction::JsonbAgg => "jsonb_agg".into(),
        AggregateFunction::JsonbObjectAgg => "jsonb_object_agg".into(),
        AggregateFunction::PercentileCont => "percentile_cont".into(),
        AggregateFunction::PercentileDisc => "percentile_disc".into(),
        AggregateFunction::CountStar => "count".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The result type of an aggregate over an argument type, as PostgreSQL defines it.
pub fn aggregate_type(function: AggregateFunction, arg: Option<&DataType>) -> Result<DataType> {
    use AggregateFunction::*;
    use DataType as T;
    let arg = arg.cloned().unwrap_or(T::Int8);
    let not_numeric =
        || Error::UndefinedFunction(format!("function {}({arg}) does not exist", aggregate_name(function)));
    Ok(match function {
        CountStar | Count => T::Int8,
        Sum => match arg {
            T::Int2 | T::Int4 => T::Int8,
            T::Int8 | T::Numeric(_) => T::Numeric(None),
            T::Float4 => T::Float4,
            T::Float8 => T::Float8,
            T::Interval => T::Interval,
            _ => return Err(not_numeric()),
        },
        Avg if arg == T::Interval => T::Interval,
        Avg | StddevSamp | StddevPop | VarSamp | VarPop => match arg {
            T::Int2 | T::Int4 | T::Int8 | T::Numeric(_) => T::Numeric(None),
            T::Float4 | T::Float8 => T::Float8,
            _ => return Err(not_numeric()),
        },
        Min | Max => arg,
        StringAgg => T::Text,
        ArrayAgg => T::Array(Box::new(arg)),
        JsonbAgg | JsonbObjectAgg => T::Jsonb,
        Regression(_) if !arg.is_numeric() => return Err(not_numeric()),
        Regression(Statistic::Count) => T::Int8,
        Regression(_) => T::Float8,
        PercentileCont if arg.is_numeric() => T::Float8,
        PercentileCont => return Err(not_numeric()),
        PercentileDisc | Mode => arg,
        BoolAnd | BoolOr => T::Bool,
        BitAnd | BitOr | BitXor => match arg {
            T::Int2 | T::Int4 | T::Int8 => arg,
            _ => return Err(not_numeric()),
        },
    })
}

impl Binder<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn bind_aggregate(
        &mut self,
        function: AggregateFunction,
        window: Option<Window>,
        args: &[&ast::Expr],
        star: bool,
        distinct: bool,
        filter: Option<&ast::Expr>,
        order: &[ast::OrderByExpr],
    ) -> Result<(Expr, DataType)> {
        let Some(grouping) = self.grouping.take() else {
            self.saw_aggregate = true;
            // Outside a grouping context: bind arguments for errors, type the result.
            let arg_type = match args.first() {
                Some(a) => Some(self.bind(a)?.1),
                None => None,
            };
            let t = aggregate_type(if star { AggregateFunction::CountStar } else { function }, arg_type.as_ref())?;
            return Ok((Expr::Constant(Value::Null), t));
        };
        // Arguments are evaluated over the aggregate's input.
        let saved_scope = std::mem::replace(&mut self.scope, grouping.input.clone());
        let saw_aggregate = std::mem::replace(&mut self.saw_aggregate, false);
        let result = (|| -> Result<Aggregate> {
            let function = if star || (function == AggregateFunction::Count && args.is_empty()) {
                AggregateFunction::CountStar
            } else {
                function
            };
            let percentile = matches!(function, AggregateFunction::PercentileCont | AggregateFunction::PercentileDisc);
            let mut bound_args = Vec::new();
            let mut arg_types = Vec::new();
            for (i, a) in args.iter().enumerate() {
                let (e, t) = self.bind(a)?;
                // (A percentile's fraction is coerced below.)
                let (e, t) = if t == DataType::Unknown && !(percentile && i == 1) {
                    (self.coerce((e, t), &DataType::Text)?, DataType::Text)
                } else {
                    (e, t)
                };
                arg_types.push(t);
                bound_args.push(e);
            }
            let arg_type = arg_types.first().cloned();
            let expected_args = match function {
                AggregateFunction::Mode => Some(1),
                AggregateFunction::Regression(_) => Some(2),
                _ if percentile => Some(2),
                _ => None,
            };
            let regression = matches!(function, AggregateFunction::Regression(_));
            if expected_args.is_some_and(|n| n != bound_args.len())
                || regression && !arg_types.iter().all(DataType::is_numeric)
            {
                let mut types: Vec<String> = arg_types.iter().map(|t| t.to_string()).collect();
                if percentile {
                    types.reverse();
                }
                return Err(Error::UndefinedFunction(format!(
                    "function {}({}) does not exist",
                    aggregate_name(function),
                    types.join(", ")
                )));
            }
            if regression {
                // Computed in double precision, as PostgreSQL does.
                let pairs: Vec<(Expr, DataType)> = bound_args.drain(..).zip(arg_types.iter().cloned()).collect();
                for pair in pairs {
                    bound_args.push(self.coerce(pair, &DataType::Float8)?);
                }
            }
            // A percentile's fraction is double precision, or an array of them for an array
            // of results.
            let many_fractions = percentile && matches!(arg_types.get(1), Some(DataType::Array(_)));
            if percentile {
                let fraction_type =
                    if many_fractions { DataType::Array(Box::new(DataType::Float8)) } else { DataType::Float8 };
                let fraction = (bound_args.remove(1), arg_types[1].clone());
                bound_args.push(self.coerce(fraction, &fraction_type)?);
            }
            let wanted = match function {
                AggregateFunction::StringAgg => Some("string_agg"),
                AggregateFunction::JsonbObjectAgg => Some("jsonb_object_agg"),
                _ => None,
            };
            if let Some(name) = wanted.filter(|_| bound_args.len() != 2) {
                return Err(Error::UndefinedFunction(format!("function {name} requires two arguments")));
            }
            if matches!(function, AggregateFunction::BoolAnd | AggregateFunction::BoolOr)
                && arg_type != Some(DataType::Bool)
            {
                return Err(Error::UndefinedFunction(format!(
                    "function {}({}) does not exist",
                    if function == AggregateFunction::BoolAnd { "bool_and" } else { "bool_or" },
                    arg_type.map(|t| t.to_string()).unwrap_or_default()
                )));
            }
            let return_type = aggregate_type(function, arg_type.as_ref())?;
            let return_type = if many_fractions { DataType::Array(Box::new(return_type)) } else { return_type };
            let filter = match (filter, window) {
                (Some(_), Some(w)) => {
                    return Err(Error::FeatureNotSupported(format!(
                        "FILTER with {}_{}",
                        aggregate_name(function),
                        w.suffix()
                    )))
                }
                (Some(f), None) => Some(self.bind_condition(f, "FILTER")?),
                (None, Some(w)) => {
                    if distinct || !order.is_empty() {
                        return Err(Error::FeatureNotSupported(format!(
                            "DISTINCT or ORDER BY with {}_{}",
                            aggregate_name(function),
                            w.suffix()
                        )));
                    }
                    Some(self.window_filter(function, w, &bound_args)?)
                }
                (None, None) => None,
            };
            let mut order_by = Vec::new();
            for o in order {
                order_by.push(self.bind_sort_key(o)?);
            }
            if self.saw_aggregate {
                return Err(Error::Grouping("aggregate function calls cannot be nested".into()));
            }
            Ok(Aggregate { function, args: bound_args, distinct, filter, order_by, return_type, window })
        })();
        self.scope = saved_scope;
        self.saw_aggregate = saw_aggregate;
        let mut grouping = grouping;
        let out = result.map(|agg| {
            let t = agg.return_type.clone();
            let index = match grouping.aggregates.iter().position(|a| *a == agg) {
                Some(i) => i,
                None => {
                    grouping.aggregates.push(agg);
                    grouping.aggregates.len() - 1
                }
            };
            (Expr::Column(grouping.group_exprs.len() + index), t)
        });
        self.grouping = Some(grouping);
        out
    }

    /// The condition that keeps a window aggregate's rows: `time >= time_bucket(grain, now())
    /// - span` over the time column of the argument's table (the only table with one, for
    /// `count_1h(*)`).
    fn window_filter(&self, function: AggregateFunction, window: Window, args: &[Expr]) -> Result<Expr> {
        let columns = &self.scope.columns;
        let table = match args.first() {
            Some(Expr::Column(c)) => columns.get(*c).and_then(|c| c.table.clone()),
            _ => None,
        };
        let times: Vec<usize> =
            (0..columns.len()).filter(|&i| columns[i].time && (table.is_none() || columns[i].table == table)).collect();
        let [time] = times[..] else {
            return Err(Error::UndefinedFunction(format!(
                "{}_{}() needs exactly one table with a time column in FROM (a timestamp column, the last of \
                 the primary key if any)",
                aggregate_name(function),
                window.suffix()
            )));
        };
        let t = columns[time].data_type.clone();
        let interval =
            |micros: i64| Expr::Constant(Value::Interval(crate::types::value::Interval { months: 0, days: 0, micros }));
        let clock = Expr::Function {
            name: if t == DataType::Timestamp { "localtimestamp" } else { "now" },
            args: Vec::new(),
            return_type: t.clone(),
        };
        let bucket = Expr::Function {
            name: "time_bucket",
            args: vec![interval(window.grain().micros()), clock],
            return_type: t,
        };
        let start = Expr::Binary(BinaryOp::Sub, Box::new(bucket), Box::new(interval(window.span_micros())));
        Ok(Expr::Binary(BinaryOp::GtEq, Box::new(Expr::Column(time)), Box::new(start)))
    }

    pub(super) fn bind_window(
        &mut self,
        name: &str,
        args: &[&ast::Expr],
        star: bool,
        over: &ast::WindowType,
    ) -> Result<(Expr, DataType)> {
        let spec = self.resolve_window(over)?;
        let spec = &spec;
        let frame = match &spec.window_frame {
            None => Frame {
                units: FrameUnits::Range,
                start: FrameBound::UnboundedPreceding,
                end: FrameBound::CurrentRow,
                exclude: FrameExclusion::NoOthers,
            },
            Some(frame) => {
                let units = match frame.units {
                    ast::WindowFrameUnits::Rows => FrameUnits::Rows,
                    ast::WindowFrameUnits::Range => FrameUnits::Range,
                    ast::WindowFrameUnits::Groups => FrameUnits::Groups,
                };
                if units == FrameUnits::Groups && spec.order_by.is_empty() {
                    return Err(Error::Windowing("GROUPS mode requires an ORDER BY clause".into()));
                }
                let counted = units != FrameUnits::Range;
                let start = self.frame_bound(&frame.start_bound, counted)?;
                let end = match &frame.end_bound {
                    Some(b) => self.frame_bound(b, counted)?,
                    None => FrameBound::CurrentRow,
                };
                if start == FrameBound::UnboundedFollowing || end == FrameBound::UnboundedPreceding {
                    return Err(Error::Syntax {
                        message: "frame start cannot be UNBOUNDED FOLLOWING".into(),
                        position: None,
                    });
                }
                let exclude = spec
                    .partition_by
                    .iter()
                    .find_map(crate::sql::parser::frame_exclusion::exclusion_of)
                    .unwrap_or(FrameExclusion::NoOthers);
                let frame = Frame { units, start, end, exclude };
                if frame.has_value_offset() && spec.order_by.len() != 1 {
                    return Err(Error::Windowing(
                        "RANGE with offset PRECEDING/FOLLOWING requires exactly one ORDER BY column".into(),
                    ));
                }
                frame
            }
        };
        if self.windows.is_none() {
            return Err(Error::Windowing("window functions are not allowed here".into()));
        }
        // Window calls may not nest: arguments, PARTITION BY and ORDER BY see no window context.
        let windows = self.windows.take();
        let bound = (|| -> Result<_> {
            let mut bound_args = Vec::new();
            for a in args {
                bound_args.push(self.bind(a)?);
            }
            let mut partition_by = Vec::new();
            for p in spec.partition_by.iter().filter(|p| crate::sql::parser::frame_exclusion::exclusion_of(p).is_none())
            {
                partition_by.push(self.bind(p)?.0);
            }
            let mut order_by = Vec::new();
            for o in &spec.order_by {
                order_by.push(self.bind_sort_key(o)?);
            }
            Ok((bound_args, partition_by, order_by))
        })();
        self.windows = windows;
        let (bound_args, partition_by, order_by) = bound.map_err(|e| match e {
            Error::Windowing(_) => Error::Windowing("window function calls cannot be nested".into()),
            other => other,
        })?;
        let first_type = bound_args.first().map(|(_, t)| t.clone());
        let (function, return_type) = match name {
            "row_number" => (WindowFunction::RowNumber, DataType::Int8),
            "rank" => (WindowFunction::Rank, DataType::Int8),
            "dense_rank" => (WindowFunction::DenseRank, DataType::Int8),
            "percent_rank" => (WindowFunction::PercentRank, DataType::Float8),
            "cume_dist" => (WindowFunction::CumeDist, DataType::Float8),
            "ntile" => (WindowFunction::Ntile, DataType::Int4),
            "nth_value" => {
                let t = first_type
                    .clone()
                    .filter(|_| bound_args.len() == 2)
                    .ok_or_else(|| Error::UndefinedFunction("function nth_value requires two arguments".into()))?;
                if !matches!(bound_args[1].1, DataType::Int2 | DataType::Int4 | DataType::Unknown) {
                    return Err(Error::UndefinedFunction(format!(
                        "function nth_value({t}, {}) does not exist",
                        bound_args[1].1
                    )));
                }
                (WindowFunction::NthValue, t)
            }
            "lag" | "lead" | "first_value" | "last_value" => {
                let t = first_type
                    .clone()
                    .ok_or_else(|| Error::UndefinedFunction(format!("function {name}() does not exist")))?;
                let f = match name {
                    "lag" => WindowFunction::Lag,
                    "lead" => WindowFunction::Lead,
                    "first_value" => WindowFunction::FirstValue,
                    _ => WindowFunction::LastValue,
                };
                (f, t)
            }
            other => match aggregate_function(other) {
                Some(agg) => {
                    let agg = if star || (agg == AggregateFunction::Count && args.is_empty()) {
                        AggregateFunction::CountStar
                    } else {
                        agg
                    };
                    (WindowFunction::Aggregate(agg), aggregate_type(agg, first_type.as_ref())?)
                }
                None => {
                    return Err(Error::WrongObjectType(format!(
                        "OVER specified, but {other} is not a window function nor an aggregate function"
                    )))
                }
            },
        };
        let mut arg_exprs = Vec::new();
        for (i, (e, t)) in bound_args.into_iter().enumerate() {
            // lag/lead default must match the value's type.
            let e = if i == 2 { self.coerce((e, t), &return_type)? } else { e };
            arg_exprs.push(e);
        }
        let call =
            WindowCall { function, args: arg_exprs, partition_by, order_by, frame, return_type: return_type.clone() };
        let (base, calls) = self.windows.as_mut().ok_or_else(|| Error::Internal("window context".into()))?;
        let index = match calls.iter().position(|c| *c == call) {
            Some(i) => i,
            None => {
                calls.push(call);
                calls.len() - 1
            }
        };
        Ok((Expr::Column(*base + index), return_type))
    }

    /// A frame bound. Offsets are constants: non-negative row counts for ROWS, non-negative
    /// numbers or intervals for RANGE.
    fn frame_bound(&mut self, bound: &ast::WindowFrameBound, rows: bool) -> Result<FrameBound> {
        let mut offset = |e: &ast::Expr| -> Result<Value> {
            let v = match self.bind(e)?.0 {
                Expr::Constant(v) => v,
                _ => return Err(Error::FeatureNotSupported("non-constant frame offsets".into())),
            };
            let negative = match &v {
                Value::Null => {
                    return Err(Error::DataException("22004", "frame starting offset must not be null".into()))
                }
                Value::Interval(iv) => iv.months < 0 || iv.days < 0 || iv.micros < 0,
                v if rows => v.as_i64().is_none_or(|n| n < 0),
                v => v.as_f64().is_none_or(|n| n < 0.0),
            };
            if negative && rows {
                return Err(Error::DataException("22013", "frame starting offset must not be negative".into()));
            }
            if negative {
                return Err(Error::DataException(
                    "22013",
                    "invalid preceding or following size in window function".into(),
                ));
            }
            Ok(v)
        };
        Ok(match bound {
            ast::WindowFrameBound::CurrentRow => FrameBound::CurrentRow,
            ast::WindowFrameBound::Preceding(None) => FrameBound::UnboundedPreceding,
            ast::WindowFrameBound::Following(None) => FrameBound::UnboundedFollowing,
            ast::WindowFrameBound::Preceding(Some(e)) if rows => {
                FrameBound::Preceding(offset(e)?.as_i64().unwrap_or_default() as u64)
            }
            ast::WindowFrameBound::Following(Some(e)) if rows => {
                FrameBound::Following(offset(e)?.as_i64().unwrap_or_default() as u64)
            }
            ast::WindowFrameBound::Preceding(Some(e)) => FrameBound::ValuePreceding(offset(e)?),
            ast::WindowFrameBound::Following(Some(e)) => FrameBound::ValueFollowing(offset(e)?),
        })
    }

    /// The window a call refers to, with named windows (`OVER w`, `OVER (w ORDER BY …)`)
    /// expanded from the WINDOW clause.
    fn resolve_window(&self, over: &ast::WindowType) -> Result<ast::WindowSpec> {
        let lookup = |name: &ast::Ident| {
            self.named_windows
                .get(&ident(name))
                .cloned()
                .ok_or_else(|| Error::UndefinedObject(format!("window \"{}\" does not exist", ident(name))))
        };
        Ok(match over {
            ast::WindowType::NamedWindow(name) => lookup(name)?,
            ast::WindowType::WindowSpec(spec) => match &spec.window_name {
                Some(name) => {
                    let mut base = lookup(name)?;
                    if !spec.order_by.is_empty() {
                        base.order_by = spec.order_by.clone();
                    }
                    if spec.window_frame.is_some() {
                        base.window_frame = spec.window_frame.clone();
                        // (With the frame's exclusion.)
                        let marks = crate::sql::parser::frame_exclusion::exclusion_of;
                        base.partition_by.retain(|p| marks(p).is_none());
                        base.partition_by.extend(spec.partition_by.iter().filter(|p| marks(p).is_some()).cloned());
                    }
                    base
                }
                None => spec.clone(),
            },
        })
    }
}
