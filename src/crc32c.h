/* CRC32C (Castagnoli), as used by GCS and iSCSI (RFC 3720). */
#ifndef SLUICE_CRC32C_H
#define SLUICE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC32C: start with crc = 0; sl__crc32c_update(0, "123456789", 9) == 0xE3069283. Uses the SSE4.2
 * crc32 instruction when the CPU has it (checked once), a portable slicing-by-8 table otherwise. Thread-safe. */
uint32_t sl__crc32c_update(uint32_t crc, const void *buf, size_t len);
/* The portable implementation alone (for tests comparing both paths). */
uint32_t sl__crc32c_update_portable(uint32_t crc, const void *buf, size_t len);

#endif
