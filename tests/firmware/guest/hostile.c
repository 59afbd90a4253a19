/*
 * Hostile-guest variant (built with -DOPENHOOK_FW_HOSTILE into
 * openhook-fw-hostile.bin): submits malformed requests and descriptor
 * chains one at a time, prints what the device did with each, resets and
 * re-initialises the device between cases, and finally checks that the
 * device still serves normal reads with the right data.
 *
 * The firmware judges only survival: what each case got is printed, not
 * judged, because devices legitimately differ. QEMU 7.2, for instance,
 * completes DMA to or from unassigned guest-physical addresses with status
 * OK (reads see zeros, writes are dropped) and maps the microvm firmware as
 * writable RAM; openhook's device answers IOERR or needs-reset instead. The
 * test that runs this image decides which outcomes it accepts.
 */
#include "fw.h"

#ifdef OPENHOOK_FW_HOSTILE

#define OUTSIDE_RAM_LOW  0x80000000ull  /* the 2 GiB hole below the MMIO area */
#define OUTSIDE_RAM_HIGH 0x200000000ull /* 8 GiB: nothing there */
#define FW_INSIDE        0xffff8000ull  /* inside the 64 KiB firmware image */
#define FW_TOP           0xffffff00ull  /* crosses 4 GiB */

enum hostile_case {
    H_READ_STRADDLES_END,
    H_SECTOR_OVERFLOW,
    H_UNALIGNED_LEN,
    H_SHORT_HEADER,
    H_STATUS_NOT_WRITABLE,
    H_STATUS_OUTSIDE_RAM,
    H_DESC_LOOP,
    H_CHAIN_LONGER_THAN_QUEUE,
    H_NEXT_OUT_OF_RANGE,
    H_HEAD_OUT_OF_RANGE,
    H_AVAIL_IDX_JUMP,
    H_BUFFER_OUTSIDE_RAM,
    H_BUFFER_ABOVE_4G,
    H_BUFFER_IN_FIRMWARE,
    H_BUFFER_CROSSES_4G,
    H_BUFFER_WRAPS_U64,
    H_BUFFER_HUGE,
    H_WRITE_FROM_OUTSIDE_RAM,
    H_COUNT,
};

static const char *const case_names[H_COUNT] = {
    [H_READ_STRADDLES_END] = "read-straddles-end",
    [H_SECTOR_OVERFLOW] = "sector-overflow",
    [H_UNALIGNED_LEN] = "unaligned-length",
    [H_SHORT_HEADER] = "short-header",
    [H_STATUS_NOT_WRITABLE] = "status-not-writable",
    [H_STATUS_OUTSIDE_RAM] = "status-outside-ram",
    [H_DESC_LOOP] = "descriptor-loop",
    [H_CHAIN_LONGER_THAN_QUEUE] = "chain-longer-than-queue",
    [H_NEXT_OUT_OF_RANGE] = "next-out-of-range",
    [H_HEAD_OUT_OF_RANGE] = "head-out-of-range",
    [H_AVAIL_IDX_JUMP] = "avail-idx-jump",
    [H_BUFFER_OUTSIDE_RAM] = "buffer-outside-ram",
    [H_BUFFER_ABOVE_4G] = "buffer-above-4g",
    [H_BUFFER_IN_FIRMWARE] = "buffer-in-firmware",
    [H_BUFFER_CROSSES_4G] = "buffer-crosses-4g",
    [H_BUFFER_WRAPS_U64] = "buffer-wraps-u64",
    [H_BUFFER_HUGE] = "buffer-huge",
    [H_WRITE_FROM_OUTSIDE_RAM] = "write-from-outside-ram",
};

static void set_hdr(uint32_t type, uint64_t sector)
{
    volatile struct virtio_blk_req_hdr *hdr = PHYS(volatile struct virtio_blk_req_hdr, HDR_ADDR);
    hdr->type = type;
    hdr->reserved = 0;
    hdr->sector = sector;
    *PHYS(volatile uint8_t, STATUS_ADDR) = 0xff;
}

/* hdr -> one data buffer -> status, descriptors 0, 1, 2. */
static void simple_chain(struct blkdev *d, uint32_t type, uint64_t sector, uint64_t addr,
                         uint32_t len)
{
    set_hdr(type, sector);
    vq_set_desc(d, 0, HDR_ADDR, sizeof(struct virtio_blk_req_hdr), VIRTQ_DESC_F_NEXT, 1);
    vq_set_desc(d, 1, addr, len,
                (uint16_t)(VIRTQ_DESC_F_NEXT | (type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0)),
                2);
    vq_set_desc(d, 2, STATUS_ADDR, 1, VIRTQ_DESC_F_WRITE, 0);
}

/* Lay out the case's descriptors; returns the head and sets the avail
 * index advance. */
static uint16_t build_case(struct blkdev *d, enum hostile_case h, uint16_t *advance)
{
    uint16_t q = d->qsize;
    *advance = 1;
    switch (h) {
    case H_READ_STRADDLES_END:
        simple_chain(d, VIRTIO_BLK_T_IN, d->capacity - 1, BUF_A, 2 * SECTOR_SIZE);
        return 0;
    case H_SECTOR_OVERFLOW:
        simple_chain(d, VIRTIO_BLK_T_IN, 0xffffffffffffff00ull, BUF_A, SECTOR_SIZE);
        return 0;
    case H_UNALIGNED_LEN:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, BUF_A, 100);
        return 0;
    case H_SHORT_HEADER:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, BUF_A, SECTOR_SIZE);
        vq_set_desc(d, 0, HDR_ADDR, 8, VIRTQ_DESC_F_NEXT, 1);
        return 0;
    case H_STATUS_NOT_WRITABLE:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, BUF_A, SECTOR_SIZE);
        vq_set_desc(d, 2, STATUS_ADDR, 1, 0, 0);
        return 0;
    case H_STATUS_OUTSIDE_RAM:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, BUF_A, SECTOR_SIZE);
        vq_set_desc(d, 2, OUTSIDE_RAM_LOW, 1, VIRTQ_DESC_F_WRITE, 0);
        return 0;
    case H_DESC_LOOP:
        set_hdr(VIRTIO_BLK_T_IN, 0);
        vq_set_desc(d, 0, HDR_ADDR, sizeof(struct virtio_blk_req_hdr), VIRTQ_DESC_F_NEXT, 1);
        vq_set_desc(d, 1, BUF_A, SECTOR_SIZE, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
        return 0;
    case H_CHAIN_LONGER_THAN_QUEUE:
        /* q + 1 descriptors 0..q: the last index equals the queue size.
         * The descriptor memory behind it is valid, so only an index or
         * length check stops the device from following it. */
        set_hdr(VIRTIO_BLK_T_IN, 0);
        vq_set_desc(d, 0, HDR_ADDR, sizeof(struct virtio_blk_req_hdr), VIRTQ_DESC_F_NEXT, 1);
        for (uint16_t i = 1; i < q; i++)
            vq_set_desc(d, i, BUF_A + (i - 1u) * SECTOR_SIZE, SECTOR_SIZE,
                        VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, (uint16_t)(i + 1));
        vq_set_desc(d, q, STATUS_ADDR, 1, VIRTQ_DESC_F_WRITE, 0);
        return 0;
    case H_NEXT_OUT_OF_RANGE:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, BUF_A, SECTOR_SIZE);
        vq_set_desc(d, 1, BUF_A, SECTOR_SIZE, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0x7fff);
        return 0;
    case H_HEAD_OUT_OF_RANGE:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, BUF_A, SECTOR_SIZE);
        return (uint16_t)(q + 100);
    case H_AVAIL_IDX_JUMP:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, BUF_A, SECTOR_SIZE);
        *advance = (uint16_t)(q * 16);
        return 0;
    case H_BUFFER_OUTSIDE_RAM:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, OUTSIDE_RAM_LOW, SECTOR_SIZE);
        return 0;
    case H_BUFFER_ABOVE_4G:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, OUTSIDE_RAM_HIGH, SECTOR_SIZE);
        return 0;
    case H_BUFFER_IN_FIRMWARE:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, FW_INSIDE, SECTOR_SIZE);
        return 0;
    case H_BUFFER_CROSSES_4G:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, FW_TOP, SECTOR_SIZE);
        return 0;
    case H_BUFFER_WRAPS_U64:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, 0xffffffffffffff00ull, SECTOR_SIZE);
        return 0;
    case H_BUFFER_HUGE:
        simple_chain(d, VIRTIO_BLK_T_IN, 0, BUF_A, 0xfffffe00u);
        return 0;
    case H_WRITE_FROM_OUTSIDE_RAM:
        simple_chain(d, VIRTIO_BLK_T_OUT, 1, OUTSIDE_RAM_LOW, SECTOR_SIZE);
        return 0;
    default:
        return 0;
    }
}

static uint32_t rom_hash(void)
{
    return fnv1a(PHYS(const void, FW_INSIDE), SECTOR_SIZE) ^
           fnv1a(PHYS(const void, 0xfffffe00u), SECTOR_SIZE);
}

int run_hostile(struct blkdev *d)
{
    int problems = 0;
    uint32_t rom_before = rom_hash();

    if (d->capacity < 2) {
        fw_printf("hostile: disk too small: need at least 2 sectors\n");
        return -1;
    }
    if (read_and_check(d, 0, 1, 0, 1, "prepared pattern ok") != 0)
        problems++;

    for (int h = 0; h < H_COUNT; h++) {
        struct completion c;
        uint16_t advance;
        if (blk_init(d, 1) != 0) {
            fw_printf("hostile: %s: re-initialisation failed before the case\n", case_names[h]);
            problems++;
            break;
        }
        uint16_t head = build_case(d, (enum hostile_case)h, &advance);
        barrier();
        vq_publish(d, head, advance);
        vq_wait(d, TICKS_HOSTILE, &c);
        uint8_t st = *PHYS(volatile uint8_t, STATUS_ADDR);
        fw_printf("hostile: %s: ", case_names[h]);
        if (c.outcome != WAIT_DONE) {
            fw_printf("%s\n", wait_outcome_name(c.outcome));
            continue;
        }
        if (st == 0xff)
            fw_printf("completed, status byte not written");
        else
            fw_printf("completed, status %u", st);
        if (c.used_id != head)
            fw_printf(", used id %u", c.used_id);
        fw_printf("\n");
    }

    /* The device must still work after a reset. */
    if (blk_init(d, 0) != 0) {
        fw_printf("hostile: device unusable after the hostile cases\n");
        return -1;
    }
    fw_printf("hostile: device re-initialised after the cases\n");
    if (read_and_check(d, 0, 1, 0, 1, "prepared pattern ok") != 0)
        problems++;
    if (read_and_check(d, d->capacity - 1, 1, 0, 1, "prepared pattern ok") != 0)
        problems++;
    uint32_t rom_after = rom_hash();
    /* Informational: whether a device DMA reached the firmware image. */
    fw_printf("hostile: firmware image %s\n",
              rom_after == rom_before ? "unchanged" : "changed by device DMA");
    return problems ? -1 : 0;
}

#else
int run_hostile(struct blkdev *d)
{
    (void)d;
    return -1;
}
#endif
