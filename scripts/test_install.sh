#!/usr/bin/env bash
# Installs a configured and built loom into a temporary prefix and uses it as its users would,
# from that prefix only (tests/consumers/README.md):
#   - the installed files: header, static and shared library (SONAME, exported symbols = the
#     functions of loom.h), loom.pc, the CMake package, the program and its data, the notices;
#   - a C program with pkg-config, linked to the shared library and to the static one;
#   - a C++ program in its own CMake project with find_package(loom), shared and static;
#   - a project that takes loom with add_subdirectory gets the library alone (configure only).
# Every trainer must print the same line (same seed, same steps). Usage:
#   scripts/test_install.sh [BUILD_DIR]      (default build; called by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${1:-build}
work=$(mktemp -d "${TMPDIR:-/tmp}/loom-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fail() { echo "test_install: $*" >&2; exit 1; }

version=$(sed -n 's/^#define LOOM_VERSION "\(.*\)"$/\1/p' include/loom.h)
[ -n "$version" ] || fail "no LOOM_VERSION in include/loom.h"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; fail "cmake --install failed"; }
libdir=$(sed -n 's/^libdir=\${exec_prefix}\///p' "$(find "$prefix" -name loom.pc)")
[ -n "$libdir" ] || fail "loom.pc has no libdir"
lib=$prefix/$libdir

echo "-- installed files"
for f in include/loom.h "$libdir/libloom.a" "$libdir/libloom.so" "$libdir/pkgconfig/loom.pc" \
         "$libdir/cmake/loom/loomConfig.cmake" "$libdir/cmake/loom/loomConfigVersion.cmake" \
         bin/loom share/loom/digits.csv share/loom/digits_diag.npz share/doc/loom/LICENSE share/doc/loom/THIRD_PARTY.md \
         share/doc/loom/CHANGELOG.md; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
if grep -rIl -e "$root" "$prefix/include" "$lib/pkgconfig" "$lib/cmake" >/dev/null; then
  fail "installed files name the source tree: $(grep -rIl -e "$root" "$prefix/include" "$lib/pkgconfig" "$lib/cmake")"
fi
soname=$(readelf -d "$lib/libloom.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
major=${version%%.*} minor=${version#*.}; minor=${minor%%.*}
if [ "$major" = 0 ]; then want_soname=libloom.so.0.$minor; else want_soname=libloom.so.$major; fi
[ "$soname" = "$want_soname" ] || fail "SONAME is '$soname', expected $want_soname"
readelf -h "$lib/libloom.so" | grep -q 'DYN' || fail "libloom.so is not a shared object"
if readelf -d "$lib/libloom.so" | grep -q TEXTREL; then fail "libloom.so has text relocations (not PIC)"; fi
# The shared library exports exactly the functions declared in loom.h (internal loom_* hidden).
nm -D --defined-only "$lib/libloom.so" | awk '$2 == "T" {print $3}' | sed 's/@.*//' | sort -u >"$work/exported"
grep -oE '\bloom_[a-z0-9_]+[[:space:]]*\(' include/loom.h | sed 's/[[:space:]]*($//' | sort -u >"$work/declared"
nm --defined-only "$lib/libloom.a" 2>/dev/null | awk '$2 == "T" {print $3}' | sort -u >"$work/defined"
comm -12 "$work/declared" "$work/defined" >"$work/public"
missing=$(comm -23 "$work/public" "$work/exported")
extra=$(comm -13 "$work/public" "$work/exported")
[ -z "$missing" ] || fail "declared in loom.h but not exported: $missing"
[ -z "$extra" ] || fail "exported but not in loom.h: $extra"
undeclared=$(grep -vxF -f <(echo loom_status) <(comm -23 "$work/declared" "$work/defined") || true)
[ -z "$undeclared" ] || fail "declared in loom.h but defined nowhere: $undeclared"
echo "   $(wc -l <"$work/exported") functions exported, SONAME $soname"
"$prefix/bin/loom" --version | grep -qx "loom $version (library $version)" || fail "loom --version: $("$prefix/bin/loom" --version)"
"$prefix/bin/loom" demo --epochs 1 --quiet >/dev/null || fail "the installed loom demo failed"

echo "-- C program with pkg-config (shared, then static)"
export PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_LIBDIR=$lib/pkgconfig # only this prefix
[ "$(pkg-config --modversion loom)" = "$version" ] || fail "pkg-config --modversion loom: $(pkg-config --modversion loom)"
cp tests/consumers/c_pkgconfig/train_tiny.c "$work/"
cc_flags="-std=c11 -Wall -Wextra -Wpedantic -Werror"
# shellcheck disable=SC2046
cc $cc_flags -o "$work/c_shared" "$work/train_tiny.c" $(pkg-config --cflags --libs loom) -Wl,-rpath,"$lib" ||
  fail "cc \$(pkg-config --cflags --libs loom) failed"
# the README's static link line
# shellcheck disable=SC2046
cc $cc_flags -o "$work/c_static" "$work/train_tiny.c" $(pkg-config --cflags loom) "$(pkg-config --variable=libdir loom)/libloom.a" \
   $(pkg-config --static --libs loom | sed 's/-lloom//') ||
  fail "linking libloom.a with \$(pkg-config --static --libs loom) failed: is a library missing from Libs.private (cmake/install.cmake)?"
readelf -d "$work/c_shared" | grep -q "NEEDED.*\[$soname\]" || fail "c_shared does not link $soname"
if readelf -d "$work/c_static" | grep -q 'NEEDED.*libloom'; then fail "c_static links libloom.so"; fi
[ "$(ldd "$work/c_shared" | awk '/libloom/ {print $3}')" = "$lib/$soname" ] || fail "c_shared finds $(ldd "$work/c_shared" | grep libloom)"

echo "-- C++ program with find_package(loom) (shared, then static)"
cmake -S tests/consumers/cxx_cmake -B "$work/cxx" -DCMAKE_BUILD_TYPE=Release -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
      -Dloom_DIR="$lib/cmake/loom" >"$work/cxx.log" 2>&1 || { cat "$work/cxx.log"; fail "find_package(loom) project did not configure"; }
cmake --build "$work/cxx" >>"$work/cxx.log" 2>&1 || { cat "$work/cxx.log"; fail "find_package(loom) project did not build"; }
readelf -d "$work/cxx/train_tiny_shared" | grep -q "NEEDED.*\[$soname\]" || fail "train_tiny_shared does not link $soname"

echo "-- add_subdirectory(loom): the library alone"
cmake -S tests/consumers/subproject -B "$work/sub" -DLOOM_SOURCE_DIR="$root" >"$work/sub.log" 2>&1 ||
  { cat "$work/sub.log"; fail "the add_subdirectory project did not configure"; }

echo "-- the trainers"
want=""
for prog in "$work/c_shared" "$work/c_static" "$work/cxx/train_tiny_shared" "$work/cxx/train_tiny_static"; do
  out=$("$prog") || fail "$(basename "$prog") failed: $out"
  echo "   $(basename "$prog"): $out"
  [[ $out == "loom $version: loss "* ]] || fail "$(basename "$prog") printed: $out"
  [ -z "$want" ] && want=$out
  [ "$out" = "$want" ] || fail "$(basename "$prog") trained differently from the first: $out"
done
echo "test_install: OK (loom $version installed to a temporary prefix and used from there)"
