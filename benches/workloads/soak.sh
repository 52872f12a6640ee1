# Workload "soak" (issue #7): the soak test of tests/hydrate/soak.rs run
# for 10 minutes (1 with --quick): 2,000 stubs under 64 reader threads
# (preads on held handles, whole reads, mmaps, execs of stub executables),
# writers and renames, while the daemon is killed with SIGKILL at random
# points and restarted. Records the daemon's largest fd count and RSS, the
# reads per second, the kills, and the reads that saw wrong bytes (must be
# 0). Not a timed comparison: it fails the suite when the soak fails, after
# recording and printing its figures. Sourced by run.sh.

wl_soak() {
    local wl=soak secs=$((QUICK ? 60 : 600)) target=${CARGO_TARGET_DIR:-$ROOT/target}
    local lf=$LOGS/soak-test.log rc=0 line stats
    log "soak: cargo test --release --test hydrate -- soak:: for ${secs} s (THAW_SOAK_SEED is printed)"
    timeout -k 30 $((secs + 900)) env CARGO_TARGET_DIR="$target" THAW_SOAK_SECS="$secs" \
        cargo test --release --manifest-path "$ROOT/Cargo.toml" --test hydrate -- soak:: --nocapture >"$lf" 2>&1 || rc=$?
    line=$(grep -m1 -E '^soak: [0-9]+ s, seed [0-9]+, [0-9]+ kills' "$lf" || true)
    stats=$(grep -E '^soak: stats ' "$lf" || true)
    [[ -n $line && -n $stats ]] || die "soak printed no figures (exit $rc); see $lf"
    printf '%s\n%s\n' "$line" "$stats"
    # soak: 600 s, seed S, K kills, W workload processes; daemon max F fds, max RSS R MiB (N samples)
    local kills fds rss reads violations
    kills=$(sed -E 's/.* ([0-9]+) kills.*/\1/' <<<"$line")
    fds=$(sed -E 's/.*daemon max ([0-9]+) fds.*/\1/' <<<"$line")
    rss=$(sed -E 's/.*max RSS ([0-9]+) MiB.*/\1/' <<<"$line")
    # One stats line per workload process (the guard may stop one): sums.
    reads=$(grep -E '^soak: stats ' "$lf" | sed -E 's/.* ok_reads=([0-9]+).*/\1/' | awk '{ n += $1 } END { print n + 0 }')
    violations=$(grep -E '^soak: stats ' "$lf" | sed -E 's/.* violations=([0-9]+).*/\1/' | awk '{ n += $1 } END { print n + 0 }')
    record $wl daemon_max_fds thaw 1 "$fds" fds
    record $wl daemon_max_rss thaw 1 "$rss" MiB
    record $wl reads_per_second thaw 1 "$(calc "$reads / $secs")" reads/s
    record $wl daemon_kills thaw 1 "$kills" kills
    record $wl wrong_reads thaw 1 "$violations" reads
    [[ $rc == 0 ]] || die "the soak failed (exit $rc): $(grep -m1 -A12 'soak (seed' "$lf" || tail -20 "$lf")"
}
