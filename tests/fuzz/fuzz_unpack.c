/* libFuzzer target for hp_unpack_layer (untrusted layer tarballs).
 *
 * Build (needs: apt-get install -y clang libclang-rt-14-dev):
 *   mkdir -p build/fuzz && clang -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 \
 *     -D_GNU_SOURCE -Isrc tests/fuzz/fuzz_unpack.c src/image/unpack.c src/util/err.c \
 *     src/util/log.c $(pkg-config --cflags --libs libarchive libcrypto) -o build/fuzz/fuzz_unpack
 * Run:
 *   build/fuzz/fuzz_unpack -max_total_time=60 -max_len=65536 [corpus-dir]
 *
 * Each input is unpacked into <base>/root next to a sentinel directory
 * <base>/outside holding one file.  Besides memory errors, the target aborts
 * when anything outside <base>/root changed: an escape is a crash.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/unpack.h"

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL)
        n++;
    closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char base[] = "/tmp/hpfuzz.XXXXXX", root[64], outside[64], secret[80];
    hp_unpack_opts opts = {.max_bytes = 8u << 20, .max_entries = 4096};
    hp_unpack_stats st;
    hp_err err = HP_ERR_INIT;
    struct stat sb;
    int fd, basefd, tmpfd;

    if (!mkdtemp(base))
        abort();
    snprintf(root, sizeof root, "%s/root", base);
    snprintf(outside, sizeof outside, "%s/outside", base);
    snprintf(secret, sizeof secret, "%s/outside/secret", base);
    if (mkdir(root, 0755) < 0 || mkdir(outside, 0755) < 0)
        abort();
    fd = open(secret, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || write(fd, "s", 1) != 1)
        abort();
    close(fd);

    fd = memfd_create("layer", MFD_CLOEXEC);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || lseek(fd, 0, SEEK_SET) < 0)
        abort();
    (void)hp_unpack_layer_path(root, "/dev/null", &opts, &st, &err); /* empty: must fail */
    {
        int rfd = open(root, O_RDONLY | O_DIRECTORY);
        (void)hp_unpack_layer(rfd, fd, &opts, &st, &err);
        close(rfd);
    }
    close(fd);

    /* Nothing outside root may have changed. */
    if (count_entries(base) != 4 || count_entries(outside) != 3 || lstat(secret, &sb) < 0 ||
        !S_ISREG(sb.st_mode) || sb.st_size != 1 || sb.st_nlink != 1) {
        fprintf(stderr, "escape detected: %s\n", base);
        abort();
    }

    tmpfd = open("/tmp", O_RDONLY | O_DIRECTORY);
    basefd = tmpfd;
    if (hp_remove_tree_at(basefd, base + 5, &err) < 0) {
        fprintf(stderr, "cleanup: %s\n", err.msg);
        abort();
    }
    close(tmpfd);
    return 0;
}
