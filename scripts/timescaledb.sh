#!/usr/bin/env bash
# Build and install TimescaleDB 2.28.3 from its upstream source archive into the local
# PostgreSQL server (Debian packages). Safe to run again: skips the build when installed.
#
# Usage: scripts/timescaledb.sh [--source DIR_OR_TARBALL] [--destdir DIR] [--check]
#   --source   tarball or unpacked source tree (default: $MOTUS_TIMESCALEDB_SOURCE, else
#              ../shared/timescaledb/timescaledb-2.28.3.tar.gz relative to the repository root)
#   --destdir  staged install: passes DESTDIR=DIR to 'make install'; the "installed" check
#              then looks under DIR
#   --check    exit 0 if installed, 1 if not; prints one line either way
# Exit codes: 0 ok/installed, 1 not installed (--check) or build failure, 2 usage,
#             3 source or PostgreSQL not available here.
# Env: MOTUS_BUILD_DIR (log + scratch, default .motus/build), PG_CONFIG (default: on PATH).
set -euo pipefail

readonly TS_VERSION=2.28.3
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
readonly ROOT

# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"
say() { echo "timescaledb: $*"; }
die() { local code="$1"; shift; echo "timescaledb: $*" >&2; exit "$code"; }
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

usage() { sed -n '5,13s/^# \{0,1\}//p' "$0"; }

source_path="${MOTUS_TIMESCALEDB_SOURCE:-$ROOT/../shared/timescaledb/timescaledb-$TS_VERSION.tar.gz}"
destdir=""
check_only=false
while [ "$#" -gt 0 ]; do
    case "$1" in
        --source) [ "$#" -ge 2 ] || die 2 "--source needs a path"; source_path="$2"; shift 2 ;;
        --source=*) source_path="${1#*=}"; shift ;;
        --destdir) [ "$#" -ge 2 ] || die 2 "--destdir needs a path"; destdir="$2"; shift 2 ;;
        --destdir=*) destdir="${1#*=}"; shift ;;
        --check) check_only=true; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die 2 "unknown argument: $1" ;;
    esac
done
source_path="$(abspath "$source_path")"
if [ -n "$destdir" ]; then
    destdir="$(abspath "$destdir")"
    destdir="${destdir%/}"
fi

# The server we build for: pg_config on PATH (Debian's wrapper), or $PG_CONFIG.
PG_CONFIG="${PG_CONFIG:-$(command -v pg_config || true)}"
if [ -z "$PG_CONFIG" ] || ! pg_version="$("$PG_CONFIG" --version 2>/dev/null)"; then
    $check_only && { say "not installed (no pg_config: PostgreSQL not installed?)"; exit 1; }
    die 3 "pg_config not found: PostgreSQL server not installed, TimescaleDB path not available here"
fi
pg_major="$(echo "$pg_version" | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
sharedir="$("$PG_CONFIG" --sharedir)"
pkglibdir="$("$PG_CONFIG" --pkglibdir)"
control="$destdir$sharedir/extension/timescaledb.control"
library="$destdir$pkglibdir/timescaledb-$TS_VERSION.so"

is_installed() {
    [ -f "$library" ] && [ -f "$control" ] &&
        grep -Eq "^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'$TS_VERSION'" "$control"
}

where="PostgreSQL $pg_major${destdir:+ (under $destdir)}"
if $check_only; then
    if is_installed; then say "$TS_VERSION installed for $where"; exit 0; fi
    say "$TS_VERSION not installed for $where"; exit 1
fi
if is_installed; then say "$TS_VERSION already installed for $where, nothing to do"; exit 0; fi

[ -e "$source_path" ] ||
    die 3 "source not found: $source_path (TimescaleDB path not available here)"

build_dir="$(abspath "${MOTUS_BUILD_DIR:-$ROOT/.motus/build}")"
mkdir -p "$build_dir"
log="$build_dir/timescaledb-build.log"
scratch="$build_dir/timescaledb-$TS_VERSION-src"

# One build at a time; a concurrent run waits, then sees the finished install.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$build_dir/timescaledb.lock"
    flock 9
    if is_installed; then say "$TS_VERSION already installed for $where, nothing to do"; exit 0; fi
fi

: >"$log"
start=$SECONDS
fail() {
    echo "timescaledb: FAILED: $1 (after $((SECONDS - start))s)" >&2
    # make -j keeps going after an error, so the tail may miss it: show the first ones too.
    if grep -qE ': (fatal )?error:|CMake Error|^E: ' "$log"; then
        echo "timescaledb: first errors in $log:" >&2
        grep -m 10 -E ': (fatal )?error:|CMake Error|^E: ' "$log" >&2
    fi
    echo "timescaledb: last 40 lines of $log (scratch tree kept in $scratch):" >&2
    tail -n 40 "$log" >&2
    exit 1
}
# step DESCRIPTION CMD...: log everything, terminal sees only the description.
step() {
    local what="$1"; shift
    say "$what"
    printf '\n==== %s: %s\n' "$what" "$*" >>"$log"
    "$@" >>"$log" 2>&1 </dev/null || fail "$what"
}

say "building $TS_VERSION for $pg_version (log: $log)"

# Build dependencies: only the missing ones; the server headers pinned to the server's version.
pkg_version() { dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^installed //p'; }
server_version="$(pkg_version "postgresql-$pg_major")"
[ -n "$server_version" ] ||
    die 3 "Debian package postgresql-$pg_major not installed (server from elsewhere?); cannot pin headers"
packages=()
for pkg in build-essential cmake libkrb5-dev; do
    [ -n "$(pkg_version "$pkg")" ] || packages+=("$pkg")
done
[ "$(pkg_version "postgresql-server-dev-$pg_major")" = "$server_version" ] ||
    packages+=("postgresql-server-dev-$pg_major=$server_version")

if [ "${#packages[@]}" -gt 0 ]; then
    say "apt: installing ${packages[*]}"
    SETUP_LOG="$log"
    apt_install --allow-downgrades "${packages[@]}" || fail "apt could not install ${packages[*]}"
fi
[ -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ] ||
    fail "server headers missing under $("$PG_CONFIG" --includedir-server)"

# Scratch copy of the source (a tarball is extracted, a directory copied).
rm -rf "$scratch"
mkdir -p "$scratch"
if [ -d "$source_path" ]; then
    step "copying source from $source_path" cp -a "$source_path/." "$scratch/"
    rm -rf "$scratch/build"
else
    step "extracting $(basename "$source_path")" tar -xzf "$source_path" -C "$scratch"
fi
src="$scratch"
if [ ! -f "$src/bootstrap" ]; then
    found="$(find "$scratch" -mindepth 2 -maxdepth 2 -name bootstrap -type f -print -quit)"
    [ -n "$found" ] || fail "no bootstrap script in $source_path"
    src="$(dirname "$found")"
fi
grep -Eq "^version = $TS_VERSION\$" "$src/version.config" ||
    fail "$source_path is not TimescaleDB $TS_VERSION ($(head -n 1 "$src/version.config" 2>/dev/null))"

# nice -n 10: the build takes minutes on 2 cores; keep other work (test clusters) responsive.
cd "$src"
step "configuring" env BUILD_FORCE_REMOVE=true nice -n 10 bash ./bootstrap \
    -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DAPACHE_ONLY=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPG_CONFIG="$PG_CONFIG"
cd build
step "compiling with make -j$(nproc) (about 4 min on 2 cores)" nice -n 10 make -j"$(nproc)"
if [ -n "$destdir" ]; then
    step "installing into $destdir" make install DESTDIR="$destdir"
else
    step "installing into $pkglibdir and $sharedir/extension" as_root make install
fi
is_installed || fail "install finished but $library or $control is missing"

cd "$ROOT"
rm -rf "$scratch" 2>/dev/null || as_root rm -rf "$scratch"
elapsed=$((SECONDS - start))
say "$TS_VERSION installed for $where in $((elapsed / 60))m$((elapsed % 60))s (log: $log)"
if [ -z "$destdir" ]; then
    say "the server needs shared_preload_libraries = 'timescaledb' before CREATE EXTENSION"
fi
