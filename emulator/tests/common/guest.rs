//! Hand-assembled guest code. Two kinds of firmware image:
//! - `real_mode_rom`: 16-bit code run straight from the reset vector;
//! - `protected_rom`: the last 64 KiB switch to flat 32-bit protected mode
//!   and jump to a payload at the start of the image, built with [`Asm`].
//!
//! Every encoding is written out with its mnemonic next to it.
#![allow(dead_code)]

pub const KIB64: usize = 0x1_0000;

/// A 64 KiB image mapped at 0xffff0000: `code` at offset 0, reached from
/// the reset vector (0xfffffff0) by `jmp near 0x0000`; `extra` bytes are
/// placed at the given offsets.
pub fn real_mode_rom(code: &[u8], extra: &[(usize, &[u8])]) -> Vec<u8> {
    let mut rom = vec![0xf4u8; KIB64]; // hlt everywhere else
    rom[..code.len()].copy_from_slice(code);
    for (at, bytes) in extra {
        rom[*at..*at + bytes.len()].copy_from_slice(bytes);
    }
    // 0xfff0: jmp near 0x0000 (E9 rel16; 0xfff3 + 0x000d wraps to 0).
    rom[0xfff0..0xfff3].copy_from_slice(&[0xe9, 0x0d, 0x00]);
    rom
}

/// Image whose start holds `payload` (32-bit code entered at its first
/// byte) and whose last 64 KiB switch from real to protected mode.
pub fn protected_rom(payload: &[u8]) -> Vec<u8> {
    let size = (payload.len() + KIB64).div_ceil(KIB64) * KIB64;
    let entry = u32::try_from((1u64 << 32) - size as u64).unwrap();
    let mut rom = vec![0xf4u8; size];
    rom[..payload.len()].copy_from_slice(payload);
    let seg = size - KIB64; // offset of the real-mode segment (0xffff0000)
                            // Accessed bits preset: the CPU would otherwise write them into the
                            // read-only GDT, which KVM cannot complete (the far jump never retires).
    let gdt: [u64; 3] = [0, 0x00cf_9b00_0000_ffff, 0x00cf_9300_0000_ffff];
    for (i, e) in gdt.iter().enumerate() {
        rom[seg + 8 * i..seg + 8 * i + 8].copy_from_slice(&e.to_le_bytes());
    }
    // GDTR at 0x18: limit 23, base 0xffff0000.
    rom[seg + 0x18..seg + 0x1a].copy_from_slice(&23u16.to_le_bytes());
    rom[seg + 0x1a..seg + 0x1e].copy_from_slice(&0xffff_0000u32.to_le_bytes());
    let mut c16 = vec![
        0xfa, // cli
        0x66, 0x2e, 0x0f, 0x01, 0x16, 0x18, 0x00, // lgdt dword cs:[0x0018]
        0x0f, 0x20, 0xc0, // mov eax, cr0
        0x0c, 0x01, // or al, 1
        0x0f, 0x22, 0xc0, // mov cr0, eax
        0x66, 0xea, // jmp dword 0x08:0xffff0040
    ];
    c16.extend_from_slice(&0xffff_0040u32.to_le_bytes());
    c16.extend_from_slice(&[0x08, 0x00]);
    rom[seg + 0x20..seg + 0x20 + c16.len()].copy_from_slice(&c16);
    let mut c32 = vec![
        0x66, 0xb8, 0x10, 0x00, // mov ax, 0x10
        0x8e, 0xd8, // mov ds, ax
        0x8e, 0xc0, // mov es, ax
        0x8e, 0xd0, // mov ss, ax
        0x8e, 0xe0, // mov fs, ax
        0x8e, 0xe8, // mov gs, ax
        0xbc, 0x00, 0x80, 0x00, 0x00, // mov esp, 0x8000
        0xb8, // mov eax, entry
    ];
    c32.extend_from_slice(&entry.to_le_bytes());
    c32.extend_from_slice(&[0xff, 0xe0]); // jmp eax
    rom[seg + 0x40..seg + 0x40 + c32.len()].copy_from_slice(&c32);
    // 0xfff0: jmp near 0x0020 (rel16 = 0x0020 - 0xfff3 = 0x002d mod 2^16).
    rom[seg + 0xfff0..seg + 0xfff3].copy_from_slice(&[0xe9, 0x2d, 0x00]);
    rom
}

/// Straight-line flat 32-bit code: absolute loads and stores only, no
/// branches but `wait16`'s spin, so every instruction is easy to check by
/// eye.
#[derive(Default)]
pub struct Asm {
    pub code: Vec<u8>,
}

impl Asm {
    fn imm32(&mut self, v: u32) {
        self.code.extend_from_slice(&v.to_le_bytes());
    }
    /// mov dword [addr], v
    pub fn store32(&mut self, addr: u32, v: u32) {
        self.code.extend_from_slice(&[0xc7, 0x05]);
        self.imm32(addr);
        self.imm32(v);
    }
    /// mov word [addr], v
    pub fn store16(&mut self, addr: u32, v: u16) {
        self.code.extend_from_slice(&[0x66, 0xc7, 0x05]);
        self.imm32(addr);
        self.code.extend_from_slice(&v.to_le_bytes());
    }
    /// mov byte [addr], v
    pub fn store8(&mut self, addr: u32, v: u8) {
        self.code.extend_from_slice(&[0xc6, 0x05]);
        self.imm32(addr);
        self.code.push(v);
    }
    /// mov eax, [from]; mov [to], eax
    pub fn copy32(&mut self, from: u32, to: u32) {
        self.code.push(0xa1);
        self.imm32(from);
        self.code.push(0xa3);
        self.imm32(to);
    }
    /// mov al, [from]; mov [to], al
    pub fn copy8(&mut self, from: u32, to: u32) {
        self.code.push(0xa0);
        self.imm32(from);
        self.code.push(0xa2);
        self.imm32(to);
    }
    /// mov edx, port; mov al, v; out dx, al
    pub fn outb(&mut self, port: u16, v: u8) {
        self.code.push(0xba);
        self.imm32(u32::from(port));
        self.code.extend_from_slice(&[0xb0, v, 0xee]);
    }
    pub fn print(&mut self, s: &str) {
        for b in s.bytes() {
            self.outb(0x3f8, b);
        }
    }
    /// isa-debug-exit with `v`, then hlt.
    pub fn exit(&mut self, v: u8) {
        self.outb(0xf4, v);
        self.code.push(0xf4);
    }
    /// ud2: an invalid opcode with no IDT.
    pub fn ud2(&mut self) {
        self.code.extend_from_slice(&[0x0f, 0x0b]);
    }
    /// cmp word [addr], v; jne back to the cmp: spins until the 16-bit
    /// word at `addr` is `v` (the test's watchdog ends a guest that never
    /// sees it).
    pub fn wait16(&mut self, addr: u32, v: u16) {
        self.code.extend_from_slice(&[0x66, 0x81, 0x3d]);
        self.imm32(addr);
        self.code.extend_from_slice(&v.to_le_bytes());
        // rel8 back over the 9-byte cmp and this 2-byte jne.
        self.code.extend_from_slice(&[0x75, 0xf5]);
    }
    /// jmp $ (spin forever).
    pub fn spin(&mut self) {
        self.code.extend_from_slice(&[0xeb, 0xfe]);
    }
}

/// virtio-mmio register offsets and status bits used by the tests.
pub mod vio {
    pub const SLOT23: u32 = 0xfeb0_2e00;
    pub const MAGIC: u32 = 0x000;
    pub const VERSION: u32 = 0x004;
    pub const DEVICE_ID: u32 = 0x008;
    pub const VENDOR: u32 = 0x00c;
    pub const DEV_FEATURES: u32 = 0x010;
    pub const DEV_FEATURES_SEL: u32 = 0x014;
    pub const DRV_FEATURES: u32 = 0x020;
    pub const DRV_FEATURES_SEL: u32 = 0x024;
    pub const QUEUE_SEL: u32 = 0x030;
    pub const QUEUE_NUM_MAX: u32 = 0x034;
    pub const QUEUE_NUM: u32 = 0x038;
    pub const QUEUE_READY: u32 = 0x044;
    pub const QUEUE_NOTIFY: u32 = 0x050;
    pub const INTERRUPT_STATUS: u32 = 0x060;
    pub const INTERRUPT_ACK: u32 = 0x064;
    pub const STATUS: u32 = 0x070;
    pub const DESC_LO: u32 = 0x080;
    pub const DESC_HI: u32 = 0x084;
    pub const DRIVER_LO: u32 = 0x090;
    pub const DRIVER_HI: u32 = 0x094;
    pub const DEVICE_LO: u32 = 0x0a0;
    pub const DEVICE_HI: u32 = 0x0a4;
    pub const CONFIG: u32 = 0x100;
    pub const NEEDS_RESET: u32 = 0x40;
}

/// Guest-physical places the virtio tests use.
pub mod at {
    pub const DESC: u32 = 0x1_0000;
    pub const AVAIL: u32 = 0x1_1000;
    pub const USED: u32 = 0x1_2000;
    pub const HDR: u32 = 0x2_0000; // + i * 0x100
    pub const DATA: u32 = 0x3_0000; // + i * 0x1000
    pub const STATUS: u32 = 0x4_0000; // + i
    pub const RESULTS: u32 = 0x5_0000;
}

pub const QSIZE: u16 = 8;

/// A driver written as straight-line guest code.
pub struct Driver {
    pub asm: Asm,
    pub base: u32,
    avail_idx: u16,
}

impl Driver {
    pub fn new(base: u32) -> Self {
        Driver {
            asm: Asm::default(),
            base,
            avail_idx: 0,
        }
    }

    pub fn reg_write(&mut self, off: u32, v: u32) {
        self.asm.store32(self.base + off, v);
    }

    /// Copies register `off` into result slot `slot` (4 bytes each).
    pub fn reg_read(&mut self, off: u32, slot: u32) {
        self.asm.copy32(self.base + off, at::RESULTS + 4 * slot);
    }

    /// Device init up to DRIVER_OK with queue 0 of `size` entries,
    /// negotiating VERSION_1 plus `features_lo`.
    pub fn init(&mut self, size: u32, features_lo: u32) {
        use vio::*;
        self.reg_write(STATUS, 0);
        self.reg_write(STATUS, 1 | 2);
        self.reg_write(DRV_FEATURES_SEL, 1);
        self.reg_write(DRV_FEATURES, 1);
        self.reg_write(DRV_FEATURES_SEL, 0);
        self.reg_write(DRV_FEATURES, features_lo);
        self.reg_write(STATUS, 1 | 2 | 8);
        self.reg_write(QUEUE_SEL, 0);
        self.reg_write(QUEUE_NUM, size);
        self.reg_write(DESC_LO, at::DESC);
        self.reg_write(DESC_HI, 0);
        self.reg_write(DRIVER_LO, at::AVAIL);
        self.reg_write(DRIVER_HI, 0);
        self.reg_write(DEVICE_LO, at::USED);
        self.reg_write(DEVICE_HI, 0);
        self.reg_write(QUEUE_READY, 1);
        self.reg_write(STATUS, 1 | 2 | 8 | 4);
    }

    /// Writes descriptor `i`.
    pub fn desc(&mut self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let d = at::DESC + 16 * u32::from(i);
        self.asm
            .store32(d, u32::try_from(addr & 0xffff_ffff).unwrap());
        self.asm.store32(d + 4, u32::try_from(addr >> 32).unwrap());
        self.asm.store32(d + 8, len);
        self.asm
            .store32(d + 12, u32::from(flags) | (u32::from(next) << 16));
    }

    /// Writes a request header for request `i`.
    pub fn header(&mut self, i: u32, request_type: u32, sector: u64) {
        let h = at::HDR + 0x100 * i;
        self.asm.store32(h, request_type);
        self.asm.store32(h + 4, 0);
        self.asm
            .store32(h + 8, u32::try_from(sector & 0xffff_ffff).unwrap());
        self.asm
            .store32(h + 12, u32::try_from(sector >> 32).unwrap());
    }

    /// Fills 512 bytes of data buffer `i` with `pattern(k)` per u32 word.
    pub fn fill(&mut self, i: u32, pattern: impl Fn(u32) -> u32) {
        for k in 0..128 {
            self.asm.store32(at::DATA + 0x1000 * i + 4 * k, pattern(k));
        }
    }

    /// Spins until the device has used `n` chains in all (used.idx == n).
    pub fn wait_used(&mut self, n: u16) {
        self.asm.wait16(at::USED + 2, n);
    }

    /// Puts chain `head` in the available ring and notifies queue 0.
    pub fn submit(&mut self, head: u16) {
        let slot = self.avail_idx % QSIZE;
        self.asm.store16(at::AVAIL + 4 + 2 * u32::from(slot), head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.asm.store16(at::AVAIL + 2, self.avail_idx);
        self.reg_write(vio::QUEUE_NOTIFY, 0);
    }

    /// A three-descriptor request at descriptors 3i..3i+2 (header, one
    /// data buffer of `len`, status byte i).
    pub fn request(
        &mut self,
        i: u16,
        request_type: u32,
        sector: u64,
        data: u64,
        len: u32,
        device_writes: bool,
    ) {
        const NEXT: u16 = 1;
        const WRITE: u16 = 2;
        let d0 = 3 * i % QSIZE;
        let (d1, d2) = ((d0 + 1) % QSIZE, (d0 + 2) % QSIZE);
        self.header(u32::from(i), request_type, sector);
        self.desc(d0, u64::from(at::HDR + 0x100 * u32::from(i)), 16, NEXT, d1);
        self.desc(
            d1,
            data,
            len,
            NEXT | if device_writes { WRITE } else { 0 },
            d2,
        );
        self.desc(d2, u64::from(at::STATUS + u32::from(i)), 1, WRITE, 0);
        self.asm.store8(at::STATUS + u32::from(i), 0xff);
        self.submit(d0);
    }
}
