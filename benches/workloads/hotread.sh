# Workload "hotread" (issue #4, 4; issue #3 goal >= 0.98x native): reads
# after hydration vs native, page cache warm, rounds alternating:
#   - the large file of workload seqread (1 MiB reads);
#   - the whole Linux source tree (cat of every file), whose first read
#     through thaw, from a cold cache, is also timed against a cold read of
#     an extracted copy.
#   - the cost of an event for a range already in place: 4 KiB reads of the
#     hydrated start of a still partial file (one event each) vs the same
#     reads of the extracted copy.
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
    local big=$W/big.box/data tree=$W/tree.box/linux
    fresh_dir "$big"
    step hot-big-populate "$THAW" populate "$SEQ_ARCHIVE" "$big"
    out=$W/big.tsv
    rm -f "$out"
    step hot-big-served "$THAW" run "$SEQ_ARCHIVE" "$big" -- \
        "$loop" "$out" file $reps 0 thaw "$big/big.bin" native "$SEQ_COPY"
    step hot-big-native "$loop" "$out" file $reps 0 "native, no daemon" "$SEQ_COPY"
    hot_record "$out" $wl bigfile "$SEQ_SIZE"
    js=$(thaw_status "$big")
    [[ $(jq -r .files_complete <<<"$js") == "$(jq -r .files_total <<<"$js")" ]] ||
        die "hotread: big.bin is not complete after a full read: $js"
    compare $wl bigfile_hot_throughput thaw native ">=" 0.98 "issue #3 goal: a complete file reads at native speed"

    # --quick reads only the fs/ subtree (about 46 MB).
    local sub="" left='.files_partial + .files_untouched' kbytes
    if ((QUICK)); then sub=/fs left=.files_partial; fi
    log "hotread: Linux source tree$sub, cold first read, then $reps rounds"
    kbytes=$(find "$KSRC$sub" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
    fresh_dir "$tree"
    step hot-tree-populate "$THAW" populate "$KARCHIVE" "$tree"
    out=$W/tree.tsv
    rm -f "$out"
    # --walk-ahead: a first read of a whole tree is what it is for (off by
    # default, see the README).
    step hot-tree-served "$THAW" run "$KARCHIVE" "$tree" --walk-ahead -- \
        "$loop" "$out" tree $reps 1 thaw "$tree$sub" native "$KSRC$sub"
    step hot-tree-native "$loop" "$out" tree $reps 0 "native, no daemon" "$KSRC$sub"
    hot_record "$out" $wl tree "$kbytes"
    js=$(thaw_status "$tree")
    printf '%s\n' "$js" >"$LOGS/hotread-tree.status.json"
    [[ $(jq -r "$left" <<<"$js") == 0 ]] ||
        die "hotread: files left partly hydrated (or untouched) after reading them all: $js"
    record $wl tree_events_served thaw 1 "$(jq -r .events_served <<<"$js")" count
    thaw_verify_dir hotread-tree "$tree"
    compare $wl tree_hot_throughput thaw native ">=" 0.98 "issue #3 goal: complete files read at native speed"
    compare $wl tree_first_read thaw native info 0 "cold first read vs a cold extracted copy"

    # 4 KiB reads of a hydrated range of a partial file: each one an event.
    local n=$((QUICK ? 4096 : 16384)) ev=$W/events.box/data label rep secs
    log "hotread: $n 4 KiB reads of a range already in place, $reps rounds"
    fresh_dir "$ev"
    step hot-ev-populate "$THAW" populate "$SEQ_ARCHIVE" "$ev"
    out=$W/events.tsv
    rm -f "$out"
    step hot-ev-served "$THAW" run "$SEQ_ARCHIVE" "$ev" -- \
        "$loop" "$out" "4k:$n" $reps 0 thaw "$ev/big.bin" native "$SEQ_COPY"
    js=$(thaw_status "$ev")
    printf '%s\n' "$js" >"$LOGS/hotread-events.status.json"
    (($(jq -r .events_served <<<"$js") >= n * reps)) ||
        die "hotread: fewer events than 4 KiB reads ($n x $reps): the measurement would be void: $js"
    (($(jq -r .files_partial <<<"$js") == 1)) || die "hotread: big.bin should still be partial: $js"
    declare -A per_read=()
    while IFS=$'\t' read -r label rep secs; do
        per_read[$label.$rep]=$(calc "$secs / $n")
        record $wl read_4k_in_place "$label" "$rep" "${per_read[$label.$rep]}" s
    done <"$out"
    for ((rep = 1; rep <= reps; rep++)); do
        record $wl event_overhead thaw $rep "$(calc "${per_read[thaw.$rep]} - ${per_read[native.$rep]}")" s
    done
    compare $wl event_overhead thaw - info 0 "per 4 KiB read of a range in place, as the reader sees it: kernel round trip included (goal for daemon time alone: 15 µs; C probe round trip: 21-30 µs)"
    rm -rf "$W"
}
