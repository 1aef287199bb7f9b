/*
 * Platform for the build machine (the host reference runner): the link is stdin/stdout,
 * there is no latency counter and the stack is not measured.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "mcuformer_protocol.h"
#include "platform.h"

void platform_init(void) {}

int platform_read(void* buf, uint32_t len) {
  uint8_t* p = buf;
  while (len) {
    ssize_t got = read(STDIN_FILENO, p, len);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return 1;
    p += got;
    len -= (uint32_t)got;
  }
  return 0;
}

int platform_write(const void* buf, uint32_t len) {
  const uint8_t* p = buf;
  while (len) {
    ssize_t put = write(STDOUT_FILENO, p, len);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return 1;
    p += put;
    len -= (uint32_t)put;
  }
  return 0;
}

uint32_t platform_counter_kind(void) { return MCUF_COUNTER_NONE; }

void platform_counter_start(void) {}

uint64_t platform_counter_stop(void) { return 0; }

uint32_t platform_stack_used(void) { return 0; }

uint32_t platform_stack_size(void) { return 0; }

void platform_exit(int code) { exit(code); }
