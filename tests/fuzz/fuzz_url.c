/*
 * URL parsing (fs_url_parse, fs_url_query_next, fs_url_query_get): what a
 * user's broker URL string reaches. Every component of a parsed URL is a
 * NUL-terminated string; the port is -1 or 0..65535.
 */
#include "core/core.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    if (!s)
        return 0;
    fs_url u;
    if (fs_url_parse(s, &u) == FS_OK) {
        FUZZ_CHECK(u.scheme && u.port >= -1 && u.port <= 65535);
        size_t n = strlen(u.scheme) + (u.host ? strlen(u.host) : 0) +
                   (u.user ? strlen(u.user) : 0) + (u.password ? strlen(u.password) : 0) +
                   (u.path ? strlen(u.path) : 0) + (u.hosts ? strlen(u.hosts) : 0);
        FUZZ_CHECK(n <= 4 * size + 16);
        const char *name;
        size_t pos = 0, name_len;
        while (fs_url_query_next(&u, &pos, &name, &name_len, NULL, NULL)) {
            FUZZ_CHECK(name_len <= size);
            char key[64];
            size_t k = name_len < sizeof key - 1 ? name_len : sizeof key - 1;
            memcpy(key, name, k);
            key[k] = '\0';
            char *v = NULL;
            int rc = fs_url_query_get(&u, key, &v);
            FUZZ_CHECK(rc == FS_OK || rc == FS_ENOTFOUND || rc == FS_EINVAL || rc == FS_ENOMEM);
            free(v);
        }
        fs_url_free(&u);
    }
    free(s);
    return 0;
}
