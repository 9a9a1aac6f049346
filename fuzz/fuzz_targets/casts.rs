//! Text cast to every type (`'…'::type`, COPY fields, text-format parameters), as an explicit
//! cast and as an assignment; an accepted value is then printed as a result would be.
//!
//! Input: 4 bytes of type modifiers (see `common::split_specs`), then the text.

#![no_main]

mod common;

use chronos::types::cast::{cast, CastKind};
use chronos::types::Value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((specs, rest)) = common::split_specs(data) else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    for t in common::all_types(&specs) {
        for kind in [CastKind::Explicit, CastKind::Assignment] {
            if let Ok(v) = cast(Value::Text(text.to_string()), &t, kind) {
                common::output(&v);
            }
        }
    }
});
