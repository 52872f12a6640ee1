#!/usr/bin/env bash
# Runs one fuzz target for a while and says how it went.
#
#   fuzz/run.sh TARGET SECONDS [extra libFuzzer flags...]
#   fuzz/run.sh --list
#
# Installs cargo-fuzz when missing, seeds fuzz/corpus/TARGET (fuzz/seeds.sh)
# when empty, builds with the stable toolchain (RUSTC_BOOTSTRAP=1 lets it take
# the nightly-only flags cargo-fuzz passes: -Zsanitizer=address and the
# coverage instrumentation), runs under `nice -n 19`, and prints a summary
# line: target, seconds, execs, corpus files, crash/OOM/timeout artifacts.
# Exit status: 0 when libFuzzer found nothing, 1 otherwise.
#
# Environment: FUZZ_RSS_MB (2048), FUZZ_MALLOC_MB (1024),
# FUZZ_TIMEOUT (30 s per input), FUZZ_LOG (default fuzz/runs/TARGET-DATE.log).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export RUSTC_BOOTSTRAP=1
# cargo-fuzz's own target dir (fuzz/target), not the main crate's.
unset CARGO_TARGET_DIR

if [[ ${1:-} == --list ]]; then
    sed -n 's/^ *{ name = "\([a-z0-9_]*\)".*/\1/p' Cargo.toml
    exit 0
fi
[[ $# -ge 2 ]] || { sed -n '2,17p' "$0" >&2; exit 2; }
target=$1 secs=$2
shift 2

if ! command -v cargo-fuzz >/dev/null && ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi
corpus=corpus/$target
mkdir -p "$corpus" artifacts/"$target" runs
if [[ -z $(ls -A "$corpus") ]]; then
    bash "$here/seeds.sh" "$target"
fi

nice -n 19 cargo fuzz build --release --debug-assertions "$target" >&2
log=${FUZZ_LOG:-runs/$target-$(date -u +%Y%m%dT%H%M%S).log}
before=$(ls artifacts/"$target" | wc -l)
start=$(date +%s)
set +e
nice -n 19 cargo fuzz run --release --debug-assertions "$target" "$corpus" -- \
    -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-30}" \
    -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -malloc_limit_mb="${FUZZ_MALLOC_MB:-1024}" \
    -print_final_stats=1 "$@" >"$log" 2>&1
rc=$?
set -e
took=$(( $(date +%s) - start ))
execs=$(awk '/stat::number_of_executed_units/ {n = $2} END {print n + 0}' "$log")
# Stopped by a crash: no final stats, the last status line has the count.
[[ $execs -gt 0 ]] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
found=$(( $(ls artifacts/"$target" | wc -l) - before ))
files=$(ls "$corpus" | wc -l)
result=ok
[[ $rc -eq 0 && $found -eq 0 ]] || result="FOUND (exit $rc, $found new artifacts in fuzz/artifacts/$target; log $log)"
echo "fuzz $target: ${took}s, $execs execs, corpus $files files, result: $result"
[[ $result == ok ]]
