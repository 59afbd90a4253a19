//! QMP commands, one file per family. [`Ctx`] is what a command sees: the
//! shared [`Hub`], its monitor's name table, and the connection's pending
//! fd batch.
#![forbid(unsafe_code)]

mod chardev;
mod control;
mod dump;
mod fdset;
mod getfd;
mod hmp;
mod query;

use std::sync::Arc;

use serde_json::Value;

use super::args::Args;
use super::backend::MachineBackend;
use super::error::QmpError;
use super::hub::{FdBatch, Hub, Monitor};
use super::session::{Effect, Handler};

/// Every command the monitor knows, in `query-commands` order.
pub const COMMANDS: &[&str] = &[
    "qmp_capabilities",
    "query-version",
    "query-commands",
    "query-status",
    "query-name",
    "stop",
    "cont",
    "system_reset",
    "system_powerdown",
    "quit",
    "getfd",
    "closefd",
    "add-fd",
    "remove-fd",
    "query-fdsets",
    "dump-guest-memory",
    "human-monitor-command",
    "chardev-add",
    "chardev-remove",
    "chardev-change",
    "query-chardev",
];

/// What a command runs against.
pub struct Ctx<'a> {
    pub hub: &'a Hub,
    pub monitor: &'a Monitor,
    pub batch: &'a mut FdBatch,
}

impl Ctx<'_> {
    fn machine(&self) -> Result<&Arc<dyn MachineBackend>, QmpError> {
        self.hub
            .machine()
            .ok_or_else(|| QmpError::generic("This monitor has no machine attached"))
    }
}

fn empty() -> Value {
    Value::Object(Default::default())
}

/// Runs one command (also used by `human-monitor-command`).
pub fn execute(
    ctx: &mut Ctx<'_>,
    command: &str,
    args: Args,
    effects: &mut Vec<Effect>,
) -> Result<Value, QmpError> {
    match command {
        "query-version" => query::version(args),
        "query-commands" => query::commands(args),
        "query-status" => query::status(ctx, args),
        "query-name" => query::name(ctx, args),
        "stop" | "cont" | "system_reset" | "system_powerdown" => {
            control::run_control(ctx, command, args)
        }
        "quit" => {
            args.finish()?;
            effects.push(Effect::Quit);
            Ok(empty())
        }
        "getfd" => getfd::getfd(ctx, args),
        "closefd" => getfd::closefd(ctx, args),
        "add-fd" => fdset::add_fd(ctx, args),
        "remove-fd" => fdset::remove_fd(ctx, args),
        "query-fdsets" => fdset::query_fdsets(ctx, args),
        "dump-guest-memory" => dump::dump_guest_memory(ctx, args),
        "human-monitor-command" => hmp::human_monitor_command(ctx, args, effects),
        "chardev-add" => chardev::chardev_add(ctx, args),
        "chardev-remove" => chardev::chardev_remove(ctx, args),
        "chardev-change" => chardev::chardev_change(ctx, args),
        "query-chardev" => chardev::query_chardev(ctx, args),
        other => Err(QmpError::unknown_command(other)),
    }
}

impl Handler for Ctx<'_> {
    fn execute(
        &mut self,
        command: &str,
        args: Args,
        effects: &mut Vec<Effect>,
    ) -> Result<Value, QmpError> {
        execute(self, command, args, effects)
    }
}
