/*
 * kit/utf8.h - the one UTF-8 validator (the Redis JSON format, header
 * values, FastStream's UnicodeDecodeError). Internal (not installed); part
 * of the adapter kit (src/kit).
 */
#ifndef FS_KIT_UTF8_H
#define FS_KIT_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/** True when bytes [p, p+n) are well-formed UTF-8 (no surrogates, no overlongs). */
bool fs_kit_utf8_valid(const char *p, size_t n);

#endif
