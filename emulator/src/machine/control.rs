//! Run control shared by the vCPU threads, the machine's supervisor loop
//! and the QMP monitor: run state, pause / resume / reset / quit requests,
//! events, and read access to guest RAM.
//!
//! How a pause reaches a vCPU that sits in `KVM_RUN`: the requester clears
//! `want_run` and sends the vCPU threads a signal (`SIGRTMIN`, whose handler
//! does nothing), which makes `KVM_RUN` return `EINTR`; the thread then
//! parks at its gate. Because a signal sent just before a thread re-enters
//! the guest can be missed, the requester repeats the kick until every
//! thread has reported itself parked.
#![forbid(unsafe_code)]

use std::io::Write;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::signal::Killable;

/// How long a requester waits between kicks of a vCPU that has not parked.
const KICK_INTERVAL: Duration = Duration::from_millis(10);

/// QEMU's run states, as far as this machine has them (`query-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Started with `-S`, never run yet.
    Prelaunch,
    Running,
    Paused,
    /// The machine has stopped for good (quit, guest reset with
    /// `-no-reboot`, debug exit).
    Shutdown,
    /// The guest crashed (KVM internal error).
    InternalError,
}

impl RunState {
    /// The `status` string of QMP `query-status`.
    pub fn as_qmp_str(self) -> &'static str {
        match self {
            RunState::Prelaunch => "prelaunch",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Shutdown => "shutdown",
            RunState::InternalError => "internal-error",
        }
    }

    pub fn is_running(self) -> bool {
        self == RunState::Running
    }
}

/// Why the machine resets or shuts down (QMP `ShutdownCause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownCause {
    HostQmpQuit,
    HostQmpSystemReset,
    HostSignal,
    GuestShutdown,
    GuestReset,
}

impl ShutdownCause {
    pub fn as_qmp_str(self) -> &'static str {
        match self {
            ShutdownCause::HostQmpQuit => "host-qmp-quit",
            ShutdownCause::HostQmpSystemReset => "host-qmp-system-reset",
            ShutdownCause::HostSignal => "host-signal",
            ShutdownCause::GuestShutdown => "guest-shutdown",
            ShutdownCause::GuestReset => "guest-reset",
        }
    }

    pub fn is_guest(self) -> bool {
        matches!(
            self,
            ShutdownCause::GuestShutdown | ShutdownCause::GuestReset
        )
    }
}

/// Events for the monitor (QMP event names via [`MachineEvent::name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineEvent {
    Stop,
    Resume,
    Reset { guest: bool, reason: ShutdownCause },
    Shutdown { guest: bool, reason: ShutdownCause },
    Powerdown,
}

impl MachineEvent {
    pub fn name(&self) -> &'static str {
        match self {
            MachineEvent::Stop => "STOP",
            MachineEvent::Resume => "RESUME",
            MachineEvent::Reset { .. } => "RESET",
            MachineEvent::Shutdown { .. } => "SHUTDOWN",
            MachineEvent::Powerdown => "POWERDOWN",
        }
    }
}

/// Why [`Machine::run`](super::Machine::run) returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// isa-debug-exit written with this value.
    DebugExit(u64),
    /// A host request (QMP `quit`, a signal).
    Quit(ShutdownCause),
    /// The guest reset the machine and `-no-reboot` was given.
    GuestReset,
    /// The guest crashed: KVM could not run it (internal error, failed
    /// entry, unexpected exit).
    GuestCrash(String),
    /// A host-side failure while running (an ioctl failed).
    HostError(super::error::HostError),
}

/// Exit status for a guest crash: even, so never a debug-exit status.
pub const EXIT_GUEST_CRASH: i32 = 2;
/// Exit status for a host-side failure (QEMU's fatal-error status).
pub const EXIT_HOST_ERROR: i32 = 1;

impl ExitReason {
    /// The emulator's process exit status, QEMU-compatible where QEMU has
    /// one: debug exit `(v << 1) | 1`; quit and `-no-reboot` resets 0.
    pub fn exit_status(&self) -> i32 {
        match self {
            ExitReason::DebugExit(v) => crate::devices::debug_exit::exit_status(*v),
            ExitReason::Quit(_) | ExitReason::GuestReset => 0,
            ExitReason::GuestCrash(_) => EXIT_GUEST_CRASH,
            ExitReason::HostError(_) => EXIT_HOST_ERROR,
        }
    }
}

/// What a vCPU thread does next, decided at its gate.
pub(crate) enum Gate {
    /// Run the guest; `reset` says the vCPU must first reload its reset state.
    Run {
        reset: bool,
    },
    Exit,
}

struct State {
    run_state: RunState,
    want_run: bool,
    parked: usize,
    /// Threads that park at the gate: vCPUs and I/O threads.
    gated: usize,
    reset_generation: u64,
    guest_reset_pending: bool,
    exit: Option<ExitReason>,
    /// vCPU and I/O threads that have returned (counted by
    /// [`ThreadDone`]).
    threads_done: usize,
}

/// Work the machine must do to reset (devices, irqchip), supplied by the
/// builder; called with every vCPU parked.
pub(crate) type ResetHook = Box<dyn Fn() + Send + Sync>;

/// Held by a vCPU or I/O thread for its whole life; counts the thread as ended
/// and wakes [`Shared::join_all`] when dropped, also on a panic.
pub(crate) struct ThreadDone(pub(crate) Arc<Shared>);

impl Drop for ThreadDone {
    fn drop(&mut self) {
        guard(&self.0.state).threads_done += 1;
        self.0.changed.notify_all();
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    subscribers: Mutex<Vec<Sender<MachineEvent>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Serialises pause/resume/reset against each other.
    op: Mutex<()>,
    memory: GuestMemoryMmap,
    reset_hook: ResetHook,
    kick_signal: i32,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(
        gated: usize,
        start_paused: bool,
        memory: GuestMemoryMmap,
        reset_hook: ResetHook,
        kick_signal: i32,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                run_state: if start_paused {
                    RunState::Prelaunch
                } else {
                    RunState::Running
                },
                want_run: !start_paused,
                parked: 0,
                gated,
                reset_generation: 0,
                guest_reset_pending: false,
                exit: None,
                threads_done: 0,
            }),
            changed: Condvar::new(),
            subscribers: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            op: Mutex::new(()),
            memory,
            reset_hook,
            kick_signal,
        })
    }

    pub(crate) fn add_thread(&self, t: JoinHandle<()>) {
        guard(&self.threads).push(t);
    }

    /// The machine has ended and will send no more events: drop every
    /// subscription, so a subscriber reads what was sent and then sees the
    /// channel closed instead of waiting.
    pub(crate) fn close_events(&self) {
        guard(&self.subscribers).clear();
    }

    fn emit(&self, ev: MachineEvent) {
        guard(&self.subscribers).retain(|s| s.send(ev.clone()).is_ok());
    }

    fn kick(&self) {
        for t in guard(&self.threads).iter() {
            if !t.is_finished() {
                let _ = t.kill(self.kick_signal);
            }
        }
    }

    /// A vCPU or I/O thread's gate: parks while paused, returns what to do
    /// next.
    pub(crate) fn gate(&self, generation: &mut u64) -> Gate {
        let mut s = guard(&self.state);
        loop {
            if s.exit.is_some() {
                return Gate::Exit;
            }
            if s.want_run {
                break;
            }
            s.parked += 1;
            self.changed.notify_all();
            while !s.want_run && s.exit.is_none() {
                s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            s.parked -= 1;
        }
        let reset = *generation != s.reset_generation;
        *generation = s.reset_generation;
        Gate::Run { reset }
    }

    /// A vCPU with nothing to run (halted without an irqchip) waits here
    /// until the machine resets, pauses or stops.
    pub(crate) fn wait_halted(&self, generation: u64) {
        let mut s = guard(&self.state);
        while s.exit.is_none() && s.want_run && s.reset_generation == generation {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Ends the machine (the first reason wins).
    pub(crate) fn request_exit(&self, reason: ExitReason) {
        let mut s = guard(&self.state);
        if s.exit.is_none() {
            s.run_state = match reason {
                ExitReason::GuestCrash(_) => RunState::InternalError,
                _ => RunState::Shutdown,
            };
            s.exit = Some(reason);
        }
        self.changed.notify_all();
        drop(s);
        self.kick();
    }

    /// The guest reset the machine (triple fault); handled by the
    /// supervisor loop in `Machine::run`.
    pub(crate) fn request_guest_reset(&self) {
        let mut s = guard(&self.state);
        s.guest_reset_pending = true;
        self.changed.notify_all();
    }

    /// Supervisor: waits for an exit, performing guest resets meanwhile.
    pub(crate) fn supervise(&self, no_reboot: bool) -> ExitReason {
        loop {
            let mut s = guard(&self.state);
            while s.exit.is_none() && !s.guest_reset_pending {
                s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            if let Some(e) = &s.exit {
                return e.clone();
            }
            s.guest_reset_pending = false;
            drop(s);
            if no_reboot {
                self.emit(MachineEvent::Shutdown {
                    guest: true,
                    reason: ShutdownCause::GuestReset,
                });
                self.request_exit(ExitReason::GuestReset);
            } else {
                self.reset(ShutdownCause::GuestReset);
            }
        }
    }

    /// After an exit: kick until every vCPU thread has ended, then join.
    /// Each thread says when it ends ([`ThreadDone`]), so the wait
    /// ends then and not at the next kick interval.
    pub(crate) fn join_all(&self) {
        let spawned = guard(&self.threads).len();
        loop {
            if guard(&self.state).threads_done >= spawned {
                break;
            }
            self.kick();
            let s = guard(&self.state);
            if s.threads_done < spawned {
                let _ = self.changed.wait_timeout(s, KICK_INTERVAL);
            }
        }
        for t in guard(&self.threads).drain(..) {
            let _ = t.join();
        }
    }

    /// Stops every vCPU and waits until all of them and the I/O threads
    /// are parked (or the machine ended): no guest code runs and no
    /// request is being served. Returns whether they had been running.
    fn stop_vcpus(&self) -> bool {
        let mut s = guard(&self.state);
        let was = s.want_run;
        s.want_run = false;
        // Wake a vCPU waiting in `wait_halted` too.
        self.changed.notify_all();
        while s.parked < s.gated && s.exit.is_none() {
            drop(s);
            self.kick();
            s = guard(&self.state);
            if s.parked < s.gated && s.exit.is_none() {
                s = self
                    .changed
                    .wait_timeout(s, KICK_INTERVAL)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        was
    }

    fn pause(&self) {
        let _op = guard(&self.op);
        let rs = guard(&self.state).run_state;
        if rs != RunState::Running {
            return;
        }
        self.stop_vcpus();
        let mut s = guard(&self.state);
        if s.exit.is_none() {
            s.run_state = RunState::Paused;
            drop(s);
            self.emit(MachineEvent::Stop);
        }
    }

    fn resume(&self) {
        let _op = guard(&self.op);
        let mut s = guard(&self.state);
        if !matches!(s.run_state, RunState::Paused | RunState::Prelaunch) {
            return;
        }
        s.run_state = RunState::Running;
        s.want_run = true;
        self.changed.notify_all();
        drop(s);
        self.emit(MachineEvent::Resume);
    }

    fn reset(&self, reason: ShutdownCause) {
        let _op = guard(&self.op);
        let was_running = self.stop_vcpus();
        let mut s = guard(&self.state);
        if s.exit.is_some() {
            return;
        }
        drop(s);
        (self.reset_hook)();
        s = guard(&self.state);
        s.reset_generation += 1;
        s.want_run = was_running;
        self.changed.notify_all();
        drop(s);
        self.emit(MachineEvent::Reset {
            guest: reason.is_guest(),
            reason,
        });
    }
}

/// A handle on a machine for its monitor: cheap to clone, usable from any
/// thread, before and while [`Machine::run`](super::Machine::run) runs.
#[derive(Clone)]
pub struct MachineControl {
    shared: Arc<Shared>,
}

impl MachineControl {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        MachineControl { shared }
    }

    /// Current run state (`query-status`).
    pub fn status(&self) -> RunState {
        guard(&self.shared.state).run_state
    }

    /// Stops the vCPUs (`stop`); returns once none runs guest code.
    /// Emits STOP. No effect unless running.
    pub fn pause(&self) {
        self.shared.pause();
    }

    /// Starts or resumes the vCPUs (`cont`). Emits RESUME. No effect when
    /// already running or shut down.
    pub fn resume(&self) {
        self.shared.resume();
    }

    /// Resets the machine (`system_reset`): vCPUs back to the reset vector,
    /// devices and interrupt controllers to power-on state; RAM is kept, as
    /// on QEMU. A paused machine stays paused. Emits RESET.
    pub fn reset(&self) {
        self.shared.reset(ShutdownCause::HostQmpSystemReset);
    }

    /// `system_powerdown`: the machine has no ACPI, so like QEMU's microvm
    /// without ACPI this only emits POWERDOWN; the guest sees nothing.
    pub fn powerdown(&self) {
        self.shared.emit(MachineEvent::Powerdown);
    }

    /// Ends the machine (`quit`): emits SHUTDOWN with `host-qmp-quit`.
    pub fn quit(&self) {
        self.quit_for(ShutdownCause::HostQmpQuit);
    }

    /// Ends the machine for `cause` (e.g. `HostSignal` on SIGTERM).
    pub fn quit_for(&self, cause: ShutdownCause) {
        if guard(&self.shared.state).exit.is_none() {
            self.shared.emit(MachineEvent::Shutdown {
                guest: cause.is_guest(),
                reason: cause,
            });
        }
        self.shared.request_exit(ExitReason::Quit(cause));
    }

    /// Ends every event subscription (see [`subscribe`](Self::subscribe)):
    /// call once the machine has ended.
    pub fn close_events(&self) {
        self.shared.close_events();
    }

    /// A stream of events from now on, until [`close_events`]
    /// (Self::close_events). Dropping the receiver unsubscribes.
    pub fn subscribe(&self) -> Receiver<MachineEvent> {
        let (tx, rx) = channel();
        guard(&self.shared.subscribers).push(tx);
        rx
    }

    /// The guest RAM regions as (guest-physical start, length), ascending.
    pub fn memory_map(&self) -> Vec<(u64, u64)> {
        self.shared
            .memory
            .iter()
            .map(|r| (r.start_addr().0, r.len()))
            .collect()
    }

    /// Copies guest RAM at `addr` into `buf` (fails outside RAM).
    pub fn read_memory(
        &self,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), vm_memory::GuestMemoryError> {
        self.shared.memory.read_slice(buf, GuestAddress(addr))
    }

    /// Writes all guest RAM, region after region in address order (see
    /// [`memory_map`](Self::memory_map)), to `out`; returns the byte count.
    /// For `dump-guest-memory`; pause first for a consistent image.
    pub fn dump_memory(&self, out: &mut dyn Write) -> std::io::Result<u64> {
        const CHUNK: usize = 1 << 20;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        for (start, len) in self.memory_map() {
            let mut off = 0u64;
            while off < len {
                let n = usize::try_from((len - off).min(CHUNK as u64)).unwrap_or(CHUNK);
                self.shared
                    .memory
                    .read_slice(&mut buf[..n], GuestAddress(start + off))
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                out.write_all(&buf[..n])?;
                off += n as u64;
                total += n as u64;
            }
        }
        Ok(total)
    }
}
