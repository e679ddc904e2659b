/*
 * A broker adapter's URL and option parsing through its public constructor:
 * fs_<name>_broker_new(url, NULL) then fs_broker_free (neither connects: the
 * connection is made at start). Whatever the string, the constructor
 * returns FS_OK with a broker or an FS_E* code with a message, and never
 * crashes or leaks. Each fuzz_<name>_url.c defines FUZZ_BROKER_NEW and
 * includes this.
 */
#ifndef FS_FUZZ_BROKER_URL_H
#define FS_FUZZ_BROKER_URL_H

#include "faststream/broker.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *url = fuzz_cstr(data, size);
    if (!url)
        return 0;
    fs_broker *b = NULL;
    int rc = FUZZ_BROKER_NEW(url, NULL, &b);
    if (rc == FS_OK) {
        FUZZ_CHECK(b);
        fs_broker_free(b);
    } else {
        FUZZ_CHECK(rc < 0 && !b && fs_last_error() && *fs_last_error());
    }
    free(url);
    return 0;
}

#endif
