# Helpers for benches/run.sh and benches/workloads/*.sh (sourced, not run).
#
# Every figure goes through `record` into $RESULTS/results.jsonl (one JSON
# object a line: workload, metric, variant, rep, value, unit); every goal
# through `compare` into $RESULTS/comparisons.jsonl. benches/report.py and
# benches/plot.py read those two files and nothing else.

log() { printf '\033[1m[%s]\033[0m %s\n' "$(date +%T)" "$*" >&2; }
die() {
    printf '\n\033[1;31mBENCH FAILED:\033[0m %s\n' "$*" >&2
    exit 1
}

# Every step runs under a time limit, so that a hung reader (a stub whose
# event is never answered) stops the suite instead of stalling it:
# $STEP_TIMEOUT seconds, or $LIMIT when the caller sets it for one call.
STEP_TIMEOUT=${THAW_BENCH_STEP_TIMEOUT:-1800}

limit_died() {
    local rc=$1 name=$2 lf=$3
    shift 3
    tail -n 30 "$lf" >&2
    if [[ $rc == 124 || $rc == 137 ]]; then
        die "step '$name' did not finish within ${LIMIT:-$STEP_TIMEOUT} s (hung?): $* (full log: $lf)"
    fi
    die "step '$name' exited $rc: $* (full log: $lf)"
}

# Runs a step whose output matters only when it fails: output goes to
# $LOGS/NAME.log; on failure its tail is shown and the suite stops.
step() {
    local name=$1 rc=0
    shift
    local lf="$LOGS/$name.log"
    timeout -k 30 "${LIMIT:-$STEP_TIMEOUT}" "$@" >"$lf" 2>&1 || rc=$?
    [[ $rc == 0 ]] || limit_died $rc "$name" "$lf" "$@"
}

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# warm_free_memory MIB: writes MIB of zeros into the page cache of a scratch
# file under $WORK and deletes it, so that the pages the next timed step
# allocates were touched a moment ago. On a VM whose balloon reports free
# pages to the host (virtio-balloon free page reporting, on here), memory
# freed by drop_caches is handed back to the host, and the first touch of
# each page afterwards is slow: measured, a 1 GiB page-cache write took
# 0.19-0.78 s right after drop_caches and 0.21-0.27 s after this. It costs
# the side that allocates the most memory the most (a hydrating thaw writes
# the file it serves into the page cache). Call it after drop_caches, before
# every variant's timed step alike.
warm_free_memory() {
    local f=$WORK/.warm-memory
    dd if=/dev/zero of="$f" bs=1M count="$1" status=none || die "cannot write $f"
    rm -f "$f"
}

# Allocated bytes under a path (what the filesystem really spends; sparse
# stubs count only their hydrated blocks).
disk_bytes() { du -s --block-size=1 -- "$1" | cut -f1; }

# Float arithmetic: calc 'a / b' (awk, 9 decimals: µs figures keep 3 digits).
calc() { awk "BEGIN { printf \"%.9f\", $1 }"; }

now() { printf '%s' "$EPOCHREALTIME"; }

# timed NAME CMD...: runs CMD under /usr/bin/time, output to $LOGS/NAME.log.
# Sets T_WALL (s, from the shell's monotonic-enough microsecond clock),
# T_USER, T_SYS (s, children included) and T_RSS_KB (peak RSS of the
# largest process waited for). Dies if CMD fails.
timed() {
    local name=$1
    shift
    local lf="$LOGS/$name.log" tf="$LOGS/$name.time"
    local t0 t1 rc=0
    t0=$(now)
    timeout -k 30 "${LIMIT:-$STEP_TIMEOUT}" /usr/bin/time -f '%U %S %M' -o "$tf" "$@" >"$lf" 2>&1 || rc=$?
    t1=$(now)
    [[ $rc == 0 ]] || limit_died $rc "$name" "$lf" "$@"
    read -r T_USER T_SYS T_RSS_KB < <(tail -n 1 "$tf")
    T_WALL=$(calc "$t1 - $t0")
    [[ -n $T_USER && -n $T_SYS && -n $T_RSS_KB ]] || die "no timing for '$name' in $tf"
}

# record WORKLOAD METRIC VARIANT REP VALUE UNIT
record() {
    local wl=$1 metric=$2 variant=$3 rep=$4 value=$5 unit=$6
    [[ $value =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] ||
        die "not a number for $wl/$metric/$variant rep $rep: '$value'"
    printf '{"workload":"%s","metric":"%s","variant":"%s","rep":%s,"value":%s,"unit":"%s"}\n' \
        "$wl" "$metric" "$variant" "$rep" "$value" "$unit" >>"$RESULTS/results.jsonl"
}

# compare WORKLOAD METRIC VARIANT BASELINE OP TARGET [NOTE]
#   the report computes median(VARIANT) / median(BASELINE) and checks it
#   against OP TARGET (OP one of <= < >= >; "info" shows the ratio, no goal).
#   BASELINE "-" means a goal on median(VARIANT) itself, in its unit.
compare() {
    local wl=$1 metric=$2 variant=$3 base=$4 op=$5 target=$6 note=${7:-}
    printf '{"workload":"%s","metric":"%s","variant":"%s","baseline":"%s","op":"%s","target":%s,"note":"%s"}\n' \
        "$wl" "$metric" "$variant" "$base" "$op" "$target" "$note" >>"$RESULTS/comparisons.jsonl"
}

# Records the T_* figures of the last `timed` as METRIC_{wall,user,sys}.
record_times() {
    local wl=$1 metric=$2 variant=$3 rep=$4
    record "$wl" "${metric}_wall" "$variant" "$rep" "$T_WALL" s
    record "$wl" "${metric}_user" "$variant" "$rep" "$T_USER" s
    record "$wl" "${metric}_sys" "$variant" "$rep" "$T_SYS" s
}

# Order of the variants in repetition REP: rotated by one each repetition
# (A B on odd reps, B A on even ones; A B C, B C A, C A B), so slow drift
# (thermal, background work) does not favour one side.
order() {
    local rep=$1
    shift
    local k=$(((rep - 1) % $#)) out=("$@")
    echo "${out[@]:k}" "${out[@]:0:k}"
}

# Trees live alone in a box: BOX.box/NAME. thaw keeps its stage beside the
# tree it serves, so the box holds everything a side spent on disk.
#
# fresh_dir BOX.box/NAME: an empty box (dies if something is still mounted
# in it: a thaw serve or ratarmount left over).
fresh_dir() {
    local d=$1 box
    box=$(dirname "$d")
    [[ $box == *.box ]] || die "internal: $d is not in a *.box directory"
    if findmnt -rn -o TARGET | grep -qF "$box"; then
        die "something is still mounted under $box (a thaw serve or ratarmount left over?)"
    fi
    # Not deleted here: ext4 skips inodes freed in the last 60 s (300 s
    # while their inode table block is dirty) when it allocates, so deleting
    # the previous side's tree right before the next side creates its own
    # made that creation scan past every freed inode: populate took 4-18 s
    # instead of 1.1 s (benches/results/2026-11-26-ready). Old boxes go to
    # the trash, emptied between workloads (empty_trash).
    trash_box "$box"
    mkdir -p -- "$box"
}

# trash_box BOX...: moves boxes (or any trees) out of the way into the
# trash, which empty_trash deletes between workloads (see fresh_dir).
trash_box() {
    local b
    mkdir -p -- "$WORK/trash"
    for b in "$@"; do
        [[ -e $b ]] && mv -- "$b" "$(mktemp -u "$WORK/trash/box.XXXXXX")"
    done
    return 0
}

# Deletes the boxes fresh_dir moved away, then waits out ext4's window for
# freed inodes (60 s once the inode tables are written) so the next timed
# creation does not pay for this deletion.
empty_trash() {
    [[ -n $(ls -A "$WORK/trash" 2>/dev/null) ]] || return 0
    log "deleting old trees, then 60 s for ext4's recently-freed inode window"
    rm -rf -- "$WORK/trash"
    sync
    sleep 60
}

# Allocated bytes of a tree's box (tree + thaw's stage and state).
tree_disk() { disk_bytes "$(dirname "$1")"; }

# tree_disk of a thaw tree, checked against `thaw status`'s own disk_bytes
# (dies if thaw keeps its data where du cannot see it).
thaw_disk() {
    local d=$1 du js
    du=$(tree_disk "$d")
    js=$(thaw_status "$d")
    awk -v du="$du" -v t="$(jq -r .disk_bytes <<<"$js")" 'BEGIN { exit !(du >= 0.9 * t) }' ||
        die "du of $(dirname "$d") ($du B) is below thaw status disk_bytes: thaw keeps data outside the box: $js"
    echo "$du"
}

# `thaw status DIR --json` checked for the contract's keys; prints the JSON.
thaw_status() {
    local dir=$1 js
    js=$("$THAW" status "$dir" --json) || die "thaw status $dir --json failed"
    jq -e 'has("files_total") and has("files_complete") and has("files_partial") and has("files_untouched")
           and has("bytes_total") and has("bytes_hydrated") and has("disk_bytes")
           and has("events_served") and has("frames_decoded") and has("bytes_decoded")' <<<"$js" >/dev/null ||
        die "thaw status $dir --json lacks a contract key: $js"
    printf '%s\n' "$js"
}

# record_status WORKLOAD SUFFIX VARIANT REP DIR: the hydration figures of
# `thaw status DIR --json` as METRIC$SUFFIX.
record_status() {
    local wl=$1 sfx=$2 variant=$3 rep=$4 dir=$5 js k unit
    js=$(thaw_status "$dir")
    printf '%s\n' "$js" >"$LOGS/$wl$sfx-$variant-$rep.status.json"
    for k in bytes_hydrated bytes_total bytes_decoded events_served frames_decoded files_complete files_partial; do
        unit=count
        [[ $k == bytes_* ]] && unit=B
        record "$wl" "$k$sfx" "$variant" "$rep" "$(jq -r ".$k" <<<"$js")" "$unit"
    done
}

# record_stats WL VARIANT REP DIR: the daemon's own counters from the
# stage's stats.json (saved when serving stopped): events, daemon time per
# event, what carried the marks and how long marking took.
record_stats() {
    local wl=$1 variant=$2 rep=$3 dir=$4 st k
    st="$(dirname "$dir")/.$(basename "$dir").thaw/stats.json"
    [[ -s $st ]] || die "$wl: no $st"
    cp "$st" "$LOGS/$wl-$variant-$rep.stats.json"
    for k in events events_denied event_time_us stubs_marked mark_ms bytes_decoded bytes_written; do
        record "$wl" "daemon_$k" "$variant" "$rep" "$(jq -r ".$k // 0" "$st")" count
    done
    record "$wl" daemon_us_per_event "$variant" "$rep" "$(jq -r 'if .events > 0 then .event_time_us / .events else 0 end' "$st")" us
}

# Loud check of a served tree against the archive.
thaw_verify_dir() {
    local name=$1 dir=$2
    step "$name-thaw-verify" "$THAW" verify "$dir"
}

# Fails unless two files have the same content.
same_file() {
    cmp -s -- "$1" "$2" || die "$3: $1 and $2 differ"
}

# A listing of a tree with what the bench cares about, sorted, for
# comparing trees: type, mode, mtime (ns) of files and directories, size of
# files, target of symlinks (their own mtime is left out).
tree_listing() {
    (cd "$1" && find . -mindepth 1 \( -type d -printf '%P|d|%m|%T@\n' \) \
        -o \( -type l -printf '%P|l|%l\n' \) -o -printf '%P|%y|%m|%T@|%s|%n\n' | LC_ALL=C sort)
}

# Dies unless trees A and B have the same listing and the same file contents.
same_tree() {
    local a=$1 b=$2 what=$3
    if ! diff <(tree_listing "$a") <(tree_listing "$b") >"$LOGS/$what.listing.diff"; then
        head -n 20 "$LOGS/$what.listing.diff" >&2
        die "$what: metadata of $a and $b differ (see $LOGS/$what.listing.diff)"
    fi
    diff -r --no-dereference -q "$a" "$b" >"$LOGS/$what.content.diff" 2>&1 ||
        die "$what: contents of $a and $b differ (see $LOGS/$what.content.diff)"
}

# hyperfine_record JSON WORKLOAD METRIC VARIANT: one record per run.
hyperfine_record() {
    local json=$1 wl=$2 metric=$3 variant=$4 i=0 t
    while read -r t; do
        i=$((i + 1))
        record "$wl" "$metric" "$variant" $i "$t" s
    done < <(jq -r '.results[0].times[]' "$json")
    [[ $i -gt 0 ]] || die "no runs in $json"
}

# tree_hwm_kib PID [COMM]: summed peak RSS (VmHWM, KiB) of PID and its
# descendants (only those named COMM, when given).
tree_hwm_kib() {
    local pid=$1 want=${2:-} total=0 p kids c v
    want=${want:0:15}
    local -a todo=("$pid")
    while [[ ${#todo[@]} -gt 0 ]]; do
        p=${todo[-1]}
        unset 'todo[-1]'
        c=$(cat "/proc/$p/comm" 2>/dev/null || true)
        if [[ -z $want || $c == "$want" ]]; then
            v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
            total=$((total + ${v:-0}))
        fi
        kids=$(cat /proc/"$p"/task/*/children 2>/dev/null || true)
        for k in $kids; do todo+=("$k"); done
    done
    echo $total
}
