/*
 * Arm semihosting calls (BKPT 0xAB on M-profile) used by the QEMU platform. QEMU must run
 * with -semihosting-config enable=on,target=native; file names are relative to its cwd.
 */
#ifndef MCUFORMER_SEMIHOSTING_H
#define MCUFORMER_SEMIHOSTING_H

#include <stdint.h>

#define SYS_OPEN 0x01u
#define SYS_WRITE0 0x04u
#define SYS_WRITE 0x05u
#define SYS_READ 0x06u
#define SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

#define SEMIHOST_MODE_RB 1u /* fopen "rb" */
#define SEMIHOST_MODE_WB 5u /* fopen "wb" */

/* Pattern painted over the free stack at reset (see startup.c). */
#define STACK_PAINT 0xDEADBEEFu

static inline int32_t semihost_call(uint32_t op, const void* arg) {
  register uint32_t r0 __asm("r0") = op;
  register const void* r1 __asm("r1") = arg;
  __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return (int32_t)r0;
}

static inline void semihost_write0(const char* text) { semihost_call(SYS_WRITE0, text); }

#endif
