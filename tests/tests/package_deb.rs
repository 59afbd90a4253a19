//! `scripts/package-deb.sh` builds a Debian package (with the binaries of
//! this build, profile for profile); unpacked with `dpkg-deb -x` into a
//! scratch root — nothing installed on the host — it holds the binaries,
//! man pages, completions, units, docs and examples, and its binaries run
//! the demo's VM: broker, confined emulator, firmware, brokered disk; its
//! systemd units pass `systemd-analyze verify` inside the unpacked root.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use openhook_tests::broker::wait_or_kill;
use openhook_tests::fw;
use openhook_tests::{bin_dir, kvm_or_skip, tool_or_skip};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo")
        .to_path_buf()
}

/// Runs the packaging script for the profile these tests were built with.
fn build_package(out: &Path) -> PathBuf {
    let dir = bin_dir();
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(p) => p.to_string(),
    };
    let target = dir.parent().expect("target dir");
    let result = Command::new(repo().join("scripts/package-deb.sh"))
        .arg(out)
        .env("OPENHOOK_DEB_PROFILE", &profile)
        .env("CARGO_TARGET_DIR", target)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/package-deb.sh");
    assert!(
        result.status.success(),
        "package-deb.sh: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let deb = PathBuf::from(String::from_utf8_lossy(&result.stdout).trim());
    assert!(deb.is_file(), "{}", deb.display());
    deb
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .expect("dpkg-deb");
    assert!(
        out.status.success(),
        "dpkg-deb {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn package_unpacks_and_its_binaries_run_the_demo_vm() {
    if tool_or_skip("package_deb", "dpkg-deb").is_none() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let deb = build_package(&work.path().join("out"));

    let version = env!("CARGO_PKG_VERSION");
    let fields = dpkg_deb(&["-f"], &deb);
    assert_eq!(fields.lines().next(), Some("Package: openhook"), "{fields}");
    assert!(
        fields.contains(&format!("Version: {version}\n")),
        "{fields}"
    );
    assert!(fields.contains("Depends: libc6 (>= 2."), "{fields}");

    let listing = dpkg_deb(&["-c"], &deb);
    for path in [
        "./usr/bin/openhook-broker",
        "./usr/bin/openhook-emulator",
        "./usr/bin/openhook-qmp",
        "./usr/share/man/man1/openhook-emulator.1.gz",
        "./usr/share/man/man1/openhook-broker.1.gz",
        "./usr/share/man/man1/openhook-broker-check.1.gz",
        "./usr/share/bash-completion/completions/openhook-broker",
        "./usr/share/man/man1/openhook-qmp.1.gz",
        "./usr/share/man/man5/openhook-policy.5.gz",
        "./usr/share/bash-completion/completions/openhook-emulator",
        "./usr/share/zsh/vendor-completions/_openhook-qmp",
        "./usr/share/fish/vendor_completions.d/openhook-emulator.fish",
        "./lib/systemd/system/openhook-vm@.service",
        "./lib/systemd/system/openhook-vm@.socket",
        "./usr/share/doc/openhook/docs/policy.md",
        "./usr/share/doc/openhook/examples/vm1.toml",
        "./usr/share/doc/openhook/examples/vm1.args",
        "./usr/share/doc/openhook/copyright",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} not in the package:\n{listing}"
        );
    }
    // Owned by root, whoever built it.
    assert!(
        listing.lines().all(|l| l.contains(" root/root ")),
        "{listing}"
    );

    let root = work.path().join("root");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .expect("dpkg-deb -x");
    assert!(status.success());
    let usr_bin = root.join("usr/bin");

    let out = Command::new(usr_bin.join("openhook-emulator"))
        .arg("-version")
        .output()
        .expect("emulator -version");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(&format!("openhook-emulator version {version} ")),
        "{out:?}"
    );
    // The packaged example policy is valid.
    let out = Command::new(usr_bin.join("openhook-broker"))
        .args(["check", "--policy"])
        .arg(root.join("usr/share/doc/openhook/examples/vm1.toml"))
        .output()
        .expect("broker check");
    assert!(out.status.success(), "{out:?}");

    // The packaged units verify against the packaged binaries: ExecStart's
    // /usr/bin/openhook-broker and the emulator are the package's own.
    if let Some(analyze) = tool_or_skip("package_deb_units", "systemd-analyze") {
        let host_units = Path::new("/usr/lib/systemd/system");
        if host_units.join("sysinit.target").exists() {
            std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
            let status = Command::new("cp")
                .arg("-a")
                .arg(host_units)
                .arg(root.join("usr/lib/systemd/"))
                .status()
                .unwrap();
            assert!(status.success());
            let out = Command::new(analyze)
                .args(["verify", "--man=no"])
                .arg(format!("--root={}", root.display()))
                .args(["openhook-vm@vm1.service", "openhook-vm@vm1.socket"])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
        }
    }

    if !kvm_or_skip("package_deb_demo_vm") {
        return;
    }
    // The demo (scripts/demo.sh) with the unpacked binaries.
    let vm = work.path().join("vm");
    std::fs::create_dir_all(vm.join("logs")).unwrap();
    std::fs::copy(fw::image(fw::IMAGE), vm.join("firmware.bin")).unwrap();
    fw::prepare_disk(&vm.join("disk.img"), fw::DISK_SECTORS).unwrap();
    let v = vm.display();
    std::fs::write(
        vm.join("vm.toml"),
        format!(
            "version = 1\n\
             [[allow]]\npath = \"/dev/kvm\"\naccess = \"rw\"\ntypes = [\"char\"]\n\
             [[allow]]\npath = \"{v}/firmware.bin\"\naccess = \"r\"\n\
             [[allow]]\npath = \"{v}/disk.img\"\naccess = \"rw\"\n\
             [[allow]]\npath = \"{v}/logs/\"\naccess = \"w\"\ncreate = true\nmode = 0o640\n\
             [sandbox]\nmode = \"require\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(usr_bin.join("openhook-broker"))
        .arg("--policy")
        .arg(vm.join("vm.toml"))
        .arg("--audit-log")
        .arg(vm.join("audit.jsonl"))
        .arg("--")
        .arg(usr_bin.join("openhook-emulator"))
        .args([
            "-M",
            "microvm",
            "-m",
            "16",
            "-nodefaults",
            "-no-reboot",
            "-name",
            "demo",
        ])
        .arg("-bios")
        .arg(vm.join("firmware.bin"))
        .arg("-serial")
        .arg(format!("file:{v}/logs/serial.txt"))
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
        .arg("-drive")
        .arg(format!("id=disk0,file={v}/disk.img,format=raw,if=none"))
        .args(["-device", "virtio-blk-device,drive=disk0"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn the unpacked broker");
    let status = wait_or_kill(&mut child, std::time::Duration::from_secs(120));
    assert_eq!(status.code(), Some(1), "firmware verdict (1 = pass)");
    assert_eq!(
        std::fs::read_to_string(vm.join("logs/serial.txt")).unwrap(),
        fw::expected_transcript("standard-rw.txt")
    );
    assert_eq!(
        std::fs::read(vm.join("disk.img")).unwrap(),
        fw::disk_after_write(fw::DISK_SECTORS)
    );
    let audit = std::fs::read_to_string(vm.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"decision\":\"allow\""), "{audit}");
}
