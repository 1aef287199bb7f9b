/*
 * Platform for Zephyr boards: the link is the UART chosen as "mcuformer,uart" in the board
 * overlay (polling API, same framing as every platform), the counter is CPU cycles from the
 * timing API (DWT cycle counter on Cortex-M), the stack high-water is the main thread's
 * (CONFIG_INIT_STACKS paints it), and EXIT reboots the board.
 */
#include <stdint.h>
#include <zephyr/device.h>
#include <zephyr/drivers/uart.h>
#include <zephyr/kernel.h>
#include <zephyr/sys/reboot.h>
#include <zephyr/timing/timing.h>

#include "mcuformer_protocol.h"
#include "platform.h"

static const struct device* const link_uart = DEVICE_DT_GET(DT_CHOSEN(mcuformer_uart));
static timing_t counter_start_value;

void platform_init(void) {
  if (!device_is_ready(link_uart)) platform_exit(MCUF_EXIT_IO);
  timing_init();
  timing_start();
}

int platform_read(void* buf, uint32_t len) {
  uint8_t* p = buf;
  for (uint32_t i = 0; i < len; i++) {
    while (uart_poll_in(link_uart, &p[i]) != 0) k_yield();
  }
  return 0;
}

int platform_write(const void* buf, uint32_t len) {
  const uint8_t* p = buf;
  for (uint32_t i = 0; i < len; i++) uart_poll_out(link_uart, p[i]);
  return 0;
}

uint32_t platform_counter_kind(void) { return MCUF_COUNTER_CYCLES; }

void platform_counter_start(void) { counter_start_value = timing_counter_get(); }

uint64_t platform_counter_stop(void) {
  timing_t now = timing_counter_get();
  return timing_cycles_get(&counter_start_value, &now);
}

uint32_t platform_stack_used(void) {
  size_t unused = 0;
  if (k_thread_stack_space_get(k_current_get(), &unused) != 0) return 0;
  return (uint32_t)(CONFIG_MAIN_STACK_SIZE - unused);
}

uint32_t platform_stack_size(void) { return CONFIG_MAIN_STACK_SIZE; }

void platform_exit(int code) {
  (void)code;
  sys_reboot(SYS_REBOOT_COLD);
  for (;;) k_sleep(K_FOREVER);
}
