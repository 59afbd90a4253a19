//! Builds the guest test firmware (`guest/`) from source with
//! the system toolchain (gcc, ld, objcopy; override with `OPENHOOK_FW_CC`,
//! `OPENHOOK_FW_LD`, `OPENHOOK_FW_OBJCOPY`).
//!
//! Five images, same sources:
//! - `openhook-fw.bin`: the standard disk test;
//! - `openhook-fw-hostile.bin`: `-DOPENHOOK_FW_HOSTILE`, malformed requests;
//! - `openhook-fw-bench.bin`: `-DOPENHOOK_FW_BENCH`, sequential throughput;
//! - `openhook-fw-boot.bin`: `-DOPENHOOK_FW_BOOT`, banner then exit (the
//!   machine's start-up and exit cost with next to no guest work);
//! - `openhook-fw-irq.bin`: `-DOPENHOOK_FW_IRQ`, interrupts through the
//!   local APIC and the IOAPIC (UART, virtio-blk), and their state across
//!   a reset.
//!
//! Each is written to `OUT_DIR` and nowhere else; the crate sees the
//! directory as `env!("OPENHOOK_FW_DIR")` and embeds the images (see
//! `src/lib.rs`). The build script reruns only when a firmware source, this
//! file or one of the variables changes.

// Build tooling: reads its sources and writes OUT_DIR by path.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The image is mapped to end at 4 GiB; the linker script makes it 64 KiB.
const IMAGE_SIZE: usize = 64 * 1024;

const CFLAGS: &[&str] = &[
    "-m32",
    "-march=i686",
    "-ffreestanding",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fno-builtin",
    "-fno-common",
    "-mgeneral-regs-only",
    "-Os",
    "-std=gnu11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-nostdinc",
];

struct Variant {
    image: &'static str,
    defines: &'static [&'static str],
}

const VARIANTS: &[Variant] = &[
    Variant {
        image: "openhook-fw.bin",
        defines: &[],
    },
    Variant {
        image: "openhook-fw-hostile.bin",
        defines: &["-DOPENHOOK_FW_HOSTILE"],
    },
    Variant {
        image: "openhook-fw-bench.bin",
        defines: &["-DOPENHOOK_FW_BENCH"],
    },
    Variant {
        image: "openhook-fw-boot.bin",
        defines: &["-DOPENHOOK_FW_BOOT"],
    },
    Variant {
        image: "openhook-fw-irq.bin",
        defines: &["-DOPENHOOK_FW_IRQ"],
    },
];

fn main() {
    if let Err(e) = build() {
        eprintln!("error: building the guest test firmware: {e}");
        std::process::exit(1);
    }
}

fn tool(var: &str, default: &str) -> String {
    println!("cargo:rerun-if-env-changed={var}");
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn run(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

fn build() -> Result<(), String> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let src = manifest.join("guest");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", src.display());

    let cc = tool("OPENHOOK_FW_CC", "gcc");
    let ld = tool("OPENHOOK_FW_LD", "ld");
    let objcopy = tool("OPENHOOK_FW_OBJCOPY", "objcopy");

    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&src).map_err(|e| format!("{}: {e}", src.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let ext = path.extension().and_then(OsStr::to_str).unwrap_or("");
        if matches!(ext, "c" | "S" | "h" | "ld") {
            println!("cargo:rerun-if-changed={}", path.display());
        }
        if matches!(ext, "c" | "S") {
            sources.push(path);
        }
    }
    sources.sort();

    // The compiler's own freestanding headers (stdint.h, stdarg.h).
    let include = run(Command::new(&cc).args(["-m32", "-print-file-name=include"]))?;
    let include = String::from_utf8_lossy(&include).trim().to_string();

    for v in VARIANTS {
        let stem = v.image.trim_end_matches(".bin");
        let obj_dir = out_dir.join(stem);
        std::fs::create_dir_all(&obj_dir).map_err(|e| format!("{}: {e}", obj_dir.display()))?;
        let mut objects = Vec::new();
        for s in &sources {
            let name = s.file_name().and_then(OsStr::to_str).unwrap_or("src");
            let obj = obj_dir.join(format!("{name}.o"));
            run(Command::new(&cc)
                .args(CFLAGS)
                .arg("-isystem")
                .arg(&include)
                .args(v.defines)
                .arg("-c")
                .arg(s)
                .arg("-o")
                .arg(&obj))?;
            objects.push(obj);
        }
        let elf = obj_dir.join(format!("{stem}.elf"));
        run(Command::new(&ld)
            .args(["-m", "elf_i386", "-nostdlib", "-static", "--build-id=none"])
            .args(["-z", "noexecstack", "-T"])
            .arg(src.join("fw.ld"))
            .arg("-o")
            .arg(&elf)
            .args(&objects))?;
        let bin = out_dir.join(v.image);
        run(Command::new(&objcopy)
            .args(["-O", "binary"])
            .args([
                "-j", ".text", "-j", ".rodata", "-j", ".text16", "-j", ".reset",
            ])
            .arg(&elf)
            .arg(&bin))?;
        check_image(&bin)?;
    }
    println!("cargo:rustc-env=OPENHOOK_FW_DIR={}", out_dir.display());
    Ok(())
}

/// The image must be exactly 64 KiB with a jump at the reset vector.
fn check_image(bin: &Path) -> Result<(), String> {
    let bytes = std::fs::read(bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    if bytes.len() != IMAGE_SIZE {
        return Err(format!(
            "{}: {} bytes, expected {IMAGE_SIZE} (check fw.ld)",
            bin.display(),
            bytes.len()
        ));
    }
    let reset = bytes[IMAGE_SIZE - 16];
    if reset != 0xe9 && reset != 0xeb {
        return Err(format!(
            "{}: no jump at the reset vector (byte {reset:#04x})",
            bin.display()
        ));
    }
    Ok(())
}
