//! Column codecs for sealed time-series segments.
//!
//! | column | codec |
//! |---|---|
//! | timestamps | [`timestamps`]: delta-of-delta |
//! | floats | [`floats`]: [`chimp`] (Chimp128) or [`decimal`] scaling, per block, whichever is smaller |
//! | integers | [`ints`]: delta, frame of reference, bit-packing |
//! | text | [`text`]: dictionary with bit-packed codes, or LZ4 |

pub mod bits;
pub mod chimp;
pub mod decimal;
pub mod floats;
pub mod ints;
pub mod text;
pub mod timestamps;

#[cfg(test)]
mod tests;
