# Workload "archive" (issue #2): the archive commands on the Linux 6.1
# source tree against tar + zstd. Sourced by run.sh.
#   size:    thaw convert of the plain tar vs zstd -3 of the same tar (goal <= 1.04x),
#            and thaw pack of the tree vs tar | zstd -3 of the tree
#   pack:    thaw pack vs tar -cf - | zstd -T0 -3, source tree warm (goal <= 1.0x)
#   extract: thaw extract vs tar -I zstd -xf of the same archive, cold (goal <= 0.6x)
#   cat:     thaw cat of one small file, cold (goal < 5 ms), vs tar -xO

wl_archive() {
    kernel_tree
    local W=$WORK/archive wl=archive rep v
    rm -rf "$W"
    mkdir -p "$W"

    log "archive: size of the same tar, zstd -3 vs thaw convert"
    timed archive-zstd3 zstd -T0 -3 -q -f "$KTAR" -o "$W/plain.tar.zst"
    timed archive-convert "$THAW" convert "$KTAR" -o "$W/convert.tar.zst"
    step archive-convert-verify "$THAW" verify "$W/convert.tar.zst"
    record $wl size_same_tar "zstd -3" 1 "$(stat -c %s "$W/plain.tar.zst")" B
    record $wl size_same_tar thaw 1 "$(stat -c %s "$W/convert.tar.zst")" B
    compare $wl size_same_tar thaw "zstd -3" "<=" 1.04 "thaw convert of linux-source-6.1.tar vs zstd -3 of that tar"
    # Both must hold the same tar members.
    diff <(tar -tf "$KTAR" | sed 's|/$||' | LC_ALL=C sort) \
        <("$THAW" ls "$W/convert.tar.zst" | LC_ALL=C sort) >"$LOGS/archive-convert-ls.diff" ||
        die "thaw ls of the converted archive differs from tar -tf (see $LOGS/archive-convert-ls.diff)"
    rm -f "$W/plain.tar.zst" "$W/convert.tar.zst"

    log "archive: pack, source tree warm"
    step archive-warm-src bash -c "tar -C '$KSRC' -cf - . | cat > /dev/null"
    for ((rep = 1; rep <= REPS; rep++)); do
        for v in $(order $rep base thaw); do
            if [[ $v == base ]]; then
                rm -f "$W/base.tar.zst"
                timed "archive-pack-base-$rep" bash -c "tar -C '$KSRC' -cf - . | zstd -T0 -3 -q -o '$W/base.tar.zst'"
                record_times $wl pack "tar | zstd -T0 -3" $rep
            else
                rm -f "$W/thaw.tar.zst"
                timed "archive-pack-thaw-$rep" "$THAW" pack "$KSRC" -o "$W/thaw.tar.zst"
                record_times $wl pack thaw $rep
            fi
        done
    done
    compare $wl pack_wall thaw "tar | zstd -T0 -3" "<=" 1.0 "pack of the kernel tree, $NPROC cores"
    step archive-pack-verify "$THAW" verify "$W/thaw.tar.zst"
    record $wl size_tree "tar | zstd -T0 -3" 1 "$(stat -c %s "$W/base.tar.zst")" B
    record $wl size_tree thaw 1 "$(stat -c %s "$W/thaw.tar.zst")" B
    compare $wl size_tree thaw "tar | zstd -T0 -3" "<=" 1.04 "thaw pack vs tar | zstd -3 of the same tree"
    rm -f "$W/base.tar.zst"

    log "archive: extract, cold cache"
    for ((rep = 1; rep <= REPS; rep++)); do
        for v in $(order $rep base thaw); do
            fresh_dir "$W/x-$v.box/tree"
            mkdir "$W/x-$v.box/tree"
            drop_caches
            if [[ $v == base ]]; then
                timed "archive-extract-base-$rep" tar -I zstd -xf "$W/thaw.tar.zst" -C "$W/x-base.box/tree"
                record_times $wl extract "tar -I zstd -xf" $rep
            else
                timed "archive-extract-thaw-$rep" "$THAW" extract "$W/thaw.tar.zst" "$W/x-thaw.box/tree"
                record_times $wl extract thaw $rep
            fi
        done
        if [[ $rep == 1 ]]; then
            log "archive: checking both extractions against the source tree"
            same_tree "$KSRC" "$W/x-thaw.box/tree" archive-extract-thaw-vs-src
            if ((!QUICK)); then same_tree "$W/x-base.box/tree" "$W/x-thaw.box/tree" archive-extract-tar-vs-thaw; fi
        fi
    done
    compare $wl extract_wall thaw "tar -I zstd -xf" "<=" 0.6 "full extraction, cold cache, $NPROC cores"
    record $wl extract_disk "tar -I zstd -xf" 1 "$(tree_disk "$W/x-base.box/tree")" B
    record $wl extract_disk thaw 1 "$(tree_disk "$W/x-thaw.box/tree")" B
    rm -rf "$W/x-base.box" "$W/x-thaw.box"

    log "archive: cat of one small file"
    local small=virt/kvm/Kconfig
    [[ -f $KSRC/$small ]] || die "expected small file $KSRC/$small is missing"
    "$THAW" cat "$W/thaw.tar.zst" "$small" | cmp -s - "$KSRC/$small" || die "thaw cat $small differs from the source"
    tar -I zstd -xOf "$W/thaw.tar.zst" --occurrence=1 "$small" | cmp -s - "$KSRC/$small" ||
        die "tar -xO $small differs from the source"
    local runs_cold=$((QUICK ? 5 : 20)) runs_base=$((QUICK ? 2 : 5)) runs_warm=$((QUICK ? 10 : 50))
    step archive-cat-cold hyperfine -N --runs $runs_cold --prepare 'sh -c "sync; echo 3 > /proc/sys/vm/drop_caches"' \
        --export-json "$LOGS/cat-cold.json" "$THAW cat $W/thaw.tar.zst $small"
    step archive-cat-cold-tar hyperfine -N --runs $runs_base --prepare 'sh -c "sync; echo 3 > /proc/sys/vm/drop_caches"' \
        --export-json "$LOGS/cat-cold-tar.json" "tar -I zstd -xOf $W/thaw.tar.zst --occurrence=1 $small"
    step archive-cat-warm hyperfine -N --warmup 3 --runs $runs_warm \
        --export-json "$LOGS/cat-warm.json" "$THAW cat $W/thaw.tar.zst $small"
    hyperfine_record "$LOGS/cat-cold.json" $wl cat_cold thaw
    hyperfine_record "$LOGS/cat-cold-tar.json" $wl cat_cold "tar -xO --occurrence"
    hyperfine_record "$LOGS/cat-warm.json" $wl cat_warm thaw
    compare $wl cat_cold thaw - "<" 0.005 "thaw cat $small, page cache dropped before each run"
    rm -rf "$W"
}

