#!/usr/bin/env bash
# Writes seed inputs for the fuzz targets into fuzz/corpus/TARGET (not
# committed): from the checked-in fixtures (fixtures/small.tar.zst,
# fixtures/small-v2.tar.zst) and small tar streams, seek tables and fanotify
# buffers made here.
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
[[ ${#targets[@]} -gt 0 ]] || targets=(seek_table index_v1 archive_open tar_walk fanotify_events index_v2_tail index_v2_block)
for t in "${targets[@]}"; do
    mkdir -p "$here/corpus/$t"
    python3 "$here/seeds.py" "$t" "$repo/fixtures/small.tar.zst" "$here/corpus/$t"
    if [[ $t == archive_open && -n $thaw ]]; then
        tmp=$(mktemp -d)
        python3 "$here/seeds.py" tar_walk "$repo/fixtures/small.tar.zst" "$tmp"
        for f in "$tmp"/*; do
            "$thaw" convert --frame-size 4K --output "$here/corpus/$t/conv-$(basename "$f").tar.zst" "$f" >/dev/null 2>&1 || true
        done
        rm -rf "$tmp"
    fi
    if [[ $t == index_v2_* && -n $thaw ]]; then
        tmp=$(mktemp -d)
        python3 "$here/seeds.py" tar_walk "$repo/fixtures/small.tar.zst" "$tmp"
        for f in "$tmp"/*; do
            a=$tmp/conv-$(basename "$f").tar.zst
            # Small pieces, frames and index blocks: several blocks, piece checksums.
            "$thaw" convert --format 2 --frame-size 4K --index-block-size 256 --output "$a" "$f" >/dev/null 2>&1 || continue
            python3 "$here/seeds.py" v2-archive "$t" "$a" "$here/corpus/$t"
        done
        rm -rf "$tmp"
    fi
    echo "seeds.sh: $t: $(ls "$here/corpus/$t" | wc -l) seeds" >&2
done
