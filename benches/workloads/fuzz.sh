# Workload "fuzz" (issue #9): a short libFuzzer run of every target in
# fuzz/ (fuzz/run.sh TARGET SECONDS), 30 s each (10 s with --quick), on the
# corpus fuzz/corpus kept between runs. Records execs, execs per second and
# corpus size per target. Not a timed comparison: it fails the suite when a
# target finds a crash, OOM or timeout, after recording the figures (the
# input is in fuzz/artifacts/TARGET, the log in the run's logs/). Needs
# cargo-fuzz (run.sh installs it); builds with RUSTC_BOOTSTRAP=1 on stable.
# Sourced by run.sh.

wl_fuzz() {
    local wl=fuzz secs=$((QUICK ? 10 : 30)) t line took execs files failed=()
    for t in $("$ROOT/fuzz/run.sh" --list); do
        log "fuzz: $t for ${secs} s"
        line=$(FUZZ_LOG=$LOGS/fuzz-$t.log "$ROOT/fuzz/run.sh" "$t" "$secs" 2>"$LOGS/fuzz-$t.build.log") || failed+=("$t")
        printf '%s\n' "$line"
        # fuzz T: S s, N execs, corpus C files, result: R
        [[ $line =~ :\ ([0-9]+)s,\ ([0-9]+)\ execs,\ corpus\ ([0-9]+)\ files ]] || die "fuzz $t printed no figures; see $LOGS/fuzz-$t.build.log"
        took=${BASH_REMATCH[1]} execs=${BASH_REMATCH[2]} files=${BASH_REMATCH[3]}
        record $wl "${t}_execs" thaw 1 "$execs" execs
        # Over the whole run, the first pass over the corpus included.
        record $wl "${t}_execs_per_second" thaw 1 "$(calc "$execs / ($took > 0 ? $took : 1)")" execs/s
        record $wl "${t}_corpus" thaw 1 "$files" files
    done
    [[ ${#failed[@]} -eq 0 ]] || die "fuzz: found a crash, OOM or timeout in: ${failed[*]} (see fuzz/artifacts/)"
}
