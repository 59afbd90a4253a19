//! `getfd` / `closefd`, and taking a named fd for a consumer
//! (`dump-guest-memory "fd:NAME"`, chardev `fd`). Names live in the
//! monitor, so they survive a client reconnecting.
#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;

use serde_json::Value;

use super::{empty, Ctx};
use crate::qmp::args::Args;
use crate::qmp::error::QmpError;

pub fn getfd(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, QmpError> {
    let name = args.str("fdname")?;
    args.finish()?;
    let fd = ctx.batch.take_first();
    ctx.monitor.named().getfd(&name, fd)?;
    Ok(empty())
}

pub fn closefd(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, QmpError> {
    let name = args.str("fdname")?;
    args.finish()?;
    ctx.monitor.named().closefd(&name)?;
    Ok(empty())
}

/// A consumer takes the fd; the name disappears.
pub fn take_named(ctx: &Ctx<'_>, name: &str) -> Result<OwnedFd, QmpError> {
    Ok(ctx.monitor.named().take(name)?)
}
