//! Bind parameter values into `pg::encode::parameter`, in binary and in text format, for every
//! type a parameter can be inferred as; an accepted value is then printed as a result would be
//! (`SELECT $1`).
//!
//! Input: 4 bytes of type modifiers (see `common::split_specs`), then the parameter's bytes.

#![no_main]

mod common;

use chronos::pg::encode::parameter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((specs, bytes)) = common::split_specs(data) else { return };
    for t in common::all_types(&specs) {
        for binary in [true, false] {
            if let Ok(v) = parameter(Some(bytes), &t, binary) {
                common::output(&v);
            }
        }
    }
});
