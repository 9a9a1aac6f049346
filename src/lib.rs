//! ChronosDB: a PostgreSQL-compatible time-series database for the edge.
//!
//! The crate is layered as `../DESIGN.md` describes; each module depends only on those listed
//! before it here.

pub mod admin;
pub mod audit;
pub mod catalog;
pub mod clock;
pub mod error;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod mqtt;
pub mod mvcc;
pub mod net;
pub mod node;
pub mod pg;
pub mod raft;
pub mod sql;
pub mod storage;
pub mod sync;
pub mod timeseries;
pub mod types;
