#!/bin/sh
# check_private_link.sh CC INCLUDE_DIR LIB_DIR WORK_DIR
# A shared library using the public adapter interface links with -z defs; one
# using a private symbol of libfaststream (fs__publish_run) must not.
set -u
cc=$1 inc=$2 lib=$3 work=$4
mkdir -p "$work"
cat > "$work/good.c" <<'SRC'
#include "faststream/adapter.h"
int good_adapter(void) { return fs_adapter_error(FS_EINVAL, "x") + (fs_message_init(0), 0); }
SRC
cat > "$work/bad.c" <<'SRC'
#include "faststream/adapter.h"
int fs__publish_run(fs_broker *, void *, const char *, const fs_envelope *, size_t, _Bool);
int bad_adapter(void) { return fs__publish_run(0, 0, "d", 0, 0, 0); }
SRC
link() {
    "$cc" -std=c11 -shared -fPIC -I"$inc" "$work/$1.c" -o "$work/lib$1.so" \
        -L"$lib" -lfaststream -lfaststream-metrics -Wl,-z,defs -Wl,-rpath,"$lib" 2> "$work/$1.log"
}
if ! link good; then
    echo "FAIL: an adapter using only adapter.h does not link:"; cat "$work/good.log"; exit 1
fi
if link bad; then
    echo "FAIL: an adapter using the private fs__publish_run links: libfaststream exports it"
    exit 1
fi
grep -q 'fs__publish_run' "$work/bad.log" || { echo "FAIL: unexpected error:"; cat "$work/bad.log"; exit 1; }
echo "ok: public adapter symbols link, private ones do not"
