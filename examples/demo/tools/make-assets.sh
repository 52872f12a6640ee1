#!/usr/bin/env bash
# Generates the demo tree's large assets (never read by `make`) into
# DEST/assets/. Deterministic: the same bytes on every machine.
#
#   examples/demo/tools/make-assets.sh DEST [SCALE]    # SCALE 1 = about 34 MiB
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dest=${1:?usage: make-assets.sh DEST [SCALE]}
scale=${2:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${CC:-cc}" -O2 -std=gnu11 -Wall -Wextra -o "$tmp/make-assets" "$here/make-assets.c"
"$tmp/make-assets" "$dest" "$scale"
