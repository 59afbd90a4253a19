//! Direct Linux boot (`-kernel`, `-initrd`, `-append`) with linux-loader:
//! an ELF vmlinux or a bzImage is loaded, the zero page (boot_params) with
//! an e820 map and the command line is written, identity page tables map
//! the first GiB, and vCPU 0 starts at the kernel's 64-bit entry point.
//!
//! The command line gets `virtio_mmio.device=512@ADDR:IRQ` for every
//! populated transport, as QEMU microvm's `auto-kernel-cmdline` does.
//!
//! On PVM dev hosts a distribution kernel does not boot in useful time
//! (docs/machine.md); only its first serial output can be checked there.
#![forbid(unsafe_code)]

use std::fs::File;

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::boot_params;
use linux_loader::loader::{load_cmdline, BzImage, Cmdline, Elf, KernelLoader, KernelLoaderResult};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::kvm::KvmVm;
use super::layout::{self, MemoryLayout, MIB};
use super::vcpu::Vcpu;
use super::BuildError;
use crate::vm_config::DriveConfig;

const GDT_ADDR: u64 = 0x500;
const IDT_ADDR: u64 = 0x520;
const ZERO_PAGE: u64 = 0x7000;
const BOOT_STACK: u64 = 0x8ff0;
const PML4: u64 = 0x9000;
const PDPTE: u64 = 0xa000;
const PDE: u64 = 0xb000;
const CMDLINE_ADDR: u64 = 0x20000;
const CMDLINE_MAX: usize = 4096;
/// Top of conventional memory given to the kernel (below the EBDA).
const EBDA_START: u64 = 0x9fc00;

const E820_RAM: u32 = 1;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x0100_0000;

const X86_CR0_PE: u64 = 0x1;
const X86_CR0_PG: u64 = 0x8000_0000;
const X86_CR4_PAE: u64 = 0x20;
const EFER_LME: u64 = 0x100;
const EFER_LMA: u64 = 0x400;

/// GDT: null, 64-bit code, data, TSS.
const GDT: [u64; 4] = [
    0,
    0x00af_9b00_0000_ffff,
    0x00cf_9300_0000_ffff,
    0x008f_8b00_0000_ffff,
];

fn segment(index: u16, entry: u64) -> kvm_segment {
    let bits = |shift: u32, mask: u64| -> u8 { u8::try_from((entry >> shift) & mask).unwrap_or(0) };
    let base = ((entry >> 16) & 0xff_ffff) | (((entry >> 56) & 0xff) << 24);
    let limit = (entry & 0xffff) | (((entry >> 48) & 0xf) << 16);
    kvm_segment {
        base,
        limit: u32::try_from(limit).unwrap_or(0),
        selector: index * 8,
        type_: bits(40, 0xf),
        present: bits(47, 1),
        dpl: bits(45, 3),
        db: bits(54, 1),
        s: bits(44, 1),
        l: bits(53, 1),
        g: bits(55, 1),
        avl: bits(52, 1),
        unusable: u8::from(bits(47, 1) == 0),
        padding: 0,
    }
}

/// Why a `-kernel` boot could not be prepared; shown after "kernel: ".
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{0}")]
    Load(#[from] linux_loader::loader::Error),
    #[error("{0}")]
    Cmdline(#[from] linux_loader::cmdline::Error),
    #[error("{0}")]
    BootParams(#[from] linux_loader::configurator::Error),
    #[error("{0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
    #[error("{0}")]
    Initrd(#[from] std::io::Error),
    #[error("{0}")]
    Range(#[from] std::num::TryFromIntError),
    #[error("e820 table full")]
    E820Full,
    #[error("initrd does not fit in RAM")]
    InitrdTooLarge,
}

fn boot_err(e: impl Into<KernelError>) -> BuildError {
    BuildError::Kernel(e.into())
}

pub(super) fn load_linux(
    vm: &KvmVm,
    vcpu: &mut Vcpu,
    kernel: &mut File,
    initrd: Option<&mut File>,
    cmdline: &str,
    mem_layout: &MemoryLayout,
    drives: &[DriveConfig],
) -> Result<(), BuildError> {
    let mem = vm.ram();
    let loaded = load_kernel(mem, kernel)?;
    // bzImage: the 64-bit entry is 0x200 past the protected-mode code.
    let entry = match loaded.setup_header {
        Some(_) => loaded.kernel_load.0 + 0x200,
        None => loaded.kernel_load.0,
    };
    let cmdline_len = write_cmdline(mem, cmdline, drives)?;
    let mut params = zero_page(&loaded, cmdline_len);
    fill_e820(&mut params, mem_layout)?;
    if let Some(initrd) = initrd {
        load_initrd(mem, &mut params, initrd, mem_layout, loaded.kernel_end)?;
    }
    LinuxBootConfigurator::write_bootparams(
        &BootParams::new(&params, GuestAddress(ZERO_PAGE)),
        mem,
    )
    .map_err(boot_err)?;

    // GDT, empty IDT, identity page tables for the first GiB (2 MiB pages).
    for (i, e) in GDT.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(GDT_ADDR + 8 * i as u64))
            .map_err(boot_err)?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_ADDR))
        .map_err(boot_err)?;
    mem.write_obj(PDPTE | 0x03, GuestAddress(PML4))
        .map_err(boot_err)?;
    mem.write_obj(PDE | 0x03, GuestAddress(PDPTE))
        .map_err(boot_err)?;
    for i in 0..512u64 {
        mem.write_obj((i << 21) | 0x83, GuestAddress(PDE + i * 8))
            .map_err(boot_err)?;
    }

    enter_long_mode(vcpu, entry)
}

/// Loads the kernel (ELF `vmlinux`, else bzImage) above 1 MiB.
fn load_kernel(mem: &GuestMemoryMmap, kernel: &mut File) -> Result<KernelLoaderResult, BuildError> {
    let himem = Some(GuestAddress(MIB));
    Ok(match Elf::load(mem, None, kernel, himem) {
        Ok(r) => r,
        Err(_) => BzImage::load(mem, None, kernel, himem).map_err(boot_err)?,
    })
}

/// Writes the command line (`-append`, then one `virtio_mmio.device=` per
/// drive); returns its length with the NUL.
fn write_cmdline(
    mem: &GuestMemoryMmap,
    cmdline: &str,
    drives: &[DriveConfig],
) -> Result<usize, BuildError> {
    let mut line = Cmdline::new(CMDLINE_MAX).map_err(boot_err)?;
    if !cmdline.is_empty() {
        line.insert_str(cmdline).map_err(boot_err)?;
    }
    for n in 0..drives.len() {
        let slot = layout::slot_for_device(n).ok_or(BuildError::TooManyDevices(n + 1))?;
        line.insert_str(format!(
            "virtio_mmio.device=512@{:#x}:{}",
            layout::virtio_mmio_base(slot),
            layout::virtio_irq(slot)
        ))
        .map_err(boot_err)?;
    }
    load_cmdline(mem, GuestAddress(CMDLINE_ADDR), &line).map_err(boot_err)?;
    let cmdline_len = line
        .as_cstring()
        .map_err(boot_err)?
        .as_bytes_with_nul()
        .len();

    Ok(cmdline_len)
}

/// The zero page's setup header: the kernel's own (bzImage) or a minimal
/// one (ELF), with the loader type and the command line.
fn zero_page(loaded: &KernelLoaderResult, cmdline_len: usize) -> boot_params {
    let mut params = boot_params::default();
    if let Some(h) = loaded.setup_header {
        params.hdr = h;
    } else {
        params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
        params.hdr.header = KERNEL_HDR_MAGIC;
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.cmd_line_ptr = u32::try_from(CMDLINE_ADDR).unwrap_or(0);
    params.hdr.cmdline_size = u32::try_from(cmdline_len).unwrap_or(0);

    params
}

/// e820: conventional memory, then every RAM region from 1 MiB.
fn fill_e820(params: &mut boot_params, mem_layout: &MemoryLayout) -> Result<(), BuildError> {
    let mut e820 = vec![(0u64, EBDA_START)];
    for r in &mem_layout.ram {
        let start = r.start.max(MIB);
        if r.end() > start {
            e820.push((start, r.end() - start));
        }
    }
    for (i, (addr, size)) in e820.iter().enumerate() {
        let entry = params
            .e820_table
            .get_mut(i)
            .ok_or(BuildError::Kernel(KernelError::E820Full))?;
        entry.addr = *addr;
        entry.size = *size;
        entry.r#type = E820_RAM;
    }
    params.e820_entries = u8::try_from(e820.len()).unwrap_or(0);

    Ok(())
}

/// Copies the initrd to the highest page-aligned place in low RAM that
/// fits above the kernel and records it in the zero page.
fn load_initrd(
    mem: &GuestMemoryMmap,
    params: &mut boot_params,
    initrd: &mut File,
    mem_layout: &MemoryLayout,
    kernel_end: u64,
) -> Result<(), BuildError> {
    let size = initrd.metadata().map_err(boot_err)?.len();
    // Highest page-aligned place in low RAM that fits, above the kernel.
    let low_end = mem_layout
        .ram
        .iter()
        .filter(|r| r.start < layout::FOUR_GIB)
        .map(|r| r.end())
        .max()
        .unwrap_or(0);
    let at = low_end
        .checked_sub(size)
        .map(|a| a & !(layout::PAGE - 1))
        .filter(|a| *a >= kernel_end)
        .ok_or(BuildError::Kernel(KernelError::InitrdTooLarge))?;
    let len = usize::try_from(size).map_err(boot_err)?;
    mem.read_exact_volatile_from(GuestAddress(at), initrd, len)
        .map_err(boot_err)?;
    params.hdr.ramdisk_image = u32::try_from(at).map_err(boot_err)?;
    params.hdr.ramdisk_size = u32::try_from(size).map_err(boot_err)?;
    Ok(())
}

/// The vCPU registers for the 64-bit entry: flat segments from the GDT,
/// paging on with the identity tables, `rsi` at the zero page.
fn enter_long_mode(vcpu: &mut Vcpu, entry: u64) -> Result<(), BuildError> {
    let (_, mut sregs): (kvm_regs, kvm_sregs) = vcpu.registers()?;
    let code = segment(1, GDT[1]);
    let data = segment(2, GDT[2]);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(3, GDT[3]);
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = u16::try_from(GDT.len() * 8 - 1).unwrap_or(0);
    sregs.idt.base = IDT_ADDR;
    sregs.idt.limit = 7;
    sregs.cr3 = PML4;
    sregs.cr4 |= X86_CR4_PAE;
    sregs.cr0 |= X86_CR0_PE | X86_CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
    let regs = kvm_regs {
        rip: entry,
        rsp: BOOT_STACK,
        rbp: BOOT_STACK,
        rsi: ZERO_PAGE,
        rflags: 2,
        ..Default::default()
    };
    vcpu.set_boot_registers(regs, sregs)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_decode_like_the_kernel_expects() {
        let c = segment(1, GDT[1]);
        assert_eq!(
            (c.selector, c.type_, c.l, c.db, c.present, c.s, c.g),
            (8, 0xb, 1, 0, 1, 1, 1)
        );
        assert_eq!((c.base, c.limit), (0, 0xfffff));
        let d = segment(2, GDT[2]);
        assert_eq!((d.selector, d.type_, d.db, d.l), (16, 3, 1, 0));
        let t = segment(3, GDT[3]);
        assert_eq!((t.selector, t.type_, t.s), (24, 0xb, 0));
        let null = segment(0, 0);
        assert_eq!(null.unusable, 1);
    }
}
