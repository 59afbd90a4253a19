# The real Python client `qemu.qmp` hands a disk to a paused QEMU as an fd
# (send_fd_scm + add-fd), then makes QEMU use it through /dev/fdset/1:
# blockdev-add with the `file` driver on /dev/fdset/1, and HMP `qemu-io`
# reads the host's pattern and writes one of its own through it.
# query-fdsets before and after; quit. Prints one JSON line per step.
#
# argv: connect SOCKET DISK
#         the monitor is already listening at SOCKET (broker-bound)
#       launch SOCKET DISK PROGRAM ARGS...
#         bind SOCKET here, start PROGRAM with the listening fd (every
#         "{fd}" in ARGS becomes its number), as a manager would
import asyncio
import json
import os
import socket
import subprocess
import sys

from qemu.qmp import QMPClient

mode, sock_path, disk = sys.argv[1:4]
proc = None
if mode == "launch":
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    fd = srv.fileno()
    args = [a.replace("{fd}", str(fd)) for a in sys.argv[4:]]
    proc = subprocess.Popen(args, pass_fds=(fd,), stdin=subprocess.DEVNULL)
    srv.close()


def step(name, value):
    print(json.dumps({"step": name, "value": value}), flush=True)


async def main():
    qmp = QMPClient("openhook-transparent")
    await qmp.connect(sock_path)
    step("greeting", qmp.greeting._asdict())
    step("query-status", await qmp.execute("query-status"))
    if proc is not None:
        step("qemu-pid", proc.pid)

    disk_fd = os.open(disk, os.O_RDWR)
    qmp.send_fd_scm(disk_fd)
    os.close(disk_fd)
    step("add-fd", await qmp.execute("add-fd", {"fdset-id": 1, "opaque": "disk"}))
    step("query-fdsets", await qmp.execute("query-fdsets"))
    step("blockdev-add", await qmp.execute("blockdev-add", {
        "node-name": "fdisk",
        "driver": "raw",
        "file": {"driver": "file", "filename": "/dev/fdset/1"},
    }))
    nodes = await qmp.execute("query-named-block-nodes")
    step("node-file", [n["file"] for n in nodes if n["node-name"] == "fdisk"])
    step("qemu-io-read", await qmp.execute("human-monitor-command", {
        "command-line": 'qemu-io fdisk "read -P 0x11 0 4096"'}))
    step("qemu-io-write", await qmp.execute("human-monitor-command", {
        "command-line": 'qemu-io fdisk "write -P 0x5a 4096 4096"'}))
    step("qemu-io-flush", await qmp.execute("human-monitor-command", {
        "command-line": 'qemu-io fdisk "flush"'}))
    step("query-fdsets-after", await qmp.execute("query-fdsets"))
    # The caller reads /proc/<qemu>/status here, while QEMU is paused.
    step("paused", True)
    sys.stdin.readline()
    with qmp.listener() as listener:
        step("quit", await qmp.execute("quit"))
        async for event in listener:
            if event["event"] == "SHUTDOWN":
                break
    try:
        await qmp.disconnect()
    except EOFError:
        pass  # QEMU closed the monitor first: the expected end after quit


asyncio.run(main())
if proc is not None:
    step("exit", proc.wait())
