#!/usr/bin/env bash
# Installs the build into a scratch prefix, then builds a program outside the
# tree against it: with pkg-config and with CMake's find_package, shared and
# static; checks the flags, SONAME and version a program gets; then moves the
# prefix and checks the installed tree still finds its schemas.
set -euo pipefail
build=$1
src=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
libdir=$(ls -d "$work"/prefix/lib*/ | head -n 1)
libdir=${libdir%/}
[ -f "$libdir/pkgconfig/libevents.pc" ] || { echo "no pkg-config file installed" >&2; exit 1; }

soname_of() { readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p'; }
needed_of() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'; }

# pkg-config
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
cc -std=c11 -o "$work/with_pkgconfig" "$src/consumer/main.c" $(pkg-config --cflags --libs libevents)
LD_LIBRARY_PATH="$libdir" "$work/with_pkgconfig" >"$work/out"

# the version the library reports at run time is the version it was installed as
version=$(pkg-config --modversion libevents)
grep -qx "version $version" "$work/out" ||
  { echo "lev_version() is not the installed version $version:" >&2; cat "$work/out" >&2; exit 1; }

# The SONAME follows the ABI policy (libevents.h): libevents.so.<major>, and
# before 1.0 libevents.so.0.<minor>, as every 0.x minor release may break it.
IFS=. read -r major minor _ <<<"$version"
if [ "$major" = 0 ]; then want=libevents.so.0.$minor; else want=libevents.so.$major; fi
got=$(soname_of "$libdir/libevents.so")
[ "$got" = "$want" ] || { echo "SONAME of libevents.so is \"$got\", want $want" >&2; exit 1; }
[ -e "$libdir/$want" ] || { echo "$want is not installed" >&2; exit 1; }
needed_of "$work/with_pkgconfig" | grep -qx "$want" ||
  { echo "the program does not depend on $want:" >&2; needed_of "$work/with_pkgconfig" >&2; exit 1; }

# Only what the public headers include (avro-c, jansson) reaches a program's
# flags; librdkafka, hiredis (-I.../hiredis -D_FILE_OFFSET_BITS=64),
# libcrypto and libmicrohttpd are the library's own, and appear only for a
# static link.
private='hiredis|rdkafka|crypto|microhttpd|_FILE_OFFSET_BITS'
flags=$(pkg-config --cflags --libs libevents)
if grep -Eq -- "$private" <<<"$flags"; then
  echo "pkg-config --cflags --libs libevents shows private dependencies: $flags" >&2
  exit 1
fi
if needed_of "$work/with_pkgconfig" | grep -Eq -- "$private"; then
  echo "the program links private dependencies of libevents itself:" >&2
  needed_of "$work/with_pkgconfig" >&2
  exit 1
fi
static=$(pkg-config --static --libs libevents)
for l in -lrdkafka -lhiredis -lcrypto -lmicrohttpd -lcurl; do
  grep -qw -- "$l" <<<"$static" ||
    { echo "pkg-config --static --libs libevents lacks $l: $static" >&2; exit 1; }
done
# A program links libevents.a and the shared libraries of its dependencies
# (as README says; --static's list is for an all-static link, which needs
# the static or -dev packages of librdkafka's own dependencies too), and
# runs without libevents.so.
cc -std=c11 -o "$work/with_pkgconfig_static" "$src/consumer/main.c" $(pkg-config --cflags libevents) \
  -Wl,-Bstatic -levents -Wl,-Bdynamic \
  $(pkg-config --libs libevents rdkafka hiredis libcrypto libmicrohttpd libcurl) \
  -lpthread -lm
if needed_of "$work/with_pkgconfig_static" | grep -q libevents; then
  echo "the static program depends on libevents.so" >&2
  exit 1
fi
"$work/with_pkgconfig_static" >/dev/null

# find_package
cmake -S "$src/consumer" -B "$work/consumer-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer-build" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/consumer-build/consumer_shared"
"$work/consumer-build/consumer_static"
# the same through the CMake targets: no private include path, flag or link
# for either program, except what the static one must link
for t in consumer_shared consumer_static; do
  f="$work/consumer-build/CMakeFiles/$t.dir/flags.make"
  if grep -Eq -- "$private" "$f"; then
    echo "the libevents target $t links gives it private compile flags:" >&2
    cat "$f" >&2
    exit 1
  fi
done
if needed_of "$work/consumer-build/consumer_shared" | grep -Eq -- "$private"; then
  echo "libevents::events links private dependencies into the program:" >&2
  needed_of "$work/consumer-build/consumer_shared" >&2
  exit 1
fi

# Moved to another prefix, the installed tree still finds its schemas
# without LEV_SCHEMA_DIRS: the shared library next to itself, a program
# linked statically (evctl) next to the program. Run where no ./schemas is.
unset LEV_SCHEMA_DIRS
mv "$work/prefix" "$work/moved"
moved=$(cd "$work/moved" && pwd -P)
mkdir "$work/elsewhere"
cd "$work/elsewhere"
if ! LD_LIBRARY_PATH="$moved/${libdir#"$work/prefix/"}" "$work/with_pkgconfig" --schemas \
  >"$work/out" 2>&1 || ! grep -qx "schema_dirs schemas:$moved/share/libevents/schemas" "$work/out"; then
  echo "a program using the moved libevents.so does not find its schemas:" >&2
  cat "$work/out" >&2
  exit 1
fi
if ! "$moved/bin/evctl" schemas list >"$work/out" 2>&1 ||
  ! grep -q "\"origin\":\"$moved/share/libevents/schemas/order_placed.avsc\"" "$work/out"; then
  echo "the moved evctl does not find its schemas:" >&2
  cat "$work/out" >&2
  exit 1
fi
cd /

echo "installed libevents works with pkg-config and find_package, and after a move"
