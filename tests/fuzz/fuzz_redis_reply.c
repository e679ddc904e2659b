/*
 * Redis replies from a server that may be hostile: the bytes go through
 * hiredis' reader building replies in the adapter's blocks (conn.c: lazy
 * array growth, the per-reply limit, here 1 MiB), and every reply is put
 * through every shape check the readers apply (check.c) before it is
 * freed. Nothing may crash, leak or read out of bounds, whatever the reply
 * says about its own size.
 */
#include "fuzz_util.h"
#include "brokers/redis/internal.h"

static const char *const NAME = "q";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        fs__redis_reply_limit(1 << 20);
        fs_set_log_level(FS_LOG_OFF);
        once = 1;
    }
    redisReader *rd = redisReaderCreate();
    if (!rd)
        return 0;
    fs__redis_reader_use_blocks(rd);
    redisReaderFeed(rd, (const char *)data, size);
    for (int n = 0; n < 64; n++) {
        void *reply = NULL;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply)
            break;
        const redisReply *r = reply;
        int rc = fs__redis_check_pop(r, NAME, 1);
        rc |= fs__redis_check_streams("XREADGROUP", NAME, 1, r);
        rc |= fs__redis_check_entries("XCLAIM", NAME, r, true, true);
        rc |= fs__redis_check_autoclaim(NAME, r);
        rc |= fs__redis_check_pending(NAME, r);
        rc |= fs__redis_check_push(NAME, r);
        (void)rc;
        if (r->type == REDIS_REPLY_STRING) {
            sid id;
            if (fs__redis_sid_parse(r->str, r->len, &id)) {
                char buf[48];
                FUZZ_CHECK(fs__redis_sid_format(id, buf, sizeof buf) > 0);
            }
        }
        fs__redis_reply_free(reply);
    }
    redisReaderFree(rd);
    return 0;
}
