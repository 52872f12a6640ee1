# Workload "read_at" (issue #2): random 4 KiB Archive::read_at throughput,
# hot / warm / cold, beside pread of the same ranges from the extracted
# tree. The measuring is benches/read_at.rs (criterion); this reads its
# per-sample figures back. Sourced by run.sh.

wl_read_at() {
    kernel_archive
    grep -q '^name = "read_at"' "$ROOT/Cargo.toml" ||
        die "benches/read_at.rs is not registered in Cargo.toml (see benches/README.md for the [[bench]] lines)"
    local target=${CARGO_TARGET_DIR:-$ROOT/target} wl=read_at args=() envs=() mode v
    if ((QUICK)); then
        args=(--warm-up-time 1 --measurement-time 2)
        envs=(THAW_BENCH_QUICK=1)
    fi
    rm -rf "$target/criterion/read_at_4k_"*
    log "read_at: cargo bench --bench read_at (Linux source archive)"
    step read_at-bench env CARGO_TARGET_DIR="$target" THAW_BENCH_ARCHIVE="$KARCHIVE" THAW_BENCH_TREE="$KSRC" \
        "${envs[@]}" cargo bench --manifest-path "$ROOT/Cargo.toml" --bench read_at -- "${args[@]}"
    for mode in hot warm cold; do
        for v in native thaw; do
            local js=$target/criterion/read_at_4k_$mode/$v/new/sample.json
            [[ -f $js ]] || die "criterion wrote no $js (see $LOGS/read_at-bench.log)"
            # One figure per criterion sample: bytes read / time spent.
            local i=0 t
            while read -r t; do
                i=$((i + 1))
                record $wl "read_4k_$mode" "$v" $i "$t" MB/s
            done < <(jq -r '[.iters, .times] | transpose[] | (.[0] * 4096 / .[1] * 1000)' "$js")
            [[ $i -gt 0 ]] || die "no samples in $js"
        done
    done
}
