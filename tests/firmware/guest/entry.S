/*
 * Reset vector and mode switch for the openhook guest test firmware.
 *
 * After reset the CPU is in real mode with CS.base = 0xffff0000 and
 * IP = 0xfff0, i.e. it fetches from 0xfffffff0 (the last 16 bytes of the
 * image). We jump back to start16, load a flat GDT, set CR0.PE, far-jump
 * into 32-bit code, set up flat data segments and a stack in RAM, clear
 * .bss and call fw_main(). No IDT and no paging: any fault shows up in the
 * hypervisor as a failed guest (KVM emulation error or triple fault).
 */

#define CODE_SEG  0x08
#define DATA_SEG  0x10
#define STACK_TOP 0x00090000

    .section .text16, "ax"
    .code16
    .globl start16
start16:
    cli
    cld
    /* gdt_ptr lies in the last 64 KiB, addressed through CS (base 0xffff0000);
       the 16-bit displacement is the low half of its linear address. */
    lgdtl %cs:gdt_ptr
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $CODE_SEG, $start32

    .balign 8
gdt:
    .quad 0x0000000000000000        /* null */
    .quad 0x00cf9b000000ffff        /* 0x08: code, base 0, 4 GiB, 32-bit, accessed */
    .quad 0x00cf93000000ffff        /* 0x10: data, base 0, 4 GiB, accessed */
gdt_end:

gdt_ptr:
    .word gdt_end - gdt - 1
    .long gdt

    .code32
start32:
    movw $DATA_SEG, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl $STACK_TOP, %esp
    /* Clear .bss (RAM is zero on a fresh machine, but do not rely on it). */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb
    call fw_main
    /* fw_main does not return; halt for good if it ever does. */
    .globl fw_halt
fw_halt:
    cli
    hlt
    jmp fw_halt

    .section .reset, "ax"
    .code16
    .globl reset_vector
reset_vector:
    jmp start16
    .fill 16 - (. - reset_vector), 1, 0xf4  /* hlt padding up to 4 GiB */
