/*
 * kit/check.h - argument checks for adapters: FS_CHECK_ARG(cond, fmt, ...)
 * returns FS_EINVAL with the message recorded (fs_adapter_error) when
 * `cond` is false. Internal (not installed); part of the adapter kit.
 */
#ifndef FS_KIT_CHECK_H
#define FS_KIT_CHECK_H

#include "faststream/adapter.h"

#ifndef FS_CHECK_ARG
#define FS_CHECK_ARG(cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return fs_adapter_error(FS_EINVAL, __VA_ARGS__);                                       \
    } while (0)
#endif

#endif
