/*
 * Cortex-M startup for the QEMU mps2 boards: vector table, reset handler (copy .data, zero
 * .bss, enable the FPU for the hard-float ABI, guard and paint the stack) and a fault handler
 * that reports the fault over semihosting and exits with MCUF_EXIT_FAULT. The symbols come
 * from the generated linker.ld, which puts the stack at the bottom of SRAM (0x20000000).
 *
 * Stack guard: QEMU's mps2 boards map 0x01010000-0x1FFFFFFF as "reserved" (reads 0, writes
 * ignored, no fault), so an overflow would go unnoticed; an MPU region makes the 256 MiB
 * below SRAM no-access, so any overflow, even a large frame jumping far below the stack,
 * faults.
 */
#include <stdint.h>

#include "mcuformer_protocol.h"
#include "platform.h"
#include "semihosting.h"

extern uint32_t __stack_limit[], __stack_top[];
extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);

#define CPACR (*(volatile uint32_t*)0xE000ED88u)
#define CFSR (*(volatile uint32_t*)0xE000ED28u)
#define HFSR (*(volatile uint32_t*)0xE000ED2Cu)
#define MMFAR (*(volatile uint32_t*)0xE000ED34u)
#define BFAR (*(volatile uint32_t*)0xE000ED38u)
#define CFSR_MSTKERR (1u << 4)    /* MemManage fault while stacking for an exception */
#define CFSR_MMARVALID (1u << 7)  /* MMFAR holds the faulting address */
#define MPU_CTRL (*(volatile uint32_t*)0xE000ED94u)
#define MPU_RNR (*(volatile uint32_t*)0xE000ED98u)
#define MPU_RBAR (*(volatile uint32_t*)0xE000ED9Cu)
#define MPU_RASR (*(volatile uint32_t*)0xE000EDA0u)

#define GUARD_BASE 0x10000000u /* 256 MiB right below SRAM, aligned to its size */
#define GUARD_SIZE_LOG2 28u
#define MPU_RASR_XN (1u << 28)          /* AP = 000: no access at all */
#define MPU_CTRL_PRIVDEFENA (1u << 2)   /* default memory map elsewhere */

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))__stack_top,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0,
    0,
    0,
    0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};

void Reset_Handler(void) {
  for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;) *dst++ = *src++;
  for (uint32_t* dst = __bss_start; dst < __bss_end;) *dst++ = 0;
#if defined(__ARM_FP)
  CPACR |= 0xFu << 20; /* full access to CP10 and CP11 */
  __asm volatile("dsb\n\tisb" ::: "memory");
#endif
  MPU_RNR = 0;
  MPU_RBAR = GUARD_BASE;
  MPU_RASR = MPU_RASR_XN | ((GUARD_SIZE_LOG2 - 1u) << 1) | 1u;
  MPU_CTRL = MPU_CTRL_PRIVDEFENA | 1u;
  __asm volatile("dsb\n\tisb" ::: "memory");
  uint32_t* sp;
  __asm volatile("mov %0, sp" : "=r"(sp));
  /* Paint up to 64 bytes below this frame; the frame itself counts as used. */
  for (uint32_t* p = __stack_limit; p < sp - 16; p++) *p = STACK_PAINT;
  platform_exit(main());
}

/* Append text, then the hex digits of v if hex is nonzero; return the new end of msg. */
static char* append(char* out, const char* text, uint32_t v, int hex) {
  while (*text) *out++ = *text++;
  for (int shift = 28; hex && shift >= 0; shift -= 4) {
    uint32_t nibble = (v >> shift) & 15u;
    *out++ = (char)(nibble < 10u ? '0' + nibble : 'a' + nibble - 10u);
  }
  return out;
}

/* Runs on a fresh stack (the faulting one may be exhausted). `frame` is the stack pointer
 * at the fault (MSP or PSP, per EXC_RETURN): the hardware stacked r0-r3, r12, LR, PC, xPSR
 * there, unless stacking itself faulted (MSTKERR) or the frame is outside the stack. */
__attribute__((used, noreturn)) static void fault_report(uint32_t ipsr, const uint32_t* frame,
                                                         uint32_t exc_return) {
  char msg[320];
  char* p = msg;
  uint32_t cfsr = CFSR;
  uint32_t mmfar = MMFAR;
  int in_guard = (cfsr & CFSR_MMARVALID) && mmfar >= GUARD_BASE &&
                 mmfar < (uint32_t)(uintptr_t)__stack_limit;
  if ((cfsr & CFSR_MSTKERR) || in_guard) {
    p = append(p, "mcuformer: stack overflow (access below the stack): recreate the project "
               "with a larger --stack-size\n", 0, 0);
  }
  p = append(p, "mcuformer: CPU fault, exception 0x", ipsr & 0x1FFu, 1);
  p = append(p, " CFSR 0x", cfsr, 1);
  p = append(p, " HFSR 0x", HFSR, 1);
  uintptr_t at = (uintptr_t)frame;
  if (!(cfsr & CFSR_MSTKERR) && at >= (uintptr_t)__stack_limit &&
      at + 8u * sizeof(uint32_t) <= (uintptr_t)__stack_top) {
    p = append(p, " PC 0x", frame[6], 1);
    p = append(p, " LR 0x", frame[5], 1);
  } else {
    p = append(p, " PC unknown (no stacked frame)", 0, 0);
  }
  p = append(p, " EXC_RETURN 0x", exc_return, 1);
  p = append(p, " MMFAR 0x", mmfar, 1);
  p = append(p, " BFAR 0x", BFAR, 1);
  p = append(p, "\n", 0, 0);
  *p = 0;
  semihost_write0(msg);
  platform_exit(MCUF_EXIT_FAULT);
}

/* Reads the faulting frame's address before moving SP to a fresh stack. */
__attribute__((naked)) void Fault_Handler(void) {
  __asm volatile(
      "tst lr, #4\n\t"
      "ite eq\n\t"
      "mrseq r1, msp\n\t"
      "mrsne r1, psp\n\t"
      "mov r2, lr\n\t"
      "movw r0, #:lower16:__stack_top\n\t"
      "movt r0, #:upper16:__stack_top\n\t"
      "mov sp, r0\n\t"
      "mrs r0, ipsr\n\t"
      "b fault_report\n\t");
}
