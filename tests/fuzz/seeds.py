#!/usr/bin/env python3
"""Writes the committed seed corpus, tests/fuzz/corpus/<target>/<name>.

Hand-made, small, meaningful inputs for each target: the golden frames of
wire/tests/vectors.rs, the policies of docs/policy.md, the
QMP transcripts of QEMU's qmp-test and iotest 045, QEMU command lines,
valid and hostile virtqueue layouts, fd-set operation sequences. The
structured targets' byte formats are documented at the top of each target.

Run from anywhere: python3 tests/fuzz/seeds.py (rewrites the corpus).
"""

import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def u8(n):
    return struct.pack("<B", n & 0xFF)


def u16(n):
    return struct.pack("<H", n & 0xFFFF)


def u32(n):
    return struct.pack("<I", n & 0xFFFFFFFF)


def u64(n):
    return struct.pack("<Q", n & 0xFFFFFFFFFFFFFFFF)


def i64(n):
    return struct.pack("<q", n)


SEEDS = {}


def seed(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    SEEDS.setdefault(target, {})[name] = data


# ---- hook_frame: golden vectors (little-endian host) --------------------

def open_frame(flags, mode, path):
    return u32(18 + len(path)) + u32(1) + u32(flags) + u32(mode) + u16(len(path)) + path


def frame(command, payload):
    return u32(8 + len(payload)) + u32(command) + payload


def reply(command, result):
    return u32(12) + u32(command) + struct.pack("<i", result)


disk = open_frame(0x42, 0o640, b"/srv/vm1/disk.img")
seed("hook_frame", "open-disk", disk)
seed("hook_frame", "open-root-min", open_frame(0, 0, b"/"))
seed("hook_frame", "open-kvm-cloexec-nonblock", open_frame(0x80800, 0, b"/dev/kvm"))
seed("hook_frame", "two-frames", disk + open_frame(0, 0, b"/dev/kvm"))
seed("hook_frame", "frame-then-partial", disk + u32(19) + u32(1))
seed("hook_frame", "unknown-command-enosys", frame(7, b"payload"))
seed("hook_frame", "unknown-command-empty", frame(2, b""))
seed("hook_frame", "partial-header", disk[:5])
seed("hook_frame", "partial-payload", disk[:34])
seed("hook_frame", "size-too-small", u32(7) + u32(1))
seed("hook_frame", "size-too-large", u32(8 + 64 * 1024 + 1) + u32(7))
seed("hook_frame", "open-too-short", u32(17) + u32(1) + b"\0" * 9)
mismatch = bytearray(open_frame(0, 0, b"/abc"))
mismatch[16:18] = u16(3)
seed("hook_frame", "open-length-mismatch", bytes(mismatch))
seed("hook_frame", "open-empty-name", open_frame(0, 0, b""))
seed("hook_frame", "open-embedded-nul", open_frame(0, 0, b"/srv/vm1/disk\0.img"))
seed("hook_frame", "open-opath", open_frame(0o10000000, 0, b"/etc/passwd"))
seed("hook_frame", "reply-ok", reply(1, 0))
seed("hook_frame", "reply-eacces", reply(1, -13))
seed("hook_frame", "reply-enosys", reply(7, -38))
seed("hook_frame", "reply-last-errno", reply(1, -4095))
seed("hook_frame", "reply-bad-result", reply(1, -4096))
seed("hook_frame", "reply-size-13", u32(13) + u32(1) + u32(0))

# ---- policy_toml: policy files, good and bad -----------------------------

DESIGN = """version = 1
deny_errno = "EACCES"        # errno name or number for every policy denial

[[allow]]
path = "/dev/kvm"            # no trailing slash: exactly this file
access = "rw"                # "r" | "w" | "rw"
types = ["char"]             # file | dir | char | block | fifo | socket (default ["file"])

[[allow]]
path = "/srv/vm1/"           # trailing slash: everything beneath this directory
access = "rw"
create = true                # O_CREAT allowed here
mode = 0o640                 # created files get at most these bits
follow_symlinks = false      # default; when true, symlinks may be followed but never out of this root

[[deny]]
path = "/srv/vm1/secret/"    # deny wins over allow

[[listen]]                   # broker binds it; the emulator gets the listening socket at fd 10
path = "/run/vm1/qmp.sock"
fd = 10

[[preopen]]                  # opened at launch, handed over at fd 11 (use with -add-fd fd=11,set=N)
path = "/srv/vm1/disk.img"
access = "rw"
fd = 11

[sandbox]
mode = "require"             # require | best-effort | off
user = "nobody"
namespaces = ["user", "pid", "net", "ipc", "uts", "mount"]
"""
seed("policy_toml", "design-example", DESIGN)
seed("policy_toml", "minimal", "version = 1\n")
seed("policy_toml", "root-subtree", 'version = 1\n[[allow]]\npath = "/"\n')
seed("policy_toml", "exact-beats-subtree",
     'version = 1\ndeny_errno = "EPERM"\n[[allow]]\npath = "/srv/vm1/ro/"\naccess = "r"\n'
     '[[allow]]\npath = "/srv/vm1/ro/disk.img"\naccess = "rw"\ntypes = ["file", "block"]\n')
seed("policy_toml", "follow-symlinks",
     'version = 1\ndeny_errno = 1\n[[allow]]\npath = "/a/"\nfollow_symlinks = true\n'
     '[sandbox]\nmode = "best-effort"\n')
seed("policy_toml", "bad-follow-over-deny",
     'version = 1\n[[allow]]\npath = "/a/"\nfollow_symlinks = true\n[[deny]]\npath = "/a/b"\n')
seed("policy_toml", "bad-duplicate", 'version = 1\n[[allow]]\npath = "/a"\n[[allow]]\npath = "/a"\n')
seed("policy_toml", "bad-missing-version", '[[allow]]\npath = "/a"\n')
seed("policy_toml", "bad-version-2", "# c\nversion = 2\n")
seed("policy_toml", "bad-errno-name", 'version = 1\ndeny_errno = "EWHAT"\n')
seed("policy_toml", "bad-errno-range", "version = 1\ndeny_errno = 4096\n")
seed("policy_toml", "bad-unknown-key", 'version = 1\n[[allow]]\npath = "/a"\nacess = "r"\n')
seed("policy_toml", "bad-relative", 'version = 1\n[[allow]]\npath = "a/b"\n')
seed("policy_toml", "bad-dotdot", 'version = 1\n[[deny]]\npath = "/a/../b/"\n')
seed("policy_toml", "bad-create-readonly", 'version = 1\n[[allow]]\npath = "/a/"\ncreate = true\n')
seed("policy_toml", "bad-mode", 'version = 1\n[[allow]]\npath = "/a/"\naccess = "w"\ncreate = true\nmode = 0o1777\n')
seed("policy_toml", "bad-fd-repeat",
     'version = 1\n[[listen]]\npath = "/r/q.sock"\nfd = 10\n[[preopen]]\npath = "/d"\nfd = 10\n')
seed("policy_toml", "bad-syntax", "version = 1\n[[allow]\n")
seed("policy_toml", "unicode-paths",
     'version = 1\n[[allow]]\npath = "/srv/\u00e9t\u00e9/"\naccess = "w"\ncreate = true\n'
     '[[deny]]\npath = "/srv/\u00e9t\u00e9/\\u0001x"\n')

# ---- policy_decide: rules + requests (format in the target) --------------

NAMES = ["a", "b", "srv", "vm1", "disk.img", "..x", "a b", "\u00e9"]
A, B, SRV, VM1, DISK, DOTX, SPACE, E = range(8)
ACC = {"r": 0, "w": 1, "rw": 2}


def rule(allow=True, comps=(), subtree=False, create=False, follow=False, access="r", mode=0o640, types=1):
    bits = (1 if allow else 0) | (2 if subtree else 0) | (4 if create else 0) | (8 if follow else 0)
    bits |= ACC[access] << 4
    return u8(bits) + u8(len(comps)) + b"".join(u8(c) for c in comps) + u16(mode) + u8(types)


LISTED = [0o2000, 0o20000, 0o2000000, 0o100, 0o40000, 0o200000, 0o10000, 0o200,
          0o100000, 0o1000000, 0o400, 0o400000, 0o4000, 0o4010000, 0o1000]


def pick(*flags):
    n = 0
    for f in flags:
        n |= 1 << LISTED.index(f)
    return n


def toks(*items):
    out = b""
    for t in items:
        if t == "/":
            out += u8(0)
        elif t == ".":
            out += u8(2)
        elif t == "..":
            out += u8(3)
        elif t == "\0":
            out += u8(4)
        elif isinstance(t, int):
            out += u8(1) + u8(t)
        elif isinstance(t, tuple) and t[0] == "long":
            out += u8(6) + u16(t[1])
        elif isinstance(t, tuple) and t[0] == "byte":
            out += u8(5) + u8(t[1])
    return u8(len(items)) + out


def request(base=None, path=(), listed=None, accmode=0, raw=None, bit=None, mode=0o644):
    out = u8(0xFF if base is None else base) + toks(*path)
    if raw is not None:
        out += u8(2) + u32(raw)
    elif bit is not None:
        out += u8(1) + u8(accmode) + u16(pick(*(listed or ()))) + u8(bit)
    else:
        out += u8(0) + u8(accmode) + u16(pick(*(listed or ())))
    return out + u32(mode)


design_rules = [
    rule(comps=(SRV, VM1, DISK), access="rw", types=0b11),      # 0 exact rw, file|dir
    rule(comps=(SRV, VM1), subtree=True, access="rw", create=True, mode=0o640),  # 1
    rule(allow=False, comps=(SRV, VM1, A), subtree=True),       # 2 deny subtree
    rule(comps=(SRV, VM1, B), subtree=True, access="r"),        # 3 read-only subtree
    rule(comps=(B,), subtree=True, follow=True),                # 4 follow symlinks
    rule(allow=False, comps=(SRV, E)),                          # 5 deny exact
]
O_CREAT, O_TRUNC, O_NONBLOCK, O_CLOEXEC, O_DIRECT = 0o100, 0o1000, 0o4000, 0o2000000, 0o40000
design = u16(13) + u8(len(design_rules)) + b"".join(design_rules) + b"".join([
    request(base=0, accmode=2),
    request(base=1, path=("/", DISK), accmode=2, listed=(O_CREAT, O_CLOEXEC), mode=0o7777),
    request(base=1, path=("/", A, "/", DISK), accmode=0),
    request(base=3, path=("/", DISK), accmode=2),
    request(base=3, path=("/", DISK), accmode=0, listed=(O_TRUNC,)),
    request(base=1, path=("/", "..", "/", B), accmode=0),
    request(path=("/", SRV, "/", "/", VM1), accmode=0),
    request(path=(SRV,), accmode=0),
    request(base=1, path=("/", DISK, "/"), accmode=0),
    request(base=1, path=("/", DISK, "\0"), accmode=0),
    request(base=1, path=("/", ("long", 4090)), accmode=0),
    request(base=1, accmode=0, raw=0o10000000),                 # O_PATH
    request(base=1, accmode=2, raw=0o20200002),                 # O_TMPFILE|O_RDWR
    request(base=1, accmode=3),                                 # access mode 3
    request(base=1, accmode=2, listed=(O_DIRECT, O_NONBLOCK), bit=31),
    request(base=4, path=("/", A), accmode=0),
    request(base=5, accmode=0),
    request(path=("/",), accmode=0),
])
seed("policy_decide", "design-rules-and-requests", design)
seed("policy_decide", "no-rules", u16(1) + u8(0) + request(path=("/", A), accmode=0))
seed("policy_decide", "root-rule", u16(2) + u8(1) + rule(comps=(), subtree=True, access="rw")
     + request(path=("/",), accmode=0) + request(path=("/", SRV, "/", DOTX), accmode=2))
seed("policy_decide", "bad-follow-over-deny", u16(13) + u8(2) + rule(comps=(A,), subtree=True, follow=True)
     + rule(allow=False, comps=(A, B)))
seed("policy_decide", "bad-duplicate", u16(13) + u8(2) + rule(comps=(A,)) + rule(comps=(A,)))

# ---- qmp_input: control byte + client bytes ------------------------------
# ctl bit 0: tiny limits; bits 1-5: chunk size - 1; the rest: which chunks
# carry an fd (in the third run).

NEG = b'{"execute": "qmp_capabilities"}\r\n'


def qmp(name, ctl, body):
    seed("qmp_input", name, u8(ctl) + body)


qmp("negotiate-and-query", 0b0000_1110, NEG + b"".join(
    b'{"execute": "%s", "id": %d}\n' % (c.encode(), i)
    for i, c in enumerate(["query-version", "query-commands", "query-status", "query-name"])))
qmp("run-control", 0b0001_0000, NEG + b'{"execute": "stop"}{"execute": "query-status"}'
    b'{"execute": "cont"}{"execute": "system_reset"}{"execute": "system_powerdown"}{"execute": "quit"}')
qmp("before-negotiation", 0, b'{"execute": "query-name"}{"execute": "qmp_capabilities", '
    b'"arguments": {"enable": ["oob"]}}' + NEG + NEG)
qmp("malformed-qmp-test", 0b0000_0010, NEG + b'{]\n{\xff\n{\x01\n{"execute": "foo\xffbar"}\n'
    b'{"execute": "a\nb"}\nnull \n[1, 2]\n{}\n{"execute": true}\n'
    b'{"execute": "query-name", "arguments": []}\n{"execute": "query-name", "extra": 1}\n'
    b'{"exec-oob": "query-name"}\n')
qmp("json-edges", 0b0000_0100, NEG + b'{"execute": "query-name", "id": [1, {"a": null}, 1.5e300, -0, '
    b'"\\u00e9\\ud83d\\ude00", \'single\']}\n{"a":1,"a":2}\n[1 2]\n{"a" 1}\n{1:1}\n[nul]\n'
    b'"\\u12"\n1e999\n[[[[[[[[[[]]]]]]]]]]\n')
qmp("tiny-limits", 0b0000_0001, NEG + b'{"execute": "human-monitor-command", "arguments": '
    b'{"command-line": "info status info version"}}' + b"[" * 40 + b"]" * 40)
qmp("getfd-closefd", 0b1111_1111, NEG + b' ' + b'{"execute": "getfd", "arguments": {"fdname": "disk0"}}'
    b'{"execute": "getfd", "arguments": {"fdname": "1bad"}}'
    b'{"execute": "closefd", "arguments": {"fdname": "disk0"}}'
    b'{"execute": "closefd", "arguments": {"fdname": "nope"}}')
qmp("fdsets-iotest-045", 0b1000_0010, NEG + b'{"execute": "add-fd", "arguments": {"fdset-id": 2, "opaque": "image1:w"}}'
    b'{"execute": "add-fd", "arguments": {"fdset-id": -1}}{"execute": "query-fdsets"}'
    b'{"execute": "remove-fd", "arguments": {"fdset-id": 2, "fd": 99}}'
    b'{"execute": "remove-fd", "arguments": {"fdset-id": 3}}')
qmp("fdset-chardev", 0b1111_1111, NEG + b'{"execute": "add-fd", "arguments": {"fdset-id": 0, "opaque": "log"}}'
    b'{"execute": "query-fdsets"}'
    b'{"execute": "chardev-add", "arguments": {"id": "c0", "backend": {"type": "file", "data": {"out": "/dev/fdset/0"}}}}'
    b'{"execute": "chardev-add", "arguments": {"id": "c1", "backend": {"type": "file", "data": {"out": "/etc/passwd"}}}}'
    b'{"execute": "chardev-remove", "arguments": {"id": "c0"}}{"execute": "remove-fd", "arguments": {"fdset-id": 0}}'
    b'{"execute": "query-fdsets"}')
qmp("dump-guest-memory", 0b1111_1110, NEG + b'{"execute": "getfd", "arguments": {"fdname": "dump"}}'
    b'{"execute": "dump-guest-memory", "arguments": {"paging": false, "protocol": "fd:dump", '
    b'"begin": 4096, "length": 8192}}'
    b'{"execute": "dump-guest-memory", "arguments": {"paging": false, "protocol": "file:/x"}}')
qmp("hmp", 0b0000_0110, NEG + b''.join(
    b'{"execute": "human-monitor-command", "arguments": {"command-line": "%s"}}' % c
    for c in [b"info status", b"info version", b"info fdsets", b"info nothing", b"stop", b"cont",
              b"getfd x", b"closefd x", b"", b"quit"]))

# ---- qemu_opts: option texts and NUL-separated command lines -------------

for name, text in [
    ("socket-short-forms", "socket,fd=3,server,nowait,id=mon"),
    ("implied-and-flags", "an,noaus,noaus="),
    ("comma-escapes", "file=a,,b.img,if=virtio"),
    ("drive-fdset", "file=/dev/fdset/1,format=raw,if=none,id=d0,readonly=on,cache=none"),
    ("machine", "microvm,x-option-roms=off,pit=off,pic=off,rtc=off"),
    ("odd", ",,a==b,no,=1,\u00e9=\u00fc,\u00f6"),
]:
    seed("qemu_opts", name, text)


def argv(name, *words):
    seed("qemu_opts", name, "\0".join(words))


argv("firmware-test", "-m", "128", "-nodefaults", "-nographic", "-no-reboot", "-bios", "fw.bin",
     "-serial", "file:serial.log", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
     "-drive", "id=d0,file=disk.img,format=raw,if=none", "-device", "virtio-blk-device,drive=d0",
     "-drive", "id=d1,file=ro.img,format=raw,if=none,readonly=on", "-device", "virtio-blk-device,drive=d1")
argv("qemu-machine-args", "-M", "microvm", "-accel", "kvm", "-cpu", "host,-arch-capabilities",
     "-global", "virtio-mmio.force-legacy=false", "-bios", "/srv/fw.bin")
argv("seed-000-launcher", "-chardev", "socket,fd=3,server,nowait,id=mon", "-mon", "chardev=mon,mode=control",
     "-add-fd", "fd=4,set=1,opaque=disk", "-drive", "file=/dev/fdset/1,if=virtio", "-open-hook-fd", "5")
argv("qmp-socket", "-qmp", "unix:/run/vm1/qmp.sock,server,nowait", "-name", "vm1", "-S",
     "-chardev", "file,id=log,path=/var/log/vm1.log", "-serial", "chardev:log", "-sandbox", "on")
argv("kernel", "-kernel", "bzImage", "-initrd", "initrd.img", "-append", "console=ttyS0 a=b,c", "-smp", "1",
     "-m", "1G", "-drive", "file=./img/../x.img,if=virtio")
argv("errors", "-foo", "disk.img", "-m")
# Regressions (docs/security.md): the root directory as a file, a socket
# path under /dev/fdset/.
argv("regression-bios-root", "-bios", "/")
argv("regression-fdset-socket", "-qmp", "unix:/dev/fdset//run/vm1/qmp.sock,server,nowait")

# ---- virtio_blk_chain: ring layouts (format in the target) ---------------

NEXT, WRITE, INDIRECT = 1, 2, 4


def low(o):
    return u8(0) + u16(o)


def high(o):
    return u8(1) + u16(o)


def raw(a):
    return u8(2) + u64(a)


def small(n):
    return u8(0) + u8(n)


def sectors(n):
    return u8(1) + u8(n)


def desc(addr, length, flags, nxt=0):
    return u8(0) + addr + length + u8(flags) + u16(nxt)


def avail(head):
    return u8(1) + u16(head)


def header(addr, kind, sector, other=0):
    body = u8(2) + addr + u8(kind)
    if kind == 4:
        body += u32(other)
    return body + u64(sector)


def vq(size_log=3, readonly=False, rings=None, cache=0, disk_sectors=16, fill=0, idx=1):
    out = u8(size_log) + u8((1 if readonly else 0) | (2 if rings else 0)) + u8(cache) + u8(disk_sectors)
    out += u8(fill) + u16(idx)
    if rings:
        out += b"".join(rings)
    return out


IN, OUT, FLUSH, GETID, OTHER = range(5)
read3 = (header(low(0x2000), IN, 3) + desc(low(0x2000), small(16), NEXT, 1)
         + desc(low(0x3000), sectors(2), NEXT | WRITE, 2) + desc(low(0x4000), small(1), WRITE) + avail(0))
seed("virtio_blk_chain", "read-3-descriptors", vq() + read3)
seed("virtio_blk_chain", "write-3-descriptors", vq() + header(low(0x2000), OUT, 1)
     + desc(low(0x2000), small(16), NEXT, 1) + desc(low(0x3000), sectors(8), NEXT, 2)
     + desc(low(0x4000), small(1), WRITE) + avail(0))
seed("virtio_blk_chain", "write-readonly", vq(readonly=True) + header(low(0x2000), OUT, 0)
     + desc(low(0x2000), small(16), NEXT, 1) + desc(low(0x3000), sectors(1), NEXT, 2)
     + desc(low(0x4000), small(1), WRITE) + avail(0))
seed("virtio_blk_chain", "flush-and-getid", vq(idx=2) + header(low(0x2000), FLUSH, 0) + header(low(0x2100), GETID, 0)
     + desc(low(0x2000), small(16), NEXT, 1) + desc(low(0x4000), small(1), WRITE)
     + desc(low(0x2100), small(16), NEXT, 3) + desc(low(0x5000), small(21), WRITE) + avail(0) + avail(2))
seed("virtio_blk_chain", "one-descriptor-all-in-one", vq() + header(low(0x2000), IN, 0)
     + desc(low(0x2000), u8(2) + u32(16 + 512 + 1), WRITE) + avail(0))
seed("virtio_blk_chain", "past-the-end-and-unsupported", vq(idx=2, disk_sectors=4) + header(low(0x2000), IN, 4)
     + header(low(0x2100), OTHER, 0, other=255)
     + desc(low(0x2000), small(16), NEXT, 1) + desc(low(0x3000), sectors(1), NEXT | WRITE, 2)
     + desc(low(0x4000), small(1), WRITE) + desc(low(0x2100), small(16), NEXT, 4)
     + desc(low(0x4100), small(1), WRITE) + avail(0) + avail(3))
seed("virtio_blk_chain", "data-in-the-hole", vq() + header(low(0x2000), IN, 0)
     + desc(low(0x2000), small(16), NEXT, 1) + desc(raw(0x1_8000), sectors(1), NEXT | WRITE, 2)
     + desc(low(0x4000), small(1), WRITE) + avail(0))
seed("virtio_blk_chain", "data-across-region-end", vq() + header(low(0x2000), OUT, 0)
     + desc(low(0x2000), small(16), NEXT, 1) + desc(high(0xF00), sectors(1), NEXT, 2)
     + desc(low(0x4000), small(1), WRITE) + avail(0))
seed("virtio_blk_chain", "looping-chain", vq() + desc(low(0x2000), small(16), NEXT, 1)
     + desc(low(0x3000), small(16), NEXT, 0) + avail(0))
seed("virtio_blk_chain", "indirect-and-out-of-range", vq(idx=2) + desc(low(0x2000), small(16), INDIRECT)
     + avail(0) + avail(9))
seed("virtio_blk_chain", "avail-index-jump", vq(idx=9) + read3)
seed("virtio_blk_chain", "rings-in-high-region", vq(size_log=2, rings=(high(0), high(0x100), high(0x200)))
     + read3)
seed("virtio_blk_chain", "rings-outside-ram", vq(rings=(raw(0x1_0000), low(0x1000), low(0x1400))) + read3)
seed("virtio_blk_chain", "buffer-over-descriptor-table", vq() + header(low(0x2000), IN, 0)
     + desc(low(0x2000), small(16), NEXT, 1) + desc(low(0x0), sectors(1), NEXT | WRITE, 2)
     + desc(low(0x4000), small(1), WRITE) + avail(0))
seed("virtio_blk_chain", "direct-cache-unaligned", vq(cache=1) + header(low(0x2000), IN, 0)
     + desc(low(0x2000), small(16), NEXT, 1) + desc(low(0x3001), sectors(2), NEXT | WRITE, 2)
     + desc(low(0x4000), small(1), WRITE) + avail(0))

# ---- fdset_ops: operation streams (format in the target) -----------------

RDONLY, WRONLY, RDWR = 0, 1, 2


def fdnum(n):
    return u8(n - 3)


def flags(acc, direct=False, other=0):
    return u8(0) + u8(acc) + u8(1 if direct else 0) + u16(other)


def add(set_id, fd, fl, opaque=None):
    body = u8(0) + u8(0xFF if set_id is None else set_id) + fdnum(fd) + fl
    if opaque is None:
        return body + u8(0)
    return body + u8(1) + u8(len(opaque)) + opaque.encode()


def remove(set_id, fd=None):
    return u8(1) + u8(set_id) + u8(0 if fd is None else 1) + i64(0 if fd is None else fd)


def open_(set_id, fl, dup):
    return u8(3) + u8(set_id) + fl + u8(dup - 3)


def close_dup(fd):
    return u8(4) + u8(fd - 3)


def path(p):
    return u8(6) + u8(len(p)) + p


seed("fdset_ops", "iotest-045", add(1, 10, flags(RDWR), "image0:r") + add(2, 11, flags(RDONLY), "image1:w")
     + add(2, 12, flags(RDWR), "image2:r") + add(0, 13, flags(RDWR), "image3:r") + add(1, 14, flags(RDONLY))
     + open_(1, flags(RDWR), 20) + open_(1, flags(RDONLY), 21) + open_(1, flags(WRONLY), 22)
     + remove(2) + remove(1, 10) + remove(3) + remove(3, 10) + remove(1, 11)
     + close_dup(20) + close_dup(21))
seed("fdset_ops", "lowest-free-id", add(None, 3, flags(RDWR)) + add(None, 4, flags(RDWR)) + add(5, 5, flags(RDWR))
     + add(None, 6, flags(RDWR)) + remove(1) + add(None, 8, flags(RDWR)) + u8(0) + u8(0xFE) + i64(-1)
     + fdnum(9) + flags(RDWR) + u8(0))
seed("fdset_ops", "dups-keep-set-alive", add(0, 3, flags(RDWR, direct=True)) + open_(0, flags(RDWR), 30)
     + open_(0, flags(RDWR, direct=True), 30) + remove(0) + open_(0, flags(RDWR, direct=True), 31)
     + close_dup(30) + close_dup(30))
seed("fdset_ops", "set-flags", add(0, 3, flags(RDONLY)) + u8(5) + fdnum(3) + flags(RDWR) + open_(0, flags(RDWR), 40))
seed("fdset_ops", "paths", path(b"/dev/fdset/1") + path(b"/dev/fdset/") + path(b"/dev/fdset/x")
     + path(b"/dev/fdset/-1") + path(b"/dev/fdset/99999999999999999999") + path(b"/dev/fdsets/1")
     + u8(7) + i64(-5) + u8(7) + i64(2**63 - 1))


# --- notify_request: notification -> absolute path -> decision -----------
# u8 nr index, 6 x u64 args, u8 base_len + base (0xff: none), u16 path_len +
# path, u8 scope (odd: IN_ROOT), u16 how_len + open_how, u64 resolve,
# u64 flags, u32 tgid.
def u64(n):
    return struct.pack("<Q", n & 0xFFFFFFFFFFFFFFFF)


def notif(nr, base, p, scope=0, how=b"", resolve=0, fl=0, tgid=42, args=(0,) * 6):
    b = b"".join(u64(a) for a in args)
    base_part = u8(0xFF) if base is None else u8(len(base)) + base
    return (u8(nr) + b + base_part + u16(len(p)) + p + u8(scope) + u16(len(how)) + how
            + u64(resolve) + u64(fl) + u32(tgid))


AT_FDCWD = 0xFFFFFF9C
seed("notify_request", "openat-relative", notif(1, b"/srv/vm", b"disk.img", args=(AT_FDCWD, 0x1000, 2, 0, 0, 0)))
seed("notify_request", "dotdot-escape", notif(1, b"/srv/vm", b"../../etc/passwd"))
seed("notify_request", "in-root", notif(2, b"/srv/vm", b"/../../etc/passwd", scope=1))
seed("notify_request", "proc-self-alias", notif(1, None, b"/proc/42/status", tgid=42))
seed("notify_request", "o-path", notif(1, None, b"/dev/kvm", fl=0o10000000 | 2))
seed("notify_request", "trailing-slash-creat", notif(3, b"/", b"dir/", fl=0o100 | 1))
seed("notify_request", "openat2-how", notif(2, b"/", b"a//b/./c", how=u64(2) + u64(0o644) + u64(0x08) + b"\0" * 8, resolve=0x0C))
seed("notify_request", "long-name", notif(0, b"/", b"a/" * 2100))


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    total = 0
    for target, files in sorted(SEEDS.items()):
        d = os.path.join(CORPUS, target)
        os.makedirs(d)
        for name, data in sorted(files.items()):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
        print(f"{target}: {len(files)} seeds")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
