/*
 * Wire protocol between the host and the mcuformer firmware; the same on every platform
 * (QEMU semihosting pipes, host stdin/stdout, a board's UART). Mirrored by
 * tvm_mcuformer/micro/protocol.py, which a test keeps in sync with this file.
 *
 * Frame (all integers little-endian):
 *   offset 0  magic "MCUF" (4 bytes)
 *   offset 4  protocol version (u8)
 *   offset 5  frame type (u8)
 *   offset 6  reserved, 0 (u16)
 *   offset 8  sequence number (u32); a reply echoes its request's
 *   offset 12 payload length (u32)
 *   offset 16 payload
 *   then      CRC-32 (IEEE 802.3, as zlib.crc32) of header and payload (u32)
 *
 * Requests and their replies (reply type = request type | 0x80):
 *   INFO  (empty)          -> version, input bytes, output bytes, arena bytes, stack bytes,
 *                             counter kind (six u32)
 *   INFER (input tensor)   -> model status (i32), stack high-water bytes (u32),
 *                             counter value of the inference (u64), output tensor
 *   EXIT  (empty)          -> (empty), then the firmware exits with MCUF_EXIT_OK
 * A request the firmware cannot accept gets an ERROR frame with a u32 MCUF_ERR_* code.
 */
#ifndef MCUFORMER_PROTOCOL_H
#define MCUFORMER_PROTOCOL_H

#define MCUF_VERSION 1u
#define MCUF_HEADER_BYTES 16u
#define MCUF_CRC_BYTES 4u

#define MCUF_REQ_INFO 0x01u
#define MCUF_REQ_INFER 0x02u
#define MCUF_REQ_EXIT 0x03u
#define MCUF_REQ_PROFILE 0x04u /* reply: u64 count after each kernel call of the last INFER */
#define MCUF_REPLY_FLAG 0x80u
#define MCUF_ERROR 0x7Fu

#define MCUF_ERR_CRC 1u     /* CRC of the request did not match */
#define MCUF_ERR_LENGTH 2u  /* payload length wrong for the request type */
#define MCUF_ERR_TYPE 3u    /* unknown request type */
#define MCUF_ERR_VERSION 4u /* request sent with another protocol version */

#define MCUF_COUNTER_NONE 0u         /* no latency counter (host build) */
#define MCUF_COUNTER_INSTRUCTIONS 1u /* retired instructions (QEMU -icount) */
#define MCUF_COUNTER_CYCLES 2u       /* CPU cycles (a real board's cycle counter) */

#define MCUF_EXIT_OK 0          /* EXIT request served */
#define MCUF_EXIT_IO 1          /* the platform could not open its link to the host */
#define MCUF_EXIT_LINK_CLOSED 2 /* the host closed the link without an EXIT request */
#define MCUF_EXIT_FAULT 3       /* CPU fault (HardFault, BusFault, ...) */

#endif
