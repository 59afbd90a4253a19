/*
 * openhook guest test firmware: entry point and the standard disk test.
 * See README.md for the transcript format and the conventions.
 */
#include "fw.h"

#define WRITE_FIRST 1u
#define WRITE_COUNT 8u

#if defined(OPENHOOK_FW_HOSTILE)
#define VARIANT "hostile"
#elif defined(OPENHOOK_FW_BENCH)
#define VARIANT "bench"
#elif defined(OPENHOOK_FW_BOOT)
#define VARIANT "boot"
#elif defined(OPENHOOK_FW_IRQ)
#define VARIANT "irq"
#else
#define VARIANT "standard"
#endif

static int failures;

static void fail_if(int bad)
{
    if (bad)
        failures++;
}

/* Print one request's outcome; returns 1 if the request completed. */
static int report(const char *what, const struct completion *c, uint8_t status)
{
    if (c->outcome != WAIT_DONE) {
        fw_printf("blk: %s: %s (device status 0x%02x)\n", what, wait_outcome_name(c->outcome),
                  c->device_status);
        failures++;
        return 0;
    }
    fw_printf("blk: %s: status %u", what, status);
    return 1;
}

int read_and_check(struct blkdev *d, uint64_t first, uint32_t count, int written,
                          int expect_match, const char *label)
{
    struct completion c;
    uint8_t st;
    blk_rw(d, VIRTIO_BLK_T_IN, first, BUF_A, count * SECTOR_SIZE, &c, &st);
    if (count == 1)
        fw_printf("blk: read sector %llu", first);
    else
        fw_printf("blk: read sectors %llu-%llu", first, first + count - 1);
    if (c.outcome != WAIT_DONE) {
        fw_printf(": %s (device status 0x%02x)\n", wait_outcome_name(c.outcome),
                  c.device_status);
        failures++;
        return -1;
    }
    fw_printf(": status %u", st);
    if (st != VIRTIO_BLK_S_OK) {
        fw_printf(", FAIL (expected status 0)\n");
        failures++;
        return -1;
    }
    uint32_t h = fnv1a(PHYS(const void, BUF_A), count * SECTOR_SIZE);
    int bad = check_pattern(written, first, count, BUF_A);
    int ok = expect_match ? bad == 0 : bad == (int)count;
    fw_printf(", fnv1a 0x%08x, %s%s\n", h, label, ok ? "" : " FAIL");
    fail_if(!ok);
    return ok ? 0 : -1;
}

int run_standard(struct blkdev *d)
{
    struct completion c;
    uint8_t st;
    int ro = (int)blk_feature(d, VIRTIO_BLK_F_RO, 1);
    int flush = (int)blk_feature(d, VIRTIO_BLK_F_FLUSH, 1);
    uint64_t last = d->capacity - 1;

    if (d->capacity < WRITE_FIRST + WRITE_COUNT + 1) {
        fw_printf("blk: disk too small: need at least %u sectors\n", WRITE_FIRST + WRITE_COUNT + 1);
        return -1;
    }

    read_and_check(d, 0, 1, 0, 1, "prepared pattern ok");
    read_and_check(d, last, 1, 0, 1, "prepared pattern ok");

    /* Write the pattern to sectors 1..8 in one request. */
    for (uint32_t k = 0; k < WRITE_COUNT; k++)
        pattern_written(WRITE_FIRST + k, PHYS(uint8_t, BUF_B + k * SECTOR_SIZE));
    blk_rw(d, VIRTIO_BLK_T_OUT, WRITE_FIRST, BUF_B, WRITE_COUNT * SECTOR_SIZE, &c, &st);
    if (ro) {
        if (report("write sectors 1-8 (read-only disk)", &c, st)) {
            int ok = st == VIRTIO_BLK_S_IOERR;
            fw_printf(", %s\n", ok ? "refused as expected" : "FAIL (expected status 1)");
            fail_if(!ok);
        }
    } else if (report("write sectors 1-8", &c, st)) {
        fw_printf("%s\n", st == VIRTIO_BLK_S_OK ? "" : ", FAIL (expected status 0)");
        fail_if(st != VIRTIO_BLK_S_OK);
    }
    if (c.outcome != WAIT_DONE)
        return -1;

    if (flush) {
        blk_request(d, VIRTIO_BLK_T_FLUSH, 0, 0, 0, TICKS_REQUEST, &c, &st);
        if (report("flush", &c, st)) {
            fw_printf("%s\n", st == VIRTIO_BLK_S_OK ? "" : ", FAIL (expected status 0)");
            fail_if(st != VIRTIO_BLK_S_OK);
        }
    } else {
        fw_printf("blk: flush: not offered\n");
    }

    if (ro)
        read_and_check(d, WRITE_FIRST, WRITE_COUNT, 1, 0, "unchanged");
    else
        read_and_check(d, WRITE_FIRST, WRITE_COUNT, 1, 1, "written pattern ok");

    /* A read past the end must fail with IOERR. */
    {
        struct seg s = { BUF_A, SECTOR_SIZE, VIRTQ_DESC_F_WRITE };
        blk_request(d, VIRTIO_BLK_T_IN, d->capacity, &s, 1, TICKS_REQUEST, &c, &st);
        fw_printf("blk: read sector %llu (past the end)", d->capacity);
        if (c.outcome != WAIT_DONE) {
            fw_printf(": %s\n", wait_outcome_name(c.outcome));
            failures++;
        } else {
            fw_printf(": status %u%s\n", st,
                      st == VIRTIO_BLK_S_IOERR ? "" : " FAIL (expected status 1)");
            fail_if(st != VIRTIO_BLK_S_IOERR);
        }
    }

    /* An unknown request type must be answered with UNSUPP. */
    blk_request(d, 0xff, 0, 0, 0, TICKS_REQUEST, &c, &st);
    if (report("request type 255", &c, st)) {
        fw_printf("%s\n", st == VIRTIO_BLK_S_UNSUPP ? "" : " FAIL (expected status 2)");
        fail_if(st != VIRTIO_BLK_S_UNSUPP);
    }

    /* get-id: up to 20 bytes, NUL-terminated if shorter. */
    {
        volatile uint8_t *id = PHYS(volatile uint8_t, ID_ADDR);
        for (uint32_t i = 0; i < VIRTIO_BLK_ID_BYTES; i++)
            id[i] = 0xee;
        struct seg s = { ID_ADDR, VIRTIO_BLK_ID_BYTES, VIRTQ_DESC_F_WRITE };
        blk_request(d, VIRTIO_BLK_T_GET_ID, 0, &s, 1, TICKS_REQUEST, &c, &st);
        if (report("get-id", &c, st)) {
            fw_printf(", id \"");
            for (uint32_t i = 0; i < VIRTIO_BLK_ID_BYTES && id[i]; i++) {
                uint8_t ch = id[i];
                if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
                    con_putc((char)ch);
                else
                    fw_printf("\\x%02x", ch);
            }
            fw_printf("\"%s\n", st == VIRTIO_BLK_S_OK ? "" : " FAIL (expected status 0)");
            fail_if(st != VIRTIO_BLK_S_OK);
        }
    }
    return 0;
}

static uint32_t read_cr0(void)
{
    uint32_t v;
    __asm__ volatile("movl %%cr0, %0" : "=r"(v));
    return v;
}

void fw_main(void)
{
    struct blkdev dev;
    int problems;

    con_init();
    fw_printf("openhook-fw: guest test firmware, transcript format 1\n");
    fw_printf("openhook-fw: variant %s\n", VARIANT);
    fw_printf("cpu: 32-bit protected mode (cr0.pe=%u), flat segments, no paging\n",
              read_cr0() & 1);
#if defined(OPENHOOK_FW_BOOT)
    /* Start-up and exit only: what the VMM costs around the guest. */
    fw_printf("result: PASS\n");
    fw_exit(FW_EXIT_PASS);
#endif
#if defined(OPENHOOK_FW_IRQ)
    run_irq();
#endif

    int found = virtio_scan(&dev, &problems);
    failures += problems;
    if (!found) {
        fw_printf("blk: no virtio-blk device\n");
        if (failures) {
            fw_printf("result: FAIL (%d problem(s))\n", failures);
            fw_exit(FW_EXIT_FAIL);
        }
        fw_printf("result: NO-DISK\n");
        fw_exit(FW_EXIT_NO_DISK);
    }
    fw_printf("blk: using slot %u\n", dev.slot);
    if (blk_init(&dev, 0) != 0) {
        failures++;
    } else {
        fw_printf("blk: features version_1=%u ro=%u flush=%u\n",
                  (uint32_t)blk_feature(&dev, VIRTIO_F_VERSION_1, 1),
                  (uint32_t)blk_feature(&dev, VIRTIO_BLK_F_RO, 1),
                  (uint32_t)blk_feature(&dev, VIRTIO_BLK_F_FLUSH, 1));
        fw_printf("blk: queue size %u\n", dev.qsize);
        fw_printf("blk: capacity %llu sectors\n", dev.capacity);
#if defined(OPENHOOK_FW_HOSTILE)
        if (run_hostile(&dev) != 0)
            failures++;
#elif defined(OPENHOOK_FW_BENCH)
        if (run_bench(&dev) != 0)
            failures++;
#else
        if (run_standard(&dev) != 0)
            failures++;
#endif
    }
    if (failures) {
        fw_printf("result: FAIL (%d problem(s))\n", failures);
        fw_exit(FW_EXIT_FAIL);
    }
    fw_printf("result: PASS\n");
    fw_exit(FW_EXIT_PASS);
}
