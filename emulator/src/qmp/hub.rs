//! State the monitors share, kept apart from their I/O so that commands
//! and the event forwarder can reach it without depending on the server:
//! - [`Hub`]: the emulator's parts every monitor drives, and the event
//!   subscribers (one per connected client);
//! - [`Monitor`]: one monitor's `getfd` names, which outlive a connection;
//! - [`FdBatch`]: one connection's received, not yet claimed fds.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

use openhook_wire::qmp::{Event, Timestamp};
use serde_json::Value;

use super::backend::{FdSets, MachineBackend};
use crate::chardev::Chardevs;
use crate::fds::named::NamedFds;

/// Events held for one slow client before the oldest are dropped.
pub const EVENT_QUEUE_MAX: usize = 1024;

pub(super) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connected client's event queue and the pipe that wakes its thread.
pub(super) struct Subscriber {
    pub(super) queue: Mutex<Outbox>,
    /// Signalled when the connection has written everything queued.
    pub(super) written: Condvar,
    wake: OwnedFd,
}

#[derive(Default)]
pub(super) struct Outbox {
    pub(super) events: VecDeque<Event>,
    /// The connection thread is writing events it took from `events`.
    pub(super) writing: bool,
}

/// What the monitors drive: the emulator's parts, each optional so a
/// monitor can run (and be tested) with only some of them.
#[derive(Default)]
pub struct HubParts {
    /// `-name`
    pub name: Option<String>,
    pub machine: Option<Arc<dyn MachineBackend>>,
    pub fdsets: Option<Arc<dyn FdSets>>,
    pub chardevs: Option<Arc<Chardevs>>,
}

/// State shared by every monitor of the emulator.
pub struct Hub {
    name: Option<String>,
    machine: Option<Arc<dyn MachineBackend>>,
    fdsets: Option<Arc<dyn FdSets>>,
    chardevs: Option<Arc<Chardevs>>,
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
}

impl Hub {
    pub fn new(parts: HubParts) -> Arc<Hub> {
        Arc::new(Hub {
            name: parts.name,
            machine: parts.machine,
            fdsets: parts.fdsets,
            chardevs: parts.chardevs,
            subscribers: Mutex::new(Vec::new()),
        })
    }

    /// `-name`
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn machine(&self) -> Option<&Arc<dyn MachineBackend>> {
        self.machine.as_ref()
    }

    pub fn fdsets(&self) -> Option<&Arc<dyn FdSets>> {
        self.fdsets.as_ref()
    }

    pub fn chardevs(&self) -> Option<&Arc<Chardevs>> {
        self.chardevs.as_ref()
    }

    /// Broadcasts an event, stamped now, to every connected client (each
    /// prints it only once negotiated). Never blocks on a client.
    pub fn emit(&self, event: &str, data: Option<Value>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let e = Event {
            timestamp: Timestamp {
                seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
                microseconds: i64::from(now.subsec_micros()),
            },
            event: event.to_string(),
            data,
        };
        for s in lock(&self.subscribers).iter() {
            let mut q = lock(&s.queue);
            if q.events.len() >= EVENT_QUEUE_MAX {
                q.events.pop_front();
            }
            q.events.push_back(e.clone());
            drop(q);
            // Non-blocking; a full pipe already means "wake up".
            let _ = rustix::io::write(&s.wake, &[1]);
        }
    }

    pub(super) fn subscribe(&self) -> io::Result<(Arc<Subscriber>, OwnedFd)> {
        let (r, w) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )?;
        let s = Arc::new(Subscriber {
            queue: Mutex::new(Outbox::default()),
            written: Condvar::new(),
            wake: w,
        });
        lock(&self.subscribers).push(s.clone());
        Ok((s, r))
    }

    pub(super) fn unsubscribe(&self, s: &Arc<Subscriber>) {
        lock(&self.subscribers).retain(|x| !Arc::ptr_eq(x, s));
        // Nothing will be written for it any more.
        let mut q = lock(&s.queue);
        q.events.clear();
        q.writing = false;
        s.written.notify_all();
    }

    /// Waits (at most `timeout` in all) until every connected client has
    /// been sent the events emitted so far; used before the emulator
    /// exits, so a `quit`'s SHUTDOWN reaches the clients as with QEMU. A
    /// client that does not read only costs the timeout.
    pub fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let subs: Vec<Arc<Subscriber>> = lock(&self.subscribers).clone();
        for s in subs {
            let mut q = lock(&s.queue);
            while !q.events.is_empty() || q.writing {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                q = s
                    .written
                    .wait_timeout(q, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
}

/// Per-monitor state that outlives a connection: the `getfd` names.
#[derive(Default)]
pub struct Monitor {
    named: Mutex<NamedFds>,
}

impl Monitor {
    pub fn new() -> Arc<Monitor> {
        Arc::new(Monitor::default())
    }

    /// The name table (`getfd`, `closefd`, consumers).
    pub fn named(&self) -> MutexGuard<'_, NamedFds> {
        lock(&self.named)
    }
}

/// fds received and not yet claimed by a command.
#[derive(Debug, Default)]
pub struct FdBatch(Vec<OwnedFd>);

impl FdBatch {
    /// A new batch replaces (closes) the old one.
    pub fn replace(&mut self, fds: Vec<OwnedFd>) {
        self.0 = fds;
    }

    /// The first fd; the rest of the batch is closed.
    pub fn take_first(&mut self) -> Option<OwnedFd> {
        let mut fds = std::mem::take(&mut self.0).into_iter();
        fds.next()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
