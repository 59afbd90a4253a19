/*
 * The disk convention shared with the tests (README.md, "Disk convention";
 * tests/src/fw.rs implements the same two functions).
 *
 *   prepared(s): what the test writes into sector 0 and the last sector
 *     bytes 0..7   sector number, little endian
 *     bytes 8..15  "openhook"
 *     byte i >= 16 (i + 13*s + 0xc3) mod 256
 *   written(s): what the firmware writes into sectors 1..8
 *     bytes 0..7   sector number, little endian
 *     bytes 8..15  "fw-wrote"
 *     byte i >= 16 (11*i + 37*s + 0x5a) mod 256
 */
#include "fw.h"

static void fill(uint64_t s, uint8_t *out, const char *tag, uint32_t mul_i, uint32_t mul_s,
                 uint32_t add)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(s >> (8 * i));
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)tag[i];
    uint32_t s_low = (uint32_t)s;
    for (uint32_t i = 16; i < SECTOR_SIZE; i++)
        out[i] = (uint8_t)(mul_i * i + mul_s * s_low + add);
}

void pattern_prepared(uint64_t sector, uint8_t *out)
{
    fill(sector, out, "openhook", 1, 13, 0xc3);
}

void pattern_written(uint64_t sector, uint8_t *out)
{
    fill(sector, out, "fw-wrote", 11, 37, 0x5a);
}

/* Number of sectors in buf that differ from the pattern. */
int check_pattern(int written, uint64_t first, uint32_t count, uint32_t buf)
{
    uint8_t want[SECTOR_SIZE];
    int bad = 0;
    for (uint32_t k = 0; k < count; k++) {
        if (written)
            pattern_written(first + k, want);
        else
            pattern_prepared(first + k, want);
        if (memcmp(PHYS(const void, buf + k * SECTOR_SIZE), want, SECTOR_SIZE) != 0)
            bad++;
    }
    return bad;
}
