/*
 * mcuformer firmware core, the same on every platform: answer framed requests from the host
 * (mcuformer_protocol.h) by running the compiled model (mcuformer_model.h) over the link a
 * platform provides (platform.h). Only the inference window is measured.
 */
#include <stdint.h>

#include "crc32.h"
#include "mcuformer_model.h"
#include "mcuformer_protocol.h"
#include "platform.h"

#ifndef MCUFORMER_KERNEL_CALLS /* a model header without the per-op profile */
#define MCUFORMER_KERNEL_CALLS 0
#endif

/* Requests other than an inference carry at most this many payload bytes; an inference's
 * payload is read straight into the model's input tensor (mcuformer_input()). */
#define SMALL_PAYLOAD_BYTES 16u

static uint8_t rx_small[SMALL_PAYLOAD_BYTES] __attribute__((aligned(16)));

static void put_u32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void read_or_exit(void* buf, uint32_t len) {
  if (platform_read(buf, len) != 0) platform_exit(MCUF_EXIT_LINK_CLOSED);
}

static void write_or_exit(const void* buf, uint32_t len) {
  if (platform_write(buf, len) != 0) platform_exit(MCUF_EXIT_LINK_CLOSED);
}

/* Send one frame whose payload is the concatenation of two pieces (either may be empty). */
static void send_frame(uint8_t type, uint32_t seq, const uint8_t* a, uint32_t a_len,
                       const uint8_t* b, uint32_t b_len) {
  static const uint8_t magic[4] = {'M', 'C', 'U', 'F'};
  uint8_t header[MCUF_HEADER_BYTES];
  uint8_t trailer[MCUF_CRC_BYTES];
  for (uint32_t i = 0; i < 4u; i++) header[i] = magic[i];
  header[4] = (uint8_t)MCUF_VERSION;
  header[5] = type;
  header[6] = 0;
  header[7] = 0;
  put_u32(header + 8, seq);
  put_u32(header + 12, a_len + b_len);
  uint32_t crc = crc32_update(0, header, sizeof header);
  crc = crc32_update(crc, a, a_len);
  crc = crc32_update(crc, b, b_len);
  put_u32(trailer, crc);
  write_or_exit(header, sizeof header);
  if (a_len) write_or_exit(a, a_len);
  if (b_len) write_or_exit(b, b_len);
  write_or_exit(trailer, sizeof trailer);
}

static void send_error(uint32_t seq, uint32_t code) {
  uint8_t payload[4];
  put_u32(payload, code);
  send_frame(MCUF_ERROR, seq, payload, sizeof payload, 0, 0);
}

/* Read bytes until the magic is seen, then the rest of the header: resynchronises the link. */
static void read_header(uint8_t header[MCUF_HEADER_BYTES]) {
  static const uint8_t magic[4] = {'M', 'C', 'U', 'F'};
  uint32_t matched = 0;
  while (matched < 4u) {
    uint8_t byte;
    read_or_exit(&byte, 1);
    if (byte == magic[matched]) {
      header[matched++] = byte;
    } else {
      matched = byte == magic[0] ? 1u : 0u;
      header[0] = magic[0];
    }
  }
  read_or_exit(header + 4, MCUF_HEADER_BYTES - 4u);
}

static void serve_info(uint32_t seq) {
  uint8_t payload[24];
  put_u32(payload + 0, MCUF_VERSION);
  put_u32(payload + 4, MCUFORMER_INPUT_BYTES);
  put_u32(payload + 8, MCUFORMER_OUTPUT_BYTES);
  put_u32(payload + 12, MCUFORMER_ARENA_BYTES);
  put_u32(payload + 16, platform_stack_size());
  put_u32(payload + 20, platform_counter_kind());
  send_frame(MCUF_REQ_INFO | MCUF_REPLY_FLAG, seq, payload, sizeof payload, 0, 0);
}

/* The counter after each kernel call of the last inference (the driver calls the mark). */
static uint64_t profile[MCUFORMER_KERNEL_CALLS > 0 ? MCUFORMER_KERNEL_CALLS : 1];

void mcuformer_profile_mark(uint32_t call) {
  if (call < MCUFORMER_KERNEL_CALLS) profile[call] = platform_counter_stop();
}

static void serve_profile(uint32_t seq) {
  uint8_t payload[8];
  uint8_t all[MCUFORMER_KERNEL_CALLS > 0 ? 8u * MCUFORMER_KERNEL_CALLS : 1];
  for (uint32_t i = 0; i < MCUFORMER_KERNEL_CALLS; i++) {
    put_u32(payload, (uint32_t)profile[i]);
    put_u32(payload + 4, (uint32_t)(profile[i] >> 32));
    for (uint32_t j = 0; j < 8u; j++) all[8u * i + j] = payload[j];
  }
  send_frame(MCUF_REQ_PROFILE | MCUF_REPLY_FLAG, seq, all, 8u * MCUFORMER_KERNEL_CALLS, 0, 0);
}

static void serve_infer(uint32_t seq) {
  uint8_t head[16];
  platform_counter_start();
  int32_t status = mcuformer_invoke();
  uint64_t count = platform_counter_stop();
  put_u32(head + 0, (uint32_t)status);
  put_u32(head + 4, platform_stack_used());
  put_u32(head + 8, (uint32_t)count);
  put_u32(head + 12, (uint32_t)(count >> 32));
  send_frame(MCUF_REQ_INFER | MCUF_REPLY_FLAG, seq, head, sizeof head,
             (const uint8_t*)mcuformer_output(), MCUFORMER_OUTPUT_BYTES);
}

int main(void) {
  platform_init();
  for (;;) {
    uint8_t header[MCUF_HEADER_BYTES];
    uint8_t trailer[MCUF_CRC_BYTES];
    read_header(header);
    uint8_t type = header[5];
    uint32_t seq = get_u32(header + 8);
    uint32_t len = get_u32(header + 12);
    uint8_t* rx = rx_small;
    if (type == MCUF_REQ_INFER && len == MCUFORMER_INPUT_BYTES) {
      rx = (uint8_t*)mcuformer_input();
    } else if (len > SMALL_PAYLOAD_BYTES) {
      /* Cannot be a valid request: answer and resynchronise on the next magic. */
      send_error(seq, MCUF_ERR_LENGTH);
      continue;
    }
    read_or_exit(rx, len);
    read_or_exit(trailer, sizeof trailer);
    uint32_t crc = crc32_update(crc32_update(0, header, sizeof header), rx, len);
    if (crc != get_u32(trailer)) {
      send_error(seq, MCUF_ERR_CRC);
    } else if (header[4] != MCUF_VERSION) {
      send_error(seq, MCUF_ERR_VERSION);
    } else if (type == MCUF_REQ_INFO && len == 0) {
      serve_info(seq);
    } else if (type == MCUF_REQ_INFER && len == MCUFORMER_INPUT_BYTES) {
      serve_infer(seq);
    } else if (type == MCUF_REQ_PROFILE && len == 0) {
      serve_profile(seq);
    } else if (type == MCUF_REQ_EXIT && len == 0) {
      send_frame(MCUF_REQ_EXIT | MCUF_REPLY_FLAG, seq, 0, 0, 0, 0);
      platform_exit(MCUF_EXIT_OK);
    } else if (type == MCUF_REQ_INFO || type == MCUF_REQ_INFER || type == MCUF_REQ_EXIT ||
               type == MCUF_REQ_PROFILE) {
      send_error(seq, MCUF_ERR_LENGTH);
    } else {
      send_error(seq, MCUF_ERR_TYPE);
    }
  }
}
