#include "internal.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[512];

const char *fs_strerror(int status)
{
    switch (status) {
    case FS_OK:
        return "ok";
    case FS_EINVAL:
        return "invalid argument";
    case FS_ENOMEM:
        return "out of memory";
    case FS_ECONFLICT:
        return "conflict";
    case FS_ENOTFOUND:
        return "not found";
    case FS_ESTATE:
        return "invalid state";
    case FS_EIO:
        return "I/O error";
    case FS_ETIMEDOUT:
        return "timed out";
    case FS_EFULL:
        return "full";
    case FS_ECLOSED:
        return "closed";
    case FS_EUNSUPPORTED:
        return "unsupported";
    case FS_EBROKER:
        return "broker error";
    case FS_EPROTOCOL:
        return "protocol error";
    default:
        return "unknown error";
    }
}

const char *fs_last_error(void)
{
    return last_error;
}

void fs_clear_error(void)
{
    last_error[0] = '\0';
}

int fs_adapter_verror(int status, const char *fmt, va_list ap)
{
    /* Formatted aside first: an argument may be last_error itself. */
    char buf[sizeof last_error];
    vsnprintf(buf, sizeof buf, fmt, ap);
    memcpy(last_error, buf, strlen(buf) + 1);
    return status;
}

int fs_adapter_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = fs_adapter_verror(status, fmt, ap);
    va_end(ap);
    return rc;
}

const char *fs_version(void)
{
    return FASTSTREAM_VERSION_STRING;
}
