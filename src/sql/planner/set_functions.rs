//! Set-returning functions in the planner: their types, calls in the select list and calls in
//! FROM, where a function may read the FROM items before it (PostgreSQL's implicit LATERAL).
//! All of them run as [`Node::ProjectSet`].

use super::binder::{ident, object_name_parts, Binder};
use super::plan::{Expr, Node, SetCall};
use super::scope::{Scope, ScopeColumn};
use super::select::rename_columns;
use crate::error::{Error, Result};
use crate::types::{DataType, FieldNames};
use sqlparser::ast;

/// Column numbers standing for the select list's set-returning calls until the width of the
/// row they follow is known (see [`place_set_calls`]).
const SET_CALL_BASE: usize = usize::MAX / 4;

/// True for the set-returning functions ChronosDB knows.
pub fn is_set_returning(name: &str) -> bool {
    matches!(
        name,
        "generate_series"
            | "unnest"
            | "_pg_expandarray"
            | "jsonb_array_elements"
            | "jsonb_array_elements_text"
            | "jsonb_object_keys"
            | "jsonb_each"
            | "jsonb_each_text"
            | "regexp_split_to_table"
            | "regexp_matches"
    )
}

/// A FROM item that calls a function: its name, arguments, alias and WITH ORDINALITY (LATERAL
/// is implied: a function may always read the items before it).
pub struct FunctionFactor<'a> {
    name: String,
    args: Vec<&'a ast::Expr>,
    alias: Option<&'a ast::TableAlias>,
    ordinality: bool,
}

/// The function call a FROM item makes, if it makes one.
pub fn function_factor(factor: &ast::TableFactor) -> Option<FunctionFactor<'_>> {
    /// The arguments, if all are plain positional expressions (others fail at planning).
    fn unnamed(args: &[ast::FunctionArg]) -> Option<Vec<&ast::Expr>> {
        args.iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect()
    }
    match factor {
        ast::TableFactor::Table { name, alias, args: Some(args), with_ordinality, .. } => Some(FunctionFactor {
            name: object_name_parts(name).last().cloned().unwrap_or_default(),
            args: unnamed(&args.args)?,
            alias: alias.as_ref(),
            ordinality: *with_ordinality,
        }),
        ast::TableFactor::Function { name, args, with_ordinality, alias, .. } => Some(FunctionFactor {
            name: object_name_parts(name).last().cloned().unwrap_or_default(),
            args: unnamed(args)?,
            alias: alias.as_ref(),
            ordinality: *with_ordinality,
        }),
        ast::TableFactor::UNNEST { alias, array_exprs, with_offset: false, with_ordinality, .. } => {
            Some(FunctionFactor {
                name: "unnest".into(),
                args: array_exprs.iter().collect(),
                alias: alias.as_ref(),
                ordinality: *with_ordinality,
            })
        }
        _ => None,
    }
}

/// A FROM item's calls run once, over one empty row.
pub fn over_one_row(calls: Vec<SetCall>) -> Node {
    Node::ProjectSet { source: Box::new(Node::Values { rows: vec![vec![]] }), calls }
}

/// Replaces the placeholders of the select list's set-returning calls by the columns they
/// get after a row `offset` columns wide.
pub fn place_set_calls(e: &Expr, offset: usize) -> Expr {
    e.transform(&mut |x| match x {
        Expr::Column(c) if *c >= SET_CALL_BASE => Some(Expr::Column(c - SET_CALL_BASE + offset)),
        _ => None,
    })
}

impl Binder<'_> {
    /// A set-returning call in the select list: bound, recorded, and replaced by a placeholder
    /// column. Elsewhere (WHERE, aggregate arguments, VALUES …) it is an error.
    pub(super) fn bind_set_returning(&mut self, name: &str, args: &[&ast::Expr]) -> Result<(Expr, DataType)> {
        let Some(mut calls) = self.set_calls.take() else {
            return Err(Error::FeatureNotSupported(format!(
                "set-returning function {name}() is allowed only in the select list and in FROM"
            )));
        };
        let typed = args
            .iter()
            .map(|a| self.bind(a))
            .collect::<Result<Vec<_>>>()
            .and_then(|bound| self.set_call(name, bound, false));
        let result = typed.map(|(call, mut columns)| {
            // The calls' columns follow one another after the row.
            let first = SET_CALL_BASE + calls.iter().map(|c| c.width).sum::<usize>();
            calls.push(call);
            if columns.len() == 1 {
                let (_, t) = columns.remove(0);
                return (Expr::Column(first), t);
            }
            // Several output columns make one row value, whose fields keep their names; NULL
            // once the call has no more rows (`set_row`).
            let (names, types): (Vec<String>, Vec<DataType>) = columns.into_iter().unzip();
            let args = (first..first + types.len()).map(Expr::Column).collect();
            let t = DataType::Record(types, FieldNames(Some(names)));
            (Expr::Function { name: "set_row", args, return_type: t.clone() }, t)
        });
        self.set_calls = Some(calls);
        result
    }

    /// Plans a function in FROM. Its arguments may read `left`, the row of the FROM items
    /// before it; the third result says whether they do (then it runs in a lateral join).
    pub(super) fn plan_function_factor(
        &mut self,
        factor: &ast::TableFactor,
        left: Option<&Scope>,
    ) -> Result<(Vec<SetCall>, Scope, bool)> {
        let Some(f) = function_factor(factor) else {
            return Err(Error::FeatureNotSupported(format!("FROM item {factor}")));
        };
        // Names resolve in the items before the function first (read as the outer row of a
        // lateral join), then in the enclosing query.
        let mut lateral = false;
        let mut bound = None;
        if let Some(left) = left {
            let mut child = self.child(Some(left.clone()));
            match f.args.iter().map(|a| child.bind(a)).collect::<Result<Vec<_>>>() {
                Ok(b) => {
                    lateral = child.correlated;
                    bound = Some(b);
                }
                Err(Error::UndefinedColumn(_) | Error::MissingFromEntry(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let bound = match bound {
            Some(b) => b,
            None => {
                let saved = std::mem::take(&mut self.scope);
                let b: Result<Vec<(Expr, DataType)>> = f.args.iter().map(|a| self.bind(a)).collect();
                self.scope = saved;
                b?
            }
        };
        // `unnest(a, b)` in FROM zips its arrays: one call per array, run in lockstep.
        let per_argument = f.name == "unnest" && bound.len() > 1;
        if per_argument && f.ordinality {
            return Err(Error::FeatureNotSupported("WITH ORDINALITY on unnest of several arrays".into()));
        }
        let groups: Vec<Vec<(Expr, DataType)>> =
            if per_argument { bound.into_iter().map(|b| vec![b]).collect() } else { vec![bound] };
        let mut calls = Vec::new();
        let mut columns = Vec::new();
        for group in groups {
            let (call, cols) = self.set_call(&f.name, group, f.ordinality)?;
            calls.push(call);
            columns.extend(cols);
        }
        let table = f.alias.map(|a| ident(&a.name)).unwrap_or_else(|| f.name.clone());
        let mut scope_columns: Vec<ScopeColumn> = columns
            .into_iter()
            .map(|(name, data_type)| {
                // A function returning one unnamed value names its column after the alias.
                let name = match f.alias {
                    Some(a) if name == f.name && !per_argument => ident(&a.name),
                    _ => name,
                };
                ScopeColumn { table: Some(table.clone()), name, data_type, hidden: false, time: false }
            })
            .collect();
        if let Some(a) = f.alias {
            rename_columns(&mut scope_columns, &a.columns)?;
        }
        Ok((calls, Scope::new(scope_columns), lateral))
    }

    /// Types a call of set-returning `function`: the call (arguments coerced) and its output
    /// columns, plus a bigint `ordinality` column when asked for.
    fn set_call(
        &mut self,
        function: &str,
        bound: Vec<(Expr, DataType)>,
        ordinality: bool,
    ) -> Result<(SetCall, Vec<(String, DataType)>)> {
        let undefined = |bound: &[(Expr, DataType)]| {
            let types: Vec<String> = bound.iter().map(|b| b.1.to_string()).collect();
            Error::UndefinedFunction(format!("function {function}({}) does not exist", types.join(", ")))
        };
        let (name, args, mut columns): (&'static str, Vec<Expr>, Vec<(String, DataType)>) = match function {
            "generate_series" => {
                if !(2..=3).contains(&bound.len()) {
                    return Err(undefined(&bound));
                }
                let interval_step = bound.get(2).is_some_and(|s| s.1 == DataType::Interval);
                let mut t = DataType::common(&bound[0].1, &bound[1].1).unwrap_or(DataType::Unknown);
                if t == DataType::Unknown {
                    t = if interval_step { DataType::TimestampTz } else { DataType::Int4 };
                }
                let t = match t {
                    DataType::Int2 => DataType::Int4,
                    DataType::Date => DataType::Timestamp,
                    other => other,
                };
                let time = matches!(t, DataType::Timestamp | DataType::TimestampTz);
                if !(t.is_numeric() || time) || (time && !interval_step) {
                    return Err(undefined(&bound));
                }
                let step_type = if time { DataType::Interval } else { t.clone() };
                let mut coerced = Vec::new();
                for (i, b) in bound.into_iter().enumerate() {
                    let target = if i == 2 { &step_type } else { &t };
                    coerced.push(match b.1 {
                        DataType::Date | DataType::Timestamp | DataType::TimestampTz if b.1 != *target => {
                            Expr::Cast(Box::new(b.0), target.clone())
                        }
                        _ => self.coerce(b, target)?,
                    });
                }
                ("generate_series", coerced, vec![("generate_series".into(), t)])
            }
            "unnest" => {
                let elem = match bound.as_slice() {
                    [(_, DataType::Array(elem))] => (**elem).clone(),
                    // Catalog columns that PostgreSQL types as arrays are text here.
                    [(_, DataType::Text)] => DataType::Text,
                    _ => return Err(undefined(&bound)),
                };
                ("unnest", bound.into_iter().map(|b| b.0).collect(), vec![("unnest".into(), elem)])
            }
            // information_schema._pg_expandarray: each element with its position (pgjdbc's
            // metadata queries).
            "_pg_expandarray" => {
                let elem = match bound.as_slice() {
                    [(_, DataType::Array(elem))] => (**elem).clone(),
                    // Catalog vectors that PostgreSQL types int2vector are text here.
                    [(_, DataType::Text)] => DataType::Int2,
                    _ => return Err(undefined(&bound)),
                };
                let args = bound.into_iter().map(|b| b.0).collect();
                ("_pg_expandarray", args, vec![("x".into(), elem), ("n".into(), DataType::Int4)])
            }
            "jsonb_array_elements"
            | "jsonb_array_elements_text"
            | "jsonb_object_keys"
            | "jsonb_each"
            | "jsonb_each_text" => {
                if !matches!(bound.as_slice(), [(_, DataType::Jsonb | DataType::Unknown)]) {
                    return Err(undefined(&bound));
                }
                let arg = bound.into_iter().map(|b| self.coerce(b, &DataType::Jsonb)).collect::<Result<Vec<_>>>()?;
                let value = |t: DataType| ("value".to_string(), t);
                let key = ("key".to_string(), DataType::Text);
                match function {
                    "jsonb_array_elements" => ("jsonb_array_elements", arg, vec![value(DataType::Jsonb)]),
                    "jsonb_array_elements_text" => ("jsonb_array_elements_text", arg, vec![value(DataType::Text)]),
                    "jsonb_object_keys" => {
                        ("jsonb_object_keys", arg, vec![("jsonb_object_keys".into(), DataType::Text)])
                    }
                    "jsonb_each" => ("jsonb_each", arg, vec![key, value(DataType::Jsonb)]),
                    _ => ("jsonb_each_text", arg, vec![key, value(DataType::Text)]),
                }
            }
            "regexp_split_to_table" => {
                if bound.len() != 2 || !bound.iter().all(|b| b.1.is_string() || b.1 == DataType::Unknown) {
                    return Err(undefined(&bound));
                }
                let args = bound.into_iter().map(|b| self.coerce(b, &DataType::Text)).collect::<Result<Vec<_>>>()?;
                ("regexp_split_to_table", args, vec![("regexp_split_to_table".into(), DataType::Text)])
            }
            "regexp_matches" => {
                if !(2..=3).contains(&bound.len()) || !bound.iter().all(|b| b.1.is_string() || b.1 == DataType::Unknown)
                {
                    return Err(undefined(&bound));
                }
                let args = bound.into_iter().map(|b| self.coerce(b, &DataType::Text)).collect::<Result<Vec<_>>>()?;
                let t = DataType::Array(Box::new(DataType::Text));
                ("regexp_matches", args, vec![("regexp_matches".into(), t)])
            }
            other => return Err(Error::UndefinedFunction(format!("function {other}() does not exist"))),
        };
        if ordinality {
            columns.push(("ordinality".into(), DataType::Int8));
        }
        Ok((SetCall { name, args, width: columns.len(), ordinality }, columns))
    }
}
