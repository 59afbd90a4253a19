/*
 * Benchmark variant (built with -DOPENHOOK_FW_BENCH into
 * openhook-fw-bench.bin): sequential write of the whole disk, flush, then
 * sequential read of the whole disk, in 1 MiB requests (four 256 KiB data
 * descriptors each). Prints a line before and after each pass so a host
 * reading the serial stream can time the passes; the TSC tick counts are
 * printed too. Guest code is slow on PVM hosts (1-3 us per loop
 * iteration), so the firmware touches only the buffer's first sector: the
 * disk's old contents are overwritten with 1 MiB chunks that start with
 * written(0) (see README.md) followed by whatever RAM held (zeros on a
 * fresh machine), and after the read pass that first sector is verified.
 */
#include "fw.h"

#ifdef OPENHOOK_FW_BENCH

#define BENCH_BUF     0x00200000u /* 1 MiB at 2 MiB: needs -m 4 or more */
#define BENCH_SECTORS 2048u       /* 1 MiB per request */
#define BENCH_SEGS    4u

static int bench_pass(struct blkdev *d, uint32_t type, const char *name)
{
    struct seg segs[BENCH_SEGS];
    struct completion c;
    uint8_t st;
    uint32_t requests = 0;
    fw_printf("bench: %s start\n", name);
    uint64_t t0 = rdtsc();
    for (uint64_t s = 0; s < d->capacity;) {
        uint64_t left = d->capacity - s;
        uint32_t n = left < BENCH_SECTORS ? (uint32_t)left : BENCH_SECTORS;
        uint32_t bytes = n * SECTOR_SIZE, per = bytes / BENCH_SEGS, nsegs = 0;
        for (uint32_t k = 0, off = 0; k < BENCH_SEGS && off < bytes; k++, nsegs++) {
            uint32_t len = k == BENCH_SEGS - 1 || per < SECTOR_SIZE ? bytes - off : per;
            segs[k].addr = BENCH_BUF + off;
            segs[k].len = len;
            segs[k].flags = type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0;
            off += len;
        }
        blk_request(d, type, s, segs, (int)nsegs, TICKS_REQUEST, &c, &st);
        requests++;
        if (c.outcome != WAIT_DONE || st != VIRTIO_BLK_S_OK) {
            fw_printf("bench: %s failed at sector %llu: %s, status %u\n", name, s,
                      wait_outcome_name(c.outcome), st);
            return -1;
        }
        s += n;
    }
    uint64_t ticks = rdtsc() - t0;
    fw_printf("bench: %s done, %llu sectors in %u requests, %llu tsc ticks\n", name,
              d->capacity, requests, ticks);
    return 0;
}

int run_bench(struct blkdev *d)
{
    struct completion c;
    uint8_t st;
    if (blk_feature(d, VIRTIO_BLK_F_RO, 1)) {
        fw_printf("bench: the disk is read-only; the benchmark needs a writable disk\n");
        return -1;
    }
    pattern_written(0, PHYS(uint8_t, BENCH_BUF));
    if (bench_pass(d, VIRTIO_BLK_T_OUT, "write") != 0)
        return -1;
    if (blk_feature(d, VIRTIO_BLK_F_FLUSH, 1)) {
        blk_request(d, VIRTIO_BLK_T_FLUSH, 0, 0, 0, TICKS_REQUEST, &c, &st);
        if (c.outcome != WAIT_DONE || st != VIRTIO_BLK_S_OK) {
            fw_printf("bench: flush failed: %s, status %u\n", wait_outcome_name(c.outcome), st);
            return -1;
        }
        fw_printf("bench: flush done\n");
    }
    memset(PHYS(void, BENCH_BUF), 0xee, SECTOR_SIZE);
    if (bench_pass(d, VIRTIO_BLK_T_IN, "read") != 0)
        return -1;
    /* The buffer's first sector now holds the last chunk's first sector. */
    if (check_pattern(1, 0, 1, BENCH_BUF) != 0) {
        fw_printf("bench: verify FAIL\n");
        return -1;
    }
    fw_printf("bench: verify ok\n");
    return 0;
}

#else
int run_bench(struct blkdev *d)
{
    (void)d;
    return -1;
}
#endif
