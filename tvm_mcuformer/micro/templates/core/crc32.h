/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), identical to Python's zlib.crc32. */
#ifndef MCUFORMER_CRC32_H
#define MCUFORMER_CRC32_H

#include <stdint.h>

/* Continue a CRC: start with crc = 0, feed the data in pieces, the result is the CRC. */
uint32_t crc32_update(uint32_t crc, const void* data, uint32_t len);

#endif
