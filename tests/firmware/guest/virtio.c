/*
 * virtio-mmio (version 2, "modern") transport and a polled split virtqueue
 * driver for virtio-blk. One request in flight at a time; every wait is
 * bounded by the TSC.
 */
#include "fw.h"

static uint32_t reg_read(const struct blkdev *d, uint32_t off)
{
    return mmio_read32(d->base + off);
}

static void reg_write(const struct blkdev *d, uint32_t off, uint32_t v)
{
    mmio_write32(d->base + off, v);
}

static const char *device_name(uint32_t id)
{
    switch (id) {
    case 1: return "network";
    case 2: return "block";
    case 3: return "console";
    case 4: return "entropy";
    case 5: return "balloon";
    case 9: return "9p";
    case 16: return "gpu";
    case 18: return "input";
    case 19: return "vsock";
    case 26: return "fs";
    default: return "other";
    }
}

int virtio_scan(struct blkdev *blk, int *problems)
{
    int devices = 0, found = 0;
    *problems = 0;
    for (uint32_t slot = 0; slot < VIRTIO_MMIO_SLOTS; slot++) {
        uint32_t base = VIRTIO_MMIO_BASE + slot * VIRTIO_MMIO_STRIDE;
        uint32_t magic = mmio_read32(base + VMMIO_MAGIC);
        uint32_t version = mmio_read32(base + VMMIO_VERSION);
        uint32_t id = mmio_read32(base + VMMIO_DEVICE_ID);
        if (magic != VIRTIO_MAGIC) {
            fw_printf("virtio-mmio: slot %u at 0x%08x: bad magic 0x%08x\n", slot, base, magic);
            (*problems)++;
            continue;
        }
        if (version != 2) {
            fw_printf("virtio-mmio: slot %u at 0x%08x: version %u (only version 2 is supported)%s\n",
                      slot, base, version, version == 1 ? ", legacy transport" : "");
            (*problems)++;
            continue;
        }
        if (id == 0)
            continue;
        devices++;
        fw_printf("virtio-mmio: slot %u at 0x%08x: version 2, device id %u (%s)\n",
                  slot, base, id, device_name(id));
    }
    fw_printf("virtio-mmio: %u slots scanned, %d device(s)\n", VIRTIO_MMIO_SLOTS, devices);
    /* The first virtio-blk in command-line order is in the highest slot. */
    for (uint32_t slot = VIRTIO_MMIO_SLOTS; slot-- > 0;) {
        uint32_t base = VIRTIO_MMIO_BASE + slot * VIRTIO_MMIO_STRIDE;
        if (mmio_read32(base + VMMIO_MAGIC) == VIRTIO_MAGIC &&
            mmio_read32(base + VMMIO_VERSION) == 2 &&
            mmio_read32(base + VMMIO_DEVICE_ID) == VIRTIO_ID_BLOCK) {
            memset(blk, 0, sizeof(*blk));
            blk->base = base;
            blk->slot = slot;
            found = 1;
            break;
        }
    }
    return found;
}

uint64_t blk_feature(const struct blkdev *d, int bit, int accepted)
{
    return ((accepted ? d->accepted : d->offered) >> bit) & 1;
}

void blk_reset(struct blkdev *d)
{
    reg_write(d, VMMIO_STATUS, 0);
    /* A virtio-mmio reset is complete when status reads back 0. */
    uint64_t start = rdtsc();
    while (reg_read(d, VMMIO_STATUS) != 0 && rdtsc() - start < TICKS_HOSTILE)
        cpu_relax();
}

static uint64_t read_capacity(const struct blkdev *d)
{
    /* 64-bit config field: two 32-bit reads, retried until the config
     * generation is stable (bounded). */
    uint64_t cap = 0;
    for (int tries = 0; tries < 16; tries++) {
        uint32_t gen = reg_read(d, VMMIO_CONFIG_GEN);
        uint32_t lo = reg_read(d, VMMIO_CONFIG + 0);
        uint32_t hi = reg_read(d, VMMIO_CONFIG + 4);
        cap = ((uint64_t)hi << 32) | lo;
        if (reg_read(d, VMMIO_CONFIG_GEN) == gen)
            break;
    }
    return cap;
}

static int init_fail(struct blkdev *d, int quiet, const char *why)
{
    if (!quiet)
        fw_printf("blk: init failed: %s\n", why);
    reg_write(d, VMMIO_STATUS, reg_read(d, VMMIO_STATUS) | VIRTIO_S_FAILED);
    return -1;
}

int blk_init(struct blkdev *d, int quiet)
{
    blk_reset(d);
    if (reg_read(d, VMMIO_STATUS) != 0)
        return init_fail(d, quiet, "device did not reset");
    reg_write(d, VMMIO_STATUS, VIRTIO_S_ACKNOWLEDGE);
    reg_write(d, VMMIO_STATUS, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);

    reg_write(d, VMMIO_DEV_FEAT_SEL, 0);
    uint32_t lo = reg_read(d, VMMIO_DEV_FEATURES);
    reg_write(d, VMMIO_DEV_FEAT_SEL, 1);
    uint32_t hi = reg_read(d, VMMIO_DEV_FEATURES);
    d->offered = ((uint64_t)hi << 32) | lo;
    if (!blk_feature(d, VIRTIO_F_VERSION_1, 0))
        return init_fail(d, quiet, "VIRTIO_F_VERSION_1 not offered");
    d->accepted = d->offered & ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_RO) |
                                (1ull << VIRTIO_BLK_F_FLUSH));
    reg_write(d, VMMIO_DRV_FEAT_SEL, 0);
    reg_write(d, VMMIO_DRV_FEATURES, (uint32_t)d->accepted);
    reg_write(d, VMMIO_DRV_FEAT_SEL, 1);
    reg_write(d, VMMIO_DRV_FEATURES, (uint32_t)(d->accepted >> 32));
    reg_write(d, VMMIO_STATUS, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK);
    if (!(reg_read(d, VMMIO_STATUS) & VIRTIO_S_FEATURES_OK))
        return init_fail(d, quiet, "FEATURES_OK not accepted");

    reg_write(d, VMMIO_QUEUE_SEL, 0);
    if (reg_read(d, VMMIO_QUEUE_READY) != 0)
        return init_fail(d, quiet, "queue 0 already ready");
    uint32_t max = reg_read(d, VMMIO_QUEUE_NUM_MAX);
    if (max < 4)
        return init_fail(d, quiet, "queue 0 has fewer than 4 entries");
    d->qsize = (uint16_t)(max < FW_QUEUE_SIZE ? max : FW_QUEUE_SIZE);
    reg_write(d, VMMIO_QUEUE_NUM, d->qsize);

    memset(PHYS(void, DESC_ADDR), 0, FW_DESC_SLOTS * sizeof(struct virtq_desc));
    memset(PHYS(void, AVAIL_ADDR), 0, 0x1000);
    memset(PHYS(void, USED_ADDR), 0, 0x1000);
    PHYS(struct virtq_avail, AVAIL_ADDR)->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    d->avail_idx = 0;
    d->used_idx = 0;
    barrier();

    reg_write(d, VMMIO_QUEUE_DESC_LO, DESC_ADDR);
    reg_write(d, VMMIO_QUEUE_DESC_HI, 0);
    reg_write(d, VMMIO_QUEUE_DRV_LO, AVAIL_ADDR);
    reg_write(d, VMMIO_QUEUE_DRV_HI, 0);
    reg_write(d, VMMIO_QUEUE_DEV_LO, USED_ADDR);
    reg_write(d, VMMIO_QUEUE_DEV_HI, 0);
    reg_write(d, VMMIO_QUEUE_READY, 1);
    if (reg_read(d, VMMIO_QUEUE_READY) != 1)
        return init_fail(d, quiet, "queue 0 did not become ready");

    d->capacity = read_capacity(d);
    reg_write(d, VMMIO_STATUS, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER |
                                   VIRTIO_S_FEATURES_OK | VIRTIO_S_DRIVER_OK);
    if (reg_read(d, VMMIO_STATUS) & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED))
        return init_fail(d, quiet, "device reports an error after DRIVER_OK");
    return 0;
}

void vq_set_desc(struct blkdev *d, uint16_t i, uint64_t addr, uint32_t len,
                 uint16_t flags, uint16_t next)
{
    (void)d;
    volatile struct virtq_desc *desc = PHYS(volatile struct virtq_desc, DESC_ADDR);
    desc[i].addr = addr;
    desc[i].len = len;
    desc[i].flags = flags;
    desc[i].next = next;
}

void vq_publish(struct blkdev *d, uint16_t head, uint16_t idx_advance)
{
    volatile struct virtq_avail *avail = PHYS(volatile struct virtq_avail, AVAIL_ADDR);
    avail->ring[d->avail_idx % d->qsize] = head;
    barrier();
    d->avail_idx = (uint16_t)(d->avail_idx + idx_advance);
    avail->idx = d->avail_idx;
    barrier();
    reg_write(d, VMMIO_QUEUE_NOTIFY, 0);
}

void vq_wait(struct blkdev *d, uint64_t ticks, struct completion *c)
{
    volatile struct virtq_used *used = PHYS(volatile struct virtq_used, USED_ADDR);
    uint64_t start = rdtsc();
    uint32_t spins = 0;
    memset(c, 0, sizeof(*c));
    for (;;) {
        if (used->idx != d->used_idx) {
            barrier();
            c->outcome = WAIT_DONE;
            c->used_id = used->ring[d->used_idx % d->qsize].id;
            c->used_len = used->ring[d->used_idx % d->qsize].len;
            d->used_idx++;
            break;
        }
        if ((++spins & 63) == 0 &&
            (reg_read(d, VMMIO_STATUS) & VIRTIO_S_NEEDS_RESET)) {
            c->outcome = WAIT_NEEDS_RESET;
            break;
        }
        if (rdtsc() - start > ticks) {
            c->outcome = (reg_read(d, VMMIO_STATUS) & VIRTIO_S_NEEDS_RESET)
                             ? WAIT_NEEDS_RESET
                             : WAIT_TIMEOUT;
            break;
        }
        cpu_relax();
    }
    c->device_status = reg_read(d, VMMIO_STATUS);
    /* Acknowledge whatever interrupt the device raised (we never take it). */
    uint32_t isr = reg_read(d, VMMIO_INT_STATUS);
    if (isr)
        reg_write(d, VMMIO_INT_ACK, isr);
}

void blk_request(struct blkdev *d, uint32_t type, uint64_t sector,
                 const struct seg *segs, int nsegs, uint64_t ticks,
                 struct completion *c, uint8_t *status)
{
    volatile struct virtio_blk_req_hdr *hdr = PHYS(volatile struct virtio_blk_req_hdr, HDR_ADDR);
    volatile uint8_t *st = PHYS(volatile uint8_t, STATUS_ADDR);
    hdr->type = type;
    hdr->reserved = 0;
    hdr->sector = sector;
    *st = 0xff;
    uint16_t i = 0;
    vq_set_desc(d, i, HDR_ADDR, sizeof(struct virtio_blk_req_hdr), VIRTQ_DESC_F_NEXT,
                (uint16_t)(i + 1));
    i++;
    for (int s = 0; s < nsegs; s++, i++)
        vq_set_desc(d, i, segs[s].addr, segs[s].len,
                    (uint16_t)(segs[s].flags | VIRTQ_DESC_F_NEXT), (uint16_t)(i + 1));
    vq_set_desc(d, i, STATUS_ADDR, 1, VIRTQ_DESC_F_WRITE, 0);
    barrier();
    vq_publish(d, 0, 1);
    vq_wait(d, ticks, c);
    *status = *st;
}

void blk_rw(struct blkdev *d, uint32_t type, uint64_t sector, uint32_t buf,
            uint32_t len, struct completion *c, uint8_t *status)
{
    /* Split the buffer into 2 KiB descriptors to exercise multi-segment
     * chains (at most FW_QUEUE_SIZE - 2 of them). */
    struct seg segs[FW_QUEUE_SIZE];
    int n = 0;
    uint16_t flags = type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0;
    while (len && n < (int)d->qsize - 2) {
        uint32_t chunk = len > 2048 && n < (int)d->qsize - 3 ? 2048 : len;
        segs[n].addr = buf;
        segs[n].len = chunk;
        segs[n].flags = flags;
        n++;
        buf += chunk;
        len -= chunk;
    }
    blk_request(d, type, sector, segs, n, TICKS_REQUEST, c, status);
}

const char *wait_outcome_name(enum wait_outcome o)
{
    switch (o) {
    case WAIT_DONE: return "completed";
    case WAIT_NEEDS_RESET: return "needs-reset";
    default: return "timeout";
    }
}
