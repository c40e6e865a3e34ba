/* SHA-256 for the few short strings the daemon hashes itself: Nettle's
 * implementation (libnettle, a small library: the daemon does not load
 * OpenSSL's libcrypto, whose relocated pages alone were 3.3 MB of resident
 * memory; bench/README.md, "Daemon memory"). */
#include "util/sha256.h"

#include <nettle/sha2.h>
#include <string.h>

void hp_sha256(const void *data, size_t len, uint8_t out[HP_SHA256_LEN])
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, HP_SHA256_LEN, out);
}

void hp_sha256_digest(const void *data, size_t len, char out[72])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t d[HP_SHA256_LEN];
    hp_sha256(data, len, d);
    memcpy(out, "sha256:", 7);
    for (size_t i = 0; i < HP_SHA256_LEN; i++) {
        out[7 + 2 * i] = hex[d[i] >> 4];
        out[8 + 2 * i] = hex[d[i] & 15];
    }
    out[71] = 0;
}
