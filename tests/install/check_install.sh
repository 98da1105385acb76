#!/usr/bin/env bash
# Installs the build into a scratch prefix, then builds a program outside the
# tree against it twice: with pkg-config and with CMake's find_package.
set -euo pipefail
build=$1
src=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
libdir=$(ls -d "$work"/prefix/lib*/ | head -n 1)
libdir=${libdir%/}
[ -f "$libdir/pkgconfig/libevents.pc" ] || { echo "no pkg-config file installed" >&2; exit 1; }

# pkg-config
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
cc -std=c11 -o "$work/with_pkgconfig" "$src/consumer/main.c" $(pkg-config --cflags --libs libevents)
LD_LIBRARY_PATH="$libdir" "$work/with_pkgconfig" >"$work/out"

# the version the library reports at run time is the version it was installed as
version=$(pkg-config --modversion libevents)
grep -qx "version $version" "$work/out" ||
  { echo "lev_version() is not the installed version $version:" >&2; cat "$work/out" >&2; exit 1; }

# find_package
cmake -S "$src/consumer" -B "$work/consumer-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer-build" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/consumer-build/consumer_shared"
"$work/consumer-build/consumer_static"
echo "installed libevents works with pkg-config and find_package"
