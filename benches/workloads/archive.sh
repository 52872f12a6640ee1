# Workload "archive" (issues #2, #9): the archive commands on the Linux 6.1
# source tree and on /usr/include against tar + zstd. Sourced by run.sh.
#   size:    thaw convert of the plain tar vs zstd -3 of the same tar (goal <= 1.03x),
#            thaw pack of the tree vs tar | zstd -3 of the tree (goal <= 1.03x),
#            thaw pack of /usr/include vs tar | zstd -3 of it (goal <= 1.10x)
#   pack:    thaw pack vs tar -cf - | zstd -T0 -3, source tree warm (goal <= 1.0x),
#            kernel and /usr/include
#   extract: thaw extract vs tar -I zstd -xf of the same archive, cold (goal <= 0.6x)
#   cat:     thaw cat of one small file, cold (kernel goal < 5 ms) and warm, on
#            both archives, vs tar -xO (cold)

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
    compare $wl size_same_tar thaw "zstd -3" "<=" 1.03 "thaw convert of linux-source-6.1.tar vs zstd -3 of that tar"
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
    # The size baseline is single-threaded zstd -3 (what `tar | zstd -3` gives).
    step archive-size-base bash -c "tar -C '$KSRC' -cf - . | zstd -3 -q -o '$W/base.tar.zst' -f"
    record $wl size_tree "tar | zstd -3" 1 "$(stat -c %s "$W/base.tar.zst")" B
    record $wl size_tree thaw 1 "$(stat -c %s "$W/thaw.tar.zst")" B
    compare $wl size_tree thaw "tar | zstd -3" "<=" 1.03 "thaw pack vs tar | zstd -3 of the same tree"
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
    trash_box "$W/x-base.box" "$W/x-thaw.box"

    cat_one "$W/thaw.tar.zst" "$KSRC" virt/kvm/Kconfig kernel
    compare $wl cat_cold_kernel thaw - "<" 0.005 "thaw cat of one small file, kernel archive evicted from the page cache before each run"
    archive_include "$W"
    rm -rf "$W"
}


# cat_one ARCHIVE SRC REL NAME: thaw cat of SRC/REL from ARCHIVE, cold and
# warm (hyperfine), and tar -xO --occurrence cold, as metrics cat_{cold,warm}_NAME.
cat_one() {
    local a=$1 src=$2 small=$3 name=$4 wl=archive
    log "archive: cat of one small file ($name)"
    [[ -f $src/$small ]] || die "expected small file $src/$small is missing"
    "$THAW" cat "$a" "$small" | cmp -s - "$src/$small" || die "thaw cat $small differs from the source"
    tar -I zstd -xOf "$a" --occurrence=1 "$small" | cmp -s - "$src/$small" ||
        die "tar -xO $small differs from the source"
    local runs_cold=$((QUICK ? 5 : 20)) runs_base=$((QUICK ? 2 : 5)) runs_warm=$((QUICK ? 10 : 50))
    local drop='sh -c "sync; echo 3 > /proc/sys/vm/drop_caches"'
    # Cold archive: its pages evicted (POSIX_FADV_DONTNEED), the thaw binary
    # left cached; loading a cold binary is not the archive's cost (it is
    # measured apart, as cat_coldall, with every cache dropped).
    local evict="python3 -c \"import os; fd = os.open('$a', os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\""
    step "archive-cat-cold-$name" hyperfine -N --runs $runs_cold --prepare "$evict" \
        --export-json "$LOGS/cat-cold-$name.json" "$THAW cat $a $small"
    step "archive-cat-coldall-$name" hyperfine -N --runs $runs_base --prepare "$drop" \
        --export-json "$LOGS/cat-coldall-$name.json" "$THAW cat $a $small"
    step "archive-cat-cold-tar-$name" hyperfine -N --runs $runs_base --prepare "$drop" \
        --export-json "$LOGS/cat-cold-tar-$name.json" "tar -I zstd -xOf $a --occurrence=1 $small"
    step "archive-cat-warm-$name" hyperfine -N --warmup 3 --runs $runs_warm \
        --export-json "$LOGS/cat-warm-$name.json" "$THAW cat $a $small"
    hyperfine_record "$LOGS/cat-cold-$name.json" $wl "cat_cold_$name" thaw
    hyperfine_record "$LOGS/cat-cold-tar-$name.json" $wl "cat_cold_$name" "tar -xO --occurrence"
    hyperfine_record "$LOGS/cat-warm-$name.json" $wl "cat_warm_$name" thaw
    hyperfine_record "$LOGS/cat-coldall-$name.json" $wl "cat_coldall_$name" thaw
    compare $wl "cat_cold_$name" thaw "tar -xO --occurrence" info 0 "thaw cat vs tar -xO of the same small file, cold"
    compare $wl "cat_warm_$name" thaw - info 0 "thaw cat of one small file, warm (s)"
}

# /usr/include (about 24k entries of small headers): size and pack wall
# against tar | zstd, and cat cold/warm.
archive_include() {
    local W=$1 wl=archive rep v inc=/usr/include
    [[ -d $inc ]] || die "$inc is missing (apt install linux-libc-dev libc6-dev)"
    log "archive: /usr/include, pack (source tree warm) and size"
    step archive-inc-warm-src bash -c "tar -C /usr -cf - include | cat > /dev/null"
    for ((rep = 1; rep <= REPS; rep++)); do
        for v in $(order $rep base thaw); do
            if [[ $v == base ]]; then
                rm -f "$W/inc-base.tar.zst"
                timed "archive-inc-pack-base-$rep" bash -c "tar -C /usr -cf - include | zstd -T0 -3 -q -o '$W/inc-base.tar.zst'"
                record_times $wl pack_include "tar | zstd -T0 -3" $rep
            else
                rm -f "$W/inc.tar.zst"
                timed "archive-inc-pack-thaw-$rep" "$THAW" pack $inc -o "$W/inc.tar.zst"
                record_times $wl pack_include thaw $rep
            fi
        done
    done
    compare $wl pack_include_wall thaw "tar | zstd -T0 -3" "<=" 1.0 "pack of /usr/include, $NPROC cores"
    step archive-inc-verify "$THAW" verify "$W/inc.tar.zst"
    step archive-inc-size-base bash -c "tar -C /usr -cf - include | zstd -3 -q -f -o '$W/inc-base.tar.zst'"
    record $wl size_include "tar | zstd -3" 1 "$(stat -c %s "$W/inc-base.tar.zst")" B
    record $wl size_include thaw 1 "$(stat -c %s "$W/inc.tar.zst")" B
    compare $wl size_include thaw "tar | zstd -3" "<=" 1.10 "thaw pack of /usr/include vs tar | zstd -3 of it"
    rm -f "$W/inc-base.tar.zst"
    cat_one "$W/inc.tar.zst" $inc stdio.h include
}
