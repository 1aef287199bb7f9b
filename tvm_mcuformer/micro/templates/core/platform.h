/*
 * What the platform-independent core (main.c) needs from a platform. One implementation
 * per target: baremetal/platform_qemu.c (Cortex-M on QEMU), host/platform_host.c (the build
 * machine), zephyr_project/src/platform_zephyr.c (a Zephyr board).
 */
#ifndef MCUFORMER_PLATFORM_H
#define MCUFORMER_PLATFORM_H

#include <stdint.h>

/* Bring up the link to the host and the counters; exits with MCUF_EXIT_IO on failure. */
void platform_init(void);

/* Read exactly len bytes from the host. 0 on success, nonzero once the link is closed. */
int platform_read(void* buf, uint32_t len);

/* Write exactly len bytes to the host. 0 on success, nonzero once the link is closed. */
int platform_write(const void* buf, uint32_t len);

/* Which MCUF_COUNTER_* the start/stop pair below measures. */
uint32_t platform_counter_kind(void);

/* Start the latency counter. */
void platform_counter_start(void);

/* Counter value (instructions or cycles) since the last start; 0 if none. */
uint64_t platform_counter_stop(void);

/* Deepest stack use so far in bytes (painted high-water); 0 if not measured. */
uint32_t platform_stack_used(void);

/* Size of the stack reserved for the core and the model in bytes; 0 if unknown. */
uint32_t platform_stack_size(void);

/* End the session with an MCUF_EXIT_* code. */
void platform_exit(int code) __attribute__((noreturn));

#endif
