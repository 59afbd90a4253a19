//! `query-version`, `query-commands`, `query-status`, `query-name`.
#![forbid(unsafe_code)]

use serde_json::{json, Value};

use super::{Ctx, COMMANDS};
use crate::qmp::args::Args;
use crate::qmp::error::QmpError;
use crate::qmp::session::{PACKAGE, QEMU_VERSION};

pub fn version(args: Args) -> Result<Value, QmpError> {
    args.finish()?;
    Ok(json!({
        "qemu": {"micro": QEMU_VERSION.micro, "minor": QEMU_VERSION.minor, "major": QEMU_VERSION.major},
        "package": PACKAGE,
    }))
}

pub fn commands(args: Args) -> Result<Value, QmpError> {
    args.finish()?;
    Ok(Value::Array(
        COMMANDS.iter().map(|c| json!({ "name": c })).collect(),
    ))
}

pub fn status(ctx: &Ctx<'_>, args: Args) -> Result<Value, QmpError> {
    args.finish()?;
    let s = ctx.machine()?.status();
    Ok(json!({"status": s.status, "singlestep": false, "running": s.running}))
}

pub fn name(ctx: &Ctx<'_>, args: Args) -> Result<Value, QmpError> {
    args.finish()?;
    Ok(match ctx.hub.name() {
        Some(n) => json!({ "name": n }),
        None => json!({}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's shape, with openhook and its version in `package`.
    #[test]
    fn version_names_openhook() {
        assert_eq!(
            version(Args::default()).unwrap(),
            json!({
                "qemu": {"micro": 0, "minor": 2, "major": 7},
                "package": format!("openhook-emulator {}", env!("CARGO_PKG_VERSION")),
            })
        );
    }
}
