//! `add-fd`, `remove-fd`, `query-fdsets` over the emulator's fd sets.
#![forbid(unsafe_code)]

use std::sync::Arc;

use serde_json::{json, Value};

use super::{empty, Ctx};
use crate::qmp::args::Args;
use crate::qmp::backend::FdSets;
use crate::qmp::error::{desc, QmpError};

pub(super) fn sets<'a>(ctx: &'a Ctx<'_>) -> Result<&'a Arc<dyn FdSets>, QmpError> {
    ctx.hub
        .fdsets()
        .ok_or_else(|| QmpError::generic("fd sets are not available"))
}

pub fn add_fd(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, QmpError> {
    let set = args.opt_i64("fdset-id")?;
    let opaque = args.opt_str("opaque")?;
    args.finish()?;
    let fd = ctx
        .batch
        .take_first()
        .ok_or_else(|| QmpError::generic(desc::NO_FD_SUPPLIED))?;
    // A negative id is refused by the store, which closes the fd.
    let added = sets(ctx)?.add(set, fd, opaque)?;
    Ok(json!({"fdset-id": added.fdset_id, "fd": added.fd.0}))
}

pub fn remove_fd(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, QmpError> {
    let set = args.i64("fdset-id")?;
    let fd = args.opt_i64("fd")?;
    args.finish()?;
    sets(ctx)?.remove(set, fd)?;
    Ok(empty())
}

pub fn query_fdsets(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, QmpError> {
    args.finish()?;
    Ok(sets(ctx)?.query())
}
