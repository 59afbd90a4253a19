#!/usr/bin/env python3
"""N VMs side by side: memory, fds, start latency; openhook and QEMU.

Started by scripts/bench/scale.sh, which builds the binaries. Starts N
openhook pairs one after another, each `openhook-broker --policy P --
openhook-emulator -S ...` (paused: the vCPU never runs) with its QMP monitor
on a socket the broker binds ([[listen]]); a pair counts as started when its
monitor's QMP greeting arrives (the emulator greets once its machine is
built). With all N running it reads, for every process, Pss and Private_*
from /proc/PID/smaps_rollup, VmRSS from /proc/PID/status and the entries of
/proc/PID/fd, then stops the pairs (SIGTERM to each broker, which forwards
it) and checks each exited 0. Then the same for N QEMU 7.2 microvm
processes (`-S`, QMP on a unix socket it binds), the reference, when
qemu-system-x86_64 is installed (SCALE_QEMU=0 skips it).

A benchmark: it prints figures and asserts nothing about them.

    scale.py N BROKER EMULATOR FIRMWARE [QEMU]
"""
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1024.0


def kib_field(path, name):
    with open(path) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{name} not in {path}")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def child_of(pid, timeout=30.0):
    """The broker's child (the emulator), by /proc children."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
        except FileNotFoundError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.001)
    raise RuntimeError(f"broker {pid} has no child")


def greeting(path, proc, timeout=60.0):
    """Connects (retrying until the socket is bound) and reads the greeting."""
    end = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if proc.poll() is not None:
                raise RuntimeError(f"{path}: the process exited ({proc.returncode})")
            if time.monotonic() > end:
                raise
            time.sleep(0.0005)
    s.settimeout(timeout)
    data = b""
    while b"\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError(f"{path}: closed before the greeting")
        data += chunk
    if b'"QMP"' not in data:
        raise RuntimeError(f"{path}: not a greeting: {data!r}")
    return s


def openhook_vm(i, work, broker, emulator, firmware):
    sock = os.path.join(work, f"qmp{i}.sock")
    policy = os.path.join(work, f"vm{i}.toml")
    with open(policy, "w") as f:
        f.write(
            'version = 1\n'
            '[[allow]]\npath = "/dev/kvm"\naccess = "rw"\ntypes = ["char"]\n'
            f'[[allow]]\npath = "{firmware}"\naccess = "r"\n'
            f'[[listen]]\npath = "{sock}"\nfd = 10\n'
            '[sandbox]\nmode = "require"\n'
        )
    argv = [broker, "--policy", policy, "--", emulator,
            "-M", "microvm", "-m", "16", "-nodefaults", "-no-reboot", "-S",
            "-name", f"vm{i}", "-bios", firmware,
            "-chardev", "socket,fd=10,server=on,wait=off,id=qmp",
            "-mon", "chardev=qmp,mode=control"]
    return sock, argv, lambda pid: [pid, child_of(pid)]


def qemu_vm(i, work, qemu, firmware):
    sock = os.path.join(work, f"qemu{i}.sock")
    argv = [qemu, "-M", "microvm,x-option-roms=off,pit=off,pic=off,rtc=off",
            "-accel", "kvm", "-cpu", "host,-arch-capabilities",
            "-m", "16", "-nodefaults", "-no-user-config", "-no-reboot", "-S",
            "-display", "none", "-name", f"vm{i}", "-bios", firmware,
            "-qmp", f"unix:{sock},server=on,wait=off"]
    return sock, argv, lambda pid: [pid]


def run(n, make, label):
    """Starts n VMs in turn, measures them all, stops them; returns rows."""
    vms, rows = [], []
    try:
        for i in range(n):
            sock, argv, pids_of = make(i)
            t0 = time.monotonic()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            vms.append({"proc": proc})
            conn = greeting(sock, proc)
            vms[-1].update(conn=conn, start_ms=(time.monotonic() - t0) * 1e3,
                           pids=pids_of(proc.pid))
        for i, vm in enumerate(vms):
            pids = vm["pids"]
            rows.append({
                "vm": i,
                "start_ms": vm["start_ms"],
                "pss": [kib_field(f"/proc/{p}/smaps_rollup", "Pss") for p in pids],
                "private": sum(kib_field(f"/proc/{p}/smaps_rollup", f)
                               for p in pids for f in ("Private_Clean", "Private_Dirty")),
                "rss": [kib_field(f"/proc/{p}/status", "VmRSS") for p in pids],
                "fds": [fds(p) for p in pids],
            })
    finally:
        bad = []
        for vm in vms:
            vm["proc"].send_signal(signal.SIGTERM)
        for vm in vms:
            try:
                code = vm["proc"].wait(timeout=60)
            except subprocess.TimeoutExpired:
                vm["proc"].kill()
                code = vm["proc"].wait()
            if "conn" in vm:
                vm["conn"].close()
            if code != 0:
                bad.append(code)
        if bad:
            print(f"  {label}: {len(bad)} VM(s) did not exit 0 on SIGTERM: {bad}", file=sys.stderr)
    return rows


def summary(rows):
    med = statistics.median
    return {
        "pss": med(sum(r["pss"]) for r in rows) / MIB,
        "private": med(r["private"] for r in rows) / MIB,
        "rss": [med(r["rss"][k] for r in rows) / MIB for k in range(len(rows[0]["rss"]))],
        "fds": [med(r["fds"][k] for r in rows) for k in range(len(rows[0]["fds"]))],
        "first": rows[0]["start_ms"],
        "nth": rows[-1]["start_ms"],
        "start": med(r["start_ms"] for r in rows),
    }


def main():
    n = int(sys.argv[1])
    broker, emulator, firmware = sys.argv[2:5]
    qemu = sys.argv[5] if len(sys.argv) > 5 else None
    work = tempfile.mkdtemp(prefix="openhook-scale.")
    try:
        ours = run(n, lambda i: openhook_vm(i, work, broker, emulator, firmware), "openhook")
        print(f"{'pair':>4} {'start ms':>9} {'pair PSS KiB':>12} {'broker PSS':>10} "
              f"{'emu PSS':>8} {'broker RSS':>10} {'emu RSS':>8} {'broker fds':>10} {'emu fds':>7}")
        for r in ours:
            print(f"{r['vm']:>4} {r['start_ms']:>9.1f} {sum(r['pss']):>12} {r['pss'][0]:>10} "
                  f"{r['pss'][1]:>8} {r['rss'][0]:>10} {r['rss'][1]:>8} "
                  f"{r['fds'][0]:>10} {r['fds'][1]:>7}")
        o = summary(ours)
        q = summary(run(n, lambda i: qemu_vm(i, work, qemu, firmware), "QEMU")) if qemu else None
    finally:
        for name in os.listdir(work):
            os.unlink(os.path.join(work, name))
        os.rmdir(work)

    print(f"\nN = {n} VMs (paused, -m 16), medians over the VMs"
          + ("; QEMU 7.2 microvm, same firmware, same run:" if q else ":"))

    def line(label, ours_text, ours_v, q_text=None, q_v=None):
        s = f"  {label:<18} {ours_text}"
        if q_text is not None:
            s += f" | QEMU {q_text}"
            if q_v:
                s += f" | ratio {ours_v / q_v:.2f}"
        print(s)

    line("PSS per VM", f"{o['pss']:.2f} MiB (broker + emulator)", o["pss"],
         q and f"{q['pss']:.2f} MiB", q and q["pss"])
    line("private per VM", f"{o['private']:.2f} MiB", o["private"],
         q and f"{q['private']:.2f} MiB", q and q["private"])
    line("RSS per process", f"broker {o['rss'][0]:.2f} MiB, emulator {o['rss'][1]:.2f} MiB",
         None, q and f"{q['rss'][0]:.2f} MiB")
    line("fds per process", f"broker {o['fds'][0]:.0f}, emulator {o['fds'][1]:.0f}", None,
         q and f"{q['fds'][0]:.0f}")
    line("start, first", f"{o['first']:.1f} ms", o["first"],
         q and f"{q['first']:.1f} ms", q and q["first"])
    line("start, Nth", f"{o['nth']:.1f} ms", o["nth"],
         q and f"{q['nth']:.1f} ms", q and q["nth"])
    line("start, median", f"{o['start']:.1f} ms", o["start"],
         q and f"{q['start']:.1f} ms", q and q["start"])
    print("  (PSS: Pss of smaps_rollup; private: Private_Clean + Private_Dirty, what PSS "
          "tends to as N grows; start: launch -> QMP greeting, VMs started one after another)")


if __name__ == "__main__":
    main()
