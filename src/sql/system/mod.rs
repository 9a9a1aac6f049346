//! The system catalog as virtual tables: `pg_catalog` and `information_schema` views computed
//! from the live catalog and queried by the ordinary engine, plus the catalog functions clients
//! call (`format_type`, `pg_table_is_visible`, …; see [`functions`]) and the descriptions of
//! types the views show ([`types`]).
//!
//! Object ids: tables get `16384 + table id`, indexes `32768 + table id * 256 + index id`,
//! sequences `3000000 + sequence id`, views `4000000 + view id`; types use PostgreSQL's own
//! oids.

use super::execution::{Context, Row};
use super::planner::scope::ScopeColumn;
use crate::catalog::{self, Table};
use crate::error::Result;
use crate::mvcc::Transaction;
use crate::types::{DataType, Value};
use types::{all_types, column_facets, information_schema_type, type_len, type_meta, typmod};

mod functions;
mod types;

pub use functions::{bind_catalog_function, call_catalog_function, is_catalog_function};
pub use types::type_name;

const PUBLIC_OID: i64 = 2200;
const PG_CATALOG_OID: i64 = 11;
const INFORMATION_SCHEMA_OID: i64 = 13000;
const OWNER_OID: i64 = 10;

pub fn table_oid(table: &Table) -> i64 {
    16384 + table.id as i64
}

pub fn sequence_oid(sequence: &catalog::sequences::Sequence) -> i64 {
    3_000_000 + sequence.id as i64
}

pub fn view_oid(view: &catalog::views::View) -> i64 {
    4_000_000 + view.id as i64
}

fn index_oid(table: &Table, index_id: u32) -> i64 {
    32768 + table.id as i64 * 256 + index_id as i64
}

/// Oids of CHECK constraints: a range of their own, by table and position among its checks.
const CHECK_OIDS: i64 = 1 << 40;

fn check_oid(table: &Table, position: usize) -> i64 {
    CHECK_OIDS + ((table.id as i64) << 16) + position as i64
}

/// The CHECK constraint an oid names, with its table.
pub(super) fn find_check(tables: &[Table], oid: i64) -> Option<(&Table, &catalog::Check)> {
    tables.iter().find_map(|t| t.checks.iter().enumerate().find(|(i, _)| check_oid(t, *i) == oid).map(|(_, c)| (t, c)))
}

/// The positions (1-based, as `conkey`) of the columns a CHECK constraint reads.
fn check_columns(table: &Table, check: &catalog::Check) -> Result<Vec<String>> {
    Ok(super::planner::checks::columns_read(check)?
        .iter()
        .filter_map(|name| table.column_index(name).map(|i| (i + 1).to_string()))
        .collect())
}

/// An index as the catalog views show it: the primary key's implicit index or a secondary one.
struct KeyIndex<'a> {
    oid: i64,
    name: String,
    columns: &'a [usize],
    unique: bool,
    primary: bool,
    /// The constraint it backs: `PRIMARY KEY` or `UNIQUE` (None for a plain CREATE INDEX).
    constraint: Option<&'static str>,
}

/// Every index of a table, the primary key's first.
fn key_indexes(t: &Table) -> Vec<KeyIndex<'_>> {
    let mut out = Vec::new();
    if !t.primary_key.is_empty() {
        out.push(KeyIndex {
            oid: index_oid(t, 0),
            name: t.pkey_name(),
            columns: &t.primary_key,
            unique: true,
            primary: true,
            constraint: Some("PRIMARY KEY"),
        });
    }
    for ix in &t.indexes {
        out.push(KeyIndex {
            oid: index_oid(t, ix.id),
            name: ix.name.clone(),
            columns: &ix.columns,
            unique: ix.unique,
            primary: false,
            constraint: (ix.unique && ix.constraint).then_some("UNIQUE"),
        });
    }
    out
}

/// The oid of a table or index by name.
pub fn relation_oid(txn: &mut Transaction, name: &str) -> Result<Option<i64>> {
    if let Some(t) = catalog::get_table(txn, name)? {
        return Ok(Some(table_oid(&t)));
    }
    if let Some((t, i)) = catalog::find_index(txn, name)? {
        return Ok(Some(index_oid(&t, t.indexes[i].id)));
    }
    Ok(system_relation_oid(name))
}

/// PostgreSQL's fixed oids of the system catalogs clients name with `::regclass` (for example
/// pgjdbc's `classoid = 'pg_class'::regclass`).
fn system_relation_oid(name: &str) -> Option<i64> {
    Some(match name {
        "pg_type" => 1247,
        "pg_attribute" => 1249,
        "pg_proc" => 1255,
        "pg_class" => 1259,
        "pg_authid" => 1260,
        "pg_database" => 1262,
        "pg_tablespace" => 1213,
        "pg_am" => 2601,
        "pg_attrdef" => 2604,
        "pg_constraint" => 2606,
        "pg_description" => 2609,
        "pg_index" => 2610,
        "pg_namespace" => 2615,
        "pg_enum" => 3501,
        "pg_range" => 3541,
        _ => return None,
    })
}

/// System columns of type `text[]` (the tables below list them as `Text`, as a constant
/// cannot hold an array type).
const TEXT_ARRAYS: &[&str] = &["reloptions"];

type Columns = &'static [(&'static str, DataType)];

macro_rules! cols {
    ($($name:literal : $t:ident),* $(,)?) => { &[$(($name, DataType::$t)),*] };
}

mod segments;
mod sync;

const NAMESPACE: Columns = cols!["oid": Int8, "nspname": Text, "nspowner": Int8, "nspacl": Text];
const CLASS: Columns = cols![
    "oid": Int8, "relname": Text, "relnamespace": Int8, "relkind": Text, "relowner": Int8, "relam": Int8,
    "reltuples": Float4, "relpages": Int4, "relhasindex": Bool, "relpersistence": Text, "relchecks": Int2,
    "relhasrules": Bool, "relhastriggers": Bool, "relrowsecurity": Bool, "relforcerowsecurity": Bool,
    "relispartition": Bool, "reltablespace": Int8, "reloftype": Int8, "relacl": Text, "reloptions": Text,
    "relnatts": Int2, "relhassubclass": Bool, "relispopulated": Bool, "relreplident": Text,
    "reltoastrelid": Int8, "relpartbound": Text, "reltype": Int8, "relisshared": Bool,
];
const ATTRIBUTE: Columns = cols![
    "attrelid": Int8, "attname": Text, "atttypid": Int8, "attnum": Int2, "attnotnull": Bool, "atthasdef": Bool,
    "attisdropped": Bool, "atttypmod": Int4, "attlen": Int2, "attidentity": Text, "attgenerated": Text,
    "attcollation": Int8, "attstattarget": Int4, "attstorage": Text, "attcompression": Text, "attfdwoptions": Text,
    "attoptions": Text, "attislocal": Bool, "attinhcount": Int4, "attacl": Text, "atthasmissing": Bool,
];
const TYPE: Columns = cols![
    "oid": Int8, "typname": Text, "typnamespace": Int8, "typlen": Int2, "typtype": Text, "typbasetype": Int8,
    "typelem": Int8, "typrelid": Int8, "typarray": Int8, "typnotnull": Bool, "typtypmod": Int4,
    "typdelim": Text, "typcategory": Text, "typcollation": Int8, "typowner": Int8, "typinput": Text,
    "typoutput": Text, "typreceive": Text, "typsend": Text, "typisdefined": Bool, "typdefault": Text,
];
const INDEX: Columns = cols![
    "indexrelid": Int8, "indrelid": Int8, "indnatts": Int2, "indnkeyatts": Int2, "indisunique": Bool,
    "indisprimary": Bool, "indisexclusion": Bool, "indimmediate": Bool, "indisclustered": Bool,
    "indisvalid": Bool, "indisready": Bool, "indislive": Bool, "indisreplident": Bool, "indkey": Text,
    "indexprs": Text, "indpred": Text, "indoption": Text, "indcollation": Text, "indclass": Text,
    "indnullsnotdistinct": Bool,
];
const CONSTRAINT: Columns = cols![
    "oid": Int8, "conname": Text, "connamespace": Int8, "contype": Text, "condeferrable": Bool,
    "condeferred": Bool, "convalidated": Bool, "conrelid": Int8, "contypid": Int8, "conindid": Int8,
    "confrelid": Int8, "conkey": Text, "confkey": Text, "conislocal": Bool, "coninhcount": Int4,
    "connoinherit": Bool, "conparentid": Int8,
];
const DATABASE: Columns = cols![
    "oid": Int8, "datname": Text, "datdba": Int8, "encoding": Int4, "datcollate": Text, "datctype": Text,
    "datistemplate": Bool, "datallowconn": Bool, "datconnlimit": Int4, "datacl": Text, "dattablespace": Int8,
    "datlocprovider": Text, "daticulocale": Text, "datcollversion": Text,
];
const ROLES: Columns = cols![
    "oid": Int8, "rolname": Text, "rolsuper": Bool, "rolinherit": Bool, "rolcreaterole": Bool,
    "rolcreatedb": Bool, "rolcanlogin": Bool, "rolreplication": Bool, "rolconnlimit": Int4,
    "rolpassword": Text, "rolvaliduntil": TimestampTz, "rolbypassrls": Bool, "rolconfig": Text,
];
const SETTINGS: Columns = cols![
    "name": Text, "setting": Text, "unit": Text, "category": Text, "short_desc": Text, "context": Text,
    "vartype": Text, "source": Text, "boot_val": Text, "reset_val": Text,
];
const AM: Columns = cols!["oid": Int8, "amname": Text, "amhandler": Text, "amtype": Text];
const DESCRIPTION: Columns = cols!["objoid": Int8, "classoid": Int8, "objsubid": Int4, "description": Text];
const ATTRDEF: Columns = cols!["oid": Int8, "adrelid": Int8, "adnum": Int2, "adbin": Text];
const TABLES: Columns = cols![
    "schemaname": Text, "tablename": Text, "tableowner": Text, "tablespace": Text, "hasindexes": Bool,
    "hasrules": Bool, "hastriggers": Bool, "rowsecurity": Bool,
];
const COLLATION: Columns = cols![
    "oid": Int8, "collname": Text, "collnamespace": Int8, "collowner": Int8, "collprovider": Text,
    "collisdeterministic": Bool, "collencoding": Int4, "collcollate": Text, "collctype": Text,
];
const AUTH_MEMBERS: Columns = cols!["oid": Int8, "roleid": Int8, "member": Int8, "grantor": Int8, "admin_option": Bool];
const INHERITS: Columns = cols!["inhrelid": Int8, "inhparent": Int8, "inhseqno": Int4, "inhdetachpending": Bool];
const TRIGGER: Columns = cols![
    "oid": Int8, "tgrelid": Int8, "tgparentid": Int8, "tgname": Text, "tgfoid": Int8, "tgtype": Int2,
    "tgenabled": Text, "tgisinternal": Bool, "tgconstraint": Int8,
];
const POLICY: Columns = cols![
    "oid": Int8, "polname": Text, "polrelid": Int8, "polcmd": Text, "polpermissive": Bool, "polroles": Text,
    "polqual": Text, "polwithcheck": Text,
];
const STATISTIC_EXT: Columns = cols![
    "oid": Int8, "stxrelid": Int8, "stxname": Text, "stxnamespace": Int8, "stxowner": Int8, "stxstattarget": Int4,
    "stxkeys": Text, "stxkind": Text, "stxexprs": Text,
];
const PUBLICATION: Columns = cols![
    "oid": Int8, "pubname": Text, "pubowner": Int8, "puballtables": Bool, "pubinsert": Bool, "pubupdate": Bool,
    "pubdelete": Bool, "pubtruncate": Bool, "pubviaroot": Bool,
];
const PUBLICATION_REL: Columns = cols!["oid": Int8, "prpubid": Int8, "prrelid": Int8, "prqual": Text, "prattrs": Text];
const PUBLICATION_NAMESPACE: Columns = cols!["oid": Int8, "pnpubid": Int8, "pnnspid": Int8];
const PROC: Columns = cols![
    "oid": Int8, "proname": Text, "pronamespace": Int8, "proowner": Int8, "prokind": Text, "prorettype": Int8,
    "proargtypes": Text, "proretset": Bool, "prosrc": Text,
];
const ENUM: Columns = cols!["oid": Int8, "enumtypid": Int8, "enumsortorder": Float4, "enumlabel": Text];
const RANGE: Columns = cols!["rngtypid": Int8, "rngsubtype": Int8, "rngmultitypid": Int8];
const TABLESPACE: Columns = cols!["oid": Int8, "spcname": Text, "spcowner": Int8, "spcacl": Text, "spcoptions": Text];
const REWRITE: Columns = cols!["oid": Int8, "rulename": Text, "ev_class": Int8, "ev_type": Text, "is_instead": Bool];
const FOREIGN_TABLE: Columns = cols!["ftrelid": Int8, "ftserver": Int8, "ftoptions": Text];
const PARTITIONED_TABLE: Columns = cols!["partrelid": Int8, "partstrat": Text, "partnatts": Int2];
const IS_TABLES: Columns = cols![
    "table_catalog": Text, "table_schema": Text, "table_name": Text, "table_type": Text,
    "self_referencing_column_name": Text, "reference_generation": Text, "user_defined_type_catalog": Text,
    "user_defined_type_schema": Text, "user_defined_type_name": Text, "is_insertable_into": Text,
    "is_typed": Text, "commit_action": Text,
];
const IS_COLUMNS: Columns = cols![
    "table_catalog": Text, "table_schema": Text, "table_name": Text, "column_name": Text,
    "ordinal_position": Int4, "column_default": Text, "is_nullable": Text, "data_type": Text,
    "character_maximum_length": Int4, "character_octet_length": Int4, "numeric_precision": Int4,
    "numeric_precision_radix": Int4, "numeric_scale": Int4, "datetime_precision": Int4, "udt_catalog": Text,
    "udt_schema": Text, "udt_name": Text, "is_identity": Text, "is_generated": Text, "is_updatable": Text,
];
const IS_SCHEMATA: Columns = cols![
    "catalog_name": Text, "schema_name": Text, "schema_owner": Text, "default_character_set_catalog": Text,
    "default_character_set_schema": Text, "default_character_set_name": Text, "sql_path": Text,
];
const IS_KEY_COLUMN_USAGE: Columns = cols![
    "constraint_catalog": Text, "constraint_schema": Text, "constraint_name": Text, "table_catalog": Text,
    "table_schema": Text, "table_name": Text, "column_name": Text, "ordinal_position": Int4,
    "position_in_unique_constraint": Int4,
];
const IS_CHECK_CONSTRAINTS: Columns =
    cols!["constraint_catalog": Text, "constraint_schema": Text, "constraint_name": Text, "check_clause": Text];
const IS_TABLE_CONSTRAINTS: Columns = cols![
    "constraint_catalog": Text, "constraint_schema": Text, "constraint_name": Text, "table_catalog": Text,
    "table_schema": Text, "table_name": Text, "constraint_type": Text, "is_deferrable": Text,
    "initially_deferred": Text, "enforced": Text, "nulls_distinct": Text,
];

fn definition(qualified: &str) -> Option<Columns> {
    Some(match qualified {
        "pg_catalog.pg_namespace" => NAMESPACE,
        "pg_catalog.pg_class" => CLASS,
        "pg_catalog.pg_attribute" => ATTRIBUTE,
        "pg_catalog.pg_type" => TYPE,
        "pg_catalog.pg_index" => INDEX,
        "pg_catalog.pg_constraint" => CONSTRAINT,
        "pg_catalog.pg_database" => DATABASE,
        "pg_catalog.pg_roles" | "pg_catalog.pg_authid" => ROLES,
        "pg_catalog.pg_settings" => SETTINGS,
        "pg_catalog.pg_am" => AM,
        "pg_catalog.pg_description" => DESCRIPTION,
        "pg_catalog.pg_attrdef" => ATTRDEF,
        "pg_catalog.pg_tables" => TABLES,
        "pg_catalog.pg_collation" => COLLATION,
        "pg_catalog.pg_inherits" => INHERITS,
        "pg_catalog.pg_auth_members" => AUTH_MEMBERS,
        "pg_catalog.pg_trigger" => TRIGGER,
        "pg_catalog.pg_policy" => POLICY,
        "pg_catalog.pg_statistic_ext" => STATISTIC_EXT,
        "pg_catalog.pg_publication" => PUBLICATION,
        "pg_catalog.pg_publication_rel" => PUBLICATION_REL,
        "pg_catalog.pg_publication_namespace" => PUBLICATION_NAMESPACE,
        "pg_catalog.pg_proc" => PROC,
        "pg_catalog.pg_enum" => ENUM,
        "pg_catalog.pg_range" => RANGE,
        "pg_catalog.pg_tablespace" => TABLESPACE,
        "pg_catalog.pg_rewrite" => REWRITE,
        "pg_catalog.pg_foreign_table" => FOREIGN_TABLE,
        "pg_catalog.pg_partitioned_table" => PARTITIONED_TABLE,
        "information_schema.tables" => IS_TABLES,
        "information_schema.columns" => IS_COLUMNS,
        "information_schema.schemata" => IS_SCHEMATA,
        "information_schema.key_column_usage" => IS_KEY_COLUMN_USAGE,
        "information_schema.table_constraints" => IS_TABLE_CONSTRAINTS,
        "information_schema.check_constraints" => IS_CHECK_CONSTRAINTS,
        "pg_catalog.chronos_sync_status" => sync::STATUS,
        "pg_catalog.chronos_sync_edges" => sync::EDGES,
        "pg_catalog.chronos_segments" => segments::SEGMENTS,
        _ => return None,
    })
}

/// The columns of a system table, if `schema.name` (or an unqualified `pg_*` name) is one.
pub fn schema(schema: Option<&str>, name: &str) -> Option<(String, Vec<ScopeColumn>)> {
    let qualified = match schema {
        Some(s) => format!("{s}.{name}"),
        None if name.starts_with("pg_") || name.starts_with("chronos_") => format!("pg_catalog.{name}"),
        None => return None,
    };
    let def = definition(&qualified)?;
    let columns = def
        .iter()
        .map(|(n, t)| {
            let data_type = if TEXT_ARRAYS.contains(n) { DataType::Array(Box::new(DataType::Text)) } else { t.clone() };
            ScopeColumn { table: None, name: n.to_string(), data_type, hidden: false, time: false }
        })
        .collect();
    Some((qualified, columns))
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// Computes the rows of a system table.
pub fn rows(qualified: &str, ctx: &mut Context) -> Result<Vec<Row>> {
    let width = definition(qualified).map(|d| d.len()).unwrap_or(0);
    let tables = catalog::list_tables(ctx.txn)?;
    let pad = |mut r: Row| {
        r.resize(width, Value::Null);
        r
    };
    let db = ctx.session.database.clone();
    let mut out = Vec::new();
    match qualified {
        "pg_catalog.chronos_sync_status" => return sync::status(ctx),
        "pg_catalog.chronos_sync_edges" => return sync::edges(ctx),
        "pg_catalog.chronos_segments" => return segments::rows(ctx),
        "pg_catalog.pg_namespace" => {
            for (oid, name) in
                [(PG_CATALOG_OID, "pg_catalog"), (PUBLIC_OID, "public"), (INFORMATION_SCHEMA_OID, "information_schema")]
            {
                out.push(pad(vec![Value::Int8(oid), text(name), Value::Int8(OWNER_OID)]));
            }
        }
        "pg_catalog.pg_class" => {
            for t in &tables {
                let mut row = class_row(
                    table_oid(t),
                    &t.name,
                    "r",
                    !t.indexes.is_empty() || !t.primary_key.is_empty(),
                    t.columns.len(),
                    width,
                );
                if let Some(acl) = super::roles::acl(t) {
                    row[18] = text(acl);
                }
                let mut options = Vec::new();
                if let Some(ttl) = &t.ttl {
                    options.push(text(format!("ttl={ttl}")));
                }
                if t.no_sync {
                    options.push(text("sync=false".to_string()));
                }
                if let Some(c) = t.declared_time {
                    options.push(text(format!("time_column={}", t.columns[c].name)));
                }
                if !options.is_empty() {
                    row[19] = Value::Array(options);
                }
                row[10] = Value::Int2(t.checks.len() as i16);
                out.push(row);
                for ix in key_indexes(t) {
                    out.push(class_row(ix.oid, &ix.name, "i", false, ix.columns.len(), width));
                }
            }
            for sequence in catalog::sequences::list_sequences(ctx.txn)? {
                out.push(class_row(sequence_oid(&sequence), &sequence.name, "S", false, 3, width));
            }
            for view in catalog::views::list_views(ctx.txn)? {
                out.push(class_row(view_oid(&view), &view.name, "v", false, view.columns.len(), width));
            }
        }
        "pg_catalog.pg_attribute" => {
            for t in &tables {
                for (i, c) in t.columns.iter().enumerate() {
                    out.push(pad(attribute_row(
                        table_oid(t),
                        &c.name,
                        &c.data_type,
                        i,
                        !c.nullable,
                        c.default.is_some(),
                    )));
                }
            }
            for view in catalog::views::list_views(ctx.txn)? {
                for (i, (name, data_type)) in
                    super::planner::view_columns(ctx.txn, &view).unwrap_or_default().iter().enumerate()
                {
                    out.push(pad(attribute_row(view_oid(&view), name, data_type, i, false, false)));
                }
            }
        }
        "pg_catalog.pg_type" => {
            for t in all_types() {
                let (category, elem, array) = type_meta(&t);
                out.push(pad(vec![
                    Value::Int8(t.oid() as i64),
                    text(type_name(&t)),
                    Value::Int8(PG_CATALOG_OID),
                    Value::Int2(type_len(&t)),
                    text("b"),
                    Value::Int8(0),
                    Value::Int8(elem),
                    Value::Int8(0),
                    Value::Int8(array),
                    Value::Bool(false),
                    Value::Int4(-1),
                    text(","),
                    text(category),
                    Value::Int8(if t.is_string() { 100 } else { 0 }),
                    Value::Int8(OWNER_OID),
                    text(format!("{}in", type_name(&t))),
                    text(format!("{}out", type_name(&t))),
                    text(format!("{}recv", type_name(&t))),
                    text(format!("{}send", type_name(&t))),
                    Value::Bool(true),
                    Value::Null,
                ]));
            }
            for e in catalog::types::list_enums(ctx.txn)? {
                out.push(pad(vec![
                    Value::Int8(e.oid as i64),
                    text(e.name.clone()),
                    Value::Int8(PUBLIC_OID),
                    Value::Int2(4),
                    text("e"),
                    Value::Int8(0),
                    Value::Int8(0),
                    Value::Int8(0),
                    Value::Int8(0),
                    Value::Bool(false),
                    Value::Int4(-1),
                    text(","),
                    text("E"),
                    Value::Int8(0),
                    Value::Int8(OWNER_OID),
                    text("enum_in"),
                    text("enum_out"),
                    text("enum_recv"),
                    text("enum_send"),
                    Value::Bool(true),
                    Value::Null,
                ]));
            }
        }
        "pg_catalog.pg_enum" => {
            for e in catalog::types::list_enums(ctx.txn)? {
                for (i, label) in e.labels.iter().enumerate() {
                    out.push(pad(vec![
                        Value::Int8(e.oid as i64 * 1000 + i as i64),
                        Value::Int8(e.oid as i64),
                        Value::Float4((i + 1) as f32),
                        text(label.clone()),
                    ]));
                }
            }
        }
        "pg_catalog.pg_index" => {
            for t in &tables {
                for KeyIndex { oid, columns, unique, primary, .. } in key_indexes(t) {
                    let key: Vec<String> = columns.iter().map(|c| (c + 1).to_string()).collect();
                    out.push(pad(vec![
                        Value::Int8(oid),
                        Value::Int8(table_oid(t)),
                        Value::Int2(columns.len() as i16),
                        Value::Int2(columns.len() as i16),
                        Value::Bool(unique),
                        Value::Bool(primary),
                        Value::Bool(false),
                        Value::Bool(true),
                        Value::Bool(false),
                        Value::Bool(true),
                        Value::Bool(true),
                        Value::Bool(true),
                        Value::Bool(false),
                        text(key.join(" ")),
                        Value::Null,
                        Value::Null,
                        text(vec!["0"; columns.len()].join(" ")),
                        text(""),
                        text(""),
                        Value::Bool(false),
                    ]));
                }
            }
        }
        "pg_catalog.pg_constraint" => {
            for t in &tables {
                for ix in key_indexes(t) {
                    let Some(constraint) = ix.constraint else { continue };
                    let (oid, name, columns) = (ix.oid, ix.name, ix.columns);
                    let kind = if constraint == "PRIMARY KEY" { "p" } else { "u" };
                    let key: Vec<String> = columns.iter().map(|c| (c + 1).to_string()).collect();
                    out.push(pad(vec![
                        Value::Int8(oid + 1_000_000),
                        text(name),
                        Value::Int8(PUBLIC_OID),
                        text(kind),
                        Value::Bool(false),
                        Value::Bool(false),
                        Value::Bool(true),
                        Value::Int8(table_oid(t)),
                        Value::Int8(0),
                        Value::Int8(oid),
                        Value::Int8(0),
                        text(format!("{{{}}}", key.join(","))),
                        Value::Null,
                        Value::Bool(true),
                        Value::Int4(0),
                        Value::Bool(true),
                        Value::Int8(0),
                    ]));
                }
                for (i, check) in t.checks.iter().enumerate() {
                    out.push(pad(vec![
                        Value::Int8(check_oid(t, i)),
                        text(&check.name),
                        Value::Int8(PUBLIC_OID),
                        text("c"),
                        Value::Bool(false),
                        Value::Bool(false),
                        Value::Bool(!check.not_valid),
                        Value::Int8(table_oid(t)),
                        Value::Int8(0),
                        Value::Int8(0),
                        Value::Int8(0),
                        text(format!("{{{}}}", check_columns(t, check)?.join(","))),
                        Value::Null,
                        Value::Bool(true),
                        Value::Int4(0),
                        Value::Bool(false),
                        Value::Int8(0),
                    ]));
                }
            }
        }
        // Comments of tables (objsubid 0) and their columns (their attnum), in pg_class.
        "pg_catalog.pg_description" => {
            for t in &tables {
                let columns = t.columns.iter().enumerate().map(|(i, c)| (i as i32 + 1, &c.comment));
                for (subid, comment) in std::iter::once((0, &t.comment)).chain(columns) {
                    if let Some(comment) = comment {
                        out.push(pad(vec![
                            Value::Int8(table_oid(t)),
                            Value::Int8(system_relation_oid("pg_class").unwrap_or(1259)),
                            Value::Int4(subid),
                            text(comment),
                        ]));
                    }
                }
            }
        }
        "pg_catalog.pg_database" => {
            for (oid, name) in [(1, "chronos"), (5, "postgres")] {
                out.push(pad(vec![
                    Value::Int8(oid),
                    text(name),
                    Value::Int8(OWNER_OID),
                    Value::Int4(6),
                    text("C.UTF-8"),
                    text("C.UTF-8"),
                    Value::Bool(false),
                    Value::Bool(true),
                    Value::Int4(-1),
                    Value::Null,
                    Value::Int8(1663),
                    text("c"),
                ]));
            }
        }
        "pg_catalog.pg_roles" | "pg_catalog.pg_authid" => {
            for role in catalog::roles::list_roles(ctx.txn)? {
                let superuser = role.superuser;
                out.push(pad(vec![
                    Value::Int8(role.oid as i64),
                    text(role.name),
                    Value::Bool(superuser),
                    Value::Bool(true),
                    Value::Bool(superuser),
                    Value::Bool(superuser),
                    Value::Bool(role.login),
                    Value::Bool(false),
                    Value::Int4(-1),
                    text("********"),
                    Value::Null,
                    Value::Bool(superuser),
                    Value::Null,
                ]));
            }
        }
        "pg_catalog.pg_settings" => {
            for (name, value) in super::settings_snapshot(ctx.session) {
                out.push(pad(vec![
                    text(name),
                    text(value),
                    Value::Null,
                    text("Client Connection Defaults"),
                    text(""),
                    text("user"),
                    text("string"),
                    text("default"),
                ]));
            }
        }
        "pg_catalog.pg_am" => {
            out.push(pad(vec![Value::Int8(403), text("btree"), text("bthandler"), text("i")]));
            out.push(pad(vec![Value::Int8(2), text("heap"), text("heap_tableam_handler"), text("t")]));
        }
        "pg_catalog.pg_attrdef" => {
            for t in &tables {
                for (i, c) in t.columns.iter().enumerate() {
                    if let Some(d) = &c.default {
                        out.push(pad(vec![
                            Value::Int8(table_oid(t) * 1000 + i as i64),
                            Value::Int8(table_oid(t)),
                            Value::Int2(i as i16 + 1),
                            text(d),
                        ]));
                    }
                }
            }
        }
        "pg_catalog.pg_tables" => {
            for t in &tables {
                out.push(pad(vec![
                    text("public"),
                    text(&t.name),
                    text("admin"),
                    Value::Null,
                    Value::Bool(!t.indexes.is_empty() || !t.primary_key.is_empty()),
                    Value::Bool(false),
                    Value::Bool(false),
                    Value::Bool(false),
                ]));
            }
        }
        "information_schema.tables" => {
            let views = catalog::views::list_views(ctx.txn)?;
            let relations =
                tables.iter().map(|t| (&t.name, "BASE TABLE")).chain(views.iter().map(|v| (&v.name, "VIEW")));
            for (name, kind) in relations {
                out.push(pad(vec![
                    text(&db),
                    text("public"),
                    text(name),
                    text(kind),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    text(if kind == "VIEW" { "NO" } else { "YES" }),
                    text("NO"),
                    Value::Null,
                ]));
            }
        }
        "information_schema.columns" => {
            for t in &tables {
                for (i, c) in t.columns.iter().enumerate() {
                    let (char_len, num_prec, num_radix, num_scale) = column_facets(&c.data_type);
                    out.push(pad(vec![
                        text(&db),
                        text("public"),
                        text(&t.name),
                        text(&c.name),
                        Value::Int4(i as i32 + 1),
                        c.default.clone().map(Value::Text).unwrap_or(Value::Null),
                        text(if c.nullable { "YES" } else { "NO" }),
                        text(information_schema_type(&c.data_type)),
                        char_len,
                        Value::Null,
                        num_prec,
                        num_radix,
                        num_scale,
                        Value::Null,
                        text(&db),
                        text("pg_catalog"),
                        text(type_name(&c.data_type)),
                        text("NO"),
                        text("NEVER"),
                        text("YES"),
                    ]));
                }
            }
        }
        "information_schema.schemata" => {
            for s in ["pg_catalog", "public", "information_schema"] {
                out.push(pad(vec![text(&db), text(s), text("admin")]));
            }
        }
        "information_schema.check_constraints" => {
            for t in &tables {
                for check in &t.checks {
                    out.push(pad(vec![
                        text(&db),
                        text("public"),
                        text(&check.name),
                        text(format!("({})", check.expr)),
                    ]));
                }
            }
        }
        "information_schema.key_column_usage" | "information_schema.table_constraints" => {
            for t in &tables {
                if qualified.ends_with("table_constraints") {
                    for check in &t.checks {
                        out.push(pad(vec![
                            text(&db),
                            text("public"),
                            text(&check.name),
                            text(&db),
                            text("public"),
                            text(&t.name),
                            text("CHECK"),
                            text("NO"),
                            text("NO"),
                            text("YES"),
                            Value::Null,
                        ]));
                    }
                }
                for ix in key_indexes(t) {
                    let Some(kind) = ix.constraint else { continue };
                    let (name, columns) = (ix.name, ix.columns);
                    if qualified.ends_with("table_constraints") {
                        out.push(pad(vec![
                            text(&db),
                            text("public"),
                            text(&name),
                            text(&db),
                            text("public"),
                            text(&t.name),
                            text(kind),
                            text("NO"),
                            text("NO"),
                            text("YES"),
                            Value::Null,
                        ]));
                    } else {
                        for (pos, &c) in columns.iter().enumerate() {
                            out.push(pad(vec![
                                text(&db),
                                text("public"),
                                text(&name),
                                text(&db),
                                text("public"),
                                text(&t.name),
                                text(&t.columns[c].name),
                                Value::Int4(pos as i32 + 1),
                                Value::Null,
                            ]));
                        }
                    }
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

/// PostgreSQL's storage strategy of a type (what psql's `\d+` shows): `p`lain for fixed-length
/// types, `m`ain for numeric, e`x`tended for the other variable-length ones.
fn storage(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Numeric(_) => "m",
        t if type_len(t) > 0 => "p",
        DataType::Text
        | DataType::Varchar(_)
        | DataType::Char(_)
        | DataType::Bytea
        | DataType::Jsonb
        | DataType::Array(_)
        | DataType::Record(..) => "x",
        _ => "p",
    }
}

/// A `pg_attribute` row: column `position` (0-based) of relation `relid`.
fn attribute_row(
    relid: i64,
    name: &str,
    data_type: &DataType,
    position: usize,
    not_null: bool,
    has_default: bool,
) -> Row {
    vec![
        Value::Int8(relid),
        text(name),
        Value::Int8(data_type.oid() as i64),
        Value::Int2(position as i16 + 1),
        Value::Bool(not_null),
        Value::Bool(has_default),
        Value::Bool(false),
        Value::Int4(typmod(data_type)),
        Value::Int2(type_len(data_type)),
        text(""),
        text(""),
        Value::Int8(if data_type.is_string() { 100 } else { 0 }),
        Value::Int4(-1),
        text(storage(data_type)),
        text(""),
        Value::Null,
        Value::Null,
        Value::Bool(true),
        Value::Int4(0),
        Value::Null,
        Value::Bool(false),
    ]
}

fn class_row(oid: i64, name: &str, kind: &str, has_index: bool, natts: usize, width: usize) -> Row {
    let mut row = vec![
        Value::Int8(oid),
        text(name),
        Value::Int8(PUBLIC_OID),
        text(kind),
        Value::Int8(OWNER_OID),
        Value::Int8(if kind == "i" { 403 } else { 2 }),
        Value::Float4(-1.0),
        Value::Int4(0),
        Value::Bool(has_index),
        text("p"),
        Value::Int2(0),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(false),
        Value::Int8(0),
        Value::Int8(0),
        Value::Null,
        Value::Null,
        Value::Int2(natts as i16),
        Value::Bool(false),
        Value::Bool(true),
        text("d"),
        Value::Int8(0),
        Value::Null,
        Value::Int8(0),
        Value::Bool(false),
    ];
    row.resize(width, Value::Null);
    row
}
