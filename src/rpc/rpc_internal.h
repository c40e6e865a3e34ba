/* Private helpers of the gRPC transport (src/rpc): pure functions on the gRPC
 * wire format, exposed for the unit tests (tests/unit/test_rpc_frame.c) and
 * for a client-side user (hpcri-ctl).  None of them allocates.
 */
#ifndef HP_RPC_RPC_INTERNAL_H
#define HP_RPC_RPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HP_RPC_PREFIX_LEN 5

/* Parse a grpc-timeout header value ("<1..8 digits><H|M|S|m|u|n>", no
 * whitespace).  Returns the timeout in nanoseconds (>= 0; INT64_MAX when it
 * does not fit, i.e. practically infinite), or -1 when malformed. */
int64_t hp_rpc_parse_timeout(const char *v, size_t len);

/* Percent-encode a grpc-message value: bytes outside 0x20..0x7E and '%'
 * become "%XX" (upper-case hex).  Writes a NUL-terminated string into out
 * (outsz > 0), truncating at an escape boundary when out is too small.
 * Returns the length written (without the NUL). */
size_t hp_rpc_percent_encode(const char *in, char *out, size_t outsz);

/* Inverse of hp_rpc_percent_encode; malformed escapes are copied verbatim
 * (as the gRPC spec asks).  Same output contract. */
size_t hp_rpc_percent_decode(const char *in, size_t inlen, char *out, size_t outsz);

/* Parse the 5-byte message prefix.  Returns 0 and sets *compressed and *len,
 * or -1 when the flag byte is neither 0 nor 1. */
int hp_rpc_parse_prefix(const uint8_t p[HP_RPC_PREFIX_LEN], bool *compressed, uint32_t *len);

/* Write an uncompressed prefix for a message of len bytes. */
void hp_rpc_write_prefix(uint8_t p[HP_RPC_PREFIX_LEN], uint32_t len);

/* True for "application/grpc" and "application/grpc+proto" / ";..." forms. */
bool hp_rpc_content_type_ok(const char *v, size_t len);

#endif
