//! The crate's one error type.
//!
//! Every failure anywhere in ChronosDB is an [`Error`]. Variants say what went wrong in domain
//! terms and so what the caller must do about it: a user error is reported and the session goes
//! on, a serialization failure may be retried, an I/O or corruption error is not the user's fault.
//! The mapping to a PostgreSQL SQLSTATE ([`Error::sqlstate`]) is what the pg front end sends; no
//! other layer knows about SQLSTATEs.

use std::fmt;

/// A ChronosDB error.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// Malformed SQL text; `position` is the 1-based character offset when known.
    Syntax {
        message: String,
        position: Option<usize>,
    },
    /// A referenced table (relation) does not exist.
    UndefinedTable(String),
    /// A referenced column does not exist.
    UndefinedColumn(String),
    /// `(row).field` naming no field of the row.
    UndefinedField(String),
    /// A referenced function or operator does not exist for the argument types.
    UndefinedFunction(String),
    /// A referenced object (index, role, type) does not exist.
    UndefinedObject(String),
    /// A column is used outside GROUP BY and outside an aggregate.
    Grouping(String),
    /// An ORDER BY/GROUP BY reference that names no output column.
    InvalidColumnReference(String),
    /// A data exception with a specific SQLSTATE of class 22 (e.g. 22011 substring error,
    /// 2201W invalid LIMIT).
    DataException(&'static str, String),
    /// A window function where none is allowed (WHERE, GROUP BY, another window's arguments).
    Windowing(String),
    /// Two FROM items with the same name.
    DuplicateAlias(String),
    /// Transaction control that needs a transaction block outside one.
    NoActiveTransaction(String),
    /// A statement that cannot run inside a transaction block (VACUUM) inside one.
    ActiveTransaction(String),
    /// A savepoint that does not exist.
    InvalidSavepoint(String),
    /// An object exists but is of another kind than the statement needs.
    WrongObjectType(String),
    /// A table definition that contradicts itself.
    InvalidTableDefinition(String),
    /// An object definition that cannot work (views that read each other).
    InvalidObjectDefinition(String),
    /// A qualified name refers to a table not in FROM.
    MissingFromEntry(String),
    /// A column reference matches more than one column.
    AmbiguousColumn(String),
    /// The object being created already exists.
    DuplicateTable(String),
    DuplicateColumn(String),
    DuplicateObject(String),
    /// A value of one type was used where another was required.
    DatatypeMismatch(String),
    /// An explicit cast between types that have no cast.
    CannotCoerce(String),
    /// A value given for a `GENERATED ALWAYS` identity column.
    GeneratedAlways(String),
    /// Something asked for before its prerequisite (`currval` before `nextval`).
    NotInPrerequisiteState(String),
    /// A text value could not be converted to the requested type.
    InvalidText(String),
    /// A numeric value is out of the range of its type.
    NumericOutOfRange(String),
    /// A string is too long for a bounded character type.
    StringTooLong(String),
    DivisionByZero,
    /// A date/time value or field is out of range or malformed.
    DatetimeOutOfRange(String),
    /// NOT NULL violated.
    NotNull {
        column: String,
        table: String,
    },
    /// A CHECK constraint is violated: the message names it, the detail shows the row.
    CheckViolation {
        message: String,
        detail: Option<String>,
    },
    /// A `$n` parameter where none can be (a CHECK constraint).
    UndefinedParameter(String),
    /// A unique or primary key constraint is violated.
    UniqueViolation {
        constraint: String,
        detail: String,
    },
    /// A scalar subquery produced more than one row.
    CardinalityViolation(String),
    /// A feature this version does not support.
    FeatureNotSupported(String),
    /// A statement or argument that is well-formed but invalid.
    InvalidParameter(String),
    /// The write conflicted with a concurrent transaction; retry the transaction.
    Serialization(String),
    /// The current transaction failed earlier and ignores commands until ROLLBACK.
    InFailedTransaction,
    /// A write was attempted in a read-only context.
    ReadOnly(String),
    /// The user may not do this.
    InsufficientPrivilege(String),
    /// A name reserved for system objects (roles starting with `pg_`).
    ReservedName(String),
    /// A GRANT or REVOKE that makes no sense for the object.
    InvalidGrant(String),
    /// The object cannot be dropped while others depend on it.
    DependentObjects {
        message: String,
        detail: String,
    },
    /// Transaction control used where it makes no sense (e.g. BEGIN twice).
    InvalidTransactionState(String),
    /// A commit whose outcome is unknown (the connection to the leader or the leadership was
    /// lost while it was replicated): it may or may not have been applied.
    CommitUnknown(String),
    /// This node cannot commit: it is not the Raft leader (the known leader, if any).
    NotLeader(Option<u64>),
    /// A statement nested or chained deeper than the server evaluates (54001).
    StatementTooComplex(String),
    /// A value or collection larger than the server builds (54000).
    ProgramLimitExceeded(String),
    /// A statement needs more memory than its budget (53200).
    OutOfMemory(String),
    /// A schema that does not exist was named.
    InvalidSchemaName(String),
    /// The statement was cancelled on request.
    QueryCanceled,
    /// The statement was cancelled, with a reason (e.g. the client failed a COPY).
    QueryCanceledWith(String),
    /// Stored data could not be decoded: a bug or disk corruption.
    Corruption(String),
    /// An I/O error from disk or network.
    Io(String),
    /// The disk is full: nothing more can be written until space is freed.
    DiskFull(String),
    /// An internal invariant failed; never the user's fault.
    Internal(String),
    /// A read ran past the number of stored entries it was allowed to visit
    /// ([`crate::mvcc::Transaction::limit_reads`]); the caller runs it again where it may
    /// take longer. Never sent to a client.
    ReadLimit,
}

/// The crate-wide result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The PostgreSQL SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Syntax { .. } => "42601",
            Error::UndefinedTable(_) => "42P01",
            Error::UndefinedColumn(_) | Error::UndefinedField(_) => "42703",
            Error::UndefinedFunction(_) => "42883",
            Error::UndefinedObject(_) => "42704",
            Error::AmbiguousColumn(_) => "42702",
            Error::Grouping(_) => "42803",
            Error::MissingFromEntry(_) => "42P01",
            Error::InvalidTableDefinition(_) => "42P16",
            Error::InvalidObjectDefinition(_) => "42P17",
            Error::WrongObjectType(_) => "42809",
            Error::DataException(code, _) => code,
            Error::NoActiveTransaction(_) => "25P01",
            Error::ActiveTransaction(_) => "25001",
            Error::DuplicateAlias(_) => "42712",
            Error::Windowing(_) => "42P20",
            Error::InvalidSavepoint(_) => "3B001",
            Error::InvalidColumnReference(_) => "42P10",
            Error::DuplicateTable(_) => "42P07",
            Error::DuplicateColumn(_) => "42701",
            Error::DuplicateObject(_) => "42710",
            Error::DatatypeMismatch(_) => "42804",
            Error::CannotCoerce(_) => "42846",
            Error::GeneratedAlways(_) => "428C9",
            Error::NotInPrerequisiteState(_) => "55000",
            Error::InvalidText(_) => "22P02",
            Error::NumericOutOfRange(_) => "22003",
            Error::StringTooLong(_) => "22001",
            Error::DivisionByZero => "22012",
            Error::DatetimeOutOfRange(_) => "22008",
            Error::NotNull { .. } => "23502",
            Error::CheckViolation { .. } => "23514",
            Error::UndefinedParameter(_) => "42P02",
            Error::UniqueViolation { .. } => "23505",
            Error::CardinalityViolation(_) => "21000",
            Error::FeatureNotSupported(_) => "0A000",
            Error::InvalidParameter(_) => "22023",
            Error::Serialization(_) => "40001",
            Error::InFailedTransaction => "25P02",
            Error::ReadOnly(_) => "25006",
            Error::InsufficientPrivilege(_) => "42501",
            Error::ReservedName(_) => "42939",
            Error::InvalidGrant(_) => "0LP01",
            Error::DependentObjects { .. } => "2BP01",
            Error::InvalidTransactionState(_) => "25000",
            Error::CommitUnknown(_) => "08007",
            Error::NotLeader(_) => "40001",
            Error::StatementTooComplex(_) => "54001",
            Error::ProgramLimitExceeded(_) => "54000",
            Error::OutOfMemory(_) => "53200",
            Error::InvalidSchemaName(_) => "3F000",
            Error::QueryCanceled | Error::QueryCanceledWith(_) => "57014",
            Error::Corruption(_) => "XX001",
            Error::Io(_) => "58030",
            Error::DiskFull(_) => "53100",
            Error::Internal(_) | Error::ReadLimit => "XX000",
        }
    }

    /// True when re-running the same work on the same state gives the same error. An apply of a
    /// replicated batch that fails with a non-deterministic error must stop the node rather than
    /// let replicas diverge.
    pub fn is_deterministic(&self) -> bool {
        !matches!(
            self,
            Error::Io(_)
                | Error::DiskFull(_)
                | Error::CommitUnknown(_)
                | Error::Internal(_)
                | Error::ReadLimit
                | Error::Corruption(_)
                | Error::QueryCanceled
                | Error::QueryCanceledWith(_)
        )
    }

    /// The 1-based character position in the statement the error points at, if any.
    pub fn position(&self) -> Option<usize> {
        match self {
            Error::Syntax { position, .. } => *position,
            _ => None,
        }
    }

    /// Extra detail for the client, PostgreSQL's DETAIL field.
    pub fn detail(&self) -> Option<String> {
        match self {
            Error::UniqueViolation { detail, .. } | Error::DependentObjects { detail, .. } => Some(detail.clone()),
            Error::CheckViolation { detail, .. } => detail.clone(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax { message, .. } => write!(f, "{message}"),
            Error::UndefinedTable(name) => write!(f, "relation \"{name}\" does not exist"),
            Error::UndefinedColumn(name) => write!(f, "column \"{name}\" does not exist"),
            Error::UndefinedField(name) => write!(f, "could not identify column \"{name}\" in record data type"),
            Error::UndefinedFunction(m)
            | Error::UndefinedObject(m)
            | Error::DatatypeMismatch(m)
            | Error::CannotCoerce(m)
            | Error::GeneratedAlways(m)
            | Error::NotInPrerequisiteState(m)
            | Error::InvalidText(m)
            | Error::NumericOutOfRange(m)
            | Error::StringTooLong(m)
            | Error::DatetimeOutOfRange(m)
            | Error::CardinalityViolation(m)
            | Error::FeatureNotSupported(m)
            | Error::UndefinedParameter(m)
            | Error::InvalidParameter(m)
            | Error::Serialization(m)
            | Error::InvalidColumnReference(m)
            | Error::Grouping(m)
            | Error::InvalidTableDefinition(m)
            | Error::InvalidObjectDefinition(m)
            | Error::WrongObjectType(m)
            | Error::DataException(_, m)
            | Error::NoActiveTransaction(m)
            | Error::ActiveTransaction(m)
            | Error::DuplicateAlias(m)
            | Error::QueryCanceledWith(m)
            | Error::Windowing(m)
            | Error::InvalidSavepoint(m)
            | Error::ReadOnly(m)
            | Error::InsufficientPrivilege(m)
            | Error::ReservedName(m)
            | Error::InvalidGrant(m)
            | Error::DependentObjects { message: m, .. }
            | Error::InvalidTransactionState(m)
            | Error::CommitUnknown(m)
            | Error::Corruption(m)
            | Error::Io(m)
            | Error::DiskFull(m)
            | Error::StatementTooComplex(m)
            | Error::ProgramLimitExceeded(m)
            | Error::OutOfMemory(m)
            | Error::Internal(m) => write!(f, "{m}"),
            Error::ReadLimit => write!(f, "a read visited more stored entries than it was allowed"),
            Error::InvalidSchemaName(name) => write!(f, "schema \"{name}\" does not exist"),
            Error::AmbiguousColumn(name) => write!(f, "column reference \"{name}\" is ambiguous"),
            Error::MissingFromEntry(t) => write!(f, "missing FROM-clause entry for table \"{t}\""),
            Error::DuplicateTable(name) => write!(f, "relation \"{name}\" already exists"),
            Error::DuplicateColumn(name) => write!(f, "column \"{name}\" already exists"),
            Error::DuplicateObject(m) => write!(f, "{m}"),
            Error::DivisionByZero => write!(f, "division by zero"),
            Error::NotNull { column, table } => {
                write!(f, "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint")
            }
            Error::CheckViolation { message, .. } => write!(f, "{message}"),
            Error::UniqueViolation { constraint, .. } => {
                write!(f, "duplicate key value violates unique constraint \"{constraint}\"")
            }
            Error::InFailedTransaction => {
                write!(f, "current transaction is aborted, commands ignored until end of transaction block")
            }
            Error::QueryCanceled => write!(f, "canceling statement due to user request"),
            Error::NotLeader(Some(id)) => {
                write!(f, "this node is not the leader (node {id} is); retry the transaction")
            }
            Error::NotLeader(None) => write!(f, "there is no leader at the moment; retry the transaction"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::StorageFull {
            return Error::DiskFull("could not write to disk: no space left on device".into());
        }
        Error::Io(err.to_string())
    }
}

/// Builds an [`Error::InvalidParameter`]-style user error from a format string.
#[macro_export]
macro_rules! errinput {
    ($($args:tt)*) => { $crate::error::Error::InvalidParameter(format!($($args)*)) };
}

/// Builds an [`Error::FeatureNotSupported`] from a format string.
#[macro_export]
macro_rules! unsupported {
    ($($args:tt)*) => { $crate::error::Error::FeatureNotSupported(format!($($args)*)) };
}
