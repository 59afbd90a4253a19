# The real Python client `qemu.qmp` drives a running openhook-emulator.
#
# Launches the emulator itself the way a Python manager would: it binds a
# listening socket, passes it with subprocess's pass_fds as
# `-chardev socket,id=mon,fd=N,server=on,wait=off`, connects once (no retry
# loop), then: negotiation, send_fd_scm + add-fd, query-fdsets,
# chardev-add with a /dev/fdset path (the UART follows `-serial
# chardev:ser`), cont, waits for the guest's output to land in that file,
# getfd + dump-guest-memory fd:NAME, quit. Prints one JSON line per step.
#
# argv: EMULATOR SOCKET SERIAL_LOG DUMP_FILE MACHINE_ARGS...
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

from qemu.qmp import QMPClient

emulator, sock_path, serial_log, dump_path, *machine_args = sys.argv[1:]


def step(name, value):
    print(json.dumps({"step": name, "value": value}), flush=True)


srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock_path)
srv.listen(1)
fd = srv.fileno()
proc = subprocess.Popen(
    [emulator, *machine_args,
     "-chardev", f"socket,id=mon,fd={fd},server=on,wait=off",
     "-mon", "chardev=mon,mode=control"],
    pass_fds=(fd,),
)
srv.close()


async def main():
    qmp = QMPClient("openhook-e2e")
    await qmp.connect(sock_path)
    step("greeting", qmp.greeting._asdict())
    step("query-status", await qmp.execute("query-status"))

    # The console log: a write-only fd into fd set 1.
    log_fd = os.open(serial_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    qmp.send_fd_scm(log_fd)
    os.close(log_fd)
    step("add-fd", await qmp.execute("add-fd", {"fdset-id": 1, "opaque": "console-log"}))
    step("query-fdsets", await qmp.execute("query-fdsets"))
    step("chardev-add", await qmp.execute("chardev-add", {
        "id": "ser",
        "backend": {"type": "file", "data": {"out": "/dev/fdset/1"}},
    }))

    # Run the guest; it prints its transcript, then halts (no isa-debug-exit).
    with qmp.listener() as listener:
        await qmp.execute("cont")
        async for event in listener:
            if event["event"] == "RESUME":
                break
    step("resume", True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with open(serial_log, "rb") as f:
            if b"halting" in f.read():
                break
        await asyncio.sleep(0.05)
    step("guest-halted", time.monotonic() < deadline)
    step("query-status", await qmp.execute("query-status"))

    # getfd + dump-guest-memory fd:NAME.
    dump_fd = os.open(dump_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    qmp.send_fd_scm(dump_fd)
    os.close(dump_fd)
    step("getfd", await qmp.execute("getfd", {"fdname": "dump"}))
    with qmp.listener() as listener:
        step("dump", await qmp.execute("dump-guest-memory", {"paging": False, "protocol": "fd:dump"}))
        async for event in listener:
            if event["event"] == "DUMP_COMPLETED":
                step("dump-completed", event["data"])
                break

    with qmp.listener() as listener:
        step("quit", await qmp.execute("quit"))
        async for event in listener:
            if event["event"] == "SHUTDOWN":
                step("shutdown", event["data"])
                break
    await qmp.disconnect()


asyncio.run(main())
step("exit", proc.wait(timeout=60))
