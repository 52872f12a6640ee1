#!/usr/bin/env bash
# Writes seed inputs for the fuzz targets into fuzz/corpus/TARGET (not
# committed): from the checked-in fixture (fixtures/small.tar.zst) and small
# tar streams, seek tables and fanotify buffers made here.
#
#   fuzz/seeds.sh [TARGET...]     (default: every target)
#
# Needs python3 and zstd. With THAW=path/to/thaw (or target/release/thaw
# present) the generated tars are also converted into archives for
# archive_open.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
thaw=${THAW:-$repo/target/release/thaw}
[[ -x $thaw ]] || thaw=
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(seek_table index_v1 archive_open tar_walk fanotify_events)
for t in "${targets[@]}"; do
    mkdir -p "$here/corpus/$t"
    python3 "$here/seeds.py" "$t" "$repo/fixtures/small.tar.zst" "$here/corpus/$t"
    if [[ $t == archive_open && -n $thaw ]]; then
        tmp=$(mktemp -d)
        python3 "$here/seeds.py" tar_walk "$repo/fixtures/small.tar.zst" "$tmp"
        for f in "$tmp"/*; do
            "$thaw" convert --frame-size 4K "$f" "$here/corpus/$t/conv-$(basename "$f").tar.zst" >/dev/null 2>&1 || true
        done
        rm -rf "$tmp"
    fi
    echo "seeds.sh: $t: $(ls "$here/corpus/$t" | wc -l) seeds" >&2
done
