//! Dispatch of catalog functions to the system catalog module.

use super::Context;
use crate::error::Result;
use crate::types::Value;

pub fn handles(name: &str) -> bool {
    crate::sql::system::is_catalog_function(name)
}

pub fn call(name: &str, args: Vec<Value>, ctx: &mut Context) -> Result<Value> {
    crate::sql::system::call_catalog_function(name, args, ctx)
}
