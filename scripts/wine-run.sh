#!/usr/bin/env bash
# Runs a Windows program of this project under wine, in a wine prefix of its own.
#
#   scripts/wine-run.sh PROGRAM.exe [ARGS…]
#
# Cargo calls it as the test runner of x86_64-pc-windows-gnu (.cargo/config.toml), so
# `cargo test --target x86_64-pc-windows-gnu -p jejak-agent` runs the agent's tests under
# wine; the Windows end-to-end test calls it to run the real jejak.exe.
#
# The prefix is $JEJAK_WINE_PREFIX when set (a test's own), otherwise one per test
# binary under target/wine/. A new prefix is made with wineboot and given a stand-in
# bcryptprimitives.dll (scripts/windows/processprng.c, built here with mingw): wine 8
# lacks ProcessPrng, which Rust's standard library calls at start. Windows 10/11 has the
# real one; nothing of this is ever installed there.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: scripts/wine-run.sh PROGRAM.exe [ARGS…]" >&2
    exit 2
fi
program="$1"
shift

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${JEJAK_WINE_STATE:-$root/target/wine}"
mkdir -p "$state"

for tool in wine wineboot x86_64-w64-mingw32-gcc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "wine-run: '$tool' not found (Debian packages: wine wine64 gcc-mingw-w64-x86-64)" >&2
        exit 127
    fi
done

# The stand-in DLL, rebuilt when its source changes.
dll="$state/bcryptprimitives.dll"
src="$root/scripts/windows/processprng.c"
def="$root/scripts/windows/processprng.def"
if [ ! -f "$dll" ] || [ "$src" -nt "$dll" ] || [ "$def" -nt "$dll" ]; then
    x86_64-w64-mingw32-gcc -O2 -shared -o "$dll.tmp" "$src" "$def" -ladvapi32
    mv "$dll.tmp" "$dll"
fi

if [ -n "${JEJAK_WINE_PREFIX:-}" ]; then
    prefix="$JEJAK_WINE_PREFIX"
else
    # One prefix per test binary: `jejak_agent-0123abcd.exe` → prefix-jejak_agent.
    name="$(basename "$program" .exe)"
    prefix="$state/prefix-${name%%-*}"
fi

export WINEPREFIX="$prefix"
export WINEDEBUG=-all
# The stand-in DLL only; everything else is wine's own.
export WINEDLLOVERRIDES="bcryptprimitives=n${WINEDLLOVERRIDES:+;$WINEDLLOVERRIDES}"
# Wine must not try to show dialogs (no display here) or install Mono/Gecko.
export DISPLAY=""

# Making a prefix is serialised: two runs must not initialise the same one at once.
(
    flock 9
    if [ ! -f "$prefix/.jejak-ready" ]; then
        mkdir -p "$prefix"
        WINEDLLOVERRIDES="mscoree,mshtml=" wineboot --init >/dev/null 2>&1
        wineserver -w
        touch "$prefix/.jejak-ready"
    fi
    cp "$dll" "$prefix/drive_c/windows/system32/bcryptprimitives.dll"
) 9>"$state/.prefix.lock"

# The first wine process of a wine server session starts wine's own services
# (services.exe, winedevice.exe, …), which inherit its standard handles and outlive it:
# a caller reading the program's output through a pipe would then wait for ever. So the
# session is started here with no handles of the caller's; the program joins it (the
# server waits a few seconds for a new process, or for ever when made persistent with
# `wineserver -p`, as the end-to-end test does).
wine cmd.exe /c exit </dev/null >/dev/null 2>&1 || true

exec wine "$program" "$@"
