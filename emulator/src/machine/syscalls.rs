//! What the machine's threads (vCPU threads and the supervisor) ask of
//! the kernel once the sandbox is on (each module lists its own; docs/sandbox.md): the syscalls, and the
//! exact KVM ioctl request numbers for seccomp argument filtering.
//! Building the machine (before or after `sandbox::enter`) also needs
//! `mmap` for guest RAM, `eventfd2`, `rt_sigaction`, `clone3`/`clone`.
//!
//! The device modules list their own needs
//! (`devices::virtio::blk::SYSCALLS`).
#![forbid(unsafe_code)]
// ioctl numbers are built from struct sizes (all far below 2^14) in const
// context, where `try_from` is unavailable.
#![allow(clippy::cast_possible_truncation)]

use std::mem::size_of;

use kvm_bindings::{
    kvm_cpuid2, kvm_enable_cap, kvm_fpu, kvm_ioeventfd, kvm_irq_routing, kvm_irqchip, kvm_irqfd,
    kvm_lapic_state, kvm_mp_state, kvm_msi, kvm_pit_config, kvm_pit_state2, kvm_regs, kvm_sregs,
    kvm_userspace_memory_region,
};
use vmm_sys_util::ioctl::{ioctl_expr, _IOC_NONE, _IOC_READ, _IOC_WRITE};

const KVMIO: u32 = 0xAE;

const fn io(nr: u32) -> u64 {
    ioctl_expr(_IOC_NONE, KVMIO, nr, 0) as u64
}
const fn ior(nr: u32, size: usize) -> u64 {
    ioctl_expr(_IOC_READ, KVMIO, nr, size as u32) as u64
}
const fn iow(nr: u32, size: usize) -> u64 {
    ioctl_expr(_IOC_WRITE, KVMIO, nr, size as u32) as u64
}
const fn iowr(nr: u32, size: usize) -> u64 {
    ioctl_expr(_IOC_READ | _IOC_WRITE, KVMIO, nr, size as u32) as u64
}

pub const KVM_GET_API_VERSION: u64 = io(0x00);
pub const KVM_CREATE_VM: u64 = io(0x01);
pub const KVM_CHECK_EXTENSION: u64 = io(0x03);
pub const KVM_GET_VCPU_MMAP_SIZE: u64 = io(0x04);
pub const KVM_GET_SUPPORTED_CPUID: u64 = iowr(0x05, size_of::<kvm_cpuid2>());
pub const KVM_CREATE_VCPU: u64 = io(0x41);
pub const KVM_SET_USER_MEMORY_REGION: u64 = iow(0x46, size_of::<kvm_userspace_memory_region>());
pub const KVM_SET_TSS_ADDR: u64 = io(0x47);
pub const KVM_SET_IDENTITY_MAP_ADDR: u64 = iow(0x48, size_of::<u64>());
pub const KVM_CREATE_IRQCHIP: u64 = io(0x60);
pub const KVM_GET_IRQCHIP: u64 = iowr(0x62, size_of::<kvm_irqchip>());
pub const KVM_SET_IRQCHIP: u64 = ior(0x63, size_of::<kvm_irqchip>());
pub const KVM_SET_GSI_ROUTING: u64 = iow(0x6a, size_of::<kvm_irq_routing>());
pub const KVM_IRQFD: u64 = iow(0x76, size_of::<kvm_irqfd>());
pub const KVM_ENABLE_CAP: u64 = iow(0xa3, size_of::<kvm_enable_cap>());
pub const KVM_SIGNAL_MSI: u64 = iow(0xa5, size_of::<kvm_msi>());
pub const KVM_IOEVENTFD: u64 = iow(0x79, size_of::<kvm_ioeventfd>());
pub const KVM_CREATE_PIT2: u64 = iow(0x77, size_of::<kvm_pit_config>());
pub const KVM_GET_PIT2: u64 = ior(0x9f, size_of::<kvm_pit_state2>());
pub const KVM_SET_PIT2: u64 = iow(0xa0, size_of::<kvm_pit_state2>());
pub const KVM_RUN: u64 = io(0x80);
pub const KVM_GET_REGS: u64 = ior(0x81, size_of::<kvm_regs>());
pub const KVM_SET_REGS: u64 = iow(0x82, size_of::<kvm_regs>());
pub const KVM_GET_SREGS: u64 = ior(0x83, size_of::<kvm_sregs>());
pub const KVM_SET_SREGS: u64 = iow(0x84, size_of::<kvm_sregs>());
pub const KVM_GET_FPU: u64 = ior(0x8c, size_of::<kvm_fpu>());
pub const KVM_SET_FPU: u64 = iow(0x8d, size_of::<kvm_fpu>());
pub const KVM_GET_LAPIC: u64 = ior(0x8e, size_of::<kvm_lapic_state>());
pub const KVM_SET_LAPIC: u64 = iow(0x8f, size_of::<kvm_lapic_state>());
pub const KVM_SET_CPUID2: u64 = iow(0x90, size_of::<kvm_cpuid2>());
pub const KVM_GET_MP_STATE: u64 = ior(0x98, size_of::<kvm_mp_state>());
pub const KVM_SET_MP_STATE: u64 = iow(0x99, size_of::<kvm_mp_state>());

/// Every KVM ioctl the machine issues, building and running.
pub const KVM_IOCTLS: &[u64] = &[
    KVM_GET_API_VERSION,
    KVM_CREATE_VM,
    KVM_CHECK_EXTENSION,
    KVM_GET_VCPU_MMAP_SIZE,
    KVM_GET_SUPPORTED_CPUID,
    KVM_CREATE_VCPU,
    KVM_SET_USER_MEMORY_REGION,
    KVM_SET_TSS_ADDR,
    KVM_SET_IDENTITY_MAP_ADDR,
    KVM_CREATE_IRQCHIP,
    KVM_GET_IRQCHIP,
    KVM_SET_IRQCHIP,
    KVM_IRQFD,
    KVM_IOEVENTFD,
    KVM_ENABLE_CAP,
    KVM_SIGNAL_MSI,
    KVM_SET_GSI_ROUTING,
    KVM_CREATE_PIT2,
    KVM_GET_PIT2,
    KVM_SET_PIT2,
    KVM_RUN,
    KVM_GET_REGS,
    KVM_SET_REGS,
    KVM_GET_SREGS,
    KVM_SET_SREGS,
    KVM_GET_FPU,
    KVM_SET_FPU,
    KVM_GET_LAPIC,
    KVM_SET_LAPIC,
    KVM_SET_CPUID2,
    KVM_GET_MP_STATE,
    KVM_SET_MP_STATE,
];

/// The KVM ioctls a running vCPU thread or reset needs (a subset of
/// [`KVM_IOCTLS`]).
pub const KVM_RUN_IOCTLS: &[u64] = &[
    KVM_RUN,
    KVM_SET_REGS,
    KVM_SET_SREGS,
    KVM_SET_FPU,
    KVM_SET_LAPIC,
    KVM_SET_MP_STATE,
    KVM_GET_REGS,
    KVM_GET_SREGS,
    KVM_SET_IRQCHIP,
    KVM_SET_PIT2,
    // The userspace IOAPIC (split irqchip): delivery from any device
    // thread, EOI routes from the vCPU that programs it or a reset.
    KVM_SIGNAL_MSI,
    KVM_SET_GSI_ROUTING,
    // A virtio-blk queue's ioeventfd, registered at the driver's DRIVER_OK.
    KVM_IOEVENTFD,
];

/// Syscalls of the machine's threads while the guest runs (besides the
/// device modules' lists): ioctl (KVM, filtered by [`KVM_RUN_IOCTLS`]),
/// serial output and irqfd signalling (write), an I/O thread's wait for
/// its ioeventfd (poll, read), guest-memory dumps, thread coordination
/// (futex, tgkill for vCPU kicks, rt_sigreturn), and exit.
pub const SYSCALLS: &[i64] = &[
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_ioctl,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_futex,
    libc::SYS_tgkill,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime,
    libc::SYS_munmap,
    libc::SYS_madvise,
    // A vCPU thread closes its vCPU fd when it ends; debug builds of std
    // check the fd with fcntl(F_GETFD) first.
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Extra syscalls for [`Machine::build`](super::Machine::build) and
/// [`Machine::run`](super::Machine::run)'s start (if the sandbox is
/// entered before the machine is built).
pub const BUILD_SYSCALLS: &[i64] = &[
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_eventfd2,
    libc::SYS_rt_sigaction,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sigaltstack,
    libc::SYS_sched_getaffinity,
    libc::SYS_lseek,
    libc::SYS_fstat,
    libc::SYS_statx,
    libc::SYS_close,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the numbers in Linux's <linux/kvm.h> on x86-64.
    #[test]
    fn ioctl_numbers_match_the_kernel_header() {
        assert_eq!(KVM_GET_API_VERSION, 0xae00);
        assert_eq!(KVM_CREATE_VM, 0xae01);
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_CREATE_VCPU, 0xae41);
        assert_eq!(KVM_SET_USER_MEMORY_REGION, 0x4020_ae46);
        assert_eq!(KVM_GET_SUPPORTED_CPUID, 0xc008_ae05);
        assert_eq!(KVM_SET_CPUID2, 0x4008_ae90);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_SET_SREGS, 0x4138_ae84);
        assert_eq!(KVM_IRQFD, 0x4020_ae76);
        assert_eq!(KVM_ENABLE_CAP, 0x4068_aea3);
        assert_eq!(KVM_SIGNAL_MSI, 0x4020_aea5);
        assert_eq!(KVM_SET_GSI_ROUTING, 0x4008_ae6a);
        assert_eq!(KVM_IOEVENTFD, 0x4040_ae79);
        assert_eq!(KVM_CREATE_PIT2, 0x4040_ae77);
        assert_eq!(KVM_GET_IRQCHIP, 0xc208_ae62);
        assert_eq!(KVM_SET_IRQCHIP, 0x8208_ae63);
        assert_eq!(KVM_GET_LAPIC, 0x8400_ae8e);
        assert_eq!(KVM_SET_TSS_ADDR, 0xae47);
    }

    #[test]
    fn no_open_family_syscall_is_listed() {
        for list in [
            SYSCALLS,
            BUILD_SYSCALLS,
            crate::devices::virtio::blk::SYSCALLS,
        ] {
            for nr in list {
                assert!(![
                    libc::SYS_open,
                    libc::SYS_openat,
                    libc::SYS_openat2,
                    libc::SYS_creat
                ]
                .contains(nr));
            }
        }
    }
}
