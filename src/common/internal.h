/*
 * Internal helpers shared by every part of the library: error recording and
 * logging. Not installed.
 *
 * The error and log state lives in libfaststream-metrics (src/common); the
 * other libraries reach it through its exported fs_adapter_* functions
 * (declared in faststream/adapter.h for adapter authors), which the short
 * fs__* names below stand for.
 */
#ifndef FS_INTERNAL_COMMON_H
#define FS_INTERNAL_COMMON_H

#include "faststream/common.h"
#include "kit/check.h" /* FS_CHECK_ARG; faststream/adapter.h: fs_adapter_error & co */
#include "kit/compiler.h"

#include <stdarg.h>

#define fs__error fs_adapter_error
#define fs__verror fs_adapter_verror
#define fs__log fs_adapter_log
#define fs__vlog fs_adapter_vlog
#define fs__log_enabled fs_adapter_log_enabled

#endif
