/*
 * openhook guest test firmware: shared declarations.
 *
 * Freestanding 32-bit code, flat segments, no paging, no interrupts.
 *
 * Guest RAM map (all below 2 MiB, so -m 2 or more is enough):
 *   0x00010000 .. 0x00080000  .bss
 *   0x00080000 .. 0x00090000  stack (grows down from 0x00090000)
 *   0x00100000                virtqueue descriptor table (QUEUE_MEM)
 *   0x00101000                available ring
 *   0x00102000                used ring
 *   0x00103000                request header, status byte, id buffer
 *   0x00110000                data buffer A (64 KiB)
 *   0x00120000                data buffer B (64 KiB)
 */
#ifndef OPENHOOK_FW_H
#define OPENHOOK_FW_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- exit status (isa-debug-exit at port 0xf4, 32-bit write) ----------
 * QEMU and openhook-emulator exit with status (v << 1) | 1. */
#define DEBUG_EXIT_PORT 0xf4
#define FW_EXIT_PASS    0u /* process exit status 1 */
#define FW_EXIT_FAIL    1u /* process exit status 3 */
#define FW_EXIT_NO_DISK 2u /* process exit status 5 */

/* ---- RAM map ----------------------------------------------------------- */
#define QUEUE_MEM  0x00100000u
#define DESC_ADDR  (QUEUE_MEM + 0x0000u)
#define AVAIL_ADDR (QUEUE_MEM + 0x1000u)
#define USED_ADDR  (QUEUE_MEM + 0x2000u)
#define REQ_ADDR   (QUEUE_MEM + 0x3000u)
#define HDR_ADDR    (REQ_ADDR + 0x000u)
#define STATUS_ADDR (REQ_ADDR + 0x100u)
#define ID_ADDR     (REQ_ADDR + 0x200u)
#define BUF_A      0x00110000u
#define BUF_B      0x00120000u
#define BUF_SIZE   0x00010000u

#define SECTOR_SIZE 512u

/* ---- port and memory-mapped I/O ---------------------------------------- */
static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

/* MMIO with a plain 32-bit mov, so any hypervisor's instruction decoder
 * handles it. */
static inline uint32_t mmio_read32(uint32_t addr)
{
    uint32_t v;
    __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    return v;
}

static inline void mmio_write32(uint32_t addr, uint32_t v)
{
    __asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
    __asm__ volatile("pause" : : : "memory");
}

#define barrier() __asm__ volatile("" : : : "memory")

/* Guest-physical address as a pointer (flat segments, no paging). */
#define PHYS(type, addr) ((type *)(uintptr_t)(addr))

/* ---- time bounds (TSC ticks; the TSC rate is unknown, assume 1-5 GHz) --- */
#define TICKS_UART     (1ull << 24) /* ~3-16 ms: give up waiting for THRE */
#define TICKS_REQUEST  (1ull << 33) /* ~2-8 s: one block request */
#define TICKS_HOSTILE  (1ull << 31) /* ~0.4-2 s: a hostile request */

/* ---- lib.c ------------------------------------------------------------- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
uint32_t fnv1a(const void *p, size_t n);

/* ---- console.c (8250 UART at 0x3f8, polled) ---------------------------- */
void con_init(void);
void con_putc(char c);
void fw_printf(const char *fmt, ...);
__attribute__((noreturn)) void fw_exit(uint32_t value);

/* ---- virtio.c ---------------------------------------------------------- */
#define VIRTIO_MMIO_BASE   0xfeb00000u
#define VIRTIO_MMIO_STRIDE 0x200u
#define VIRTIO_MMIO_SLOTS  24u

#define VIRTIO_MAGIC 0x74726976u

/* virtio-mmio v2 register offsets */
#define VMMIO_MAGIC          0x000
#define VMMIO_VERSION        0x004
#define VMMIO_DEVICE_ID      0x008
#define VMMIO_VENDOR_ID      0x00c
#define VMMIO_DEV_FEATURES   0x010
#define VMMIO_DEV_FEAT_SEL   0x014
#define VMMIO_DRV_FEATURES   0x020
#define VMMIO_DRV_FEAT_SEL   0x024
#define VMMIO_QUEUE_SEL      0x030
#define VMMIO_QUEUE_NUM_MAX  0x034
#define VMMIO_QUEUE_NUM      0x038
#define VMMIO_QUEUE_READY    0x044
#define VMMIO_QUEUE_NOTIFY   0x050
#define VMMIO_INT_STATUS     0x060
#define VMMIO_INT_ACK        0x064
#define VMMIO_STATUS         0x070
#define VMMIO_QUEUE_DESC_LO  0x080
#define VMMIO_QUEUE_DESC_HI  0x084
#define VMMIO_QUEUE_DRV_LO   0x090
#define VMMIO_QUEUE_DRV_HI   0x094
#define VMMIO_QUEUE_DEV_LO   0x0a0
#define VMMIO_QUEUE_DEV_HI   0x0a4
#define VMMIO_CONFIG_GEN     0x0fc
#define VMMIO_CONFIG         0x100

/* device status bits */
#define VIRTIO_S_ACKNOWLEDGE 1u
#define VIRTIO_S_DRIVER      2u
#define VIRTIO_S_DRIVER_OK   4u
#define VIRTIO_S_FEATURES_OK 8u
#define VIRTIO_S_NEEDS_RESET 0x40u
#define VIRTIO_S_FAILED      0x80u

/* feature bits */
#define VIRTIO_BLK_F_RO    5
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_ID_BLOCK 2u

/* virtio-blk request types and status values */
#define VIRTIO_BLK_T_IN     0u
#define VIRTIO_BLK_T_OUT    1u
#define VIRTIO_BLK_T_FLUSH  4u
#define VIRTIO_BLK_T_GET_ID 8u
#define VIRTIO_BLK_S_OK     0u
#define VIRTIO_BLK_S_IOERR  1u
#define VIRTIO_BLK_S_UNSUPP 2u
#define VIRTIO_BLK_ID_BYTES 20u

/* split virtqueue */
#define VIRTQ_DESC_F_NEXT     1u
#define VIRTQ_DESC_F_WRITE    2u
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1u
#define FW_QUEUE_SIZE 8u   /* entries we use (if the device allows) */
#define FW_DESC_SLOTS 64u  /* descriptor memory we reserve */

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} __attribute__((packed));

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];
} __attribute__((packed));

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
} __attribute__((packed));

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[];
} __attribute__((packed));

struct virtio_blk_req_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
} __attribute__((packed));

struct blkdev {
    uint32_t base;
    uint32_t slot;
    uint64_t offered;   /* device features */
    uint64_t accepted;  /* driver features */
    uint64_t capacity;  /* 512-byte sectors */
    uint16_t qsize;
    uint16_t avail_idx; /* next avail index we publish */
    uint16_t used_idx;  /* next used index we expect */
};

/* Outcome of waiting for the device. */
enum wait_outcome {
    WAIT_DONE = 0,        /* a used element arrived */
    WAIT_NEEDS_RESET = 1, /* device set DEVICE_NEEDS_RESET (0x40) */
    WAIT_TIMEOUT = 2,     /* nothing within the time bound */
};

struct completion {
    enum wait_outcome outcome;
    uint32_t used_id;
    uint32_t used_len;
    uint32_t device_status; /* status register when the wait ended */
};

/* One guest buffer of a request chain. */
struct seg {
    uint64_t addr;
    uint32_t len;
    uint16_t flags; /* VIRTQ_DESC_F_WRITE or 0; NEXT is added as needed */
};

/* Scan the 24 transports, print the populated ones; fill *blk with the
 * first virtio-blk in command-line order (highest slot first). Returns
 * the number of problems seen (bad magic/version) in *problems. */
int virtio_scan(struct blkdev *blk, int *problems);
/* Reset + modern init; prints nothing on success when quiet. Returns 0 on
 * success, else a short reason string index (and prints it unless quiet). */
int blk_init(struct blkdev *d, int quiet);
void blk_reset(struct blkdev *d);
uint64_t blk_feature(const struct blkdev *d, int bit, int accepted);
/* Low-level ring access. */
void vq_set_desc(struct blkdev *d, uint16_t i, uint64_t addr, uint32_t len,
                 uint16_t flags, uint16_t next);
void vq_publish(struct blkdev *d, uint16_t head, uint16_t idx_advance);
void vq_wait(struct blkdev *d, uint64_t ticks, struct completion *c);
/* Build hdr + segs + status starting at descriptor 0, publish, wait.
 * *status receives the status byte (0xff if the device did not write it). */
void blk_request(struct blkdev *d, uint32_t type, uint64_t sector,
                 const struct seg *segs, int nsegs, uint64_t ticks,
                 struct completion *c, uint8_t *status);
/* Convenience: one data buffer split in 2 KiB descriptors. */
void blk_rw(struct blkdev *d, uint32_t type, uint64_t sector, uint32_t buf,
            uint32_t len, struct completion *c, uint8_t *status);
const char *wait_outcome_name(enum wait_outcome o);

/* ---- patterns.c (the disk convention; see README.md) ------------------- */
void pattern_prepared(uint64_t sector, uint8_t *out);
void pattern_written(uint64_t sector, uint8_t *out);
int check_pattern(int written, uint64_t first, uint32_t count, uint32_t buf);

/* ---- tests ------------------------------------------------------------- */
int run_standard(struct blkdev *d);
int run_hostile(struct blkdev *d);
int run_bench(struct blkdev *d);
__attribute__((noreturn)) void run_irq(void);
/* Read count sectors from first into BUF_A, print the transcript line and
 * compare with the prepared (written=0) or firmware (written=1) pattern;
 * expect_match=0 expects every sector to differ. 0 if as expected. */
int read_and_check(struct blkdev *d, uint64_t first, uint32_t count, int written,
                   int expect_match, const char *label);

#endif
