//! ChronosDB: a PostgreSQL-compatible time-series database for the edge.
//!
//! The crate is layered as `../DESIGN.md` describes; each module depends only on those listed
//! before it here.

pub mod error;
pub mod types;
pub mod storage;
pub mod mvcc;
pub mod catalog;
pub mod sql;
