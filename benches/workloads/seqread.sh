# Workload "seqread" (issue #4, 3; issue #3 goal): cold sequential read of
# one 1 GiB file (256 MiB with --quick), 1 MiB reads: thaw's first read
# through a served stub vs `zstd -dc` of the archive vs reading an extracted
# copy, and `thaw cat` for reference. Page cache dropped before each, then
# free memory warmed (see warm_free_memory in lib.sh).
# Sourced by run.sh; workloads/hotread.sh reuses its inputs.

seq_inputs() {
    local size=$(((QUICK ? 256 : 1024) << 20))
    SEQ=$WORK/seqread
    SEQ_SIZE=$size
    SEQ_ARCHIVE=$SEQ/big.thaw.tar.zst
    SEQ_COPY=$SEQ/extracted/big.bin
    if [[ "$(cat "$SEQ/.gen-ok" 2>/dev/null)" != "$size" ]]; then
        log "seqread: generating a $((size >> 20)) MiB file (once)"
        rm -rf "$SEQ"
        mkdir -p "$SEQ/src"
        "$PY" "$BENCH/helpers/gen_data.py" bigfile "$SEQ/src/big.bin" --size $size --seed 7 >"$SEQ/sha256" ||
            die "cannot generate $SEQ/src/big.bin"
        echo $size >"$SEQ/.gen-ok"
    fi
    SEQ_SHA=$(cat "$SEQ/sha256")
    local stamp
    stamp=$(sha256sum "$THAW" | cut -c1-16)
    if [[ ! -f $SEQ_ARCHIVE || "$(cat "$SEQ_ARCHIVE.stamp" 2>/dev/null)" != "$stamp" ]]; then
        log "seqread: packing with thaw, extracting a copy (untimed inputs)"
        rm -rf "$SEQ_ARCHIVE" "$SEQ/extracted"
        step seq-pack "$THAW" pack "$SEQ/src" -o "$SEQ_ARCHIVE"
        mkdir -p "$SEQ/extracted"
        step seq-extract tar -I zstd -xf "$SEQ_ARCHIVE" -C "$SEQ/extracted"
        [[ "$(sha256sum <"$SEQ_COPY" | cut -d' ' -f1)" == "$SEQ_SHA" ]] || die "extracted copy of big.bin is wrong"
        echo "$stamp" >"$SEQ_ARCHIVE.stamp"
    fi
}

# A timed 1 MiB sequential read of FILE to /dev/null; writes "t0 t1" to OUT.
# As a command line, so it can run inside `thaw run`.
seq_read_cmd() {
    # shellcheck disable=SC2016 # expanded by the shell that runs it
    printf 't0=$EPOCHREALTIME; dd if=%q of=/dev/null bs=1M status=none && echo "$t0 $EPOCHREALTIME" > %q' "$1" "$2"
}

seq_seconds() {
    local t0 t1
    read -r t0 t1 <"$1" || die "no timing in $1"
    calc "$t1 - $t0"
}

wl_seqread() {
    seq_inputs
    local wl=seqread rep v secs name dir=$SEQ/served.box/data tf=$SEQ/read.time mb
    mb=$(calc "$SEQ_SIZE / 1000000")
    for ((rep = 1; rep <= REPS; rep++)); do
        local vs="zstd extracted thaw cat"
        ((rep % 2)) || vs="cat thaw extracted zstd"
        for v in $vs; do
            rm -f "$tf"
            if [[ $v == thaw ]]; then
                fresh_dir "$dir"
                step "seq-populate-$rep" "$THAW" populate "$SEQ_ARCHIVE" "$dir"
            fi
            drop_caches
            warm_free_memory $(((SEQ_SIZE >> 20) * 3 / 2))
            case $v in
            zstd)
                timed "seq-zstd-$rep" bash -c "zstd -dc '$SEQ_ARCHIVE' > /dev/null"
                secs=$T_WALL name="zstd -dc (whole archive)"
                ;;
            extracted)
                timed "seq-extracted-$rep" bash -c "$(seq_read_cmd "$SEQ_COPY" "$tf")"
                secs=$(seq_seconds "$tf") name="extracted copy"
                ;;
            cat)
                timed "seq-cat-$rep" bash -c "'$THAW' cat '$SEQ_ARCHIVE' big.bin > /dev/null"
                secs=$T_WALL name="thaw cat"
                ;;
            thaw)
                timed "seq-thaw-$rep" "$THAW" run "$SEQ_ARCHIVE" "$dir" -- bash -c "$(seq_read_cmd "$dir/big.bin" "$tf")"
                secs=$(seq_seconds "$tf") name=thaw
                record $wl serve_start_stop thaw $rep "$(calc "$T_WALL - $secs")" s
                record $wl disk_after_read thaw $rep "$(thaw_disk "$dir")" B
                record_status $wl "" thaw $rep "$dir"
                if [[ $rep == 1 ]]; then
                    step seq-thaw-sha "$THAW" run "$SEQ_ARCHIVE" "$dir" -- bash -c "sha256sum < '$dir/big.bin' > '$SEQ/served.sha'"
                    [[ "$(cut -d' ' -f1 "$SEQ/served.sha")" == "$SEQ_SHA" ]] || die "seqread: thaw served wrong bytes for big.bin"
                    thaw_verify_dir seqread "$dir"
                fi
                ;;
            esac
            record $wl first_read "$name" $rep "$secs" s
            record $wl throughput "$name" $rep "$(calc "$mb / $secs")" MB/s
        done
    done
    record $wl disk_after_read "file size" 1 "$SEQ_SIZE" B
    compare $wl throughput thaw "zstd -dc (whole archive)" ">=" 1.5 "issue #3 goal: first read >= 1.5x zstd -dc"
    compare $wl disk_after_read thaw "file size" "<=" 1.1 "issue #3 goal: disk <= 1.1x the bytes read"
}
