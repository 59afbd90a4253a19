//! Builds the per-thread seccomp filters from syscall lists (pure: no
//! syscalls, no fds). `install.rs` compiles and loads what this returns.
//!
//! Three filters are stacked; the kernel applies the most severe verdict:
//! 1. the thread kind's allow list (conditions on arguments where listed in
//!    [`lists::ARG_FILTERED`]); anything else takes the default action,
//!    `KillProcess` (or `Log`/`Trap` while debugging). The open family and
//!    the ENOSYS family pass this filter so that
//! 2. answers the open family and other path-taking calls with `EACCES`, and
//! 3. answers `clone3`/`statx` with `ENOSYS`.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use seccompiler::{
    SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::lists;
use crate::error::SandboxError;

/// The kinds of threads the emulator runs, each with its own allow list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThreadKind {
    /// The main thread and the monitor (QMP) threads. Its filter is the one
    /// installed by [`crate::enter`] and inherited by every later thread, so
    /// it also admits whatever vCPU threads need.
    Main,
    /// A vCPU thread: adds a narrower filter on top of the inherited one.
    Vcpu,
    /// The broker once its child runs (every thread: installed before the
    /// serve thread exists). Like `Main` plus [`lists::BROKER`]; `openat2`
    /// stays allowed because it is the resolver, the rest of the open and
    /// path families still get `EACCES`.
    Broker,
    /// The broker serving a transparent-mode child's seccomp listener:
    /// `Broker` plus [`lists::TRANSPARENT_BROKER`] (reading and writing
    /// the target's memory, copying its fds, the listener ioctls the
    /// caller passes as needs, `readlinkat` for its cwd and dirfds).
    TransparentBroker,
}

/// Extra syscalls and ioctl request numbers a thread kind needs beyond the
/// runtime lists (e.g. `emulator::machine::vcpu::SYSCALLS`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Syscall numbers (`libc::SYS_*`).
    pub syscalls: Vec<i64>,
    /// ioctl request numbers (`KVM_RUN`, …).
    pub ioctls: Vec<u64>,
}

impl Needs {
    /// Adds a module's exported lists.
    pub fn with(mut self, syscalls: &[i64], ioctls: &[u64]) -> Self {
        self.syscalls.extend_from_slice(syscalls);
        self.ioctls.extend_from_slice(ioctls);
        self
    }
}

/// What the default (unlisted) syscall gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DefaultAction {
    /// Production: kill the whole process with SIGSYS.
    #[default]
    KillProcess,
    /// Debugging: allow, and have the kernel log the syscall (audit/dmesg).
    Log,
    /// Debugging: SIGSYS to a handler that prints the syscall number and
    /// makes the call fail with ENOSYS (see `docs/sandbox.md`).
    Trap,
}

impl DefaultAction {
    fn action(self) -> SeccompAction {
        match self {
            Self::KillProcess => SeccompAction::KillProcess,
            Self::Log => SeccompAction::Log,
            Self::Trap => SeccompAction::Trap,
        }
    }
}

/// One thread kind's allow list before it becomes a filter: plain sets,
/// comparable in tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowList {
    /// Syscalls allowed (some with argument conditions, see [`rules_for`]).
    pub syscalls: BTreeSet<i64>,
    /// ioctl request numbers allowed.
    pub ioctls: BTreeSet<u64>,
}

/// Process facts the argument conditions depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessFacts {
    /// Our own pid (for `kill`/`tgkill`).
    pub pid: u32,
    /// A second pid `kill` may target (the broker's child), if any.
    pub peer: Option<u32>,
}

/// The per-thread allow list for `kind`, given both kinds' extra needs.
pub fn allow_list(kind: ThreadKind, main: &Needs, vcpu: &Needs) -> AllowList {
    let mut syscalls: BTreeSet<i64> = lists::RUNTIME.iter().copied().collect();
    let mut ioctls = BTreeSet::new();
    match kind {
        ThreadKind::Main => {
            for list in [
                lists::FD_IO,
                lists::EVENTS,
                lists::UNIX_SOCKETS,
                lists::THREADS,
            ] {
                syscalls.extend(list.iter().copied());
            }
            // vCPU threads inherit this filter: it must admit their needs too.
            syscalls.extend(main.syscalls.iter().chain(&vcpu.syscalls).copied());
            ioctls.extend(lists::TERMINAL_IOCTLS.iter().copied());
            ioctls.extend(main.ioctls.iter().chain(&vcpu.ioctls).copied());
        }
        ThreadKind::Vcpu => {
            syscalls.extend(vcpu.syscalls.iter().copied());
            ioctls.extend(vcpu.ioctls.iter().copied());
        }
        ThreadKind::Broker | ThreadKind::TransparentBroker => {
            for list in [
                lists::FD_IO,
                lists::EVENTS,
                lists::UNIX_SOCKETS,
                lists::THREADS,
            ] {
                syscalls.extend(list.iter().copied());
            }
            syscalls.extend(main.syscalls.iter().copied());
            ioctls.extend(lists::TERMINAL_IOCTLS.iter().copied());
            ioctls.extend(main.ioctls.iter().copied());
        }
    }
    if !ioctls.is_empty() {
        syscalls.insert(libc::SYS_ioctl);
    }
    // Never let a caller's list smuggle these in: the open family is
    // answered by its own filter, the ENOSYS family likewise, and the kill
    // list is the point of the exercise.
    for never in lists::OPEN_FAMILY
        .iter()
        .chain(lists::PATH_FAMILY)
        .chain(lists::ENOSYS_FAMILY)
        .chain(lists::KILL)
    {
        syscalls.remove(never);
    }
    if matches!(kind, ThreadKind::Broker | ThreadKind::TransparentBroker) {
        // Added after the removal on purpose: the resolver's one syscall
        // (beneath an O_PATH root fd, RESOLVE_BENEATH; Landlock bounds it).
        syscalls.extend(lists::BROKER.iter().copied());
    }
    if kind == ThreadKind::TransparentBroker {
        syscalls.extend(lists::TRANSPARENT_BROKER.iter().copied());
    }
    AllowList { syscalls, ioctls }
}

/// The conditions (OR-ed rules) under which `nr` is allowed; empty means
/// unconditionally.
pub fn rules_for(
    nr: i64,
    ioctls: &BTreeSet<u64>,
    facts: ProcessFacts,
) -> Result<Vec<SeccompRule>, SandboxError> {
    let one = |idx, len, op, val| -> Result<Vec<SeccompRule>, SandboxError> {
        Ok(vec![SeccompRule::new(vec![Cond::new(idx, len, op, val)?])?])
    };
    let any_of = |idx, vals: &[u64]| -> Result<Vec<SeccompRule>, SandboxError> {
        vals.iter()
            .map(|&v| {
                Ok(SeccompRule::new(vec![Cond::new(
                    idx,
                    Len::Dword,
                    Op::Eq,
                    v,
                )?])?)
            })
            .collect()
    };
    let af_unix = u64::from(libc::AF_UNIX.unsigned_abs());
    let prot_exec = u64::from(libc::PROT_EXEC.unsigned_abs());
    match nr {
        // The kernel reads the request as `unsigned int`: compare 32 bits.
        libc::SYS_ioctl => {
            let reqs: Vec<u64> = ioctls.iter().map(|r| r & 0xffff_ffff).collect();
            any_of(1, &reqs)
        }
        libc::SYS_socket | libc::SYS_socketpair => one(0, Len::Dword, Op::Eq, af_unix),
        libc::SYS_clone => {
            let (required, forbidden) = thread_clone_flags();
            one(0, Len::Qword, Op::MaskedEq(required | forbidden), required)
        }
        libc::SYS_mmap | libc::SYS_mprotect => one(2, Len::Dword, Op::MaskedEq(prot_exec), 0),
        libc::SYS_prctl => {
            let names = [libc::PR_SET_NAME, libc::PR_GET_NAME, libc::PR_SET_VMA];
            let vals: Vec<u64> = names.iter().map(|v| u64::from(v.unsigned_abs())).collect();
            any_of(0, &vals)
        }
        libc::SYS_kill => {
            let mut pids = vec![u64::from(facts.pid)];
            pids.extend(facts.peer.map(u64::from));
            any_of(0, &pids)
        }
        libc::SYS_tgkill => one(0, Len::Dword, Op::Eq, u64::from(facts.pid)),
        libc::SYS_newfstatat => one(
            3,
            Len::Dword,
            Op::Eq,
            u64::from(libc::AT_EMPTY_PATH.unsigned_abs()),
        ),
        libc::SYS_seccomp => Ok(vec![SeccompRule::new(vec![
            Cond::new(
                0,
                Len::Dword,
                Op::Eq,
                u64::from(libc::SECCOMP_SET_MODE_FILTER),
            )?,
            Cond::new(1, Len::Dword, Op::Eq, 0)?,
        ])?]),
        _ => Ok(Vec::new()),
    }
}

/// `clone` may only make threads: the flags a thread needs, and those no
/// thread of ours uses (new namespaces, another parent, tracing).
fn thread_clone_flags() -> (u64, u64) {
    let required = clone_flag(libc::CLONE_VM)
        | clone_flag(libc::CLONE_FS)
        | clone_flag(libc::CLONE_FILES)
        | clone_flag(libc::CLONE_SIGHAND)
        | clone_flag(libc::CLONE_THREAD);
    let forbidden = [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
        libc::CLONE_PARENT,
        libc::CLONE_PTRACE,
        libc::CLONE_UNTRACED,
    ]
    .into_iter()
    .fold(0, |acc, f| acc | clone_flag(f));
    (required, forbidden)
}

fn clone_flag(f: libc::c_int) -> u64 {
    u64::from(f.unsigned_abs())
}

/// The three stacked filters for one thread kind, ready to compile.
pub struct Filters {
    /// Allow list with the default action for everything else.
    pub allow: SeccompFilter,
    /// Open family → EACCES.
    pub open_eacces: SeccompFilter,
    /// clone3/statx → ENOSYS.
    pub enosys: SeccompFilter,
}

/// Builds the filters for `list`. The open and ENOSYS families pass the
/// allow filter so that their own filters give the errno.
pub fn filters(
    list: &AllowList,
    default: DefaultAction,
    facts: ProcessFacts,
) -> Result<Filters, SandboxError> {
    let arch = target_arch()?;
    let mut allow: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in &list.syscalls {
        allow.insert(nr, rules_for(nr, &list.ioctls, facts)?);
    }
    // Minus what the list allows outright (the broker's openat2).
    let eacces: Vec<i64> = lists::OPEN_FAMILY
        .iter()
        .chain(lists::PATH_FAMILY)
        .copied()
        .filter(|nr| !list.syscalls.contains(nr))
        .collect();
    let enosys: Vec<i64> = lists::ENOSYS_FAMILY
        .iter()
        .copied()
        .filter(|nr| !list.syscalls.contains(nr))
        .collect();
    for &nr in eacces.iter().chain(&enosys) {
        allow.insert(nr, Vec::new());
    }
    let errno_filter = |nrs: &[i64], errno: libc::c_int| -> Result<SeccompFilter, SandboxError> {
        let rules = nrs.iter().map(|&nr| (nr, Vec::new())).collect();
        Ok(SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno.unsigned_abs()),
            arch,
        )?)
    };
    Ok(Filters {
        allow: SeccompFilter::new(allow, default.action(), SeccompAction::Allow, arch)?,
        open_eacces: errno_filter(&eacces, libc::EACCES)?,
        enosys: errno_filter(&enosys, libc::ENOSYS)?,
    })
}

fn target_arch() -> Result<TargetArch, SandboxError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(SandboxError::Seccomp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> [AllowList; 2] {
        let extra = Needs::default().with(
            &[
                libc::SYS_openat,
                libc::SYS_execve,
                libc::SYS_stat,
                libc::SYS_bpf,
            ],
            &[0xae80],
        );
        [
            allow_list(ThreadKind::Main, &extra, &extra),
            allow_list(ThreadKind::Vcpu, &extra, &extra),
        ]
    }

    #[test]
    fn no_open_family_call_in_any_allow_list() {
        for list in kinds() {
            for nr in lists::OPEN_FAMILY.iter().chain(lists::PATH_FAMILY) {
                assert!(
                    !list.syscalls.contains(nr),
                    "open-family or path-taking syscall {nr} allowed"
                );
            }
        }
    }

    #[test]
    fn no_kill_list_call_in_any_allow_list() {
        for list in kinds() {
            for nr in lists::KILL.iter().chain(lists::ENOSYS_FAMILY) {
                assert!(!list.syscalls.contains(nr), "syscall {nr} allowed");
            }
        }
        // And the static lists themselves never overlap the kill list.
        for list in [
            lists::RUNTIME,
            lists::FD_IO,
            lists::EVENTS,
            lists::UNIX_SOCKETS,
            lists::THREADS,
        ] {
            for nr in list {
                assert!(
                    !lists::KILL.contains(nr),
                    "syscall {nr} both allowed and killed"
                );
                assert!(!lists::OPEN_FAMILY.contains(nr), "syscall {nr} opens");
                assert!(
                    !lists::PATH_FAMILY.contains(nr),
                    "syscall {nr} takes a path"
                );
            }
        }
    }

    #[test]
    fn every_argument_filtered_call_has_a_condition() {
        let ioctls: BTreeSet<u64> = [libc::TCGETS].into_iter().collect();
        let facts = ProcessFacts { pid: 1, peer: None };
        for &nr in lists::ARG_FILTERED {
            let rules = rules_for(nr, &ioctls, facts).expect("rules");
            assert!(
                !rules.is_empty(),
                "syscall {nr} is listed as filtered but has no condition"
            );
        }
    }

    #[test]
    fn vcpu_list_is_narrower_than_main() {
        let vcpu = Needs::default().with(&[libc::SYS_ioctl], &[0xae80]);
        let main = allow_list(ThreadKind::Main, &Needs::default(), &vcpu);
        let v = allow_list(ThreadKind::Vcpu, &Needs::default(), &vcpu);
        assert!(v.syscalls.is_subset(&main.syscalls));
        assert!(v.ioctls.is_subset(&main.ioctls));
        assert!(!v.syscalls.contains(&libc::SYS_socket));
        assert!(!v.syscalls.contains(&libc::SYS_clone));
        assert!(main.ioctls.contains(&0xae80));
    }

    #[test]
    fn broker_list_keeps_openat2_only() {
        let extra = Needs::default().with(&[libc::SYS_openat, libc::SYS_execve], &[]);
        let b = allow_list(ThreadKind::Broker, &extra, &Needs::default());
        assert!(b.syscalls.contains(&libc::SYS_openat2));
        assert!(b.syscalls.contains(&libc::SYS_wait4));
        for nr in lists::OPEN_FAMILY.iter().chain(lists::PATH_FAMILY) {
            if *nr != libc::SYS_openat2 {
                assert!(!b.syscalls.contains(nr), "syscall {nr} allowed");
            }
        }
        for nr in lists::KILL {
            assert!(!b.syscalls.contains(nr), "syscall {nr} allowed");
        }
        // openat2 passes the allow filter and is not answered with EACCES.
        let f = filters(
            &b,
            DefaultAction::KillProcess,
            ProcessFacts {
                pid: 1,
                peer: Some(2),
            },
        )
        .expect("filters");
        let _: seccompiler::BpfProgram = f.open_eacces.try_into().expect("compile");
        let kill = rules_for(
            libc::SYS_kill,
            &BTreeSet::new(),
            ProcessFacts {
                pid: 1,
                peer: Some(2),
            },
        )
        .expect("rules");
        assert_eq!(kill.len(), 2);
    }

    #[test]
    fn terminal_injection_ioctl_is_not_allowed() {
        let main = allow_list(ThreadKind::Main, &Needs::default(), &Needs::default());
        assert!(main.ioctls.contains(&libc::TCGETS));
        assert!(!main.ioctls.contains(&libc::TIOCSTI));
    }

    #[test]
    fn filters_compile_for_both_kinds() {
        for list in kinds() {
            let f = filters(
                &list,
                DefaultAction::KillProcess,
                ProcessFacts {
                    pid: 42,
                    peer: None,
                },
            )
            .expect("filters");
            for filter in [f.allow, f.open_eacces, f.enosys] {
                let prog: seccompiler::BpfProgram = filter.try_into().expect("compile");
                assert!(!prog.is_empty());
            }
        }
    }
}
