//! The SQL layer: parse → bind/plan → optimize → execute.
//!
//! A statement travels [`parser`] (sqlparser's PostgreSQL dialect) → [`planner`] (names and
//! types resolved against the catalog into a typed plan, then optimized) → [`execution`]
//! (push-based operators over an MVCC transaction). [`session`] holds per-connection state
//! (transaction block, settings) and is the API the wire protocol front end uses. The layer
//! knows nothing of the wire: results are values and errors are [`crate::error::Error`]s.

pub mod copy;
mod ddl;
pub mod execution;
pub mod functions;
pub mod parser;
pub mod planner;
pub mod privileges;
pub mod roles;
pub mod session;
pub mod system;
pub mod ttl;

pub use session::{Engine, Outcome, RowSink, Session, Streamed, TransactionState};

/// The PostgreSQL version ChronosDB reports to clients.
pub const SERVER_VERSION: &str = "15.4";
/// What `version()` returns.
pub const SERVER_VERSION_STRING: &str = concat!(
    "PostgreSQL 15.4 (ChronosDB ",
    env!("CARGO_PKG_VERSION"),
    ") on x86_64-pc-linux-gnu, compiled by rustc, 64-bit"
);

/// The session settings `pg_settings` and SHOW report.
pub fn settings_snapshot(info: &execution::SessionInfo) -> Vec<(String, String)> {
    info.settings.clone()
}
