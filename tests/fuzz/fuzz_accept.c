/*
 * Content negotiation: the Accept header (fs_format_negotiate) and the
 * Accept-Encoding header (fs__http_accepts_gzip), both straight from any
 * HTTP client.
 */
#include "faststream/exposition.h"
#include "fuzz_util.h"
#include "http/http_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    if (!s)
        return 0;
    fs_format f = fs_format_negotiate(s);
    FUZZ_CHECK(f == FS_FORMAT_TEXT || f == FS_FORMAT_OPENMETRICS);
    FUZZ_CHECK(fs_format_content_type(f) != NULL);
    (void)fs__http_accepts_gzip(s);
    free(s);
    return 0;
}
