//! Run control on real KVM: start paused, pause/resume, host and guest
//! resets (with and without -no-reboot), quit, events, memory dumps.
#![allow(clippy::disallowed_methods)]

mod common;

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::guest::real_mode_rom;
use common::{config, firmware_file, kvm, watchdog, Capture};
use openhook_emulator::machine::{
    ExitReason, Machine, MachineControl, MachineEvent, MachineFiles, RunState, ShutdownCause,
};
use openhook_emulator::vm_config::MachineConfig;

/// inc byte [0x5000]; jmp $
const COUNT_AND_SPIN: &[u8] = &[0xfe, 0x06, 0x00, 0x50, 0xeb, 0xfe];

struct Started {
    control: MachineControl,
    events: Receiver<MachineEvent>,
    serial: Capture,
    thread: std::thread::JoinHandle<ExitReason>,
}

fn start(cfg: &MachineConfig, rom: &[u8]) -> Option<Started> {
    let kvm = kvm()?;
    let serial = Capture::default();
    let files = MachineFiles {
        kvm,
        firmware: Some(firmware_file(rom)),
        kernel: None,
        initrd: None,
        drives: vec![],
        serial: Box::new(serial.clone()),
    };
    let machine = Machine::build(cfg, files).expect("build");
    let control = machine.control();
    let events = control.subscribe();
    watchdog(control.clone(), 30);
    let thread = std::thread::spawn(move || machine.run());
    Some(Started {
        control,
        events,
        serial,
        thread,
    })
}

fn counter(c: &MachineControl) -> u8 {
    let mut b = [0u8];
    c.read_memory(0x5000, &mut b).unwrap();
    b[0]
}

/// Waits (bounded) until the guest's boot counter reaches `n`.
fn wait_counter(c: &MachineControl, n: u8) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while counter(c) < n {
        assert!(Instant::now() < deadline, "guest never reached boot {n}");
        std::thread::yield_now();
    }
    assert_eq!(counter(c), n);
}

fn drain(rx: &Receiver<MachineEvent>) -> Vec<MachineEvent> {
    rx.try_iter().collect()
}

#[test]
fn start_paused_runs_nothing_until_resumed() {
    // mov dx,0x3f8; mov al,'A'; out dx,al; mov al,3; out 0xf4,al
    let code = [
        0xba, 0xf8, 0x03, 0xb0, b'A', 0xee, 0xb0, 0x03, 0xe6, 0xf4, 0xf4,
    ];
    let mut cfg = config();
    cfg.start_paused = true;
    let Some(s) = start(&cfg, &real_mode_rom(&code, &[])) else {
        return;
    };
    assert_eq!(s.control.status(), RunState::Prelaunch);
    assert_eq!(s.control.status().as_qmp_str(), "prelaunch");
    // Paused while the monitor looks: pausing again is a no-op, no event.
    s.control.pause();
    assert_eq!(s.control.status(), RunState::Prelaunch);
    assert_eq!(counter(&s.control), 0);
    assert_eq!(s.serial.text(), "");
    s.control.resume();
    let reason = s.thread.join().unwrap();
    assert_eq!(reason, ExitReason::DebugExit(3));
    assert_eq!(s.serial.text(), "A");
    assert_eq!(drain(&s.events), vec![MachineEvent::Resume]);
    assert_eq!(s.control.status(), RunState::Shutdown);
}

#[test]
fn pause_resume_and_quit_a_spinning_guest() {
    let Some(s) = start(&config(), &real_mode_rom(COUNT_AND_SPIN, &[])) else {
        return;
    };
    wait_counter(&s.control, 1);
    assert_eq!(s.control.status(), RunState::Running);
    s.control.pause();
    assert_eq!(s.control.status(), RunState::Paused);
    s.control.resume();
    assert_eq!(s.control.status(), RunState::Running);
    s.control.resume(); // no-op while running
    s.control.quit();
    let reason = s.thread.join().unwrap();
    assert_eq!(reason, ExitReason::Quit(ShutdownCause::HostQmpQuit));
    assert_eq!(reason.exit_status(), 0);
    assert_eq!(
        drain(&s.events),
        vec![
            MachineEvent::Stop,
            MachineEvent::Resume,
            MachineEvent::Shutdown {
                guest: false,
                reason: ShutdownCause::HostQmpQuit
            }
        ]
    );
    assert_eq!(counter(&s.control), 1, "RAM survives; the guest ran once");
}

#[test]
fn host_reset_restarts_at_the_reset_vector_and_keeps_ram() {
    let Some(s) = start(&config(), &real_mode_rom(COUNT_AND_SPIN, &[])) else {
        return;
    };
    wait_counter(&s.control, 1);
    s.control.reset();
    wait_counter(&s.control, 2);
    // Reset while paused: stays paused until resumed.
    s.control.pause();
    s.control.reset();
    assert_eq!(s.control.status(), RunState::Paused);
    assert_eq!(counter(&s.control), 2);
    s.control.resume();
    wait_counter(&s.control, 3);
    s.control.powerdown(); // no ACPI: only the event
    s.control.quit();
    assert_eq!(
        s.thread.join().unwrap(),
        ExitReason::Quit(ShutdownCause::HostQmpQuit)
    );
    let reset = MachineEvent::Reset {
        guest: false,
        reason: ShutdownCause::HostQmpSystemReset,
    };
    assert_eq!(
        drain(&s.events),
        vec![
            reset.clone(),
            MachineEvent::Stop,
            reset,
            MachineEvent::Resume,
            MachineEvent::Powerdown,
            MachineEvent::Shutdown {
                guest: false,
                reason: ShutdownCause::HostQmpQuit
            }
        ]
    );
}

/// Counts boots at 0x5000; on boot 3 exits with the count, otherwise
/// triple-faults (int3 with an empty IDT).
fn triple_fault_rom() -> Vec<u8> {
    let code = [
        0xfe, 0x06, 0x00, 0x50, // inc byte [0x5000]
        0xa0, 0x00, 0x50, // mov al, [0x5000]
        0x3c, 0x03, // cmp al, 3
        0x74, 0x07, // je exit (0x12)
        0x2e, 0x0f, 0x01, 0x1e, 0x20, 0x00, // lidt [cs:0x0020] (limit 0)
        0xcc, // int3
        0xe6, 0xf4, 0xf4, // exit: out 0xf4, al; hlt
    ];
    real_mode_rom(&code, &[(0x20, &[0u8; 6])])
}

#[test]
fn guest_reset_reboots_and_no_reboot_ends_the_machine() {
    let Some(s) = start(&config(), &triple_fault_rom()) else {
        return;
    };
    let reason = s.thread.join().unwrap();
    if let ExitReason::GuestCrash(msg) = &reason {
        // Some hosts (PVM) report the fault as an internal error instead
        // of a triple fault; that is a crash, not a reset.
        eprintln!("host reports the triple fault as: {msg}");
        return;
    }
    assert_eq!(reason, ExitReason::DebugExit(3));
    let guest_reset = MachineEvent::Reset {
        guest: true,
        reason: ShutdownCause::GuestReset,
    };
    assert_eq!(drain(&s.events), vec![guest_reset.clone(), guest_reset]);

    let mut cfg = config();
    cfg.no_reboot = true;
    let Some(s) = start(&cfg, &triple_fault_rom()) else {
        return;
    };
    let reason = s.thread.join().unwrap();
    assert_eq!(reason, ExitReason::GuestReset);
    assert_eq!(reason.exit_status(), 0);
    assert_eq!(counter(&s.control), 1);
    assert_eq!(
        drain(&s.events),
        vec![MachineEvent::Shutdown {
            guest: true,
            reason: ShutdownCause::GuestReset
        }]
    );
}

#[test]
fn dump_memory_writes_all_ram_in_order() {
    let Some(s) = start(&config(), &real_mode_rom(COUNT_AND_SPIN, &[])) else {
        return;
    };
    wait_counter(&s.control, 1);
    s.control.pause();
    let map = s.control.memory_map();
    // 16 MiB with a 64 KiB firmware mirrored at 0xf0000.
    assert_eq!(map, vec![(0, 0xf_0000), (0x10_0000, 15 << 20)]);
    let mut out = Vec::new();
    let n = s.control.dump_memory(&mut out).unwrap();
    assert_eq!(n, out.len() as u64);
    assert_eq!(n, 0xf_0000 + (15 << 20));
    assert_eq!(out[0x5000], 1);
    s.control.quit();
    s.thread.join().unwrap();
}

#[test]
fn two_vcpus_pause_and_end_with_the_ap_waiting_for_sipi() {
    // vCPU 1 never gets an INIT/SIPI: it sits in KVM_RUN inside the kernel
    // the whole time, and must still park for a pause and end on quit.
    let mut cfg = config();
    cfg.vcpus = 2;
    let Some(s) = start(&cfg, &real_mode_rom(COUNT_AND_SPIN, &[])) else {
        return;
    };
    wait_counter(&s.control, 1);
    s.control.pause();
    assert_eq!(s.control.status(), RunState::Paused);
    s.control.resume();
    s.control.quit();
    assert_eq!(
        s.thread.join().unwrap(),
        ExitReason::Quit(ShutdownCause::HostQmpQuit)
    );
    assert_eq!(counter(&s.control), 1, "only the BSP ran the firmware");
}
