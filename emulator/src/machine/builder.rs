//! Assembles a machine from a validated [`MachineConfig`] and the files it
//! needs, already open ([`MachineFiles`]). Nothing here opens a path.
#![forbid(unsafe_code)]

use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_irqchip, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
    KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Cap, IoEventAddress};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::bus::SharedDevice;
use super::control::{ResetHook, Shared};
use super::io_thread::IoQueue;
use super::irqchip::{self, IoapicMmio, IrqchipKind, UserIoapic};
use super::kvm::{kvm_from_fd, KvmVm};
use super::layout::{self, MemoryLayout};
use super::vcpu::{Buses, Vcpu};
use super::SerialInput;
use super::{BuildError, Machine, MachineFiles, MachineInfo, MemoryError};
use crate::devices::debug_exit::DebugExit;
use crate::devices::serial::SerialDevice;
use crate::devices::virtio::blk::BlockDevice;
use crate::devices::virtio::{mmio, OnLive, VirtioMmioDevice};
use crate::devices::IrqLine;
use crate::vm_config::MachineConfig;

/// QEMU's addresses for the VMX real-mode helpers (below the 16 MiB
/// firmware window, above the local APIC page).
const IDENTITY_MAP_ADDR: u64 = 0xfeff_c000;
const TSS_ADDR: usize = 0xfeff_d000;

fn read_firmware(file: &mut std::fs::File) -> Result<Vec<u8>, BuildError> {
    let mut bytes = Vec::new();
    // Whatever the fd's position, the image starts at offset 0.
    file.seek(SeekFrom::Start(0))
        .map_err(BuildError::Firmware)?;
    file.take(layout::FIRMWARE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(BuildError::Firmware)?;
    Ok(bytes)
}

fn irq_line(vm: &KvmVm, chip: &Chip, gsi: u32) -> Result<IrqLine, BuildError> {
    match chip {
        Chip::None => return Ok(IrqLine::none()),
        Chip::Split(ioapic) => {
            let ioapic = ioapic.clone();
            let pin = gsi as usize;
            return Ok(IrqLine::pulse(Arc::new(move || ioapic.pulse(pin))));
        }
        Chip::Kernel => {}
    }
    let fd = EventFd::new(EFD_NONBLOCK).map_err(BuildError::EventFd)?;
    vm.fd()
        .register_irqfd(&fd, gsi)
        .map_err(|e| BuildError::Kvm("KVM_IRQFD", e))?;
    Ok(IrqLine::eventfd(Arc::new(fd)))
}

/// An eventfd KVM signals when the guest writes 0 (queue 0) to the
/// QueueNotify register of the transport in `slot`, instead of exiting,
/// and what registers it with KVM. The registration waits for the driver's
/// DRIVER_OK, as QEMU's does: registering puts a device on KVM's I/O bus,
/// which leaves an SRCU grace period in flight that a VM torn down soon
/// after waits out (docs/performance.md), so a guest that never uses the
/// disk does not pay it. A host that refuses ioeventfds leaves QueueNotify
/// exiting: the vCPU thread serves the queue, as with `ioeventfd=off`.
fn queue_notify_event(vm: &Arc<KvmVm>, slot: usize) -> Result<(EventFd, OnLive), BuildError> {
    let event = EventFd::new(EFD_NONBLOCK).map_err(BuildError::EventFd)?;
    let kvm_side = event.try_clone().map_err(BuildError::EventFd)?;
    let addr = IoEventAddress::Mmio(layout::virtio_mmio_base(slot) + mmio::reg::QUEUE_NOTIFY);
    let vm = vm.clone();
    let register = Box::new(move || {
        // A u32 datamatch: exactly 4-byte writes of the value 0.
        if let Err(e) = vm.fd().register_ioevent(&kvm_side, &addr, 0u32) {
            tracing::debug!("KVM_IOEVENTFD refused ({e}): virtio-blk served on the vCPU thread");
        }
        // KVM holds its own reference to the eventfd: the duplicate closes.
        drop(kvm_side);
    });
    Ok((event, register))
}

/// The firmware image, its mapping and where it sits: a reset rewrites it
/// (without read-only slots the guest could have changed it).
type RomImage = (GuestMemoryMmap, GuestAddress, Vec<u8>);

/// The interrupt controller devices are wired to.
enum Chip {
    Kernel,
    Split(Arc<UserIoapic>),
    None,
}

/// The devices on the two buses and what the machine keeps of them.
struct Devices {
    buses: Buses,
    serial_port: Arc<Mutex<SerialDevice>>,
    io_queues: Vec<IoQueue>,
}

pub(super) fn build(
    config: &MachineConfig,
    mut files: MachineFiles,
) -> Result<Machine, BuildError> {
    check(config, &files)?;
    let kvm = kvm_from_fd(files.kvm)?;
    let firmware = files.firmware.as_mut().map(read_firmware).transpose()?;
    let fw_size = firmware.as_ref().map(|f| f.len() as u64);
    let mem_layout = MemoryLayout::new(config.memory_mib, fw_size)?;
    let ram = guest_ram(&mem_layout)?;

    // Memory.
    let vm_fd = kvm
        .create_vm()
        .map_err(|e| BuildError::Kvm("KVM_CREATE_VM", e))?;
    crate::boot_time::mark("vm-created");
    // Intel VMX needs these for real mode; other hosts (PVM) may refuse.
    let _ = vm_fd.set_identity_map_address(IDENTITY_MAP_ADDR);
    let _ = vm_fd.set_tss_address(TSS_ADDR);
    let readonly_rom = kvm.check_extension(Cap::ReadonlyMem);
    let mut vm = KvmVm::new(vm_fd, ram.clone());
    vm.map_ram()?;
    // ROM.
    let rom_image = match &firmware {
        Some(bytes) => map_firmware(&mut vm, bytes, &mem_layout, readonly_rom)?,
        None => None,
    };
    // Interrupt controllers.
    let irqchip = irqchip::create(&vm, config)?;
    let vm = Arc::new(vm);
    // Devices.
    let devices = attach_devices(&vm, config, files.serial, files.drives, irqchip, &ram)?;
    let buses = Arc::new(devices.buses);
    // vCPUs.
    let mut vcpus = create_vcpus(&kvm, &vm, config, irqchip)?;
    if let (Some(k), Some(kfile)) = (&config.kernel, files.kernel.as_mut()) {
        super::boot::load_linux(
            &vm,
            &mut vcpus[0],
            kfile,
            files.initrd.as_mut(),
            &k.cmdline,
            &mem_layout,
            &config.drives,
        )?;
    }

    let reset_hook = reset_hook(&vm, irqchip, &buses, rom_image);
    let io_queues = devices.io_queues;
    let ioeventfd_queues = io_queues.len();
    let shared = Shared::new(
        vcpus.len() + io_queues.len(),
        config.start_paused,
        ram,
        reset_hook,
        vmm_sys_util::signal::SIGRTMIN(),
    );

    Ok(Machine {
        vcpus,
        io_queues,
        thread_init: None,
        buses,
        shared,
        no_reboot: config.no_reboot || config.kernel.is_some(),
        serial_input: SerialInput(devices.serial_port),
        info: MachineInfo {
            irqchip: irqchip.has_lapic(),
            kernel_irqchip: irqchip.as_str(),
            readonly_rom,
            ioeventfd_queues,
            layout: mem_layout,
        },
        _vm: vm,
    })
}

/// The configuration and the files handed over must agree.
fn check(config: &MachineConfig, files: &MachineFiles) -> Result<(), BuildError> {
    if config.firmware.is_some() != files.firmware.is_some() {
        return Err(BuildError::FilesMismatch("firmware"));
    }
    if config.kernel.is_some() != files.kernel.is_some() {
        return Err(BuildError::FilesMismatch("kernel"));
    }
    if config.drives.len() != files.drives.len() {
        return Err(BuildError::FilesMismatch("drives"));
    }
    if config.firmware.is_none() && config.kernel.is_none() {
        return Err(BuildError::NothingToBoot);
    }
    if config.drives.len() > layout::VIRTIO_MMIO_SLOTS {
        return Err(BuildError::TooManyDevices(config.drives.len()));
    }
    if config.vcpus == 0 {
        return Err(BuildError::NoVcpus);
    }
    Ok(())
}

/// Guest RAM, mapped in this process (not yet registered with KVM).
fn guest_ram(mem_layout: &MemoryLayout) -> Result<GuestMemoryMmap, BuildError> {
    let ram_ranges: Vec<(GuestAddress, usize)> = mem_layout
        .ram
        .iter()
        .map(|r| {
            Ok((
                GuestAddress(r.start),
                usize::try_from(r.len).map_err(|_| MemoryError::RamTooLarge)?,
            ))
        })
        .collect::<Result<_, BuildError>>()?;
    Ok(GuestMemoryMmap::from_ranges(&ram_ranges).map_err(MemoryError::from)?)
}

/// Maps the firmware image so that it ends at 4 GiB, with its mirror
/// below 1 MiB.
fn map_firmware(
    vm: &mut KvmVm,
    bytes: &[u8],
    mem_layout: &MemoryLayout,
    readonly_rom: bool,
) -> Result<Option<RomImage>, BuildError> {
    let (Some(fw), Some(mirror)) = (mem_layout.firmware, mem_layout.firmware_mirror) else {
        return Ok(None);
    };
    let len = usize::try_from(fw.len).map_err(|_| MemoryError::FirmwareTooLarge)?;
    let rom = GuestMemoryMmap::from_ranges(&[(GuestAddress(fw.start), len)])
        .map_err(MemoryError::from)?;
    // The image sits at the end of the page-rounded window.
    let at = GuestAddress(layout::FOUR_GIB - bytes.len() as u64);
    rom.write_slice(bytes, at).map_err(MemoryError::from)?;
    vm.map_rom(rom.clone(), mirror.start, mirror.len, readonly_rom)?;
    Ok(Some((rom, at, bytes.to_vec())))
}

/// The UART, isa-debug-exit and the 24 virtio-mmio transports (drives
/// from the highest slot down, the rest empty).
fn attach_devices(
    vm: &Arc<KvmVm>,
    config: &MachineConfig,
    serial: Box<dyn crate::devices::serial::SerialOutput>,
    drives: Vec<std::fs::File>,
    irqchip: IrqchipKind,
    ram: &GuestMemoryMmap,
) -> Result<Devices, BuildError> {
    let mut buses = Buses::default();
    let chip = match irqchip {
        IrqchipKind::Kernel => Chip::Kernel,
        IrqchipKind::None => Chip::None,
        IrqchipKind::Split => {
            let ioapic = UserIoapic::new(vm.clone());
            let (base, size) = irqchip::IOAPIC_WINDOW;
            buses
                .mmio
                .insert(base, size, Arc::new(Mutex::new(IoapicMmio(ioapic.clone()))))?;
            buses.ioapic = Some(ioapic.clone());
            Chip::Split(ioapic)
        }
    };
    let serial_irq = irq_line(vm, &chip, layout::SERIAL_IRQ)?;
    let serial_port = Arc::new(Mutex::new(SerialDevice::new(serial, serial_irq)));
    let serial_dev: SharedDevice = serial_port.clone();
    buses.pio.insert(
        u64::from(layout::SERIAL_PORT),
        u64::from(layout::SERIAL_PORT_LEN),
        serial_dev,
    )?;
    if let Some(d) = config.debug_exit {
        buses.pio.insert(
            u64::from(d.iobase),
            u64::from(d.iosize),
            Arc::new(Mutex::new(DebugExit)),
        )?;
    }
    let mut slots: Vec<Option<SharedDevice>> = vec![None; layout::VIRTIO_MMIO_SLOTS];
    let mut io_queues = Vec::new();
    for (n, (drive, file)) in config.drives.iter().zip(drives).enumerate() {
        let slot = layout::slot_for_device(n).ok_or(BuildError::TooManyDevices(n + 1))?;
        let blk = BlockDevice::new(file, drive.readonly, drive.cache, [0; 20]).map_err(|e| {
            BuildError::Disk {
                id: drive.id.clone(),
                source: e,
            }
        })?;
        let irq = irq_line(vm, &chip, layout::virtio_irq(slot))?;
        let mut virtio = VirtioMmioDevice::new(Box::new(blk), ram.clone(), irq);
        let event = if config.ioeventfd {
            let (event, register) = queue_notify_event(vm, slot)?;
            virtio.on_first_live(register);
            Some(event)
        } else {
            None
        };
        let device: SharedDevice = Arc::new(Mutex::new(virtio));
        if let Some(event) = event {
            io_queues.push(IoQueue {
                event,
                device: device.clone(),
            });
        }
        slots[slot] = Some(device);
    }
    for (slot, dev) in slots.into_iter().enumerate() {
        let dev = dev.unwrap_or_else(|| Arc::new(Mutex::new(VirtioMmioDevice::empty(ram.clone()))));
        buses.mmio.insert(
            layout::virtio_mmio_base(slot),
            layout::VIRTIO_MMIO_STRIDE,
            dev,
        )?;
    }
    Ok(Devices {
        buses,
        serial_port,
        io_queues,
    })
}

/// Every vCPU in its reset state, with the host's supported CPUID.
fn create_vcpus(
    kvm: &kvm_ioctls::Kvm,
    vm: &Arc<KvmVm>,
    config: &MachineConfig,
    irqchip: IrqchipKind,
) -> Result<Vec<Vcpu>, BuildError> {
    if config.vcpus > 1 && !irqchip.has_lapic() {
        return Err(BuildError::SmpNeedsIrqchip);
    }
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| BuildError::Kvm("KVM_GET_SUPPORTED_CPUID", e))?;
    let mut vcpus = Vec::new();
    for id in 0..config.vcpus {
        vcpus.push(Vcpu::new(vm, id, &cpuid, irqchip.has_lapic())?);
    }
    Ok(vcpus)
}

/// What a machine reset does besides reloading vCPU state: devices and
/// interrupt controllers back to their power-on state, the ROM rewritten.
fn reset_hook(
    vm: &Arc<KvmVm>,
    irqchip: IrqchipKind,
    buses: &Arc<Buses>,
    rom_image: Option<RomImage>,
) -> ResetHook {
    // A userspace IOAPIC is on the MMIO bus and resets with it.
    let irqchip = irqchip == IrqchipKind::Kernel;
    let initial_chips = if irqchip {
        capture_irqchips(vm)
    } else {
        Vec::new()
    };
    let initial_pit = if irqchip {
        vm.fd().get_pit2().ok()
    } else {
        None
    };
    let reset_vm = vm.clone();
    let reset_buses = buses.clone();
    Box::new(move || {
        reset_buses.pio.reset();
        reset_buses.mmio.reset();
        for chip in &initial_chips {
            let _ = reset_vm.fd().set_irqchip(chip);
        }
        if let Some(pit) = &initial_pit {
            let _ = reset_vm.fd().set_pit2(pit);
        }
        // Without read-only slots the guest could have changed its ROM.
        if let Some((rom, at, bytes)) = &rom_image {
            let _ = rom.write_slice(bytes, *at);
        }
    })
}

fn capture_irqchips(vm: &KvmVm) -> Vec<kvm_irqchip> {
    [
        KVM_IRQCHIP_PIC_MASTER,
        KVM_IRQCHIP_PIC_SLAVE,
        KVM_IRQCHIP_IOAPIC,
    ]
    .into_iter()
    .filter_map(|chip_id| {
        let mut chip = kvm_irqchip {
            chip_id,
            ..Default::default()
        };
        vm.fd().get_irqchip(&mut chip).ok().map(|()| chip)
    })
    .collect()
}
