//! Time-series storage pieces: the summaries the window aggregates read, the column codecs,
//! and the column layout of sealed segments built from them (`segment`).
//!
//! A codec turns one column of one segment into bytes and back, exactly: every value,
//! including NaN payloads, negative zero, infinities and subnormals, decodes to the same bits.
//! Decoding bytes that were not produced by the encoder (a damaged record) is an error
//! (XX001), never a panic.

pub mod codec;
pub mod segment;
pub mod summary;
