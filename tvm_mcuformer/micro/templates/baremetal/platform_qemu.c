/*
 * Platform for the QEMU mps2 boards (mps2-an500 Cortex-M7, mps2-an386 Cortex-M4).
 *
 * Link: semihosting file I/O on two named pipes in QEMU's working directory, req.fifo
 * (host -> firmware) and resp.fifo (firmware -> host).
 *
 * Counter: retired instructions. QEMU runs with -icount shift=0, so one instruction takes
 * 1 ns of virtual time; CMSDK timer0 (0x40000000) counts down at the 25 MHz SYSCLK, i.e. one
 * tick per 40 instructions. Resolution: 40 instructions; a 32-bit timer wraps after
 * 2^32 ticks (1.7e11 instructions) per inference.
 *
 * Stack: the stack is painted with STACK_PAINT at reset; the high-water mark is the deepest
 * word no longer holding the pattern.
 */
#include <stdint.h>

#include "mcuformer_protocol.h"
#include "platform.h"
#include "semihosting.h"

#define TIMER0_CTRL (*(volatile uint32_t*)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t*)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t*)0x40000008u)
#define INSTRUCTIONS_PER_TICK 40u

extern uint32_t __stack_limit[], __stack_top[];

static int32_t request_fd = -1;
static int32_t reply_fd = -1;
static uint32_t counter_start_value;

static int32_t open_pipe(const char* name, uint32_t len, uint32_t mode) {
  const uint32_t args[3] = {(uint32_t)(uintptr_t)name, mode, len};
  return semihost_call(SYS_OPEN, args);
}

void platform_init(void) {
  TIMER0_CTRL = 0;
  TIMER0_RELOAD = 0xFFFFFFFFu;
  TIMER0_VALUE = 0xFFFFFFFFu;
  TIMER0_CTRL = 1; /* enable, no interrupt, internal clock */
  request_fd = open_pipe("req.fifo", 8, SEMIHOST_MODE_RB);
  reply_fd = open_pipe("resp.fifo", 9, SEMIHOST_MODE_WB);
  if (request_fd < 0 || reply_fd < 0) {
    semihost_write0("mcuformer: cannot open req.fifo/resp.fifo in QEMU's working directory\n");
    platform_exit(MCUF_EXIT_IO);
  }
}

/* SYS_READ/SYS_WRITE return the number of bytes NOT transferred; pipes may transfer less. */
static int transfer(uint32_t op, int32_t fd, uint8_t* buf, uint32_t len) {
  while (len) {
    const uint32_t args[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)buf, len};
    int32_t left = semihost_call(op, args);
    if (left < 0 || (uint32_t)left >= len) return 1;
    buf += len - (uint32_t)left;
    len = (uint32_t)left;
  }
  return 0;
}

int platform_read(void* buf, uint32_t len) { return transfer(SYS_READ, request_fd, buf, len); }

int platform_write(const void* buf, uint32_t len) {
  return transfer(SYS_WRITE, reply_fd, (uint8_t*)(uintptr_t)buf, len);
}

uint32_t platform_counter_kind(void) { return MCUF_COUNTER_INSTRUCTIONS; }

void platform_counter_start(void) { counter_start_value = TIMER0_VALUE; }

uint64_t platform_counter_stop(void) {
  uint32_t ticks = counter_start_value - TIMER0_VALUE; /* down counter, wraps modulo 2^32 */
  return (uint64_t)ticks * INSTRUCTIONS_PER_TICK;
}

uint32_t platform_stack_used(void) {
  const uint32_t* p = __stack_limit;
  while (p < __stack_top && *p == STACK_PAINT) p++;
  return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

uint32_t platform_stack_size(void) {
  return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)__stack_limit);
}

void platform_exit(int code) {
  const uint32_t args[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
  for (;;) semihost_call(SYS_EXIT_EXTENDED, args);
}
