//! The validated machine model: what `cli/` produces and `machine/`,
//! `devices/` and `qmp/` consume: they never see clap, QemuOpts strings or
//! TOML. No QEMU spellings here.
//!
//! Integer fd numbers appear only as `InheritedFd` values naming what the
//! command line said; `fds::inherited` is the one place they become fds.

use std::path::PathBuf;

/// A file the machine needs, as named on the command line. It may be a
/// plain path (opened through the hook) or `/dev/fdset/N`.
pub type FilePath = PathBuf;

/// An fd number given on the command line (`-add-fd fd=N`, `fd=N`,
/// `-open-hook-fd N`). Not yet claimed; see `fds::inherited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InheritedFd(pub i32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    /// `-name`
    pub name: Option<String>,
    /// `-m`, in MiB (QEMU's default: 128).
    pub memory_mib: u64,
    /// `-smp`
    pub vcpus: u8,
    /// `-bios`
    pub firmware: Option<FilePath>,
    /// `-kernel` / `-initrd` / `-append`
    pub kernel: Option<KernelConfig>,
    /// Block devices in the order their virtio-mmio transports are created
    /// (QEMU order: first given is slot 23, then 22, ...).
    pub drives: Vec<DriveConfig>,
    /// `-serial`
    pub serial: SerialConfig,
    /// `-device isa-debug-exit`
    pub debug_exit: Option<DebugExitConfig>,
    /// `-chardev` definitions by id.
    pub chardevs: Vec<ChardevConfig>,
    /// `-mon` / `-qmp`
    pub monitors: Vec<MonitorConfig>,
    /// `-add-fd`
    pub add_fds: Vec<AddFdConfig>,
    /// `-sandbox on|off`
    pub sandbox: SandboxSetting,
    /// `-open-hook-fd N`
    pub hook_fd: Option<InheritedFd>,
    /// `-no-reboot`: a guest reset ends the emulator instead.
    pub no_reboot: bool,
    /// `-S`: start with the vCPUs paused.
    pub start_paused: bool,
    /// `-machine microvm,pit=on|off|auto`: the in-kernel i8254 PIT.
    pub pit: OnOffAuto,
    /// `-machine microvm,pic=on|off|auto`: the i8259 PIC pair (only the
    /// in-kernel one exists: `on` needs `kernel-irqchip=on`).
    pub pic: OnOffAuto,
    /// `-accel kvm,kernel-irqchip=on|off|split` (also `-machine
    /// kernel-irqchip=`); `None`: chosen by the machine (docs/machine.md).
    pub kernel_irqchip: Option<KernelIrqchip>,
    /// `-global virtio-mmio.ioeventfd=on|off` (QEMU's default: on): a
    /// virtio-blk queue notification is a KVM ioeventfd served by the
    /// disk's I/O thread, and the vCPU goes on meanwhile; off, the vCPU
    /// thread serves it before the guest runs again.
    pub ioeventfd: bool,
}

/// Where the interrupt controllers live (QEMU's `kernel-irqchip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelIrqchip {
    /// PIC, IOAPIC and local APICs (and the PIT) in KVM.
    On,
    /// Local APICs in KVM, the IOAPIC in the emulator; no PIC or PIT.
    Split,
    /// None in KVM; the emulator has no userspace local APIC, so the
    /// machine has no interrupts at all (guests poll).
    Off,
}

/// QEMU's `OnOffAuto` property values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOffAuto {
    On,
    Off,
    Auto,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            name: None,
            memory_mib: 128,
            vcpus: 1,
            firmware: None,
            kernel: None,
            drives: Vec::new(),
            serial: SerialConfig::None,
            debug_exit: None,
            chardevs: Vec::new(),
            monitors: Vec::new(),
            add_fds: Vec::new(),
            sandbox: SandboxSetting::On,
            hook_fd: None,
            no_reboot: false,
            start_paused: false,
            pit: OnOffAuto::Auto,
            pic: OnOffAuto::Auto,
            kernel_irqchip: None,
            ioeventfd: true,
        }
    }
}

impl MachineConfig {
    /// Whether the guest's UART reads the emulator's stdin: the serial port
    /// is on stdio (`-serial stdio` or a stdio chardev). Nothing else can
    /// read stdin then: the command line refuses a second stdio user
    /// (`-qmp stdio`, a monitor on a stdio chardev), as QEMU does.
    pub fn serial_reads_stdin(&self) -> bool {
        match &self.serial {
            SerialConfig::Stdio => true,
            SerialConfig::Chardev(id) => matches!(
                self.chardevs
                    .iter()
                    .find(|c| &c.id == id)
                    .map(|c| &c.backend),
                Some(ChardevBackend::Stdio)
            ),
            SerialConfig::None | SerialConfig::File(_) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConfig {
    pub kernel: FilePath,
    pub initrd: Option<FilePath>,
    pub cmdline: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    #[default]
    Writeback,
    /// O_DIRECT, no flush-on-write.
    None,
    Writethrough,
    Directsync,
    Unsafe,
}

impl CacheMode {
    /// Whether the backing file is opened with O_DIRECT (QEMU: cache.direct).
    pub fn direct(self) -> bool {
        matches!(self, CacheMode::None | CacheMode::Directsync)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveConfig {
    pub id: String,
    /// A path or `/dev/fdset/N`.
    pub path: FilePath,
    pub readonly: bool,
    pub cache: CacheMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialConfig {
    None,
    Stdio,
    /// `-serial file:PATH` (created/truncated like QEMU).
    File(FilePath),
    /// `-serial chardev:ID`
    Chardev(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugExitConfig {
    pub iobase: u16,
    pub iosize: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChardevConfig {
    pub id: String,
    pub backend: ChardevBackend,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChardevBackend {
    Stdio,
    /// Output file; `/dev/fdset/N` allowed.
    File {
        path: FilePath,
    },
    Socket(SocketChardev),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketChardev {
    pub addr: SocketAddrConfig,
    pub server: bool,
    pub wait: bool,
    pub tls_creds: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketAddrConfig {
    /// `path=P`: inside the sandbox this must match a broker `[[listen]]`.
    Unix(PathBuf),
    /// `fd=N` on the command line.
    Fd(InheritedFd),
    /// A socket-activated listener (LISTEN_FDS) whose name matched the id.
    Activated(InheritedFd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorMode {
    Control,
    Readline,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    pub chardev: String,
    pub mode: MonitorMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddFdConfig {
    pub fd: InheritedFd,
    pub set: u64,
    pub opaque: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxSetting {
    #[default]
    On,
    Off,
}

impl DriveConfig {
    /// The `O_*` flags the machine opens this drive with: `O_RDONLY` or
    /// `O_RDWR`, plus `O_DIRECT` for `cache=none|directsync` (as QEMU;
    /// writethrough is a flush after each write, not `O_DSYNC`).
    /// `/dev/fdset/N` matching uses the access mode and `O_DIRECT`.
    pub fn open_flags(&self) -> i32 {
        let access = if self.readonly {
            libc::O_RDONLY
        } else {
            libc::O_RDWR
        };
        let direct = if self.cache.direct() {
            libc::O_DIRECT
        } else {
            0
        };
        access | direct
    }
}

/// How file chardevs and `-serial file:` open their output (as QEMU:
/// write-only, created, truncated, mode 0666 before the umask).
pub const OUTPUT_FILE_FLAGS: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
pub const OUTPUT_FILE_MODE: u32 = 0o666;

#[cfg(test)]
mod tests {
    use crate::cli::parse_command_line;

    fn reads_stdin(words: &[&str]) -> bool {
        parse_command_line(words.iter().map(std::ffi::OsString::from), &[])
            .unwrap()
            .serial_reads_stdin()
    }

    #[test]
    fn the_uart_reads_stdin_only_when_it_is_on_stdio_and_no_monitor_is() {
        assert!(reads_stdin(&["-serial", "stdio"]));
        assert!(reads_stdin(&["-serial", "mon:stdio"]));
        assert!(reads_stdin(&[
            "-chardev",
            "stdio,id=c",
            "-serial",
            "chardev:c"
        ]));
        assert!(!reads_stdin(&["-serial", "none"]));
        assert!(!reads_stdin(&["-serial", "file:/tmp/s.log"]));
        // stdio for the UART and a monitor at once is refused (as QEMU
        // does), so input never has two readers.
        for words in [
            &["-serial", "stdio", "-qmp", "stdio"][..],
            &[
                "-chardev",
                "stdio,id=c",
                "-mon",
                "chardev=c,mode=control",
                "-serial",
                "stdio",
            ],
        ] {
            let err =
                parse_command_line(words.iter().map(std::ffi::OsString::from), &[]).unwrap_err();
            assert!(
                err.to_string()
                    .contains("cannot use stdio by multiple character devices"),
                "{err}"
            );
        }
    }
}
