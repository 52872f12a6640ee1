# Workload "profile" (issue #12): access profiles and the disk budget.
#
#  1. Kernel tinyconfig build (as in "kernel"), five sides per repetition,
#     order rotated: full extraction; thaw with no profile; thaw --prefetch
#     of the profile a first `thaw run --record` wrote; thaw (no prefetch) of
#     the archive packed with `pack --order` that profile; and the README's
#     CI recipe: that ordered archive with --prefetch of the profile
#     `pack --profile-out` wrote for it. Figures: build wall, ready + build,
#     events that had to wait for a decode (events_waited), frames decoded.
#     THAW_BENCH_PROFILE_PARTS (default "builds dehydrate budget") picks parts.
#  2. `thaw dehydrate` of a fully hydrated kernel tree: its time, and du
#     after it against a freshly populated tree.
#  3. A dataset job reading every file once in random order (10x the
#     budget) under `serve --max-disk` (10 % of the data) and without:
#     wall, peak disk (sampled every 0.1 s, and the daemon's own count),
#     bytes right (digest), `thaw verify` clean.
# Sourced by run.sh.

profile_stats() { jq -r ".$2" "$(dirname "$1")/.$(basename "$1").thaw/stats.json"; }

# The recorded profile and the archive packed in its order, made once per
# thaw binary (the record run is not timed against anything).
profile_inputs() {
    PW=$WORK/profile
    PROF=$PW/kernel.profile
    PORDERED=$PW/ordered.tar.zst
    PORDERED_PROF=$PW/ordered.profile
    mkdir -p "$PW"
    local stamp dir=$PW/record.box/linux
    stamp=$(sha256sum "$THAW" "$KARCHIVE" | sha256sum | cut -c1-16)
    if [[ -f $PROF && -f $PORDERED && -f $PORDERED_PROF && "$(cat "$PW/.stamp" 2>/dev/null)" == "$stamp" ]]; then
        return
    fi
    log "profile: recording the build's profile, packing in its order (once)"
    fresh_dir "$dir"
    step profile-populate "$THAW" populate "$KARCHIVE" "$dir"
    timed profile-record "$THAW" run --record "$PROF" "$KARCHIVE" "$dir" -- \
        bash -c "$(kernel_build_cmd "$dir" "$PW/record.result" "$PW/record.time")"
    record profile record_run_wall thaw 1 "$T_WALL" s
    record profile profile_bytes thaw 1 "$(stat -c %s "$PROF")" B
    timed profile-pack-ordered "$THAW" pack "$KSRC" -o "$PORDERED" --order "$PROF" --profile-out "$PORDERED_PROF"
    record profile pack_ordered_wall thaw 1 "$T_WALL" s
    trash_box "$PW/record.box"
    echo "$stamp" >"$PW/.stamp"
}

# profile_build SIDE REP: one build of the kernel tree on SIDE.
profile_build() {
    local v=$1 rep=$2 wl=profile
    local dir=$PW/$v.box/linux result=$PW/result-$v-$rep.txt tf=$PW/build-$v-$rep.time ready inner_wall
    fresh_dir "$dir"
    rm -f "$result" "$tf"
    drop_caches
    log "profile: build on $v, rep $rep"
    case $v in
    base)
        mkdir "$dir"
        timed "profile-ready-$v-$rep" tar -I zstd -xf "$KARCHIVE" -C "$dir"
        ready=$T_WALL
        timed "profile-build-$v-$rep" bash -c "$(kernel_build_cmd "$dir" "$result" "$tf")"
        ;;
    *)
        # thaw and prefetch serve the archive the profile was recorded on;
        # ordered and recipe the one packed in its order (recipe prefetches
        # the profile `pack --profile-out` wrote for it).
        local archive=$KARCHIVE extra=()
        [[ $v == ordered || $v == recipe ]] && archive=$PORDERED
        [[ $v == prefetch ]] && extra=(--prefetch "$PROF")
        [[ $v == recipe ]] && extra=(--prefetch "$PORDERED_PROF")
        timed "profile-ready-$v-$rep" "$THAW" populate "$archive" "$dir"
        ready=$T_WALL
        timed "profile-build-$v-$rep" "$THAW" run "${extra[@]}" "$archive" "$dir" -- \
            bash -c "$(kernel_build_cmd "$dir" "$result" "$tf")"
        ;;
    esac
    read -r inner_wall _ < <(tail -n 1 "$tf")
    record $wl build_wall "$v" "$rep" "$inner_wall" s
    record $wl total_wall "$v" "$rep" "$(calc "$ready + $T_WALL")" s
    if [[ $v != base ]]; then
        local k
        for k in events events_waited frames_decoded bytes_decoded prefetch_ranges_done prefetch_yields; do
            record $wl "$k" "$v" "$rep" "$(profile_stats "$dir" "$k")" count
        done
    fi
    [[ -s $result ]] || die "profile: the $v build left no result"
}

profile_builds() {
    local rep v
    for ((rep = 1; rep <= REPS; rep++)); do
        # Rotate the sides so drift favours none.
        for v in $(order $rep base thaw prefetch ordered recipe); do
            profile_build "$v" "$rep"
        done
        for v in thaw prefetch ordered recipe; do
            diff "$PW/result-base-$rep.txt" "$PW/result-$v-$rep.txt" >/dev/null ||
                die "profile: the $v build differs from the extracted tree's (rep $rep)"
        done
    done
    trash_box "$PW"/{base,thaw,prefetch,ordered,recipe}.box
    compare profile build_wall prefetch base "<=" 1.00 "issue #12 goal: --prefetch build wall vs full extraction"
    compare profile build_wall recipe base "<=" 1.00 "issue #12 goal, the README's CI recipe: archive packed with --order, --prefetch of its --profile-out"
    compare profile total_wall prefetch base "info" 0 "ready + build"
    compare profile total_wall recipe base "info" 0 "ready + build, CI recipe"
    compare profile build_wall thaw base "info" 0 "no profile, for reference"
    compare profile events_waited prefetch thaw "<=" 0.05 "issue #12 goal: events that waited for a decode vs no profile"
    compare profile frames_decoded ordered thaw "<=" 0.3 "issue #12 goal: frames decoded, archive packed with --order vs unordered"
}

profile_dehydrate() {
    local rep wl=profile dir fresh full after
    for ((rep = 1; rep <= REPS; rep++)); do
        dir=$PW/dehydrate.box/linux
        fresh_dir "$dir"
        step "profile-dh-populate-$rep" "$THAW" populate "$KARCHIVE" "$dir"
        fresh=$(tree_disk "$dir")
        timed "profile-dh-hydrate-$rep" "$THAW" hydrate "$dir"
        full=$(tree_disk "$dir")
        drop_caches
        timed "profile-dh-dehydrate-$rep" "$THAW" dehydrate "$dir"
        after=$(tree_disk "$dir")
        record $wl du_fresh thaw "$rep" "$fresh" B
        record $wl du_hydrated thaw "$rep" "$full" B
        record $wl du_dehydrated thaw "$rep" "$after" B
        record $wl dehydrate_wall thaw "$rep" "$T_WALL" s
        record $wl du_dehydrated_over_fresh thaw "$rep" "$(calc "$after / $fresh")" ratio
        grep -q '^dehydrated' "$LOGS/profile-dh-dehydrate-$rep.log" || die "profile: dehydrate said nothing"
    done
    thaw_verify_dir profile-dehydrate "$dir"
    trash_box "$PW/dehydrate.box"
    compare profile du_dehydrated_over_fresh thaw - "<=" 1.05 "issue #12 goal: du after dehydrate within 5 % of a fresh populate"
}

# The dataset for the budget: generated once; the job's list is every file, shuffled.
profile_dataset() {
    local n=$((QUICK ? 800 : 4000))
    PDS=$PW/dataset
    if [[ "$(cat "$PDS/.gen-ok" 2>/dev/null)" != "$n" ]]; then
        log "profile: generating a $n-file dataset (once)"
        rm -rf "$PDS"
        mkdir -p "$PDS"
        step profile-ds-gen "$PY" "$BENCH/helpers/gen_data.py" dataset "$PDS/src" --files $n --seed 7
        step profile-ds-pack "$THAW" pack "$PDS/src" -o "$PDS/ds.tar.zst"
        (cd "$PDS/src" && find . -type f -printf '%P\n' | shuf --random-source=<(yes)) >"$PDS/all.txt"
        "$PY" "$BENCH/helpers/readjob.py" "$PDS/src" "$PDS/all.txt" | jq -r .digest >"$PDS/all.digest"
        echo $n >"$PDS/.gen-ok"
    fi
    PDS_BYTES=$(jq -r .bytes "$PDS/src.lists/expected.json")
}

# Samples du of DIR's stage every 0.1 s until $2 exists; prints the peak.
# (Not the box: while served, du sees the tree twice, through the mount on
# DIR and in the stage.)
profile_sample_disk() {
    local box=$1 stop=$2 peak=0 d
    while [[ ! -e $stop ]]; do
        d=$(du -s --block-size=1 "$box" 2>/dev/null | cut -f1 || echo 0)
        ((d > peak)) && peak=$d
        sleep 0.1
    done
    echo "$peak"
}

profile_budget() {
    profile_dataset
    local rep v wl=profile budget=$((PDS_BYTES / 10)) dir box pid got peak
    for ((rep = 1; rep <= REPS; rep++)); do
        for v in $(order $rep nobudget budget); do
            dir=$PW/$v.box/ds
            box=$(dirname "$dir")
            fresh_dir "$dir"
            step "profile-ds-populate-$v-$rep" "$THAW" populate "$PDS/ds.tar.zst" "$dir"
            local extra=()
            [[ $v == budget ]] && extra=(--max-disk "$budget")
            drop_caches
            rm -f "$PW/sample.stop"
            profile_sample_disk "$box/.ds.thaw" "$PW/sample.stop" >"$PW/sample.peak" &
            local sampler=$!
            log "profile: dataset job, $v, rep $rep"
            timed "profile-ds-$v-$rep" "$THAW" run "${extra[@]}" "$PDS/ds.tar.zst" "$dir" -- \
                "$PY" "$BENCH/helpers/readjob.py" "$dir" "$PDS/all.txt"
            touch "$PW/sample.stop"
            wait $sampler
            peak=$(cat "$PW/sample.peak")
            got=$(grep -o '"digest": *"[0-9a-f]*"' "$LOGS/profile-ds-$v-$rep.log" | grep -o '[0-9a-f]\{64\}')
            [[ $got == "$(cat "$PDS/all.digest")" ]] || die "profile: the dataset job read wrong bytes ($v, rep $rep)"
            record $wl ds_wall "$v" "$rep" "$T_WALL" s
            record $wl ds_disk_peak_sampled "$v" "$rep" "$peak" B
            record $wl ds_disk_after "$v" "$rep" "$(tree_disk "$dir")" B
            if [[ $v == budget ]]; then
                record $wl ds_disk_peak_over_budget "$v" "$rep" "$(calc "$peak / $budget")" ratio
                record $wl ds_files_evicted "$v" "$rep" "$(profile_stats "$dir" files_evicted)" count
                thaw_verify_dir "profile-ds-$rep" "$dir"
            fi
        done
    done
    record $wl ds_budget budget 1 "$budget" B
    record $wl ds_bytes_read budget 1 "$PDS_BYTES" B
    trash_box "$PW"/{nobudget,budget}.box
    compare profile ds_disk_peak_over_budget budget - "<=" 1.05 "issue #12 goal: disk <= 1.05x the budget while reading 10x it"
    compare profile ds_wall budget nobudget "info" 0 "the budget's cost in wall time"
}

wl_profile() {
    kernel_archive
    profile_inputs
    local part
    for part in ${THAW_BENCH_PROFILE_PARTS:-builds dehydrate budget}; do
        "profile_$part"
    done
}
