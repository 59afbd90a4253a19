/*
 * Interrupt variant (-DOPENHOOK_FW_IRQ): the guest takes interrupts
 * through the local APIC and the IOAPIC, as an OS would.
 *
 * First boot: checks that the IOAPIC and the local APIC are in their
 * power-on state, sets up an IDT, enables the local APIC, routes the
 * UART's pin 4 (edge) and the disk's virtio pin (level) to two vectors,
 * then waits for the UART's THR-empty interrupt and for the used-ring
 * interrupt of one read request. It then leaves everything programmed,
 * marks RAM and waits for the host to reset the machine (QMP
 * system_reset). Second boot: the controllers must be back in their
 * power-on state.
 */
#include "fw.h"

#define LAPIC_BASE   0xfee00000u
#define LAPIC_SVR    0x0f0u
#define LAPIC_EOI    0x0b0u
#define IOAPIC_BASE  0xfec00000u
#define IOAPIC_PINS  24u
#define VEC_SERIAL   0x34u
#define VEC_VIRTIO   0x35u
#define VEC_PIT      0x36u
#define SERIAL_PIN   4u
#define RESET_MARK   0x00200000u
#define RESET_MAGIC  0x52534554u /* "RSET" */
#define TICKS_IRQ    (1ull << 32)

struct idt_gate {
    uint16_t off_lo;
    uint16_t sel;
    uint8_t zero;
    uint8_t type;
    uint16_t off_hi;
} __attribute__((packed));

static struct idt_gate idt[256];
static volatile uint32_t serial_irqs, virtio_irqs, pit_irqs, stray_irqs;
static uint32_t virtio_base;

void irq_stub_fault(void);
void irq_stub_stray(void);
void irq_stub_serial(void);
void irq_stub_virtio(void);
void irq_stub_pit(void);

/* 32 exception stubs, 8 bytes apart, each pushing its vector. */
__asm__(".text\n"
        ".balign 8\n.globl irq_stub_fault\nirq_stub_fault:\n"
        ".set vec, 0\n.rept 32\n  .balign 8\n  pushl $vec\n  jmp irq_fault_common\n  .set vec, vec + 1\n.endr\n"
        "irq_fault_common:\n  cld\n  call irq_fault\n"
        ".globl irq_stub_stray\nirq_stub_stray:\n  pushal\n  cld\n  call irq_stray\n  jmp irq_return\n"
        ".globl irq_stub_serial\nirq_stub_serial:\n  pushal\n  cld\n  call irq_serial\n  jmp irq_return\n"
        ".globl irq_stub_virtio\nirq_stub_virtio:\n  pushal\n  cld\n  call irq_virtio\n  jmp irq_return\n"
        ".globl irq_stub_pit\nirq_stub_pit:\n  pushal\n  cld\n  call irq_pit\n  jmp irq_return\n"
        /* iret without iret (same privilege, same CS): PVM hosts cannot
         * emulate iret for this guest (QEMU stops there too). EFLAGS back
         * (IF included), then EIP, dropping CS and EFLAGS. */
        "irq_return:\n  popal\n  pushl 8(%esp)\n  popfl\n  ret $8\n");

static void lapic_eoi(void)
{
    mmio_write32(LAPIC_BASE + LAPIC_EOI, 0);
}

__attribute__((used, noreturn)) void irq_fault(uint32_t vector, uint32_t word1, uint32_t word2)
{
    fw_printf("irq: CPU exception %u (stack %x %x)\nresult: FAIL (1 problem(s))\n", vector, word1,
              word2);
    fw_exit(FW_EXIT_FAIL);
}

__attribute__((used)) void irq_stray(void)
{
    stray_irqs++;
    lapic_eoi();
}

__attribute__((used)) void irq_serial(void)
{
    (void)inb(0x3fa); /* IIR: reading it clears the THR-empty condition */
    serial_irqs++;
    outb(0x3f9, 0);   /* one is enough */
    lapic_eoi();
}

__attribute__((used)) void irq_virtio(void)
{
    uint32_t isr = mmio_read32(virtio_base + VMMIO_INT_STATUS);
    if (isr)
        mmio_write32(virtio_base + VMMIO_INT_ACK, isr);
    virtio_irqs++;
    lapic_eoi();
}

__attribute__((used)) void irq_pit(void)
{
    pit_irqs++;
    lapic_eoi();
}

static void set_gate(unsigned v, void (*fn)(void))
{
    uint32_t a = (uint32_t)fn;
    idt[v].off_lo = (uint16_t)a;
    idt[v].sel = 0x08;
    idt[v].zero = 0;
    idt[v].type = 0x8e; /* present, 32-bit interrupt gate */
    idt[v].off_hi = (uint16_t)(a >> 16);
}

static void load_idt(void)
{
    struct {
        uint16_t limit;
        uint32_t base;
    } __attribute__((packed)) ptr = {sizeof(idt) - 1, (uint32_t)idt};
    for (unsigned v = 0; v < 256; v++)
        set_gate(v, v < 32 ? (void (*)(void))((uint32_t)irq_stub_fault + 8 * v) : irq_stub_stray);
    set_gate(VEC_SERIAL, irq_stub_serial);
    set_gate(VEC_VIRTIO, irq_stub_virtio);
    set_gate(VEC_PIT, irq_stub_pit);
    __asm__ volatile("lidt %0" : : "m"(ptr));
}

static uint32_t ioapic_read(uint32_t reg)
{
    mmio_write32(IOAPIC_BASE, reg);
    return mmio_read32(IOAPIC_BASE + 0x10);
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
    mmio_write32(IOAPIC_BASE, reg);
    mmio_write32(IOAPIC_BASE + 0x10, v);
}

static void route(uint32_t pin, uint32_t low)
{
    ioapic_write(0x11 + 2 * pin, 0); /* destination: APIC id 0 */
    ioapic_write(0x10 + 2 * pin, low);
}

/* Power-on state: every pin masked with vector 0, IOAPIC id 0, local APIC
 * software-disabled (SVR 0xff). Prints what it saw; 0 if as expected. */
static int check_power_on(const char *when)
{
    uint32_t masked = 0, clean = 0;
    for (uint32_t pin = 0; pin < IOAPIC_PINS; pin++) {
        uint32_t lo = ioapic_read(0x10 + 2 * pin);
        uint32_t hi = ioapic_read(0x11 + 2 * pin);
        masked += (lo & (1u << 16)) != 0;
        clean += (lo & ~(1u << 16)) == 0 && hi == 0;
    }
    uint32_t id = ioapic_read(0);
    uint32_t svr = mmio_read32(LAPIC_BASE + LAPIC_SVR);
    fw_printf("irq: %s: ioapic id %u, %u/%u pins masked, %u/%u clear; lapic svr %x\n", when,
              id >> 24, masked, IOAPIC_PINS, clean, IOAPIC_PINS, svr);
    return (id == 0 && masked == IOAPIC_PINS && clean == IOAPIC_PINS && svr == 0xff) ? 0 : -1;
}

static int wait_for(volatile uint32_t *counter, const char *what)
{
    uint64_t start = rdtsc();
    __asm__ volatile("sti");
    while (*counter == 0 && rdtsc() - start < TICKS_IRQ)
        cpu_relax();
    __asm__ volatile("cli");
    if (*counter == 0) {
        fw_printf("irq: %s: FAIL: no interrupt\n", what);
        return -1;
    }
    fw_printf("irq: %s: interrupt taken\n", what);
    return 0;
}

static int serial_interrupt(void)
{
    route(SERIAL_PIN, VEC_SERIAL); /* edge, fixed, physical, unmasked */
    outb(0x3fc, 0x08);             /* MCR OUT2: the UART's interrupt output on */
    outb(0x3f9, 0x02);             /* IER: THR empty */
    return wait_for(&serial_irqs, "serial");
}

static int virtio_interrupt(void)
{
    struct blkdev dev;
    int problems = 0;
    if (!virtio_scan(&dev, &problems) || blk_init(&dev, 1) != 0) {
        fw_printf("irq: virtio: FAIL: no usable virtio-blk device\n");
        return -1;
    }
    virtio_base = dev.base;
    /* The machine's line for slot s is GSI 5 + s % 19; level-triggered. */
    route(5 + dev.slot % 19, VEC_VIRTIO | (1u << 15));
    volatile struct virtq_avail *avail = PHYS(volatile struct virtq_avail, AVAIL_ADDR);
    avail->flags = 0; /* interrupts wanted */
    struct completion c;
    uint8_t status;
    __asm__ volatile("sti");
    blk_rw(&dev, VIRTIO_BLK_T_IN, 0, BUF_A, 512, &c, &status);
    __asm__ volatile("cli");
    if (c.outcome != WAIT_DONE || status != 0) {
        fw_printf("irq: virtio: FAIL: request %s, status %u\n", wait_outcome_name(c.outcome),
                  status);
        return -1;
    }
    return wait_for(&virtio_irqs, "virtio");
}

/* The i8254's channel 0 as a rate generator (~3.4 ms), its IRQ 0 routed
 * to the local APIC (KVM's default routing puts GSI 0 on IOAPIC pin 0,
 * QEMU's on pin 2: both are routed). Without a PIT the ports read 0xff. */
static int pit_interrupt(void)
{
    outb(0x43, 0x34);
    outb(0x40, 0x00);
    outb(0x40, 0x10);
    outb(0x43, 0x00); /* latch channel 0 */
    uint8_t lo = inb(0x40), hi = inb(0x40);
    if (lo == 0xff && hi == 0xff) {
        fw_printf("irq: pit: absent\n");
        return 0;
    }
    route(0, VEC_PIT);
    route(2, VEC_PIT);
    int r = wait_for(&pit_irqs, "pit");
    outb(0x43, 0x30); /* one-shot, count 0: stop the rate generator */
    outb(0x40, 0);
    outb(0x40, 0);
    ioapic_write(0x10, 1u << 16);
    ioapic_write(0x14, 1u << 16);
    return r;
}

__attribute__((noreturn)) void run_irq(void)
{
    volatile uint32_t *mark = PHYS(volatile uint32_t, RESET_MARK);
    int failures = 0;
    if (*mark == RESET_MAGIC) {
        *mark = 0;
        failures += check_power_on("after reset") != 0;
    } else {
        failures += check_power_on("power-on") != 0;
        load_idt();
        /* Mask the 8259s, as an OS that uses the IOAPIC does (KVM's reset
         * leaves the BSP's LINT0 in ExtINT mode, the PIC unmasked). */
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
        mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x1ff); /* enable, spurious 0xff */
        failures += serial_interrupt() != 0;
        failures += virtio_interrupt() != 0;
        failures += pit_interrupt() != 0;
        if (stray_irqs)
            fw_printf("irq: %u stray interrupt(s)\n", stray_irqs);
        if (!failures) {
            /* Leave both controllers programmed and wait for a reset. */
            ioapic_write(0, 5u << 24);
            *mark = RESET_MAGIC;
            fw_printf("irq: programmed, waiting for reset\n");
            for (;;)
                cpu_relax();
        }
    }
    if (failures) {
        fw_printf("result: FAIL (%d problem(s))\n", failures);
        fw_exit(FW_EXIT_FAIL);
    }
    fw_printf("result: PASS\n");
    fw_exit(FW_EXIT_PASS);
}
