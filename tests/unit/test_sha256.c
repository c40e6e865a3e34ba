/* The daemon's SHA-256 (src/util/sha256.c, libnettle) against FIPS 180-4 example
 * digests and against OpenSSL for every length around the block and padding
 * boundaries. */
#include "t.h"

#include <openssl/evp.h>

#include "util/sha256.h"

T_CASE(fips_examples)
{
    char d[72];
    hp_sha256_digest("abc", 3, d);
    T_EQ_STR(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    hp_sha256_digest("", 0, d);
    T_EQ_STR(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hp_sha256_digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d);
    T_EQ_STR(d, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

T_CASE(matches_openssl_all_lengths)
{
    unsigned char buf[1100];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    for (size_t n = 0; n <= sizeof buf; n++) {
        uint8_t ours[HP_SHA256_LEN];
        unsigned char ref[EVP_MAX_MD_SIZE];
        unsigned int rl = 0;
        hp_sha256(buf, n, ours);
        T_ASSERT(EVP_Digest(buf, n, ref, &rl, EVP_sha256(), NULL) == 1 && rl == 32);
        if (memcmp(ours, ref, 32) != 0) {
            T_FAIL("digest of %zu bytes differs from OpenSSL's", n);
            return;
        }
    }
}

T_MAIN()
