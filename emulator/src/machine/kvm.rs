//! The machine's only `unsafe` code: turning the brokered `/dev/kvm` fd
//! into a [`Kvm`] (the one place an fd becomes an integer again),
//! registering guest memory with KVM, and
//! reading the internal-error detail out of the shared `kvm_run` page.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

use kvm_bindings::{
    kvm_userspace_memory_region, KVM_API_VERSION, KVM_EXIT_INTERNAL_ERROR, KVM_MEM_READONLY,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    #[error("the fd given for /dev/kvm is not a KVM device (API version {0})")]
    NotKvm(i32),
    #[error("KVM_SET_USER_MEMORY_REGION for {addr:#x}+{len:#x} failed: {source}")]
    MemorySlot {
        addr: u64,
        len: u64,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("guest memory range {addr:#x}+{len:#x} is not mapped")]
    NotMapped { addr: u64, len: u64 },
}

/// Takes ownership of an open `/dev/kvm` (from the broker) as a [`Kvm`].
pub fn kvm_from_fd(fd: OwnedFd) -> Result<Kvm, KvmError> {
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` came from an `OwnedFd` whose ownership `into_raw_fd`
    // released to us, so it is open and nothing else will close it; `Kvm`
    // takes that ownership over and closes it on drop. An fd that is not
    // /dev/kvm only makes its ioctls fail, which the version check below
    // detects.
    let kvm = unsafe { Kvm::from_raw_fd(raw) };
    let version = kvm.get_api_version();
    if u32::try_from(version).ok() != Some(KVM_API_VERSION) {
        return Err(KvmError::NotKvm(version));
    }
    Ok(kvm)
}

/// A VM fd together with the guest memory KVM maps into it.
///
/// Field order matters: `fd` is dropped (closed) before the mappings, so
/// KVM never refers to host memory that has been unmapped. vCPUs hold an
/// `Arc<KvmVm>` for the same reason (a vCPU fd keeps the VM alive).
pub struct KvmVm {
    fd: VmFd,
    ram: GuestMemoryMmap,
    rom: Option<GuestMemoryMmap>,
    next_slot: u32,
}

impl KvmVm {
    pub fn new(fd: VmFd, ram: GuestMemoryMmap) -> Self {
        KvmVm {
            fd,
            ram,
            rom: None,
            next_slot: 0,
        }
    }

    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    pub fn ram(&self) -> &GuestMemoryMmap {
        &self.ram
    }

    /// Registers `len` bytes of `mem` at `source` as guest-physical `guest`.
    fn map(
        &mut self,
        mem: &GuestMemoryMmap,
        source: u64,
        guest: u64,
        len: u64,
        readonly: bool,
    ) -> Result<(), KvmError> {
        let not_mapped = KvmError::NotMapped { addr: source, len };
        let ulen = usize::try_from(len).map_err(|_| KvmError::NotMapped { addr: source, len })?;
        // The whole range must be inside one mapping of `mem`.
        let region = mem.find_region(GuestAddress(source)).ok_or(not_mapped)?;
        let end = source
            .checked_add(len)
            .ok_or(KvmError::NotMapped { addr: source, len })?;
        if end > region.start_addr().0 + region.len()
            || !GuestMemoryBackend::check_range(mem, GuestAddress(source), ulen)
        {
            return Err(KvmError::NotMapped { addr: source, len });
        }
        let host = GuestMemoryBackend::get_host_address(mem, GuestAddress(source))
            .map_err(|_| KvmError::NotMapped { addr: source, len })?;
        let region = kvm_userspace_memory_region {
            slot: self.next_slot,
            flags: if readonly { KVM_MEM_READONLY } else { 0 },
            guest_phys_addr: guest,
            memory_size: len,
            userspace_addr: host as u64,
        };
        // SAFETY: `host..host+len` lies inside one live mapping owned by
        // `mem` (checked above). A clone of `mem` is stored in `self` below
        // (RAM and ROM are kept for the life of the VM), and `self.fd` is
        // closed before those clones drop, so KVM never maps memory that
        // has been unmapped or reused.
        unsafe { self.fd.set_user_memory_region(region) }.map_err(|source| {
            KvmError::MemorySlot {
                addr: guest,
                len,
                source,
            }
        })?;
        self.next_slot += 1;
        Ok(())
    }

    /// Registers every RAM region at its own guest address, writable.
    /// RAM is advised for transparent huge pages, as QEMU does (fewer
    /// faults and TLB misses; advice only, failures ignored).
    pub fn map_ram(&mut self) -> Result<(), KvmError> {
        let ram = self.ram.clone();
        for r in ram.iter() {
            let (start, len) = (r.start_addr().0, r.len());
            if let (Ok(host), Ok(ulen)) = (
                GuestMemoryBackend::get_host_address(&ram, GuestAddress(start)),
                usize::try_from(len),
            ) {
                // SAFETY: `host..host+len` is exactly one live anonymous
                // mapping owned by `ram`; MADV_HUGEPAGE only changes how
                // the kernel backs it, never its contents or validity.
                let _ = unsafe {
                    rustix::mm::madvise(host.cast(), ulen, rustix::mm::Advice::LinuxHugepage)
                };
            }
            self.map(&ram, start, start, len, false)?;
        }
        Ok(())
    }

    /// Registers the firmware mapping `rom` (one region) at its address and
    /// its last `mirror_len` bytes again at `mirror_addr`.
    pub fn map_rom(
        &mut self,
        rom: GuestMemoryMmap,
        mirror_addr: u64,
        mirror_len: u64,
        readonly: bool,
    ) -> Result<(), KvmError> {
        let first = rom.iter().next().map(|r| (r.start_addr().0, r.len()));
        let (start, len) = first.ok_or(KvmError::NotMapped { addr: 0, len: 0 })?;
        self.map(&rom, start, start, len, readonly)?;
        let mirror_src = (start + len)
            .checked_sub(mirror_len)
            .ok_or(KvmError::NotMapped {
                addr: start,
                len: mirror_len,
            })?;
        self.map(&rom, mirror_src, mirror_addr, mirror_len, readonly)?;
        self.rom = Some(rom);
        Ok(())
    }
}

/// The fd of an eventfd KVM signals (irqfd, ioeventfd), borrowed for as
/// long as `event`: vmm-sys-util's `EventFd` (which kvm-ioctls takes) has
/// no `AsFd`, and an I/O thread polls it.
pub fn eventfd_fd(event: &EventFd) -> BorrowedFd<'_> {
    // SAFETY: the fd is owned by `event`, which stays alive (and keeps it
    // open) for the whole borrow the returned value's lifetime ties to it.
    unsafe { BorrowedFd::borrow_raw(event.as_raw_fd()) }
}

/// The `suberror` of a `KVM_EXIT_INTERNAL_ERROR` exit (1 = emulation
/// failure), or `None` when the last exit was something else.
pub fn internal_error_suberror(vcpu: &mut VcpuFd) -> Option<u32> {
    let run = vcpu.get_kvm_run();
    if run.exit_reason != KVM_EXIT_INTERNAL_ERROR {
        return None;
    }
    // SAFETY: KVM fills the `internal` member of the exit union when
    // `exit_reason` is KVM_EXIT_INTERNAL_ERROR (checked above); it is plain
    // integers, valid for any bit pattern.
    let internal = unsafe { run.__bindgen_anon_1.internal };
    Some(internal.suberror)
}
