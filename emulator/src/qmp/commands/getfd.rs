//! `getfd` / `closefd`, and taking a named fd for a consumer
//! (`dump-guest-memory "fd:NAME"`, chardev `fd`). Names live in the
//! monitor, so they survive a client reconnecting.
#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;

use serde_json::Value;

use super::{empty, Ctx};
use crate::qmp::args::Args;
use crate::qmp::error::{desc, QmpError};

pub fn getfd(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, QmpError> {
    let name = args.str("fdname")?;
    args.finish()?;
    let fd = ctx
        .batch
        .take_first()
        .ok_or_else(|| QmpError::generic(desc::NO_FD_SUPPLIED))?;
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        drop(fd);
        return Err(QmpError::generic(desc::FDNAME_STARTS_WITH_DIGIT));
    }
    // Replacing a name closes its old fd.
    drop(ctx.monitor.named().insert(name, fd));
    Ok(empty())
}

pub fn closefd(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, QmpError> {
    let name = args.str("fdname")?;
    args.finish()?;
    match ctx.monitor.named().remove(&name) {
        Some(fd) => {
            drop(fd);
            Ok(empty())
        }
        None => Err(QmpError::generic(format!(
            "File descriptor named '{name}' not found"
        ))),
    }
}

/// A consumer takes the fd; the name disappears.
pub fn take_named(ctx: &Ctx<'_>, name: &str) -> Result<OwnedFd, QmpError> {
    ctx.monitor.named().remove(name).ok_or_else(|| {
        QmpError::generic(format!("File descriptor named '{name}' has not been found"))
    })
}
