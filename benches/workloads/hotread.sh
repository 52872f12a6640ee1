# Workload "hotread" (issue #4, 4; issue #3 goal >= 0.98x native): reads
# after hydration vs native, page cache warm, rounds alternating:
#   - the large file of workload seqread (1 MiB reads);
#   - the whole Linux source tree (cat of every file), whose first read
#     through thaw, from a cold cache, is also timed against a cold read of
#     an extracted copy.
# "native" is read while the daemon runs (same conditions) and again after
# it stopped ("native, no daemon"). Sourced by run.sh.

# hot_record FILE WORKLOAD METRIC_PREFIX BYTES: readloop.sh lines to records
# (rep 0, a first read, goes to PREFIX_first_read).
hot_record() {
    local file=$1 wl=$2 prefix=$3 bytes=$4 label rep secs n=0
    while IFS=$'\t' read -r label rep secs; do
        n=$((n + 1))
        if [[ $rep == 0 ]]; then
            record "$wl" "${prefix}_first_read" "$label" 1 "$secs" s
            record "$wl" "${prefix}_first_read_throughput" "$label" 1 "$(calc "$bytes / 1000000 / $secs")" MB/s
        else
            record "$wl" "${prefix}_hot_throughput" "$label" "$rep" "$(calc "$bytes / 1000000 / $secs")" MB/s
        fi
    done <"$file"
    [[ $n -gt 0 ]] || die "no timings in $file"
}

wl_hotread() {
    seq_inputs
    kernel_archive
    local wl=hotread W=$WORK/hotread reps=$((QUICK ? 2 : 5 * REPS)) out js
    local loop=$BENCH/helpers/readloop.sh
    mkdir -p "$W"

    log "hotread: large file, hydrated by a first read, then $reps rounds"
    fresh_dir "$W/big"
    step hot-big-populate "$THAW" populate "$SEQ_ARCHIVE" "$W/big"
    out=$W/big.tsv
    rm -f "$out"
    step hot-big-served "$THAW" run "$SEQ_ARCHIVE" "$W/big" -- \
        "$loop" "$out" file $reps 0 thaw "$W/big/big.bin" native "$SEQ_COPY"
    step hot-big-native "$loop" "$out" file $reps 0 "native, no daemon" "$SEQ_COPY"
    hot_record "$out" $wl bigfile "$SEQ_SIZE"
    js=$(thaw_status "$W/big")
    [[ $(jq -r .files_complete <<<"$js") == "$(jq -r .files_total <<<"$js")" ]] ||
        die "hotread: big.bin is not complete after a full read: $js"
    compare $wl bigfile_hot_throughput thaw native ">=" 0.98 "issue #3 goal: a complete file reads at native speed"

    # --quick reads only the fs/ subtree (about 46 MB).
    local sub="" left='.files_partial + .files_untouched' kbytes
    if ((QUICK)); then sub=/fs left=.files_partial; fi
    log "hotread: Linux source tree$sub, cold first read, then $reps rounds"
    kbytes=$(find "$KSRC$sub" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
    fresh_dir "$W/tree"
    step hot-tree-populate "$THAW" populate "$KARCHIVE" "$W/tree"
    out=$W/tree.tsv
    rm -f "$out"
    step hot-tree-served "$THAW" run "$KARCHIVE" "$W/tree" -- \
        "$loop" "$out" tree $reps 1 thaw "$W/tree$sub" native "$KSRC$sub"
    step hot-tree-native "$loop" "$out" tree $reps 0 "native, no daemon" "$KSRC$sub"
    hot_record "$out" $wl tree "$kbytes"
    js=$(thaw_status "$W/tree")
    printf '%s\n' "$js" >"$LOGS/hotread-tree.status.json"
    [[ $(jq -r "$left" <<<"$js") == 0 ]] ||
        die "hotread: files left partly hydrated (or untouched) after reading them all: $js"
    record $wl tree_events_served thaw 1 "$(jq -r .events_served <<<"$js")" count
    thaw_verify_dir hotread-tree "$W/tree"
    compare $wl tree_hot_throughput thaw native ">=" 0.98 "issue #3 goal: complete files read at native speed"
    compare $wl tree_first_read thaw native "<=" 1.0 "informative: cold first read vs cold extracted copy"
    rm -rf "$W"
}
