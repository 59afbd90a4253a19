//! `stop`, `cont`, `system_reset`, `system_powerdown` (`quit` is an
//! effect the server performs once its reply is written).
#![forbid(unsafe_code)]

use serde_json::Value;

use super::{empty, Ctx};
use crate::qmp::args::Args;
use crate::qmp::error::QmpError;

/// QEMU's refusal to `cont` a machine that stopped for good.
pub const RESET_REQUIRED: &str = "Resetting the Virtual Machine is required";

pub fn run_control(ctx: &Ctx<'_>, command: &str, args: Args) -> Result<Value, QmpError> {
    args.finish()?;
    let m = ctx.machine()?;
    match command {
        "stop" => m.pause(),
        "cont" => {
            if matches!(
                m.status().status,
                "shutdown" | "internal-error" | "guest-panicked"
            ) {
                return Err(QmpError::generic(RESET_REQUIRED));
            }
            m.resume()
        }
        "system_reset" => m.reset(),
        _ => m.powerdown(),
    }
    Ok(empty())
}
