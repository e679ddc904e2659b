/*
 * kit/compiler.h - compiler helpers for the library and its adapters.
 * Internal (not installed); part of the adapter kit (src/kit).
 */
#ifndef FS_KIT_COMPILER_H
#define FS_KIT_COMPILER_H

#if defined(__GNUC__)
#define FS_LIKELY(x) __builtin_expect(!!(x), 1)
#define FS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define FS_LIKELY(x) (x)
#define FS_UNLIKELY(x) (x)
#endif

/*
 * For thread-locals read on hot paths: the initial-exec model makes an
 * access one segment-relative load instead of a __tls_get_addr call from a
 * shared library. Keep such variables small: they take static TLS space,
 * which a late dlopen of the library must still find.
 */
#if defined(__GNUC__)
#define FS_TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define FS_TLS_MODEL
#endif

/* Inlined even where the compiler would rather call (short hot helpers). */
#if defined(__GNUC__)
#define FS_KIT_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FS_KIT_ALWAYS_INLINE inline
#endif

/* Hidden even in a build without -fvisibility=hidden. */
#if defined(__GNUC__)
#define FS_KIT_HIDDEN __attribute__((visibility("hidden")))
#else
#define FS_KIT_HIDDEN
#endif

#endif
