#!/usr/bin/env bash
# Builds the village PC's Windows 10/11 (64-bit) program and its installer, on Linux:
#
#   scripts/build-windows.sh [--out DIR] [--skip-build | --exe JEJAK.EXE]
#
# 1. `cargo build --profile pc -p jejak-cli --no-default-features --target
#    x86_64-pc-windows-gnu` (the linker is Debian's mingw-w64, named in
#    .cargo/config.toml);
# 2. the MSI, jejak-<version>-x64.msi in DIR (default target/windows/), with wixl from
#    Debian's msitools: scripts/windows/jejak.wxs, then msibuild adds what wixl does not
#    know: jejak.exe's folder on the system PATH (for administrators' prompts), and the
#    service's delayed automatic start and its restart after a crash.
#
# Needs: the rustup target x86_64-pc-windows-gnu, and Debian's gcc-mingw-w64-x86-64,
# wixl and msitools. `--skip-build` packs the jejak.exe already built; `--exe` packs the
# one given (the tests pack a debug build).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/target/windows"
build=1
exe_given=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --skip-build) build=0; shift ;;
        --exe) exe_given="$2"; build=0; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-windows: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

for tool in wixl msibuild msiinfo; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build-windows: '$tool' not found (Debian packages: wixl msitools)" >&2
        exit 127
    fi
done

target="x86_64-pc-windows-gnu"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
exe="${exe_given:-$target_dir/$target/pc/jejak.exe}"
if [ "$build" = 1 ]; then
    (cd "$root" && cargo build --profile pc -p jejak-cli --no-default-features --target "$target")
fi
if [ ! -f "$exe" ]; then
    echo "build-windows: $exe is missing (run without --skip-build)" >&2
    exit 1
fi

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

cp "$exe" "$stage/jejak.exe"
# The Start menu's two shortcuts: internet shortcuts to the agent's pages on this PC.
printf '[InternetShortcut]\r\nURL=http://127.0.0.1:7878/\r\n' >"$stage/checkin.url"
printf '[InternetShortcut]\r\nURL=http://127.0.0.1:7878/pustakawan\r\n' >"$stage/pustakawan.url"
sed 's/$/\r/' "$root/scripts/windows/BACA-SAYA.txt" >"$stage/BACA-SAYA.txt"

msi="$out/jejak-$version-x64.msi"
# wixl looks for the sources relative to where it runs.
(cd "$stage" && wixl -a x64 -D "Version=$version" -D "SourceDir=." -o "$msi" "$root/scripts/windows/jejak.wxs")

# What wixl cannot express, as MSI tables (the Windows Installer's own actions apply
# them, and undo them at uninstall):
# - Environment: `=-*PATH` sets the system PATH at install and removes the entry at
#   uninstall; `[~];[INSTALLDIR]` appends the folder to what is there.
# - MsiServiceConfig: type 3 (delayed automatic start) on install and reinstall (5).
# - MsiServiceConfigFailureActions: restart (1) after 10 s, 1 minute, 5 minutes; the
#   failure count resets after a day.
cat >"$stage/Environment.idt" <<'IDT'
Environment	Name	Value	Component_
s72	l255	L255	s72
Environment	Environment
JejakPath	=-*PATH	[~];[INSTALLDIR]	Agent
IDT
cat >"$stage/MsiServiceConfig.idt" <<'IDT'
MsiServiceConfig	Name	Event	ConfigType	Argument	Component_
s72	l255	i2	i4	S0	s72
MsiServiceConfig	MsiServiceConfig
JejakDelayedStart	Jejak	5	3	1	Agent
IDT
cat >"$stage/MsiServiceConfigFailureActions.idt" <<'IDT'
MsiServiceConfigFailureActions	Name	Event	ResetPeriod	RebootMessage	Command	Actions	DelayActions	Component_
s72	l255	i2	I4	L255	L255	S255	S255	s72
MsiServiceConfigFailureActions	MsiServiceConfigFailureActions
JejakRestart	Jejak	5	86400			1[~]1[~]1	10000[~]60000[~]300000	Agent
IDT
(
    cd "$stage"
    msibuild "$msi" -i Environment.idt -i MsiServiceConfig.idt -i MsiServiceConfigFailureActions.idt \
        -q "INSERT INTO InstallExecuteSequence (Action, Condition, Sequence) VALUES ('RemoveEnvironmentStrings', '', 3300)" \
        -q "INSERT INTO InstallExecuteSequence (Action, Condition, Sequence) VALUES ('WriteEnvironmentStrings', '', 5200)" \
        -q "INSERT INTO InstallExecuteSequence (Action, Condition, Sequence) VALUES ('MsiConfigureServices', 'VersionNT >= 600', 5850)"
)

echo "$msi"
