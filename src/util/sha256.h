/* SHA-256 of short strings (chain ids of image layers), through libnettle.
 * Not for bulk data: the image helper verifies blobs with OpenSSL, which the
 * daemon does not link (docs/ARCHITECTURE.md, "Privilege separation and
 * memory"). */
#ifndef HP_UTIL_SHA256_H
#define HP_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define HP_SHA256_LEN 32

/* The digest of len bytes at data into out. */
void hp_sha256(const void *data, size_t len, uint8_t out[HP_SHA256_LEN]);

/* "sha256:" + 64 lower-case hex digits of the digest into out (72 bytes with
 * the terminating NUL). */
void hp_sha256_digest(const void *data, size_t len, char out[72]);

#endif
