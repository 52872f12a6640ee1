#!/usr/bin/env bash
# Times whole reads of files or trees, alternating between them; meant to
# run inside `thaw run` so that a served path and a native one are read in
# the same conditions.
#
#   readloop.sh OUT file|tree|4k:N REPS COLD_FIRST LABEL PATH [LABEL PATH ...]
#
# With COLD_FIRST 1, each PATH is first read once after dropping the page
# cache, timed as rep 0. Then each is read once untimed (warm-up), then REPS
# rounds, the order reversed every other round. Each timed read appends "LABEL REP
# SECONDS" to OUT. file: dd with 1 MiB reads; tree: cat of every regular
# file (find | xargs); 4k:N: the first N 4 KiB blocks, one read each.
set -euo pipefail
out=$1 mode=$2 reps=$3 cold=$4
shift 4
labels=() paths=()
while [[ $# -ge 2 ]]; do
    labels+=("$1") paths+=("$2")
    shift 2
done
[[ $# -eq 0 && ${#labels[@]} -gt 0 ]] || { echo "readloop.sh: bad arguments" >&2; exit 2; }

read_once() {
    case $mode in
    file) dd if="$1" of=/dev/null bs=1M status=none ;;
    tree) (cd "$1" && find . -type f -print0 | xargs -0 -r cat >/dev/null) ;;
    4k:*) dd if="$1" of=/dev/null bs=4k count="${mode#4k:}" status=none ;;
    *) echo "readloop.sh: mode must be file, tree or 4k:N" >&2; exit 2 ;;
    esac
}

timed_read() {
    local label=$1 path=$2 rep=$3 t0 t1
    t0=$EPOCHREALTIME
    read_once "$path"
    t1=$EPOCHREALTIME
    awk -v l="$label" -v r="$rep" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s\t%d\t%.6f\n", l, r, b - a }' >>"$out"
}

if [[ $cold == 1 ]]; then
    for i in "${!labels[@]}"; do
        sync
        echo 3 >/proc/sys/vm/drop_caches
        timed_read "${labels[$i]}" "${paths[$i]}" 0
    done
fi
# Warm-up (again after cold reads: each drop evicted the paths read before).
for i in "${!labels[@]}"; do
    read_once "${paths[$i]}"
done
for ((r = 1; r <= reps; r++)); do
    idx=("${!labels[@]}")
    if ((r % 2 == 0)); then
        mapfile -t idx < <(printf '%s\n' "${idx[@]}" | tac)
    fi
    for i in "${idx[@]}"; do
        timed_read "${labels[$i]}" "${paths[$i]}" "$r"
    done
done
