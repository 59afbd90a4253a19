#!/usr/bin/env python3
"""Disk-throughput A/B: openhook-emulator with -global virtio-mmio.ioeventfd=on
and =off, and QEMU microvm, taking turns on the bench firmware
(openhook-fw-bench.bin: 64 MiB written then read in 1 MiB requests).

A benchmark, not a test: it prints the median guest TSC ticks per pass of
each machine and our speed relative to QEMU's (QEMU ticks / our ticks, so
above 1 is faster). Unlike `cargo bench --bench machine` it samples nothing
while a machine runs and writes the 64 MiB disk once, so the two cores are
left to the machines.

    scripts/bench/blk-ab.py [RUNS]        (default 25 per machine)

Needs the release build (`cargo build --release -p openhook-emulator -p
openhook-firmware`) and
qemu-system-x86_64 on PATH. The emulator runs with -sandbox off.
"""
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
EMU = os.path.join(TARGET, "release", "openhook-emulator")
FW_IMAGE = os.path.join(TARGET, "release", "openhook-fw-image")


def machine_args(fw, disk):
    return ["-m", "16", "-nodefaults", "-no-reboot", "-nographic",
            "-bios", fw, "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-drive", f"id=d,file={disk},format=raw,if=none",
            "-device", "virtio-blk-device,drive=d"]


def ticks(out, phase):
    # "bench: read done, 131072 sectors in 64 requests, 53395712 tsc ticks"
    for line in out.splitlines():
        if line.startswith(f"bench: {phase} done"):
            return int(line.split()[-3])
    raise SystemExit(f"no '{phase} done' line in:\n{out}")


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    for f in (EMU, FW_IMAGE):
        if not os.path.exists(f):
            raise SystemExit(f"{f} not found: cargo build --release"
                             " -p openhook-emulator -p openhook-firmware")
    with tempfile.TemporaryDirectory() as d:
        fw = os.path.join(d, "openhook-fw-bench.bin")
        with open(fw, "wb") as f:
            subprocess.run([FW_IMAGE, "openhook-fw-bench.bin"], stdout=f, check=True)
        disk = os.path.join(d, "bench.img")
        with open(disk, "wb") as f:
            f.write(bytes(64 << 20))  # allocated, not sparse: reads hit the page cache
        a = machine_args(fw, disk)
        machines = {
            "ioeventfd=on": [EMU, "-sandbox", "off", "-M", "microvm"] + a,
            "ioeventfd=off": [EMU, "-sandbox", "off", "-M", "microvm",
                              "-global", "virtio-mmio.ioeventfd=off"] + a,
            "qemu": ["qemu-system-x86_64", "-M", "microvm", "-accel", "kvm",
                     "-cpu", "host,-arch-capabilities",
                     "-global", "virtio-mmio.force-legacy=false"] + a,
        }
        got = {m: {"write": [], "read": []} for m in machines}
        for _ in range(runs):
            for m, cmd in machines.items():
                out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
                for phase in ("write", "read"):
                    got[m][phase].append(ticks(out, phase))
    med = {m: {p: statistics.median(v) for p, v in ph.items()} for m, ph in got.items()}
    print(f"median guest TSC ticks per 64 MiB pass, {runs} runs each, machines taking turns:")
    for m in machines:
        print(f"  {m:<14} write {med[m]['write'] / 1e6:8.2f} M   read {med[m]['read'] / 1e6:8.2f} M")
    for m in ("ioeventfd=on", "ioeventfd=off"):
        w = med["qemu"]["write"] / med[m]["write"]
        r = med["qemu"]["read"] / med[m]["read"]
        print(f"  {m:<14} speed / QEMU: write {w:.3f}   read {r:.3f}")


if __name__ == "__main__":
    main()
