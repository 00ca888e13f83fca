/*
 * test_crypto.c - the OpenSSL adapter (src/common/crypto.c): SHA-256 and
 * HMAC-SHA256 against published vectors, the CSPRNG, hex and the
 * constant-time comparison.
 */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "common/crypto.h"

TEST(sha256)
{
    char out[65];
    wfo_sha256_hex("", 0, out);
    is_str(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty");
    wfo_sha256_hex("abc", 3, out);
    is_str(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "abc");
    wfo_sha256_hex("a\0b", 3, out);
    ok(strcmp(out, "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb") != 0,
       "hashes past NUL");
    unsigned char raw[32], back[32];
    wfo_sha256("abc", 3, raw);
    ok(wfo_unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", back, 32) ==
               0 &&
           memcmp(raw, back, 32) == 0,
       "raw digest matches the hex one");
}

TEST(hmac_vectors)
{
    char out[65];
    unsigned char key1[20];
    memset(key1, 0x0b, sizeof(key1));
    /* RFC 4231 test case 1 */
    wfo_hmac_sha256_hex(key1, sizeof(key1), "Hi There", 8, out);
    is_str(out, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", "case 1");
    /* RFC 4231 test case 2 */
    wfo_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, out);
    is_str(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "case 2");
    /* RFC 4231 test case 6: a key longer than the block */
    unsigned char key6[131];
    memset(key6, 0xaa, sizeof(key6));
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    wfo_hmac_sha256_hex(key6, sizeof(key6), d6, strlen(d6), out);
    is_str(out, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", "case 6");
    /* empty key and data */
    wfo_hmac_sha256_hex("", 0, "", 0, out);
    is_str(out, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad", "empty");
    wfo_hmac_sha256_hex(NULL, 0, NULL, 0, out);
    is_str(out, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad", "NULL = empty");
}

TEST(random)
{
    char a[33], b[33];
    wfo_random_hex(a, 16);
    wfo_random_hex(b, 16);
    is_int(strlen(a), 32, "16 bytes are 32 hex digits");
    ok(strcmp(a, b) != 0, "two draws differ");
    /* every bit position takes both values over a few draws */
    unsigned char or_[16] = {0}, and_[16];
    memset(and_, 0xff, sizeof(and_));
    for (int i = 0; i < 64; i++) {
        unsigned char r[16];
        wfo_random_bytes(r, sizeof(r));
        for (int k = 0; k < 16; k++) {
            or_[k] |= r[k];
            and_[k] &= r[k];
        }
    }
    int all = 1;
    for (int k = 0; k < 16; k++)
        all &= or_[k] == 0xff && and_[k] == 0;
    ok(all, "no stuck bits in 64 draws");
}

/* Bytes come from a per-thread block (crypto.c): across several blocks no
 * 16-byte draw repeats, a draw larger than half a block works, and a
 * forked child's draws are not its parent's next ones. */
TEST(random_blocks)
{
    enum { DRAWS = 200 };
    static unsigned char d[DRAWS][16];
    int repeated = 0;
    for (int i = 0; i < DRAWS; i++)
        wfo_random_bytes(d[i], 16);
    for (int i = 0; i < DRAWS; i++)
        for (int k = i + 1; k < DRAWS; k++)
            repeated += memcmp(d[i], d[k], 16) == 0;
    is_int(repeated, 0, "no draw repeats over %d draws (several blocks)", DRAWS);
    unsigned char big[2000], zero[2000] = {0};
    wfo_random_bytes(big, sizeof(big));
    ok(memcmp(big, zero, sizeof(big)) != 0, "a draw of 2,000 bytes");

    unsigned char parent[16], child[16] = {0};
    int fds[2], status;
    wfo_random_bytes(parent, 1); /* this thread holds a block now */
    if (pipe(fds) < 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        wfo_random_bytes(child, sizeof(child));
        _exit(write(fds[1], child, sizeof(child)) == (ssize_t)sizeof(child) ? 0 : 1);
    }
    close(fds[1]);
    wfo_random_bytes(parent, sizeof(parent));
    ssize_t n = read(fds[0], child, sizeof(child));
    close(fds[0]);
    waitpid(pid, &status, 0);
    ok(n == (ssize_t)sizeof(child) && WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "the child drew");
    ok(memcmp(parent, child, sizeof(child)) != 0,
       "a forked child does not draw its parent's bytes");
}

TEST(hex_and_compare)
{
    unsigned char raw[4] = {0x00, 0xab, 0x10, 0xff}, back[4];
    char hex[9];
    wfo_hex(raw, 4, hex);
    is_str(hex, "00ab10ff", "hex");
    ok(wfo_unhex("00AB10ff", back, 4) == 0 && memcmp(raw, back, 4) == 0, "unhex, either case");
    ok(wfo_unhex("00ab10f", back, 4) < 0, "odd length refused");
    ok(wfo_unhex("00ab10fg", back, 4) < 0, "non-hex refused");
    ok(wfo_ct_equal("abcd", "abcd", 4), "equal");
    ok(!wfo_ct_equal("abcd", "abce", 4), "last byte differs");
    ok(!wfo_ct_equal("xbcd", "abcd", 4), "first byte differs");
    ok(wfo_ct_equal("", "", 0), "empty");
}

int main(void)
{
    return tap_run();
}
