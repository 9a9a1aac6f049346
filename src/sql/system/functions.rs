//! Catalog functions clients call: `format_type`, `pg_get_userbyid`, `has_table_privilege`,
//! `pg_get_indexdef`, `pg_get_constraintdef` and the other `pg_*` helpers psql, drivers and
//! Grafana use. They read the live catalog through the statement's transaction.

use super::types::all_types;
use super::{key_indexes, table_oid, OWNER_OID};
use crate::catalog;
use crate::error::{Error, Result};
use crate::sql::execution::Context;
use crate::sql::planner::plan::Expr;
use crate::types::{DataType, Value};

/// `format_type(oid, typmod)`; `enums` are the user-defined types.
fn format_type(oid: i64, typmod: i64, enums: Vec<crate::types::EnumType>) -> Value {
    let Some(t) = all_types()
        .into_iter()
        .chain(enums.into_iter().map(|e| DataType::Enum(Box::new(e))))
        .find(|t| t.oid() as i64 == oid)
    else {
        return Value::Text("???".into());
    };
    let t = match (t, typmod) {
        (DataType::Varchar(_), m) if m > 4 => DataType::Varchar(Some(m as u32 - 4)),
        (DataType::Char(_), m) if m > 4 => DataType::Char(m as u32 - 4),
        (DataType::Char(_), _) => return Value::Text("character".into()),
        (DataType::Numeric(_), m) if m > 4 => {
            DataType::Numeric(Some((((m - 4) >> 16) as u32, ((m - 4) & 0xffff) as u32)))
        }
        (t, _) => t,
    };
    Value::Text(t.to_string())
}

/// Binds a catalog function call, if `name` is one; arguments are already bound.
pub fn bind_catalog_function(name: &str, args: &mut Vec<(Expr, DataType)>) -> Result<Option<(Expr, DataType)>> {
    let (canonical, return_type): (&'static str, DataType) = match name {
        "pg_table_is_visible" | "pg_type_is_visible" | "pg_function_is_visible" => {
            ("pg_table_is_visible", DataType::Bool)
        }
        "format_type" => ("format_type", DataType::Text),
        "pg_get_userbyid" => ("pg_get_userbyid", DataType::Text),
        "obj_description" => ("obj_description", DataType::Text),
        "col_description" => ("col_description", DataType::Text),
        "shobj_description" => ("pg_null_text", DataType::Text),
        "pg_encoding_to_char" => ("pg_encoding_to_char", DataType::Text),
        "has_table_privilege" => ("has_table_privilege", DataType::Bool),
        "has_schema_privilege"
        | "has_database_privilege"
        | "has_column_privilege"
        | "has_function_privilege"
        | "pg_has_role" => ("has_privilege", DataType::Bool),
        "pg_get_expr" => ("pg_get_expr", DataType::Text),
        "pg_get_indexdef" => ("pg_get_indexdef", DataType::Text),
        "pg_get_constraintdef" => ("pg_get_constraintdef", DataType::Text),
        "pg_get_viewdef" => ("pg_get_viewdef", DataType::Text),
        "pg_get_statisticsobjdef_columns" | "pg_get_partkeydef" | "pg_get_triggerdef" => {
            ("pg_null_text", DataType::Text)
        }
        "pg_relation_size" | "pg_total_relation_size" | "pg_table_size" | "pg_indexes_size" => {
            ("pg_relation_size", DataType::Int8)
        }
        "pg_is_in_recovery" => ("pg_is_in_recovery", DataType::Bool),
        "pg_relation_is_publishable" => ("pg_relation_is_publishable", DataType::Bool),
        "txid_current" => ("txid_current", DataType::Int8),
        "pg_postmaster_start_time" => ("pg_postmaster_start_time", DataType::TimestampTz),
        _ => return Ok(None),
    };
    let bound = std::mem::take(args)
        .into_iter()
        .map(|(e, t)| match (e, t) {
            (Expr::Constant(v), DataType::Unknown) => Expr::Constant(v),
            (e, _) => e,
        })
        .collect();
    Ok(Some((Expr::Function { name: canonical, args: bound, return_type: return_type.clone() }, return_type)))
}

/// Names of the catalog functions evaluated by [`call_catalog_function`].
pub fn is_catalog_function(name: &str) -> bool {
    matches!(
        name,
        "pg_table_is_visible"
            | "format_type"
            | "pg_get_userbyid"
            | "obj_description"
            | "col_description"
            | "pg_encoding_to_char"
            | "has_privilege"
            | "has_table_privilege"
            | "pg_get_expr"
            | "pg_get_indexdef"
            | "pg_get_constraintdef"
            | "pg_null_text"
            | "pg_get_viewdef"
            | "pg_relation_size"
            | "pg_is_in_recovery"
            | "txid_current"
            | "pg_postmaster_start_time"
            | "pg_relation_is_publishable"
    )
}

/// Evaluates a catalog function.
pub fn call_catalog_function(name: &str, args: Vec<Value>, ctx: &mut Context) -> Result<Value> {
    let int = |i: usize| {
        args.get(i).and_then(|v| {
            v.as_i64().or_else(|| match v {
                Value::Text(s) => s.parse().ok(),
                _ => None,
            })
        })
    };
    Ok(match name {
        "pg_table_is_visible" => Value::Bool(true),
        "format_type" => match int(0) {
            Some(oid) => format_type(oid, int(1).unwrap_or(-1), catalog::types::list_enums(ctx.txn)?),
            None => Value::Null,
        },
        "pg_get_userbyid" => {
            let oid = int(0).unwrap_or(OWNER_OID);
            let roles = catalog::roles::list_roles(ctx.txn)?;
            match roles.into_iter().find(|r| r.oid as i64 == oid) {
                Some(role) => Value::Text(role.name),
                None => Value::Text(format!("unknown (OID={oid})")),
            }
        }
        "has_table_privilege" => {
            let (user, table, privileges) = match args.as_slice() {
                [table, privileges] => (Value::Text(ctx.session.user.clone()), table, privileges),
                [user, table, privileges] => (user.clone(), table, privileges),
                _ => return Err(Error::UndefinedFunction("function has_table_privilege does not exist".into())),
            };
            if user.is_null() || table.is_null() || privileges.is_null() {
                return Ok(Value::Null);
            }
            let table = match table {
                Value::Text(name) => name.rsplit('.').next().unwrap_or(name).trim_matches('"').to_string(),
                other => {
                    let oid = other.as_i64().unwrap_or(-1);
                    let tables = catalog::list_tables(ctx.txn)?;
                    match tables.into_iter().find(|t| table_oid(t) == oid) {
                        Some(t) => t.name,
                        None => return Ok(Value::Null),
                    }
                }
            };
            let user = match user {
                Value::Text(name) => name,
                other => {
                    let oid = other.as_i64().unwrap_or(-1);
                    let roles = catalog::roles::list_roles(ctx.txn)?;
                    match roles.into_iter().find(|r| r.oid as i64 == oid) {
                        Some(role) => role.name,
                        None => return Err(Error::UndefinedObject(format!("role with OID {oid} does not exist"))),
                    }
                }
            };
            Value::Bool(crate::sql::roles::has_table_privilege(ctx.txn, &user, &table, &privileges.to_string())?)
        }
        "pg_null_text" => Value::Null,
        // A table's comment (`obj_description(oid[, 'pg_class'])`) or a column's
        // (`col_description(table oid, attnum)`); NULL for other objects.
        "obj_description" | "col_description" => {
            let class = match args.get(1) {
                Some(Value::Text(class)) if name == "obj_description" => class.as_str(),
                _ => "pg_class",
            };
            let table = catalog::list_tables(ctx.txn)?.into_iter().find(|t| Some(super::table_oid(t)) == int(0));
            let comment = match (table, name) {
                (Some(t), "obj_description") if class == "pg_class" => t.comment,
                (Some(t), _) if name == "col_description" => {
                    let attnum = int(1).unwrap_or(0);
                    usize::try_from(attnum - 1).ok().and_then(|i| t.columns.get(i)).and_then(|c| c.comment.clone())
                }
                _ => None,
            };
            comment.map_or(Value::Null, Value::Text)
        }
        // The view's query (by oid, or by name as `'v'::regclass` arrives here).
        "pg_get_viewdef" => {
            let views = catalog::views::list_views(ctx.txn)?;
            let found = match (int(0), args.first()) {
                (Some(oid), _) => views.into_iter().find(|v| super::view_oid(v) == oid),
                (None, Some(Value::Text(name))) => views.into_iter().find(|v| v.name == *name),
                _ => None,
            };
            found.map_or(Value::Null, |v| Value::Text(format!(" {};", v.sql)))
        }
        "pg_encoding_to_char" => Value::Text("UTF8".into()),
        "has_privilege" => Value::Bool(true),
        "pg_get_expr" => args.first().cloned().unwrap_or(Value::Null),
        "pg_get_constraintdef" if int(0).is_some_and(|oid| oid >= super::CHECK_OIDS) => {
            let tables = catalog::list_tables(ctx.txn)?;
            match super::find_check(&tables, int(0).unwrap_or(0)) {
                Some((_, check)) => {
                    Value::Text(format!("CHECK ({}){}", check.expr, if check.not_valid { " NOT VALID" } else { "" }))
                }
                None => Value::Null,
            }
        }
        "pg_get_indexdef" | "pg_get_constraintdef" => {
            let oid = int(0).unwrap_or(0);
            let constraint = name == "pg_get_constraintdef";
            let oid = if constraint { oid - 1_000_000 } else { oid };
            // `pg_get_indexdef(index, n, pretty)` with n > 0: the index's n-th column alone.
            let column = if constraint { 0 } else { int(1).unwrap_or(0) };
            let mut found = Value::Null;
            for t in catalog::list_tables(ctx.txn)? {
                for ix in key_indexes(&t).into_iter().filter(|ix| ix.oid == oid) {
                    let cols: Vec<&str> = ix.columns.iter().map(|&i| t.columns[i].name.as_str()).collect();
                    if column > 0 {
                        let nth = usize::try_from(column - 1).ok().and_then(|n| cols.get(n));
                        // Past the last column, PostgreSQL gives an empty string.
                        found =
                            Value::Text(nth.map(|c| crate::sql::functions::text::quote_ident(c)).unwrap_or_default());
                        continue;
                    }
                    found = Value::Text(match (constraint, ix.constraint) {
                        (true, Some(kind)) => format!("{kind} ({})", cols.join(", ")),
                        (true, None) => continue,
                        (false, _) => format!(
                            "CREATE {}INDEX {} ON public.{} USING btree ({})",
                            if ix.unique { "UNIQUE " } else { "" },
                            ix.name,
                            t.name,
                            cols.join(", ")
                        ),
                    });
                }
            }
            found
        }
        "pg_relation_size" => Value::Int8(0),
        "pg_is_in_recovery" | "pg_relation_is_publishable" => Value::Bool(false),
        "txid_current" => Value::Int8(ctx.txn.read_version() as i64 & i64::MAX),
        "pg_postmaster_start_time" => Value::TimestampTz(ctx.now),
        other => return Err(Error::UndefinedFunction(format!("function {other} does not exist"))),
    })
}
