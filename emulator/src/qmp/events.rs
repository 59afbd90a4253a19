//! Machine events into QMP events: [`qmp_event`] gives QEMU's shape of
//! one event, [`forward_events`] runs the thread that broadcasts them
//! through the [`Hub`].
#![forbid(unsafe_code)]

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{json, Value};

use super::hub::Hub;
use crate::machine::{MachineControl, MachineEvent};

/// A machine event as QMP prints it: name and `data` (QEMU's shapes:
/// `RESET`/`SHUTDOWN` carry `{"guest": bool, "reason": ShutdownCause}`,
/// `STOP`/`RESUME`/`POWERDOWN` have no data).
pub fn qmp_event(e: &MachineEvent) -> (&'static str, Option<Value>) {
    let data = match e {
        MachineEvent::Reset { guest, reason } | MachineEvent::Shutdown { guest, reason } => {
            Some(json!({"guest": guest, "reason": reason.as_qmp_str()}))
        }
        MachineEvent::Stop | MachineEvent::Resume | MachineEvent::Powerdown => None,
    };
    (e.name(), data)
}

/// The thread forwarding machine events into the hub.
pub struct EventForwarder {
    control: MachineControl,
    thread: JoinHandle<()>,
}

impl EventForwarder {
    /// Once the machine has ended: forwards every event it sent (e.g.
    /// SHUTDOWN on `quit`), then stops. Closing the machine's event stream
    /// wakes the thread at once; it used to poll a stop flag every 100 ms,
    /// which held every exit up by 50 ms on average.
    pub fn finish(self) {
        self.control.close_events();
        let _ = self.thread.join();
    }
}

/// Starts a thread that forwards every machine event into the hub until
/// the machine's event stream is closed ([`EventForwarder::finish`]).
pub fn forward_events(control: &MachineControl, hub: Arc<Hub>) -> io::Result<EventForwarder> {
    let rx = control.subscribe();
    let thread = std::thread::Builder::new()
        .name("qmp-events".into())
        .spawn(move || {
            while let Ok(e) = rx.recv() {
                let (name, data) = qmp_event(&e);
                hub.emit(name, data);
            }
        })?;
    Ok(EventForwarder {
        control: control.clone(),
        thread,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::ShutdownCause;

    #[test]
    fn event_shapes_are_qemus() {
        assert_eq!(qmp_event(&MachineEvent::Stop), ("STOP", None));
        assert_eq!(qmp_event(&MachineEvent::Resume), ("RESUME", None));
        assert_eq!(qmp_event(&MachineEvent::Powerdown), ("POWERDOWN", None));
        assert_eq!(
            qmp_event(&MachineEvent::Reset {
                guest: false,
                reason: ShutdownCause::HostQmpSystemReset
            }),
            (
                "RESET",
                Some(json!({"guest": false, "reason": "host-qmp-system-reset"}))
            )
        );
        assert_eq!(
            qmp_event(&MachineEvent::Shutdown {
                guest: true,
                reason: ShutdownCause::GuestReset
            }),
            (
                "SHUTDOWN",
                Some(json!({"guest": true, "reason": "guest-reset"}))
            )
        );
    }
}
