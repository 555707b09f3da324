#!/usr/bin/env bash
# Installs the checkers the tests run on what real clients read, pinned, into one folder
# (JEJAK_CHECKERS, by default ~/.cache/jejak-checkers), and prints the folder:
#
#   axe-core         accessibility, injected into the pages in the browser tests (npm)
#   vnu-jar          the W3C Nu HTML checker, for the pages' markup (npm; needs Java)
#   @redocly/cli     `redocly lint` of the OpenAPI document (npm)
#   openapi-spec-validator   the same document, by another tool (PyPI, in a venv)
#   promtool         `promtool check metrics` of /metrics (from Debian's prometheus
#                    package, unpacked: installing the package would start a server)
#
# LibreOffice (Debian's libreoffice-calc-nogui), which reads a CSV as an Indonesian
# spreadsheet would, is a system package: .ci/run installs it with the browser.
#
# Safe to run again: what is there at the pinned version is kept, so a machine that ran
# it once downloads nothing more (CI runs it every time).
set -euo pipefail

AXE_CORE=4.11.1
VNU_JAR=26.9.27
REDOCLY_CLI=2.77.0
OPENAPI_SPEC_VALIDATOR=0.7.2

dir="${JEJAK_CHECKERS:-${HOME:-/root}/.cache/jejak-checkers}"
mkdir -p "$dir"
cd "$dir"

installed_npm() { # name version
    [ -f "node_modules/$1/package.json" ] &&
        grep -q "\"version\": \"$2\"" "node_modules/$1/package.json"
}
if ! installed_npm axe-core "$AXE_CORE" || ! installed_npm vnu-jar "$VNU_JAR" ||
    ! installed_npm @redocly/cli "$REDOCLY_CLI"; then
    [ -f package.json ] || echo '{ "private": true }' >package.json
    npm install --no-audit --no-fund --silent --save-exact \
        "axe-core@$AXE_CORE" "vnu-jar@$VNU_JAR" "@redocly/cli@$REDOCLY_CLI" >&2
fi

if ! venv/bin/pip show openapi-spec-validator 2>/dev/null | grep -qx "Version: $OPENAPI_SPEC_VALIDATOR"; then
    python3 -m venv venv
    venv/bin/pip install --quiet --disable-pip-version-check \
        "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR" >&2
fi

if [ ! -x promtool ]; then
    debs="$(mktemp -d)"
    # apt-get download writes into the current folder as the _apt user when it can.
    chmod 0777 "$debs"
    # A machine whose package lists were never fetched needs them first.
    (cd "$debs" && { apt-get download prometheus >&2 2>/dev/null ||
        { apt-get update -qq >&2 && apt-get download prometheus >&2; }; })
    dpkg-deb --fsys-tarfile "$debs"/prometheus_*.deb | tar -x -O ./usr/bin/promtool >promtool.part
    chmod 0755 promtool.part
    mv promtool.part promtool
    rm -rf "$debs"
fi

echo "$dir"
