# Workload "dataset" (issue #4, 2): a generated dataset archive (>= 20k files
# of 64 KiB - 4 MiB, >= 2 GB); a job reads a random 1 % and 10 % of the
# files. From a cold cache to the job's end: full extraction + job, a
# ratarmount FUSE mount of the same archive + job, `thaw run` + job. Time to
# done, peak RSS of the serving process (thaw daemon, ratarmount; for
# extraction the largest extractor process), disk. Sourced by run.sh.

dataset_inputs() {
    local n=$((QUICK ? 2000 : 20480))
    DS=$WORK/dataset
    DS_SRC=$DS/src
    DS_LISTS=$DS/src.lists
    DS_ARCHIVE=$DS/dataset.thaw.tar.zst
    if [[ "$(cat "$DS/.gen-ok" 2>/dev/null)" != "$n" ]]; then
        log "dataset: generating $n files (once)"
        rm -rf "$DS"
        mkdir -p "$DS"
        step dataset-gen "$PY" "$BENCH/helpers/gen_data.py" dataset "$DS_SRC" --files $n --seed 1
        echo $n >"$DS/.gen-ok"
    fi
    local files bytes
    files=$(jq -r .files "$DS_LISTS/expected.json")
    bytes=$(jq -r .bytes "$DS_LISTS/expected.json")
    if ((!QUICK)); then
        ((files >= 20000 && bytes >= 2000000000)) || die "dataset too small: $files files, $bytes bytes"
    fi
    local stamp
    stamp=$(sha256sum "$THAW" | cut -c1-16)
    if [[ ! -f $DS_ARCHIVE || "$(cat "$DS_ARCHIVE.stamp" 2>/dev/null)" != "$stamp" ]]; then
        log "dataset: packing with thaw (untimed input)"
        rm -f "$DS_ARCHIVE" "$DS/ratarmount.index.sqlite"
        step dataset-pack "$THAW" pack "$DS_SRC" -o "$DS_ARCHIVE"
        echo "$stamp" >"$DS_ARCHIVE.stamp"
    fi
}

# Checks a readjob.py output line against the expected digest of list PCT.
dataset_check() {
    local out=$1 pct=$2 what=$3 want got
    want=$(jq -r ".\"list-$pct\".digest" "$DS_LISTS/expected.json")
    got=$(jq -r .digest "$out" 2>/dev/null) || die "$what: no job output in $out"
    [[ $got == "$want" ]] || die "$what: the job read wrong bytes (digest $got, expected $want)"
}

# ratarmount_job RSS_OUT LIST JOB_OUT DONE_OUT: mounts the archive with
# ratarmount (existing index), runs the job, writes the time the job ended
# to DONE_OUT and the daemon's peak RSS (KiB) to RSS_OUT, unmounts.
ratarmount_job() {
    local rss_out=$1 list=$2 job_out=$3 done_out=$4 mnt=$DS/mnt pid i
    mkdir -p "$mnt"
    "$VENV/bin/ratarmount" -f --index-file "$DS/ratarmount.index.sqlite" "$DS_ARCHIVE" "$mnt" \
        >"$LOGS/dataset-ratarmount.log" 2>&1 &
    pid=$!
    for ((i = 0; i < 1200; i++)); do
        mountpoint -q "$mnt" && break
        kill -0 $pid 2>/dev/null || die "ratarmount exited before mounting (see $LOGS/dataset-ratarmount.log)"
        sleep 0.05
    done
    mountpoint -q "$mnt" || die "ratarmount did not mount $mnt within 60 s"
    timeout -k 10 "$STEP_TIMEOUT" "$PY" "$BENCH/helpers/readjob.py" "$mnt" "$list" >"$job_out" ||
        die "the job failed (or hung) on the ratarmount mount"
    now >"$done_out"
    tree_hwm_kib $pid >"$rss_out"
    fusermount3 -u "$mnt" || die "cannot unmount $mnt"
    wait $pid || die "ratarmount exited with an error (see $LOGS/dataset-ratarmount.log)"
}

# thaw_job DIR LIST JOB_OUT DONE_OUT RSS_OUT LOGNAME: `thaw run` (populating
# DIR) of the job; when the job is done the command writes the time to
# DONE_OUT and waits while the peak RSS (KiB) of the thaw processes is read
# into RSS_OUT from outside (`thaw run` runs commands in a PID namespace,
# so they cannot see it), then thaw stops.
thaw_job() {
    local dir=$1 list=$2 job_out=$3 done_out=$4 rss_out=$5 name=$6 go pid deadline
    go=$(mktemp -u "$WORK/go.XXXXXX")
    rm -f "$done_out"
    "$THAW" run "$DS_ARCHIVE" "$dir" -- bash -c "'$PY' '$BENCH/helpers/readjob.py' '$dir' '$list' > '$job_out' &&
        printf '%s' \"\$EPOCHREALTIME\" > '$done_out.tmp' && mv '$done_out.tmp' '$done_out' &&
        while [ ! -e '$go' ]; do sleep 0.02; done" >"$LOGS/$name.log" 2>&1 &
    pid=$!
    deadline=$((SECONDS + STEP_TIMEOUT))
    while [[ ! -s $done_out ]]; do
        if ((SECONDS > deadline)); then
            kill $pid 2>/dev/null || true
            wait $pid || true
            die "the dataset job under thaw did not finish within $STEP_TIMEOUT s (hung?); see $LOGS/$name.log"
        fi
        if ! kill -0 $pid 2>/dev/null; then
            wait $pid || true
            tail -n 20 "$LOGS/$name.log" >&2
            die "thaw run of the dataset job ended before the job was done (see $LOGS/$name.log)"
        fi
        sleep 0.01
    done
    tree_hwm_kib $pid "$(basename "$THAW")" >"$rss_out"
    touch "$go"
    wait $pid || die "thaw run of the dataset job failed (see $LOGS/$name.log)"
    rm -f "$go"
}

wl_dataset() {
    dataset_inputs
    local wl=dataset rep v pct t0 t1 out dir
    log "dataset: ratarmount index (untimed, built once; the timed mounts reuse it)"
    rm -f "$DS/ratarmount.index.sqlite"
    drop_caches
    timed dataset-ratarmount-index "$VENV/bin/ratarmount" --no-mount --index-file "$DS/ratarmount.index.sqlite" "$DS_ARCHIVE"
    [[ -s $DS/ratarmount.index.sqlite ]] || die "ratarmount wrote no index"
    record $wl ratarmount_index_build ratarmount 1 "$T_WALL" s

    for pct in 1 10; do
        local list=$DS_LISTS/list-$pct.txt
        # The bytes the job reads, as the reference for disk use.
        record $wl "disk_${pct}pct" "read by the job" 1 "$(jq -r ".\"list-$pct\".bytes" "$DS_LISTS/expected.json")" B
        for ((rep = 1; rep <= REPS; rep++)); do
            local vs="extract ratarmount thaw"
            ((rep % 2)) || vs="thaw ratarmount extract"
            for v in $vs; do
                out=$LOGS/dataset-job-$pct-$v-$rep.json
                dir=$DS/run-$v.box/data
                fresh_dir "$dir"
                drop_caches
                log "dataset: $pct % of the files, $v, rep $rep"
                case $v in
                extract)
                    mkdir "$dir"
                    timed "dataset-$pct-extract-$rep" bash -c \
                        "tar -I zstd -xf '$DS_ARCHIVE' -C '$dir' && '$PY' '$BENCH/helpers/readjob.py' '$dir' '$list' > '$out'"
                    record $wl "time_to_done_${pct}pct" "full extraction" $rep "$T_WALL" s
                    record $wl "peak_rss_${pct}pct" "full extraction" $rep "$((T_RSS_KB * 1024))" B
                    record $wl "disk_${pct}pct" "full extraction" $rep "$(tree_disk "$dir")" B
                    dataset_check "$out" $pct "full extraction"
                    ;;
                ratarmount)
                    t0=$(now)
                    ratarmount_job "$LOGS/dataset-rss" "$list" "$out" "$LOGS/dataset-done"
                    t1=$(now)
                    record $wl "time_to_done_${pct}pct" ratarmount $rep "$(calc "$(cat "$LOGS/dataset-done") - $t0")" s
                    record $wl "time_with_teardown_${pct}pct" ratarmount $rep "$(calc "$t1 - $t0")" s
                    record $wl "peak_rss_${pct}pct" ratarmount $rep "$(($(cat "$LOGS/dataset-rss") * 1024))" B
                    record $wl "disk_${pct}pct" ratarmount $rep "$(disk_bytes "$DS/ratarmount.index.sqlite")" B
                    dataset_check "$out" $pct ratarmount
                    ;;
                thaw)
                    t0=$(now)
                    thaw_job "$dir" "$list" "$out" "$LOGS/dataset-done" "$LOGS/dataset-rss" "dataset-$pct-thaw-$rep"
                    t1=$(now)
                    record $wl "time_to_done_${pct}pct" thaw $rep "$(calc "$(cat "$LOGS/dataset-done") - $t0")" s
                    record $wl "time_with_teardown_${pct}pct" thaw $rep "$(calc "$t1 - $t0")" s
                    record $wl "peak_rss_${pct}pct" thaw $rep "$(($(cat "$LOGS/dataset-rss") * 1024))" B
                    record $wl "disk_${pct}pct" thaw $rep "$(thaw_disk "$dir")" B
                    dataset_check "$out" $pct thaw
                    record_status $wl "_${pct}pct" thaw $rep "$dir"
                    ;;
                esac
                record $wl "job_only_${pct}pct" "$([[ $v == extract ]] && echo "full extraction" || echo "$v")" $rep \
                    "$(jq -r .seconds "$out")" s
            done
        done
        thaw_verify_dir "dataset-$pct" "$DS/run-thaw.box/data"
        if [[ $pct == 1 ]]; then
            compare $wl time_to_done_1pct thaw ratarmount "<=" 0.2 "issue #4 goal: at least 5x faster than ratarmount"
        else
            compare $wl "time_to_done_${pct}pct" thaw ratarmount info 0 ""
        fi
        compare $wl "time_to_done_${pct}pct" thaw "full extraction" info 0 ""
    done
    # Issue #3: disk after a workload <= 1.1x the bytes it actually read.
    compare $wl disk_1pct thaw "read by the job" "<=" 1.1 "issue #3 goal: disk <= 1.1x the bytes read"
    compare $wl disk_10pct thaw "read by the job" "<=" 1.1 "issue #3 goal: disk <= 1.1x the bytes read"
    rm -rf "${DS:?}/run-extract.box" "${DS:?}/run-thaw.box" "${DS:?}/mnt"
}
