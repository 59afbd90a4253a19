//! I/O threads: with `-global virtio-mmio.ioeventfd=on` (the default, as on
//! QEMU) a virtio-blk transport's QueueNotify write of queue 0 is a KVM
//! ioeventfd. KVM signals the eventfd and resumes the guest without a
//! userspace exit; the disk's I/O thread wakes, runs the queue and
//! interrupts the guest when buffers are used. The vCPU goes on running
//! meanwhile, which is the point: a guest can compute (or poll) while its
//! I/O is served, and a request costs no vCPU exit round trip.
//!
//! Any other QueueNotify write (another value, a broken device) still exits
//! and is handled on the vCPU thread, so the transport's rules stay in one
//! place: the I/O thread replays the write through the same `BusDevice`.
//!
//! An I/O thread parks at the same gate as the vCPUs: a pause, reset or
//! quit waits for it to finish the request it is serving (QEMU drains its
//! I/O the same way before `stop` returns), and a kick (the vCPU kick
//! signal) takes it out of `poll` to its gate. A notification that arrives
//! while it is parked stays in the eventfd until the machine runs again.
#![forbid(unsafe_code)]

use std::sync::Arc;

use rustix::event::{poll, PollFd, PollFlags};
use vmm_sys_util::eventfd::EventFd;

use super::bus::SharedDevice;
use super::control::{Gate, Shared};
use super::kvm::eventfd_fd;
use crate::devices::virtio::mmio::reg;

/// One queue served by an I/O thread: the eventfd KVM signals for
/// QueueNotify = 0, and the transport behind it.
pub(crate) struct IoQueue {
    pub(crate) event: EventFd,
    pub(crate) device: SharedDevice,
}

impl IoQueue {
    /// The I/O thread's loop; returns when the machine ends.
    pub(crate) fn run(self, shared: Arc<Shared>) {
        let mut generation = 0;
        loop {
            if let Gate::Exit = shared.gate(&mut generation) {
                return;
            }
            let mut fds = [PollFd::from_borrowed_fd(
                eventfd_fd(&self.event),
                PollFlags::IN,
            )];
            // EINTR is a kick: back to the gate, which parks or ends us.
            if poll(&mut fds, None).is_err() || fds[0].revents().is_empty() {
                continue;
            }
            // Nonblocking: a stale readiness reads EAGAIN and serves nothing.
            if self.event.read().is_ok() {
                self.device
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .write(reg::QUEUE_NOTIFY, &0u32.to_le_bytes());
            }
        }
    }
}
