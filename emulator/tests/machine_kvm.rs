//! The machine on real KVM with hand-assembled guests: serial, debug exit,
//! reset vector and firmware mirror, virtio-mmio registers, a polling
//! virtio-blk driver, and hostile descriptor chains.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Seek, SeekFrom, Write};

use common::guest::{at, protected_rom, real_mode_rom, vio, Asm, Driver, QSIZE};
use common::{config, run_rom};
use openhook_emulator::machine::ExitReason;
use openhook_emulator::vm_config::DriveConfig;

#[test]
fn real_mode_serial_and_debug_exit() {
    let mut code = Vec::new();
    for b in b"OK\n" {
        code.extend_from_slice(&[0xba, 0xf8, 0x03, 0xb0, *b, 0xee]); // mov dx,0x3f8; mov al,b; out dx,al
    }
    code.extend_from_slice(&[0xb0, 0x21, 0xe6, 0xf4, 0xf4]); // mov al,0x21; out 0xf4,al; hlt
    let Some(run) = run_rom(&config(), &real_mode_rom(&code, &[]), vec![]) else {
        return;
    };
    assert_eq!(run.reason, ExitReason::DebugExit(0x21));
    assert_eq!(run.reason.exit_status(), 0x43);
    assert_eq!(run.serial, "OK\n");
}

#[test]
fn reset_vector_reaches_firmware_through_the_read_only_mirror() {
    // At the reset vector (CS base 0xffff0000): far jump to F000:0100,
    // i.e. into the mirror below 1 MiB.
    let entry = [0xea, 0x00, 0x01, 0x00, 0xf0]; // jmp 0xf000:0x0100
    let mirror_code = [
        0xba, 0xf8, 0x03, 0xb0, b'M', 0xee, // mov dx,0x3f8; mov al,'M'; out dx,al
        0x2e, 0xc6, 0x06, 0x00, 0x02, 0x55, // mov byte [cs:0x200], 0x55 (ROM: ignored)
        0x2e, 0xa0, 0x00, 0x02, // mov al, [cs:0x200]
        0xe6, 0xf4, 0xf4, // out 0xf4, al; hlt
    ];
    let rom = real_mode_rom(&entry, &[(0x100, &mirror_code), (0x200, &[0x11])]);
    let Some(run) = run_rom(&config(), &rom, vec![]) else {
        return;
    };
    assert_eq!(run.serial, "M");
    // 0x11: the mirror shows the firmware's byte and the guest's write to
    // read-only memory changed nothing.
    assert_eq!(run.reason, ExitReason::DebugExit(0x11));
}

#[test]
fn protected_mode_payload_runs() {
    let mut a = Asm::default();
    a.print("PM\n");
    a.exit(0x05);
    let Some(run) = run_rom(&config(), &protected_rom(&a.code), vec![]) else {
        return;
    };
    assert_eq!(run.serial, "PM\n");
    assert_eq!(run.reason, ExitReason::DebugExit(5));
}

#[test]
fn guest_fault_without_idt_is_a_crash_not_a_hang() {
    let mut a = Asm::default();
    a.ud2();
    let mut cfg = config();
    cfg.no_reboot = true;
    let Some(run) = run_rom(&cfg, &protected_rom(&a.code), vec![]) else {
        return;
    };
    // KVM reports either a triple fault (reset, ended by -no-reboot) or,
    // on PVM hosts, an internal error: both end the machine.
    match &run.reason {
        ExitReason::GuestCrash(msg) => {
            assert!(
                msg.contains("internal error") || msg.contains("KVM"),
                "{msg}"
            );
            assert_ne!(run.reason.exit_status(), 0);
        }
        ExitReason::GuestReset => assert_eq!(run.reason.exit_status(), 0),
        other => panic!("unexpected end: {other:?}"),
    }
}

fn disk(bytes: usize) -> std::fs::File {
    let mut f = tempfile::tempfile().unwrap();
    let mut content = vec![0u8; bytes];
    // Sector 5 holds a known pattern.
    for (i, b) in content[5 * 512..6 * 512].iter_mut().enumerate() {
        *b = u8::try_from(i % 251).unwrap();
    }
    f.write_all(&content).unwrap();
    f
}

fn drive(readonly: bool) -> DriveConfig {
    DriveConfig {
        id: "d0".into(),
        path: "disk.img".into(),
        readonly,
        cache: Default::default(),
    }
}

fn read_u32(run: &common::Run, addr: u32) -> u32 {
    let mut b = [0u8; 4];
    run.control.read_memory(u64::from(addr), &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn read_bytes(run: &common::Run, addr: u32, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    run.control.read_memory(u64::from(addr), &mut b).unwrap();
    b
}

#[test]
fn virtio_mmio_registers_of_empty_and_populated_slots() {
    let mut d = Driver::new(0xfeb0_0000); // slot 0: empty
    for (i, off) in [vio::MAGIC, vio::VERSION, vio::DEVICE_ID, vio::VENDOR]
        .into_iter()
        .enumerate()
    {
        d.reg_read(off, u32::try_from(i).unwrap());
    }
    d.base = vio::SLOT23; // the first drive
    for (i, off) in [
        vio::MAGIC,
        vio::VERSION,
        vio::DEVICE_ID,
        vio::VENDOR,
        vio::QUEUE_NUM_MAX,
        vio::CONFIG,
        vio::CONFIG + 4,
    ]
    .into_iter()
    .enumerate()
    {
        d.reg_read(off, 4 + u32::try_from(i).unwrap());
    }
    d.reg_write(vio::DEV_FEATURES_SEL, 1);
    d.reg_read(vio::DEV_FEATURES, 11);
    d.reg_write(vio::DEV_FEATURES_SEL, 0);
    d.reg_read(vio::DEV_FEATURES, 12);
    d.base = 0xfeb0_2c00; // slot 22: empty with one drive
    d.reg_read(vio::DEVICE_ID, 13);
    d.asm.exit(1);
    let mut cfg = config();
    cfg.drives = vec![drive(false)];
    let Some(run) = run_rom(&cfg, &protected_rom(&d.asm.code), vec![disk(64 * 1024)]) else {
        return;
    };
    assert_eq!(run.reason, ExitReason::DebugExit(1));
    let r: Vec<u32> = (0..14)
        .map(|i| read_u32(&run, at::RESULTS + 4 * i))
        .collect();
    assert_eq!(&r[0..4], &[0x7472_6976, 2, 0, 0x554d_4551], "empty slot 0");
    assert_eq!(
        &r[4..9],
        &[0x7472_6976, 2, 2, 0x554d_4551, 256],
        "blk at slot 23"
    );
    assert_eq!((r[9], r[10]), (128, 0), "capacity in sectors");
    assert_eq!(r[11], 1, "VIRTIO_F_VERSION_1");
    assert_eq!(r[12] & (1 << 9), 1 << 9, "FLUSH");
    assert_eq!(r[12] & (1 << 5), 0, "not read-only");
    assert_eq!(r[13], 0, "slot 22 empty");
}

/// Polling virtio-blk round trip: write sector 2, read it back, read
/// sector 5 (host pattern), flush, get-id.
#[test]
fn virtio_blk_round_trip_by_polling() {
    let mut d = Driver::new(vio::SLOT23);
    d.init(u32::from(QSIZE), 1 << 9);
    d.reg_read(vio::STATUS, 0);
    d.fill(0, |k| 0xa5a5_0000 | k);
    d.request(0, 1, 2, u64::from(at::DATA), 512, false); // OUT sector 2 from buffer 0
    d.request(1, 0, 2, u64::from(at::DATA + 0x1000), 512, true); // IN sector 2 to buffer 1
    d.request(2, 0, 5, u64::from(at::DATA + 0x2000), 512, true); // IN sector 5 to buffer 2
    d.request(3, 4, 0, u64::from(at::DATA + 0x3000), 0, true); // FLUSH (empty data desc)
    d.fill(4, |_| 0xaaaa_aaaa);
    d.request(4, 8, 0, u64::from(at::DATA + 0x4000), 20, true); // GET_ID
    d.reg_read(vio::STATUS, 1);
    d.asm.print("done\n");
    d.asm.exit(0x10);
    let mut cfg = config();
    cfg.drives = vec![drive(false)];
    let disk_file = disk(64 * 1024);
    let mut check = disk_file.try_clone().unwrap();
    let Some(run) = run_rom(&cfg, &protected_rom(&d.asm.code), vec![disk_file]) else {
        return;
    };
    assert_eq!(
        run.reason,
        ExitReason::DebugExit(0x10),
        "serial: {}",
        run.serial
    );
    assert_eq!(run.serial, "done\n");
    assert_eq!(read_u32(&run, at::RESULTS), 0xf, "DRIVER_OK accepted");
    assert_eq!(read_u32(&run, at::RESULTS + 4), 0xf, "still healthy");
    assert_eq!(
        read_bytes(&run, at::STATUS, 5),
        vec![0, 0, 0, 0, 0],
        "all requests OK"
    );
    // Used ring: 5 entries, lengths 1, 513, 513, 1, 21.
    assert_eq!(read_u32(&run, at::USED) >> 16, 5);
    let lens: Vec<u32> = (0..5)
        .map(|i| read_u32(&run, at::USED + 8 + 8 * i))
        .collect();
    assert_eq!(lens, vec![1, 513, 513, 1, 21]);
    let want: Vec<u8> = (0..128u32)
        .flat_map(|k| (0xa5a5_0000 | k).to_le_bytes())
        .collect();
    assert_eq!(
        read_bytes(&run, at::DATA + 0x1000, 512),
        want,
        "read back what was written"
    );
    let mut on_disk = vec![0u8; 512];
    check.seek(SeekFrom::Start(1024)).unwrap();
    check.read_exact(&mut on_disk).unwrap();
    assert_eq!(on_disk, want, "bytes on the disk file");
    let host: Vec<u8> = (0..512).map(|i| u8::try_from(i % 251).unwrap()).collect();
    assert_eq!(
        read_bytes(&run, at::DATA + 0x2000, 512),
        host,
        "sector 5 as the host wrote it"
    );
    assert_eq!(
        read_bytes(&run, at::DATA + 0x4000, 24),
        [&[0u8; 20][..], &[0xaa; 4]].concat(),
        "id: 20 zero bytes"
    );
}

/// With `ioeventfd` on (the command line's default), QueueNotify does not
/// exit: KVM signals the disk's eventfd and its I/O thread serves the
/// queue while the guest spins on the used ring. The guest can only finish
/// if that thread served every request; with `ioeventfd` off the same
/// guest is served on the vCPU thread.
#[test]
fn virtio_blk_served_by_the_io_thread_through_an_ioeventfd() {
    for ioeventfd in [true, false] {
        let mut d = Driver::new(vio::SLOT23);
        d.init(u32::from(QSIZE), 1 << 9);
        d.fill(0, |k| 0x5a5a_0000 | k);
        d.request(0, 1, 3, u64::from(at::DATA), 512, false); // OUT sector 3
        d.wait_used(1);
        d.request(1, 0, 3, u64::from(at::DATA + 0x1000), 512, true); // IN sector 3
        d.wait_used(2);
        d.request(2, 0, 5, u64::from(at::DATA + 0x2000), 512, true); // IN sector 5
        d.wait_used(3);
        d.reg_read(vio::STATUS, 0);
        d.asm.print("done\n");
        d.asm.exit(0x10);
        let mut cfg = config();
        cfg.ioeventfd = ioeventfd;
        cfg.drives = vec![drive(false)];
        let disk_file = disk(64 * 1024);
        let mut check = disk_file.try_clone().unwrap();
        let Some(run) = run_rom(&cfg, &protected_rom(&d.asm.code), vec![disk_file]) else {
            return;
        };
        let what = format!("ioeventfd={ioeventfd}");
        assert_eq!(run.info.ioeventfd_queues, usize::from(ioeventfd), "{what}");
        assert_eq!(
            run.reason,
            ExitReason::DebugExit(0x10),
            "{what}: serial {:?}",
            run.serial
        );
        assert_eq!(run.serial, "done\n", "{what}");
        assert_eq!(read_u32(&run, at::RESULTS), 0xf, "{what}: still healthy");
        assert_eq!(read_bytes(&run, at::STATUS, 3), vec![0, 0, 0], "{what}");
        let want: Vec<u8> = (0..128u32)
            .flat_map(|k| (0x5a5a_0000 | k).to_le_bytes())
            .collect();
        assert_eq!(read_bytes(&run, at::DATA + 0x1000, 512), want, "{what}");
        let mut on_disk = vec![0u8; 512];
        check.seek(SeekFrom::Start(3 * 512)).unwrap();
        check.read_exact(&mut on_disk).unwrap();
        assert_eq!(on_disk, want, "{what}: bytes on the disk file");
        let host: Vec<u8> = (0..512).map(|i| u8::try_from(i % 251).unwrap()).collect();
        assert_eq!(read_bytes(&run, at::DATA + 0x2000, 512), host, "{what}");
    }
}

/// `pause()` holds the I/O thread as well as the vCPU: once it returns, no
/// request completes until `resume()`, although the guest always has one
/// in flight (it submits the next as soon as the last is used). The
/// requests are 1 MiB writes, each followed by a flush (an fdatasync of
/// the file, ~0.6 ms here), so the I/O thread spends most of its time
/// serving one and a pause that did not wait for it would see it complete.
#[test]
fn pause_holds_the_io_thread_too() {
    const N: u16 = 300;
    let mut d = Driver::new(vio::SLOT23);
    d.init(u32::from(QSIZE), 1 << 9);
    for n in 0..N {
        if n % 2 == 0 {
            d.request(n % 8, 1, 0, 0x20_0000, 1 << 20, false);
        } else {
            d.request(n % 8, 4, 0, u64::from(at::DATA), 0, true);
        }
        d.wait_used(n + 1);
    }
    d.asm.print("done\n");
    d.asm.exit(0x10);
    let Some(kvm) = common::kvm() else {
        return;
    };
    let mut cfg = config();
    cfg.ioeventfd = true;
    cfg.drives = vec![drive(false)];
    let serial = common::Capture::default();
    let files = openhook_emulator::machine::MachineFiles {
        kvm,
        firmware: Some(common::firmware_file(&protected_rom(&d.asm.code))),
        kernel: None,
        initrd: None,
        // A file on the test's file system (not tmpfs, when TMPDIR is
        // not): the flushes must cost something.
        drives: vec![disk(2 << 20)],
        serial: Box::new(serial.clone()),
    };
    let machine = openhook_emulator::machine::Machine::build(&cfg, files).expect("build");
    assert_eq!(machine.info().ioeventfd_queues, 1);
    let control = machine.control();
    common::watchdog(control.clone(), 30);
    let thread = std::thread::spawn(move || machine.run());
    let used = || {
        let mut b = [0u8; 2];
        control
            .read_memory(u64::from(at::USED + 2), &mut b)
            .unwrap();
        u16::from_le_bytes(b)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while used() < 3 {
        assert!(std::time::Instant::now() < deadline, "no request completed");
        std::thread::yield_now();
    }
    // Request 3, a flush, is submitted and being served by now (the timing
    // only makes a broken pause likelier to show; a correct one passes
    // whatever it is).
    std::thread::sleep(std::time::Duration::from_micros(200));
    control.pause();
    let at_pause = used();
    assert!(
        at_pause < N,
        "the guest finished before the pause: the test proves nothing"
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(used(), at_pause, "a request completed while paused");
    control.resume();
    let reason = thread.join().expect("machine thread");
    assert_eq!(reason, ExitReason::DebugExit(0x10), "{}", serial.text());
    assert_eq!(used(), N);
    assert_eq!(
        {
            let mut b = vec![0u8; 8];
            control.read_memory(u64::from(at::STATUS), &mut b).unwrap();
            b
        },
        vec![0; 8],
        "every request OK"
    );
    eprintln!("paused after {at_pause} of {N} requests");
}

/// The available ring's NO_INTERRUPT flag: without it a used buffer sets
/// InterruptStatus bit 0 (and raises the interrupt); with it neither, as on
/// QEMU, so a polling driver has nothing to acknowledge.
#[test]
fn no_interrupt_flag_suppresses_the_used_interrupt() {
    let mut d = Driver::new(vio::SLOT23);
    d.init(u32::from(QSIZE), 1 << 9);
    d.request(0, 0, 5, u64::from(at::DATA), 512, true);
    d.reg_read(vio::INTERRUPT_STATUS, 0);
    d.reg_write(vio::INTERRUPT_ACK, 1);
    d.reg_read(vio::INTERRUPT_STATUS, 1);
    d.asm.store16(at::AVAIL, 1); // VIRTQ_AVAIL_F_NO_INTERRUPT
    d.request(1, 0, 5, u64::from(at::DATA + 0x1000), 512, true);
    d.reg_read(vio::INTERRUPT_STATUS, 2);
    d.asm.exit(0x10);
    let mut cfg = config();
    cfg.drives = vec![drive(false)];
    let Some(run) = run_rom(&cfg, &protected_rom(&d.asm.code), vec![disk(64 * 1024)]) else {
        return;
    };
    assert_eq!(run.reason, ExitReason::DebugExit(0x10), "{}", run.serial);
    assert_eq!(
        read_bytes(&run, at::STATUS, 2),
        vec![0, 0],
        "both requests OK"
    );
    assert_eq!(read_u32(&run, at::USED) >> 16, 2, "both used");
    assert_eq!(
        read_u32(&run, at::RESULTS),
        1,
        "used-ring interrupt without the flag"
    );
    assert_eq!(read_u32(&run, at::RESULTS + 4), 0, "acknowledged");
    assert_eq!(
        read_u32(&run, at::RESULTS + 8),
        0,
        "no interrupt with NO_INTERRUPT"
    );
}

#[test]
fn readonly_drive_refuses_writes_with_ioerr() {
    let mut d = Driver::new(vio::SLOT23);
    d.reg_read(vio::DEV_FEATURES, 0);
    d.init(u32::from(QSIZE), (1 << 9) | (1 << 5));
    d.fill(0, |_| 0xdead_beef);
    d.request(0, 1, 5, u64::from(at::DATA), 512, false); // OUT: must fail
    d.request(1, 0, 5, u64::from(at::DATA + 0x1000), 512, true); // IN: works
    d.asm.exit(0x10);
    let mut cfg = config();
    cfg.drives = vec![drive(true)];
    let disk_file = disk(64 * 1024);
    let mut check = disk_file.try_clone().unwrap();
    let Some(run) = run_rom(&cfg, &protected_rom(&d.asm.code), vec![disk_file]) else {
        return;
    };
    assert_eq!(run.reason, ExitReason::DebugExit(0x10));
    assert_ne!(
        read_u32(&run, at::RESULTS) & (1 << 5),
        0,
        "VIRTIO_BLK_F_RO offered"
    );
    assert_eq!(
        read_bytes(&run, at::STATUS, 2),
        vec![1, 0],
        "write IOERR, read OK"
    );
    let mut all = Vec::new();
    check.seek(SeekFrom::Start(0)).unwrap();
    check.read_to_end(&mut all).unwrap();
    let mut want = vec![0u8; 64 * 1024];
    for (i, b) in want[5 * 512..6 * 512].iter_mut().enumerate() {
        *b = u8::try_from(i % 251).unwrap();
    }
    assert!(all == want, "the read-only disk changed");
}

/// One hostile request; returns (run, disk bytes after).
fn hostile(build: impl FnOnce(&mut Driver)) -> Option<(common::Run, Vec<u8>)> {
    let mut d = Driver::new(vio::SLOT23);
    d.init(u32::from(QSIZE), 1 << 9);
    build(&mut d);
    d.reg_read(vio::STATUS, 0);
    d.asm.exit(0x10);
    let mut cfg = config();
    cfg.drives = vec![drive(false)];
    let disk_file = disk(64 * 1024);
    let mut check = disk_file.try_clone().unwrap();
    let run = run_rom(&cfg, &protected_rom(&d.asm.code), vec![disk_file])?;
    assert_eq!(
        run.reason,
        ExitReason::DebugExit(0x10),
        "guest must finish: {:?}",
        run.reason
    );
    let mut all = Vec::new();
    check.seek(SeekFrom::Start(0)).unwrap();
    check.read_to_end(&mut all).unwrap();
    Some((run, all))
}

fn untouched(disk: &[u8]) -> bool {
    disk[..5 * 512].iter().all(|b| *b == 0) && disk[6 * 512..].iter().all(|b| *b == 0)
}

#[test]
fn hostile_looping_chain_sets_needs_reset() {
    let Some((run, disk)) = hostile(|d| {
        d.header(0, 0, 0);
        d.desc(0, u64::from(at::HDR), 16, 1, 1);
        d.desc(1, u64::from(at::DATA), 512, 1 | 2, 0); // next -> 0: a loop
        d.submit(0);
    }) else {
        return;
    };
    assert_ne!(read_u32(&run, at::RESULTS) & vio::NEEDS_RESET, 0);
    assert!(untouched(&disk));
}

#[test]
fn hostile_avail_index_jump_sets_needs_reset() {
    let Some((run, _)) = hostile(|d| {
        d.asm.store16(at::AVAIL + 2, 100);
        d.reg_write(vio::QUEUE_NOTIFY, 0);
    }) else {
        return;
    };
    assert_ne!(read_u32(&run, at::RESULTS) & vio::NEEDS_RESET, 0);
}

#[test]
fn hostile_queue_size_above_max_is_refused() {
    let mut d = Driver::new(vio::SLOT23);
    d.init(512, 1 << 9);
    d.reg_read(vio::QUEUE_READY, 0);
    d.reg_read(vio::STATUS, 1);
    d.asm.exit(0x10);
    let mut cfg = config();
    cfg.drives = vec![drive(false)];
    let Some(run) = run_rom(&cfg, &protected_rom(&d.asm.code), vec![disk(4096)]) else {
        return;
    };
    assert_eq!(run.reason, ExitReason::DebugExit(0x10));
    assert_eq!(read_u32(&run, at::RESULTS), 0, "queue not ready");
    assert_ne!(read_u32(&run, at::RESULTS + 4) & vio::NEEDS_RESET, 0);
}

#[test]
fn hostile_buffers_outside_ram_firmware_or_mmio_get_ioerr() {
    // 16 MiB of RAM: 0x2000_0000 is beyond it; 0xffff_0000 is firmware;
    // 0xfeb0_0000 is the virtio-mmio window.
    for (addr, writes) in [
        (0x2000_0000u64, true),
        (0xffff_0000, true),
        (0xffff_0000, false),
        (0xfeb0_0000, true),
        (0x1_0000_0000, false),
    ] {
        let Some((run, disk)) = hostile(|d| {
            let t = if writes { 0 } else { 1 };
            d.request(0, t, 0, addr, 512, writes);
            // The device still works afterwards.
            d.request(1, 0, 5, u64::from(at::DATA), 512, true);
        }) else {
            return;
        };
        assert_eq!(
            read_bytes(&run, at::STATUS, 2),
            vec![1, 0],
            "buffer at {addr:#x}"
        );
        assert_eq!(read_u32(&run, at::RESULTS) & vio::NEEDS_RESET, 0);
        assert!(untouched(&disk));
    }
}

#[test]
fn hostile_sectors_past_the_end_get_ioerr() {
    // 64 KiB disk = 128 sectors.
    for (t, sector, len) in [
        (1u32, 128u64, 512u32),
        (1, 127, 1024),
        (0, 128, 512),
        (1, u64::MAX, 512),
        (0, 0, 100),
    ] {
        let Some((run, disk)) = hostile(|d| {
            d.fill(0, |_| 0x5555_5555);
            d.request(0, t, sector, u64::from(at::DATA), len, t == 0);
        }) else {
            return;
        };
        assert_eq!(
            read_bytes(&run, at::STATUS, 1),
            vec![1],
            "type {t} sector {sector} len {len}"
        );
        assert_eq!(disk.len(), 64 * 1024, "disk did not grow");
        assert!(untouched(&disk));
    }
}

#[test]
fn hostile_status_byte_outside_ram_sets_needs_reset() {
    let Some((run, disk)) = hostile(|d| {
        d.header(0, 1, 0);
        d.desc(0, u64::from(at::HDR), 16, 1, 1);
        d.desc(1, u64::from(at::DATA), 512, 1, 2);
        d.desc(2, 0xffff_fff0, 1, 2, 0); // status in the firmware
        d.submit(0);
    }) else {
        return;
    };
    assert_ne!(read_u32(&run, at::RESULTS) & vio::NEEDS_RESET, 0);
    // Validation happens before I/O, but a write with an unreportable
    // status may already have reached the disk: only check no growth.
    assert_eq!(disk.len(), 64 * 1024);
}

#[test]
fn hostile_unknown_request_type_gets_unsupp() {
    let Some((run, _)) = hostile(|d| d.request(0, 11, 0, u64::from(at::DATA), 512, false)) else {
        return;
    };
    assert_eq!(read_bytes(&run, at::STATUS, 1), vec![2]);
}

/// The guest programs PIT channel 0 (mode 2, count 0x1234), latches it and
/// exits with the count's high byte: at most 0x12 with a PIT, 0xff (an
/// unassigned port) without one.
fn pit_probe(pit: openhook_emulator::vm_config::OnOffAuto) -> Option<ExitReason> {
    let code = [
        0xb0, 0x34, 0xe6, 0x43, // mov al,0x34; out 0x43,al (ch0, lo/hi, mode 2)
        0xb0, 0x34, 0xe6, 0x40, // count low 0x34
        0xb0, 0x12, 0xe6, 0x40, // count high 0x12
        0xb0, 0x00, 0xe6, 0x43, // latch ch0
        0xe4, 0x40, 0xe4, 0x40, // in al,0x40 (low); in al,0x40 (high)
        0xe6, 0xf4, 0xf4, // out 0xf4,al; hlt
    ];
    let mut cfg = config();
    cfg.pit = pit;
    run_rom(&cfg, &real_mode_rom(&code, &[]), vec![]).map(|r| r.reason)
}

#[test]
fn the_pit_exists_when_asked_for_and_not_by_default_for_firmware() {
    use openhook_emulator::vm_config::OnOffAuto;
    let Some(on) = pit_probe(OnOffAuto::On) else {
        return;
    };
    assert!(
        matches!(on, ExitReason::DebugExit(v) if v <= 0x12),
        "pit=on: {on:?}"
    );
    // Auto without -kernel, and off: no PIT (an in-kernel PIT costs ~15 ms
    // of teardown at every exit on the dev hosts).
    assert_eq!(
        pit_probe(OnOffAuto::Auto),
        Some(ExitReason::DebugExit(0xff))
    );
    assert_eq!(pit_probe(OnOffAuto::Off), Some(ExitReason::DebugExit(0xff)));
}
