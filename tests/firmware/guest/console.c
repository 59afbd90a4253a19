/*
 * Console on the 8250 UART at I/O port 0x3f8, polled (no interrupts), and
 * the isa-debug-exit exit path. Output is plain "\n"-terminated lines.
 */
#include "fw.h"

#define COM1 0x3f8
#define UART_THR 0
#define UART_IER 1
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_THRE 0x20

void con_init(void)
{
    outb(COM1 + UART_IER, 0x00); /* no interrupts */
    outb(COM1 + UART_LCR, 0x03); /* 8N1, DLAB off; keep the default divisor */
    outb(COM1 + UART_MCR, 0x03); /* DTR | RTS, no loopback */
}

void con_putc(char c)
{
    /* Wait for THRE, but never for long: a UART that never drains must
     * not hang the firmware. */
    uint64_t start = rdtsc();
    while (!(inb(COM1 + UART_LSR) & LSR_THRE)) {
        if (rdtsc() - start > TICKS_UART)
            break;
        cpu_relax();
    }
    outb(COM1 + UART_THR, (uint8_t)c);
}

static void put_str(const char *s)
{
    while (*s)
        con_putc(*s++);
}

static void put_u64(uint64_t v, int width, char pad)
{
    /* Decimal without 64-bit division (no libgcc): subtract powers of ten. */
    static const uint64_t pow10[] = {
        10000000000000000000ull, 1000000000000000000ull, 100000000000000000ull,
        10000000000000000ull, 1000000000000000ull, 100000000000000ull,
        10000000000000ull, 1000000000000ull, 100000000000ull, 10000000000ull,
        1000000000ull, 100000000ull, 10000000ull, 1000000ull, 100000ull,
        10000ull, 1000ull, 100ull, 10ull, 1ull,
    };
    char buf[21];
    int n = 0, started = 0;
    for (unsigned i = 0; i < sizeof(pow10) / sizeof(pow10[0]); i++) {
        int digit = 0;
        while (v >= pow10[i]) {
            v -= pow10[i];
            digit++;
        }
        if (digit || started || pow10[i] == 1) {
            buf[n++] = (char)('0' + digit);
            started = 1;
        }
    }
    for (int i = n; i < width; i++)
        con_putc(pad);
    for (int i = 0; i < n; i++)
        con_putc(buf[i]);
}

static void put_hex(uint64_t v, int width)
{
    static const char digits[] = "0123456789abcdef";
    char buf[16];
    int n = 0;
    do {
        buf[n++] = digits[v & 0xf];
        v >>= 4;
    } while (v);
    for (int i = n; i < width; i++)
        con_putc('0');
    while (n)
        con_putc(buf[--n]);
}

/* A tiny printf: %s %c %d %u %x with optional zero-padded width, and the
 * 64-bit forms %llu %llx. */
void fw_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            con_putc(*p);
            continue;
        }
        p++;
        char pad = ' ';
        int width = 0, longlong = 0;
        if (*p == '0') {
            pad = '0';
            p++;
        }
        while (*p >= '0' && *p <= '9')
            width = width * 10 + (*p++ - '0');
        if (p[0] == 'l' && p[1] == 'l') {
            longlong = 1;
            p += 2;
        }
        switch (*p) {
        case 's':
            put_str(va_arg(ap, const char *));
            break;
        case 'c':
            con_putc((char)va_arg(ap, int));
            break;
        case 'd': {
            int v = va_arg(ap, int);
            if (v < 0) {
                con_putc('-');
                put_u64((uint64_t)(-(int64_t)v), width, pad);
            } else {
                put_u64((uint64_t)v, width, pad);
            }
            break;
        }
        case 'u':
            put_u64(longlong ? va_arg(ap, uint64_t) : va_arg(ap, uint32_t), width, pad);
            break;
        case 'x':
            put_hex(longlong ? va_arg(ap, uint64_t) : va_arg(ap, uint32_t), width);
            break;
        case '%':
            con_putc('%');
            break;
        default:
            con_putc('?');
            if (!*p)
                p--;
            break;
        }
    }
    va_end(ap);
}

void fw_exit(uint32_t value)
{
    outl(DEBUG_EXIT_PORT, value);
    /* Still running: no isa-debug-exit at 0xf4. Say so and halt for good. */
    fw_printf("openhook-fw: isa-debug-exit did not stop the machine; halting\n");
    for (;;)
        __asm__ volatile("cli; hlt");
}
