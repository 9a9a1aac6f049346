//! Plans are data: a statement becomes a [`Plan`], whose queries are trees of [`Node`]s over
//! bound [`Expr`]essions (columns are positions in the input row, types are resolved).

use crate::catalog::sequences::Sequence;
use crate::catalog::views::View;
use crate::catalog::Table;
pub use crate::timeseries::summary::Window;
use crate::types::{DataType, Value};
use std::fmt;

/// A bound scalar expression. Column positions refer to the row of the node evaluating it.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Constant(Value),
    /// A column of the current row.
    Column(usize),
    /// A column of the enclosing query's current row (correlated subqueries).
    Outer(usize),
    /// A statement parameter `$n` (0-based here).
    Param(usize),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    IsNull(Box<Expr>),
    /// `a IS DISTINCT FROM b`.
    IsDistinct(Box<Expr>, Box<Expr>),
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        case_insensitive: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
    },
    /// `expr IN (subquery)`.
    InSubquery {
        expr: Box<Expr>,
        subquery: Box<Subquery>,
    },
    Exists(Box<Subquery>),
    /// A subquery returning at most one row of one column.
    ScalarSubquery(Box<Subquery>),
    /// `ARRAY(subquery)`: the subquery's single column as an array.
    ArraySubquery(Box<Subquery>),
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Cast(Box<Expr>, DataType),
    /// A scalar function, resolved by name, with its result type.
    Function {
        name: &'static str,
        args: Vec<Expr>,
        return_type: DataType,
    },
}

/// A table's CHECK constraint bound over the table's row, as a write statement evaluates it.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundCheck {
    pub name: String,
    pub expr: Expr,
}

/// A subquery inside an expression. Uncorrelated subqueries run once per statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Subquery {
    pub id: usize,
    pub node: Node,
    pub correlated: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Negate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    And,
    Or,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Concat,
    /// `->`: JSON member or element.
    JsonGet,
    /// `->>`: JSON member or element as text.
    JsonGetText,
    /// `~`, `~*`: regular expression match.
    RegexMatch {
        case_insensitive: bool,
    },
}

/// An aggregate function call.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    pub function: AggregateFunction,
    /// The argument (None for `count(*)`); a second argument for string_agg's delimiter.
    pub args: Vec<Expr>,
    pub distinct: bool,
    pub filter: Option<Expr>,
    /// `string_agg(x, ',' ORDER BY y)`: the order the inputs are fed in.
    pub order_by: Vec<SortKey>,
    pub return_type: DataType,
    /// A window aggregate (`avg_1h(x)`): `filter` keeps the window's rows, and the table's
    /// summaries may answer it without reading them (see `timeseries::summary`).
    pub window: Option<Window>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateFunction {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    StddevSamp,
    StddevPop,
    VarSamp,
    VarPop,
    StringAgg,
    ArrayAgg,
    JsonbAgg,
    JsonbObjectAgg,
    /// Ordered-set aggregates (`… WITHIN GROUP (ORDER BY x)`): the arguments are the ordered
    /// value, then the direct argument (the fraction) if any.
    PercentileCont,
    PercentileDisc,
    Mode,
    BoolAnd,
    BoolOr,
    BitAnd,
    BitOr,
    BitXor,
    /// The two-argument statistics over (y, x) pairs: `corr`, `covar_*`, `regr_*`.
    Regression(Statistic),
}

/// What a [`AggregateFunction::Regression`] computes from the pairs where both are non-NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    Corr,
    CovarPop,
    CovarSamp,
    Slope,
    Intercept,
    R2,
    Count,
    AvgX,
    AvgY,
    Sxx,
    Syy,
    Sxy,
}

impl Statistic {
    pub const ALL: [(&'static str, Statistic); 12] = [
        ("corr", Statistic::Corr),
        ("covar_pop", Statistic::CovarPop),
        ("covar_samp", Statistic::CovarSamp),
        ("regr_slope", Statistic::Slope),
        ("regr_intercept", Statistic::Intercept),
        ("regr_r2", Statistic::R2),
        ("regr_count", Statistic::Count),
        ("regr_avgx", Statistic::AvgX),
        ("regr_avgy", Statistic::AvgY),
        ("regr_sxx", Statistic::Sxx),
        ("regr_syy", Statistic::Syy),
        ("regr_sxy", Statistic::Sxy),
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, s)| *s == self).map_or("regr", |(n, _)| n)
    }
}

impl AggregateFunction {
    /// True for aggregates that keep every input until they finish (their state grows with
    /// the input, not with the groups).
    pub fn keeps_inputs(self) -> bool {
        matches!(
            self,
            AggregateFunction::StringAgg
                | AggregateFunction::ArrayAgg
                | AggregateFunction::JsonbAgg
                | AggregateFunction::JsonbObjectAgg
                | AggregateFunction::PercentileCont
                | AggregateFunction::PercentileDisc
                | AggregateFunction::Mode
        )
    }
}

/// A window function call over partitions of the input.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowCall {
    pub function: WindowFunction,
    pub args: Vec<Expr>,
    pub partition_by: Vec<Expr>,
    pub order_by: Vec<SortKey>,
    pub frame: Frame,
    pub return_type: DataType,
}

/// A window frame: the rows of the partition an aggregate, first_value or last_value sees.
/// The default is `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`, which without ORDER BY
/// is the whole partition (every row is a peer of every other).
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub units: FrameUnits,
    pub start: FrameBound,
    pub end: FrameBound,
    pub exclude: FrameExclusion,
}

/// The rows around the current one a frame leaves out (`EXCLUDE …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameExclusion {
    NoOthers,
    CurrentRow,
    /// The current row and its peers.
    Group,
    /// The current row's peers, not the row itself.
    Ties,
}

/// What a frame's offsets count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameUnits {
    /// Rows.
    Rows,
    /// Distance in the ORDER BY value; peers (equal values) are one.
    Range,
    /// Groups of peers.
    Groups,
}

impl Frame {
    /// Whether a bound is a RANGE offset (which needs exactly one ORDER BY column).
    pub fn has_value_offset(&self) -> bool {
        [&self.start, &self.end]
            .iter()
            .any(|b| matches!(b, FrameBound::ValuePreceding(_) | FrameBound::ValueFollowing(_)))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum FrameBound {
    UnboundedPreceding,
    /// ROWS: this many rows before the current one; GROUPS: this many peer groups.
    Preceding(u64),
    /// RANGE: rows whose (single) ORDER BY value is at most this far before the current
    /// row's (a number, or an interval for dates and timestamps).
    ValuePreceding(Value),
    CurrentRow,
    Following(u64),
    ValueFollowing(Value),
    UnboundedFollowing,
}

#[derive(Clone, Debug, PartialEq)]
pub enum WindowFunction {
    RowNumber,
    Rank,
    DenseRank,
    PercentRank,
    CumeDist,
    /// ntile(n): the bucket number, 1 to n, of the row.
    Ntile,
    Lag,
    Lead,
    FirstValue,
    LastValue,
    /// nth_value(value, n): the value at the frame's n-th row.
    NthValue,
    /// An aggregate over the frame: the whole partition without ORDER BY, else from the start
    /// of the partition to the current row's last peer.
    Aggregate(AggregateFunction),
}

/// One ORDER BY key.
/// A call of a set-returning function (see [`Node::ProjectSet`]): it yields rows of `width`
/// columns.
#[derive(Clone, Debug, PartialEq)]
pub struct SetCall {
    pub name: &'static str,
    pub args: Vec<Expr>,
    /// Output columns, the ordinality column included.
    pub width: usize,
    /// `WITH ORDINALITY`: each row ends with its number, from 1.
    pub ordinality: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    pub descending: bool,
    pub nulls_first: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOperator {
    Union,
    Intersect,
    Except,
}

/// A query plan node. Each produces rows; the shape of its rows is known at plan time.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// All rows of a table, optionally filtered; `with_key` appends the encoded row key as a
    /// trailing BYTEA column (for UPDATE and DELETE).
    Scan {
        table: Table,
        filter: Option<Expr>,
        with_key: bool,
        /// The columns the plan reads, ascending (None: all); the others may come out NULL.
        columns: Option<Vec<usize>>,
    },
    /// Rows by primary key values (each inner Vec is one full key).
    KeyLookup {
        table: Table,
        keys: Vec<Vec<Expr>>,
        filter: Option<Expr>,
        with_key: bool,
    },
    /// Rows whose primary key starts with `prefix` values and whose next key column lies
    /// within the bounds (each `(value, inclusive)`); the filter still applies in full.
    KeyRange {
        table: Table,
        prefix: Vec<Expr>,
        lower: Option<(Expr, bool)>,
        upper: Option<(Expr, bool)>,
        filter: Option<Expr>,
        with_key: bool,
        /// In descending key order.
        reverse: bool,
    },
    /// Rows by secondary index: each inner Vec is one full set of indexed values.
    IndexLookup {
        table: Table,
        index: usize,
        values: Vec<Vec<Expr>>,
        filter: Option<Expr>,
        with_key: bool,
        /// The filter and the nodes above read only indexed columns, of types the index key
        /// holds exactly: the rows are decoded from the index entries, without reading the
        /// table, and their other columns are NULL.
        index_only: bool,
    },
    /// Rows by a range of a secondary index: leading index columns pinned to `prefix`, the
    /// next one within the bounds; the filter still applies in full.
    IndexRange {
        table: Table,
        index: usize,
        prefix: Vec<Expr>,
        lower: Option<(Expr, bool)>,
        upper: Option<(Expr, bool)>,
        filter: Option<Expr>,
        with_key: bool,
        /// As for [`Node::IndexLookup`].
        index_only: bool,
    },
    /// Literal rows.
    Values {
        rows: Vec<Vec<Expr>>,
    },
    Filter {
        source: Box<Node>,
        predicate: Expr,
    },
    Project {
        source: Box<Node>,
        exprs: Vec<Expr>,
    },
    /// Output: the group-by values, then the aggregates.
    Aggregate {
        source: Box<Node>,
        group_by: Vec<Expr>,
        aggregates: Vec<Aggregate>,
    },
    /// `time_bucket_gapfill`: the aggregated rows with a row added for each missing bucket.
    /// Output: the input row, then one column per `locf`/`interpolate` call.
    GapFill {
        source: Box<Node>,
        fill: GapFill,
    },
    /// Output: the input row, then one column per window call.
    Window {
        source: Box<Node>,
        calls: Vec<WindowCall>,
    },
    Sort {
        source: Box<Node>,
        keys: Vec<SortKey>,
    },
    Limit {
        source: Box<Node>,
        limit: Option<Expr>,
        offset: Option<Expr>,
    },
    /// Removes duplicate rows; with `on`, keeps the first row for each value of the keys.
    Distinct {
        source: Box<Node>,
        on: Option<Vec<Expr>>,
    },
    /// Nested-loop join; output is the left row then the right row.
    NestedLoopJoin {
        left: Box<Node>,
        right: Box<Node>,
        kind: JoinKind,
        predicate: Option<Expr>,
        right_width: usize,
        left_width: usize,
    },
    /// A join whose right side reads the left row (LATERAL): the right side runs once per
    /// left row, which its `Expr::Outer` references read. Inner or left only.
    LateralJoin {
        left: Box<Node>,
        right: Box<Node>,
        kind: JoinKind,
        predicate: Option<Expr>,
        left_width: usize,
        right_width: usize,
    },
    /// Equi-join building a hash table on the right input.
    HashJoin {
        left: Box<Node>,
        right: Box<Node>,
        kind: JoinKind,
        left_keys: Vec<Expr>,
        right_keys: Vec<Expr>,
        residual: Option<Expr>,
        left_width: usize,
        right_width: usize,
    },
    SetOperation {
        op: SetOperator,
        all: bool,
        left: Box<Node>,
        right: Box<Node>,
    },
    /// Rows of a virtual table computed from the catalog (pg_catalog, information_schema).
    Virtual {
        name: String,
        filter: Option<Expr>,
    },
    /// Set-returning functions run for each input row (`SELECT unnest(a) FROM t`, a function in
    /// FROM over one empty row, a function in FROM that reads earlier FROM items). Output: the
    /// input row, then each call's columns. The calls run in lockstep: a row yields as many rows
    /// as its longest call, shorter calls padded with NULLs, and none when every call is empty.
    ProjectSet {
        source: Box<Node>,
        calls: Vec<SetCall>,
    },
    /// `WITH RECURSIVE`: the anchor's rows, then the recursive term run over the rows of the
    /// previous round (visible as [`Node::WorkingTable`] `id`) until it produces none.
    Recursive {
        id: usize,
        anchor: Box<Node>,
        recursive: Box<Node>,
        distinct: bool,
    },
    /// The rows of the previous round of the recursive CTE `id`.
    WorkingTable {
        id: usize,
    },
}

/// How [`Node::GapFill`] fills: the first `groups` input columns are the GROUP BY values, one
/// of them (`bucket`) the bucket and the others a partition; each partition gets a row for
/// every bucket from the bucket of `start` up to `finish` (exclusive), rows without data
/// holding NULL aggregates.
#[derive(Clone, Debug, PartialEq)]
pub struct GapFill {
    pub bucket: usize,
    pub groups: usize,
    /// Input columns: the GROUP BY values, then the aggregates.
    pub columns: usize,
    /// The type of the bucket (a date, timestamp or integer type).
    pub time_type: DataType,
    /// The bucket width: an interval, or an integer for integer times.
    pub width: Expr,
    /// Lower bounds of the time (from the call or the WHERE clause); the greatest is used.
    pub start: Vec<Expr>,
    /// Upper bounds (exclusive, as TimescaleDB takes them whether or not the comparison is
    /// strict); the least is used.
    pub finish: Vec<Expr>,
    pub calls: Vec<GapFillCall>,
}

/// A `locf(value [, prev [, treat_null_as_missing]])` or `interpolate(value)` call, over the
/// rows of [`Node::GapFill`]'s input.
#[derive(Clone, Debug, PartialEq)]
pub struct GapFillCall {
    pub function: GapFillFunction,
    pub value: Expr,
    /// `locf`'s value for the buckets before the first row of a partition.
    pub prev: Option<Expr>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GapFillFunction {
    /// The last value seen (the last non-NULL one when NULLs count as missing).
    Locf { treat_null_as_missing: bool },
    /// Linear interpolation between the nearest rows with values, by bucket time.
    Interpolate,
}

/// A column of a result.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultColumn {
    pub name: String,
    pub data_type: DataType,
}

/// What to do with an INSERT's rows that collide on a unique key.
#[derive(Clone, Debug, PartialEq)]
pub enum OnConflict {
    Error,
    DoNothing {
        target: Option<Vec<usize>>,
    },
    /// Assignments are evaluated over `existing row ++ excluded row`.
    DoUpdate {
        target: Vec<usize>,
        assignments: Vec<(usize, Expr)>,
        predicate: Option<Expr>,
    },
}

/// Storage parameters a statement sets (`WITH (…)`, `SET (…)`, `RESET (…)`); None leaves one
/// as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorageParameters {
    /// `ttl`; Some(None) resets it.
    pub ttl: Option<Option<String>>,
    /// `sync`.
    pub sync: Option<bool>,
    /// `time_column`: the column's name (only when the table is created).
    pub time_column: Option<String>,
}

/// A bound statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    Query {
        node: Node,
        columns: Vec<ResultColumn>,
    },
    /// `source` produces full table rows (defaults filled, casts applied).
    Insert {
        table: Table,
        source: Node,
        on_conflict: OnConflict,
        returning: Option<(Vec<Expr>, Vec<ResultColumn>)>,
        checks: Vec<BoundCheck>,
    },
    /// `source` produces rows `table row ++ extra FROM columns ++ key`; assignments are
    /// evaluated over that row.
    Update {
        table: Table,
        source: Node,
        assignments: Vec<(usize, Expr)>,
        returning: Option<(Vec<Expr>, Vec<ResultColumn>)>,
        checks: Vec<BoundCheck>,
    },
    /// `source` produces rows `table row ++ extra USING columns ++ key`.
    Delete {
        table: Table,
        source: Node,
        returning: Option<(Vec<Expr>, Vec<ResultColumn>)>,
    },
    CreateTable {
        table: Table,
        if_not_exists: bool,
        /// Sequences its SERIAL and identity columns own.
        sequences: Vec<Sequence>,
        /// `CREATE TABLE … AS query` and `SELECT … INTO`: the query's rows, in the table's
        /// column order, inserted once the table exists (None: an empty table, or `WITH NO
        /// DATA`).
        rows: Option<Node>,
    },
    CreateSequence {
        sequence: Sequence,
        if_not_exists: bool,
    },
    CreateView {
        view: View,
        or_replace: bool,
    },
    DropView {
        names: Vec<String>,
        if_exists: bool,
        /// CASCADE: views that read them are dropped too.
        cascade: bool,
    },
    DropSequence {
        names: Vec<String>,
        if_exists: bool,
    },
    DropTable {
        names: Vec<String>,
        if_exists: bool,
        /// CASCADE: views that read them are dropped too.
        cascade: bool,
    },
    CreateIndex {
        table: String,
        name: String,
        columns: Vec<String>,
        unique: bool,
        if_not_exists: bool,
    },
    DropIndex {
        names: Vec<String>,
        if_exists: bool,
    },
    AlterTable {
        table: String,
        if_exists: bool,
        action: AlterAction,
    },
    Truncate {
        tables: Vec<String>,
        /// `RESTART IDENTITY`: the sequences the tables' columns own start over.
        restart_identity: bool,
    },
    Set {
        name: String,
        value: Option<String>,
    },
    Show {
        name: String,
    },
    Explain(Box<Plan>),
    /// A query with data-modifying statements in its WITH clause: each runs once, first, and
    /// its RETURNING rows become the working table `id` that the query reads.
    WithModifications {
        modifications: Vec<(usize, Plan)>,
        query: Box<Plan>,
    },
    /// COPY … FROM STDIN: rows arrive later; `targets` are the columns the data fills and
    /// `defaults` the bound DEFAULTs of the others.
    CopyFrom {
        table: Table,
        targets: Vec<usize>,
        defaults: Vec<(usize, Expr)>,
        format: crate::sql::copy::CopyFormat,
        checks: Vec<BoundCheck>,
    },
    /// COPY … TO STDOUT.
    CopyTo {
        node: Node,
        columns: Vec<ResultColumn>,
        format: crate::sql::copy::CopyFormat,
    },
    /// CREATE TYPE … AS ENUM.
    CreateType {
        name: String,
        labels: Vec<String>,
    },
    DropType {
        names: Vec<String>,
        if_exists: bool,
    },
    /// CREATE/ALTER/DROP ROLE, GRANT, REVOKE.
    Role(crate::sql::roles::RoleCommand),
    /// VACUUM: garbage collection, and sealing the settled rows of the time-series tables
    /// (all, or the one named) into column segments.
    Vacuum {
        table: Option<String>,
    },
    /// Accepted and ignored for client compatibility (e.g. DISCARD ALL, DEALLOCATE).
    Noop {
        tag: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum AlterAction {
    AddColumn {
        column: crate::catalog::Column,
        if_not_exists: bool,
    },
    DropColumn {
        name: String,
        if_exists: bool,
    },
    RenameColumn {
        from: String,
        to: String,
    },
    RenameTable {
        to: String,
    },
    /// `ADD PRIMARY KEY (…)` on a table keyed by hidden row ids: rows are re-keyed.
    AddPrimaryKey {
        columns: Vec<String>,
    },
    /// `ALTER COLUMN … SET/DROP DEFAULT` (None drops it).
    SetDefault {
        column: String,
        default: Option<String>,
    },
    /// `ALTER COLUMN … SET/DROP NOT NULL`.
    SetNotNull {
        column: String,
        not_null: bool,
    },
    /// `ALTER COLUMN … TYPE t`: existing values are cast.
    SetType {
        column: String,
        data_type: DataType,
    },
    /// `ADD [CONSTRAINT name] CHECK (…) [NOT VALID]`: `expr` is the condition bound over the
    /// table's row, which every existing row must meet unless the check is `NOT VALID`.
    AddCheck {
        check: crate::catalog::Check,
        expr: Expr,
    },
    /// `VALIDATE CONSTRAINT name`: every row must meet the named CHECK constraint, `expr`
    /// bound over the table's row; `None` for a constraint that is valid already.
    ValidateCheck {
        name: String,
        expr: Option<Expr>,
    },
    /// `ADD [CONSTRAINT name] UNIQUE (columns)`: a unique index shown as a constraint, named
    /// `<table>_<columns>_key` when unnamed.
    AddUnique {
        name: Option<String>,
        columns: Vec<String>,
    },
    /// `DROP CONSTRAINT [IF EXISTS] name` of a CHECK constraint.
    DropConstraint {
        name: String,
        if_exists: bool,
    },
    /// `SET (…)` or `RESET (…)` of storage parameters (those with no meaning here change
    /// nothing).
    SetStorage(StorageParameters),
    /// `OWNER TO` a superuser: no change.
    Nothing,
    /// `COMMENT ON TABLE t` (no column) or `COMMENT ON COLUMN t.c IS …`; None (`IS NULL` or
    /// `IS ''`) removes it.
    SetComment {
        column: Option<String>,
        comment: Option<String>,
    },
}

impl Node {
    /// Writes the node tree, indented, for EXPLAIN.
    #[recursive::recursive]
    fn explain(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let pad = "  ".repeat(depth);
        let arrow = if depth == 0 { "" } else { "-> " };
        write!(f, "{pad}{arrow}")?;
        let filter_text = |filter: &Option<Expr>| match filter {
            Some(e) => format!(" filter={e}"),
            None => String::new(),
        };
        match self {
            Node::Scan { table, filter, .. } => writeln!(f, "Scan {}{}", table.name, filter_text(filter)),
            Node::KeyLookup { table, keys, filter, .. } => {
                writeln!(f, "KeyLookup {} ({} keys){}", table.name, keys.len(), filter_text(filter))
            }
            Node::KeyRange { table, prefix, lower, upper, filter, reverse, .. } => writeln!(
                f,
                "KeyRange {}{}{}{}",
                table.name,
                if *reverse { " descending" } else { "" },
                range_text(prefix, lower, upper),
                filter_text(filter)
            ),
            Node::IndexLookup { table, index, values, filter, index_only, .. } => writeln!(
                f,
                "IndexLookup {}.{} ({} values){}{}",
                table.name,
                table.indexes.get(*index).map(|i| i.name.as_str()).unwrap_or("?"),
                values.len(),
                if *index_only { ", index only" } else { "" },
                filter_text(filter)
            ),
            Node::IndexRange { table, index, prefix, lower, upper, filter, index_only, .. } => writeln!(
                f,
                "IndexRange {}.{}{}{}{}",
                table.name,
                table.indexes.get(*index).map(|i| i.name.as_str()).unwrap_or("?"),
                range_text(prefix, lower, upper),
                if *index_only { ", index only" } else { "" },
                filter_text(filter)
            ),
            Node::Values { rows } => writeln!(f, "Values ({} rows)", rows.len()),
            Node::Filter { source, predicate } => {
                writeln!(f, "Filter {predicate}")?;
                source.explain(f, depth + 1)
            }
            Node::Project { source, exprs } => {
                let list: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
                writeln!(f, "Project {}", list.join(", "))?;
                source.explain(f, depth + 1)
            }
            Node::Aggregate { source, group_by, aggregates } => {
                let groups: Vec<String> = group_by.iter().map(|e| e.to_string()).collect();
                let aggs: Vec<String> = aggregates
                    .iter()
                    .map(|a| {
                        let name = format!("{:?}", a.function).to_lowercase();
                        match a.window {
                            Some(w) => format!("{}_{}", name.trim_end_matches("star"), w.suffix()),
                            None => name,
                        }
                    })
                    .collect();
                let from = match super::summaries::summary_plan(source, group_by, aggregates) {
                    Some(_) => " from summaries",
                    None => "",
                };
                writeln!(f, "Aggregate group=[{}] aggs=[{}]{from}", groups.join(", "), aggs.join(", "))?;
                source.explain(f, depth + 1)
            }
            Node::GapFill { source, fill } => {
                writeln!(
                    f,
                    "GapFill bucket=#{} width={} ({} fill functions)",
                    fill.bucket,
                    fill.width,
                    fill.calls.len()
                )?;
                source.explain(f, depth + 1)
            }
            Node::Window { source, calls } => {
                writeln!(f, "Window ({} functions)", calls.len())?;
                source.explain(f, depth + 1)
            }
            Node::Sort { source, keys } => {
                let list: Vec<String> =
                    keys.iter().map(|k| format!("{}{}", k.expr, if k.descending { " DESC" } else { "" })).collect();
                writeln!(f, "Sort {}", list.join(", "))?;
                source.explain(f, depth + 1)
            }
            Node::Limit { source, limit, offset } => {
                write!(f, "Limit")?;
                if let Some(l) = limit {
                    write!(f, " {l}")?;
                }
                if let Some(o) = offset {
                    write!(f, " offset {o}")?;
                }
                writeln!(f)?;
                source.explain(f, depth + 1)
            }
            Node::Distinct { source, on } => {
                match on {
                    Some(keys) => {
                        let list: Vec<String> = keys.iter().map(|e| e.to_string()).collect();
                        writeln!(f, "Distinct on {}", list.join(", "))?
                    }
                    None => writeln!(f, "Distinct")?,
                }
                source.explain(f, depth + 1)
            }
            Node::LateralJoin { left, right, kind, predicate, .. } => {
                writeln!(f, "LateralJoin {kind:?}{}", filter_text(predicate))?;
                left.explain(f, depth + 1)?;
                right.explain(f, depth + 1)
            }
            Node::NestedLoopJoin { left, right, kind, predicate, .. } => {
                writeln!(f, "NestedLoopJoin {kind:?}{}", filter_text(predicate))?;
                left.explain(f, depth + 1)?;
                right.explain(f, depth + 1)
            }
            Node::HashJoin { left, right, kind, left_keys, right_keys, .. } => {
                let l: Vec<String> = left_keys.iter().map(|e| e.to_string()).collect();
                let r: Vec<String> = right_keys.iter().map(|e| e.to_string()).collect();
                writeln!(f, "HashJoin {kind:?} on [{}] = [{}]", l.join(", "), r.join(", "))?;
                left.explain(f, depth + 1)?;
                right.explain(f, depth + 1)
            }
            Node::SetOperation { op, all, left, right } => {
                writeln!(f, "{op:?}{}", if *all { " All" } else { "" })?;
                left.explain(f, depth + 1)?;
                right.explain(f, depth + 1)
            }
            Node::Virtual { name, filter } => writeln!(f, "VirtualScan {name}{}", filter_text(filter)),
            Node::ProjectSet { source, calls } => {
                let list: Vec<String> = calls
                    .iter()
                    .map(|c| {
                        let args: Vec<String> = c.args.iter().map(|e| e.to_string()).collect();
                        format!("{}({})", c.name, args.join(", "))
                    })
                    .collect();
                writeln!(f, "ProjectSet {}", list.join(", "))?;
                source.explain(f, depth + 1)
            }
            Node::Recursive { anchor, recursive, distinct, .. } => {
                writeln!(f, "RecursiveUnion{}", if *distinct { "" } else { " All" })?;
                anchor.explain(f, depth + 1)?;
                recursive.explain(f, depth + 1)
            }
            Node::WorkingTable { id } => writeln!(f, "WorkingTable {id}"),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.explain(f, 0)
    }
}

impl fmt::Display for Expr {
    #[recursive::recursive]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Constant(Value::Null) => write!(f, "NULL"),
            Expr::Constant(Value::Text(s)) => write!(f, "'{s}'"),
            Expr::Constant(v) => write!(f, "{v}"),
            Expr::Column(i) => write!(f, "#{i}"),
            Expr::Outer(i) => write!(f, "outer#{i}"),
            Expr::Param(i) => write!(f, "${}", i + 1),
            Expr::Unary(UnaryOp::Not, e) => write!(f, "NOT {e}"),
            Expr::Unary(UnaryOp::Negate, e) => write!(f, "-{e}"),
            Expr::Binary(op, l, r) => write!(f, "({l} {op:?} {r})"),
            Expr::IsNull(e) => write!(f, "{e} IS NULL"),
            Expr::IsDistinct(l, r) => write!(f, "{l} IS DISTINCT FROM {r}"),
            Expr::Like { expr, pattern, case_insensitive } => {
                write!(f, "{expr} {} {pattern}", if *case_insensitive { "ILIKE" } else { "LIKE" })
            }
            Expr::InList { expr, list } => {
                let items: Vec<String> = list.iter().map(|e| e.to_string()).collect();
                write!(f, "{expr} IN ({})", items.join(", "))
            }
            Expr::InSubquery { expr, .. } => write!(f, "{expr} IN (subquery)"),
            Expr::Exists(_) => write!(f, "EXISTS (subquery)"),
            Expr::ScalarSubquery(_) => write!(f, "(subquery)"),
            Expr::ArraySubquery(_) => write!(f, "ARRAY(subquery)"),
            Expr::Case { .. } => write!(f, "CASE"),
            Expr::Cast(e, t) => write!(f, "{e}::{t}"),
            Expr::Function { name, args, .. } => {
                let items: Vec<String> = args.iter().map(|e| e.to_string()).collect();
                write!(f, "{name}({})", items.join(", "))
            }
        }
    }
}

/// ` prefix=[…] from … to …` of a key or index range, as EXPLAIN shows it.
fn range_text(prefix: &[Expr], lower: &Option<(Expr, bool)>, upper: &Option<(Expr, bool)>) -> String {
    let bound = |word: &str, b: &Option<(Expr, bool)>| match b {
        Some((e, inclusive)) => format!(" {word} {e}{}", if *inclusive { "" } else { " (exclusive)" }),
        None => String::new(),
    };
    let prefix: Vec<String> = prefix.iter().map(|e| e.to_string()).collect();
    format!(" prefix=[{}]{}{}", prefix.join(", "), bound("from", lower), bound("to", upper))
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plan::Query { node, .. } => write!(f, "{node}"),
            Plan::Insert { table, source, .. } => {
                writeln!(f, "Insert {}", table.name)?;
                source.explain(f, 1)
            }
            Plan::Update { table, source, .. } => {
                writeln!(f, "Update {}", table.name)?;
                source.explain(f, 1)
            }
            Plan::Delete { table, source, .. } => {
                writeln!(f, "Delete {}", table.name)?;
                source.explain(f, 1)
            }
            Plan::WithModifications { modifications, query } => {
                for (id, plan) in modifications {
                    writeln!(f, "Modification into working table {id}:")?;
                    write!(f, "{plan}")?;
                }
                write!(f, "{query}")
            }
            other => writeln!(f, "{other:?}"),
        }
    }
}

impl Expr {
    /// True if the expression reads no column of the current row and no parameter that
    /// changes per row: it can be evaluated once.
    pub fn is_row_independent(&self) -> bool {
        let mut independent = true;
        self.walk(&mut |e| {
            if matches!(
                e,
                Expr::Column(_) | Expr::Outer(_) | Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery { .. }
            ) {
                independent = false;
            }
        });
        independent
    }

    /// True if the expression reads nothing of the row being scanned (constants, parameters,
    /// the enclosing query's row): a value a key or index lookup can take, evaluated when the
    /// scan starts.
    pub fn is_key_bound(&self) -> bool {
        let mut bound = true;
        self.walk(&mut |e| {
            if matches!(
                e,
                Expr::Column(_)
                    | Expr::ScalarSubquery(_)
                    | Expr::ArraySubquery(_)
                    | Expr::Exists(_)
                    | Expr::InSubquery { .. }
            ) {
                bound = false;
            }
        });
        bound
    }

    /// The expression as a bound on `column`: `(op, value)` for `column op value` with `op`
    /// one of `<`, `<=`, `>`, `>=` and a value that does not read the row
    /// ([`Expr::is_key_bound`]); `value op column` is read the other way round.
    pub fn bound_on(&self, column: &Expr) -> Option<(BinaryOp, Expr)> {
        let Expr::Binary(op, l, r) = self else { return None };
        let flipped = match op {
            BinaryOp::Lt => BinaryOp::Gt,
            BinaryOp::LtEq => BinaryOp::GtEq,
            BinaryOp::Gt => BinaryOp::Lt,
            BinaryOp::GtEq => BinaryOp::LtEq,
            _ => return None,
        };
        if **l == *column && r.is_key_bound() {
            Some((*op, (**r).clone()))
        } else if **r == *column && l.is_key_bound() {
            Some((flipped, (**l).clone()))
        } else {
            None
        }
    }

    /// Which inputs of a join whose left row is `left_width` wide the expression reads:
    /// (left, right, something that is neither, such as a subquery or a volatile function).
    /// Filter pushdown and hash-join key extraction both decide by this.
    pub fn join_sides(&self, left_width: usize) -> (bool, bool, bool) {
        let (mut left, mut right, mut other) = (false, false, false);
        self.walk(&mut |x| match x {
            Expr::Column(i) if *i < left_width => left = true,
            Expr::Column(_) => right = true,
            Expr::Outer(_)
            | Expr::ScalarSubquery(_)
            | Expr::ArraySubquery(_)
            | Expr::Exists(_)
            | Expr::InSubquery { .. } => other = true,
            Expr::Function { name, .. } if *name == "random" || *name == "clock_timestamp" => other = true,
            _ => {}
        });
        (left, right, other)
    }

    /// Visits this expression and every sub-expression (not inside subqueries).
    #[recursive::recursive]
    pub fn walk(&self, visit: &mut impl FnMut(&Expr)) {
        visit(self);
        match self {
            Expr::Constant(_)
            | Expr::Column(_)
            | Expr::Outer(_)
            | Expr::Param(_)
            | Expr::Exists(_)
            | Expr::ScalarSubquery(_)
            | Expr::ArraySubquery(_) => {}
            Expr::Unary(_, e) | Expr::IsNull(e) | Expr::Cast(e, _) => e.walk(visit),
            Expr::Binary(_, l, r) | Expr::IsDistinct(l, r) => {
                l.walk(visit);
                r.walk(visit);
            }
            Expr::Like { expr, pattern, .. } => {
                expr.walk(visit);
                pattern.walk(visit);
            }
            Expr::InList { expr, list } => {
                expr.walk(visit);
                list.iter().for_each(|e| e.walk(visit));
            }
            Expr::InSubquery { expr, .. } => expr.walk(visit),
            Expr::Case { operand, whens, otherwise } => {
                if let Some(o) = operand {
                    o.walk(visit);
                }
                for (w, t) in whens {
                    w.walk(visit);
                    t.walk(visit);
                }
                if let Some(o) = otherwise {
                    o.walk(visit);
                }
            }
            Expr::Function { args, .. } => args.iter().for_each(|e| e.walk(visit)),
        }
    }

    /// Rewrites column references through `map` (used when an expression moves to a node
    /// whose row has another shape). Returns None if some column has no mapping.
    pub fn remap_columns(&self, map: &impl Fn(usize) -> Option<usize>) -> Option<Expr> {
        let mut failed = false;
        let out = self.transform(&mut |e| match e {
            Expr::Column(i) => match map(*i) {
                Some(j) => Some(Expr::Column(j)),
                None => {
                    failed = true;
                    None
                }
            },
            _ => None,
        });
        if failed {
            None
        } else {
            Some(out)
        }
    }

    /// Rebuilds the expression bottom-up, replacing any node for which `f` returns Some.
    #[recursive::recursive]
    pub fn transform(&self, f: &mut impl FnMut(&Expr) -> Option<Expr>) -> Expr {
        if let Some(replaced) = f(self) {
            return replaced;
        }
        let bx = |e: &Expr, f: &mut dyn FnMut(&Expr) -> Option<Expr>| Box::new(transform_dyn(e, f));
        match self {
            Expr::Constant(_)
            | Expr::Column(_)
            | Expr::Outer(_)
            | Expr::Param(_)
            | Expr::Exists(_)
            | Expr::ScalarSubquery(_)
            | Expr::ArraySubquery(_) => self.clone(),
            Expr::Unary(op, e) => Expr::Unary(*op, bx(e, f)),
            Expr::IsNull(e) => Expr::IsNull(bx(e, f)),
            Expr::Cast(e, t) => Expr::Cast(bx(e, f), t.clone()),
            Expr::Binary(op, l, r) => Expr::Binary(*op, bx(l, f), bx(r, f)),
            Expr::IsDistinct(l, r) => Expr::IsDistinct(bx(l, f), bx(r, f)),
            Expr::Like { expr, pattern, case_insensitive } => {
                Expr::Like { expr: bx(expr, f), pattern: bx(pattern, f), case_insensitive: *case_insensitive }
            }
            Expr::InList { expr, list } => {
                Expr::InList { expr: bx(expr, f), list: list.iter().map(|e| transform_dyn(e, f)).collect() }
            }
            Expr::InSubquery { expr, subquery } => Expr::InSubquery { expr: bx(expr, f), subquery: subquery.clone() },
            Expr::Case { operand, whens, otherwise } => Expr::Case {
                operand: operand.as_ref().map(|o| bx(o, f)),
                whens: whens.iter().map(|(w, t)| (transform_dyn(w, f), transform_dyn(t, f))).collect(),
                otherwise: otherwise.as_ref().map(|o| bx(o, f)),
            },
            Expr::Function { name, args, return_type } => Expr::Function {
                name,
                args: args.iter().map(|e| transform_dyn(e, f)).collect(),
                return_type: return_type.clone(),
            },
        }
    }
}

fn transform_dyn(e: &Expr, f: &mut dyn FnMut(&Expr) -> Option<Expr>) -> Expr {
    e.transform(&mut |x| f(x))
}
