/* CRC32C (Castagnoli), as used by GCS and iSCSI (RFC 3720). */
#ifndef SLUICE_CRC32C_H
#define SLUICE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC32C: start with crc = 0; sl__crc32c_update(0, "123456789", 9) == 0xE3069283. Uses the SSE4.2
 * crc32 instruction when the CPU has it (checked once), a portable slicing-by-8 table otherwise. Thread-safe. */
uint32_t sl__crc32c_update(uint32_t crc, const void *buf, size_t len);
/* The CRC32C of A followed by B, from the CRC32C of each and B's length (slices of one object checked as a whole
 * without reading it again). O(log len_b), no table. */
uint32_t sl__crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
/* The portable implementation alone (for tests comparing both paths). */
uint32_t sl__crc32c_update_portable(uint32_t crc, const void *buf, size_t len);

#endif
