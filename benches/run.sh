#!/usr/bin/env bash
# thaw's benchmark suite (issues #2, #3, #4): every workload measured side by
# side with its baseline in one run, then benches/results/<date>/report.md
# and PNG plots. Run as root on ext4/xfs/btrfs. See benches/README.md.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
# shellcheck source=benches/lib.sh
source "$BENCH/lib.sh"

ALL_WORKLOADS=(archive read_at kernel dataset seqread hotread ci profile)
# Run only when named with --only (the 10-minute soak of issue #7; the
# remote workload of issue #11; the short fuzz runs of issue #9).
ONLY_WORKLOADS=(soak remote fuzz)

usage() {
    cat <<EOF
usage: benches/run.sh [--quick] [--defconfig] [--only NAME[,NAME...]] [--reps N] [--no-install]

  --quick       small inputs, 1 repetition: finishes in under 5 minutes once
                the packages are installed and the inputs prepared
  --defconfig   kernel workload builds defconfig instead of tinyconfig
  --only LIST   run only these workloads: ${ALL_WORKLOADS[*]}
                (and, only when named: soak, the 10-minute soak of issue #7;
                remote, archives over shaped HTTP of issue #11; fuzz, 30 s of
                each fuzz target of issue #9)
  --reps N      repetitions per variant (default 3; at least 3 unless --quick)
  --no-install  do not call apt-get / pip (everything must already be there)

Environment: THAW_BIN=path uses that thaw binary instead of building one;
CARGO_TARGET_DIR is honoured for the release build; THAW_BENCH_WORK moves
the work directory (default benches/work, must be ext4/xfs/btrfs);
THAW_BENCH_STEP_TIMEOUT (seconds, default 1800) stops the suite when a step
hangs (the defconfig build gets 8 hours).
EOF
}

QUICK=0 DEFCONFIG=0 INSTALL=1 REPS="" ONLY=""
while [[ $# -gt 0 ]]; do
    case $1 in
    --quick) QUICK=1 ;;
    --defconfig) DEFCONFIG=1 ;;
    --only) ONLY=${2:?--only needs a name}; shift ;;
    --only=*) ONLY=${1#--only=} ;;
    --reps) REPS=${2:?--reps needs a number}; shift ;;
    --no-install) INSTALL=0 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument $1" ;;
    esac
    shift
done

if [[ -z $REPS ]]; then
    REPS=$((QUICK ? 1 : 3))
fi
[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 ]] || die "--reps must be a positive number"
((QUICK || REPS >= 3)) || die "a full run needs at least 3 repetitions"

SELECTED=()
if [[ -n $ONLY ]]; then
    IFS=, read -r -a SELECTED <<<"$ONLY"
    for w in "${SELECTED[@]}"; do
        [[ " ${ALL_WORKLOADS[*]} ${ONLY_WORKLOADS[*]} " == *" $w "* ]] || die "unknown workload '$w' (have: ${ALL_WORKLOADS[*]} ${ONLY_WORKLOADS[*]})"
    done
else
    SELECTED=("${ALL_WORKLOADS[@]}")
fi

[[ $EUID -eq 0 ]] || die "run as root: the suite drops page caches, mounts and uses fanotify"

WORK=${THAW_BENCH_WORK:-$BENCH/work}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
FSTYPE=$(findmnt -no FSTYPE -T "$WORK")
case $FSTYPE in
ext4 | xfs | btrfs) ;;
*) die "$WORK is on $FSTYPE: stubs need ext4, xfs or btrfs (set THAW_BENCH_WORK)" ;;
esac

# Debian's python has python3-matplotlib and numpy; a pyenv/venv python on
# PATH may not.
PY=/usr/bin/python3
VENV=$WORK/venv
NPROC=$(nproc)

APT_PACKAGES=(linux-source-6.1 xz-utils bc bison flex libelf-dev libssl-dev make gcc g++ hyperfine
    python3 python3-venv python3-matplotlib python3-numpy fuse3 libfuse3-dev libzstd-dev zstd
    time jq tar coreutils findutils util-linux binutils nginx curl)

install_deps() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "apt-get install ${missing[*]}"
        step apt-update apt-get update
        step apt-install env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    fi
    if [[ ! -x $VENV/bin/ratarmount ]]; then
        log "pip install ratarmount (into $VENV)"
        step venv "$PY" -m venv --system-site-packages "$VENV"
        step pip-ratarmount "$VENV/bin/pip" install 'ratarmount[full]'
    fi
    # ratarmount reads http:// URLs through fsspec (the remote workload),
    # which its [full] extra does not always bring.
    if ! "$VENV/bin/python" -c 'import fsspec, aiohttp' 2>/dev/null; then
        log "pip install fsspec aiohttp (into $VENV, for ratarmount over http)"
        step pip-fsspec "$VENV/bin/pip" install fsspec aiohttp
    fi
}

check_tools() {
    local t
    for t in hyperfine zstd xz tar jq bc bison flex make gcc /usr/bin/time size cargo mountpoint findmnt fusermount3; do
        command -v "$t" >/dev/null || die "missing tool $t (run without --no-install, or install it)"
    done
    [[ -f /usr/src/linux-source-6.1.tar.xz ]] || die "missing /usr/src/linux-source-6.1.tar.xz (apt-get install linux-source-6.1)"
    "$PY" -c 'import matplotlib, numpy' 2>/dev/null || die "$PY cannot import matplotlib and numpy (apt-get install python3-matplotlib)"
    if [[ " ${SELECTED[*]} " == *" dataset "* ]]; then
        "$VENV/bin/ratarmount" --version >/dev/null 2>&1 || die "ratarmount does not run from $VENV"
    fi
    if [[ " ${SELECTED[*]} " == *" remote "* ]]; then
        "$VENV/bin/python" -c 'import fsspec, aiohttp' 2>/dev/null || die "ratarmount in $VENV cannot read http:// (pip install fsspec aiohttp)"
    fi
}

build_thaw() {
    if [[ -n ${THAW_BIN:-} ]]; then
        THAW=$(realpath "$THAW_BIN")
        [[ -x $THAW ]] || die "THAW_BIN=$THAW_BIN is not executable"
        return
    fi
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    log "cargo build --release (target dir $target)"
    step cargo-build env CARGO_TARGET_DIR="$target" cargo build --release --manifest-path "$ROOT/Cargo.toml"
    THAW=$target/release/thaw
    [[ -x $THAW ]] || die "cargo build did not produce $THAW"
}

# The Linux 6.1 source: $KTAR (plain tar, as the .tar.xz ships it) and $KSRC
# (that tar extracted: the tree thaw packs). Prepared once, kept in $WORK.
kernel_tree() {
    local d=$WORK/linux
    KTAR=$d/linux-source-6.1.tar
    KSRC=$d/src/linux-source-6.1
    if [[ ! -f $d/.tree-ok ]]; then
        log "preparing the Linux 6.1 source tree (once)"
        rm -rf "$d"
        mkdir -p "$d/src"
        step kernel-unxz bash -c "xz -T0 -dc /usr/src/linux-source-6.1.tar.xz > '$KTAR.tmp' && mv '$KTAR.tmp' '$KTAR'"
        step kernel-untar tar -C "$d/src" -xf "$KTAR"
        [[ -f $KSRC/Makefile && -d $KSRC/kernel ]] || die "$KTAR did not give a kernel tree at $KSRC"
        touch "$d/.tree-ok"
    fi
}

# $KARCHIVE: the kernel tree packed by the thaw under test (re-made when the
# binary changes), used by the workloads that need an archive but do not
# time its making.
kernel_archive() {
    kernel_tree
    KARCHIVE=$WORK/linux/linux.thaw.tar.zst
    local stamp
    stamp=$(sha256sum "$THAW" | cut -c1-16)
    if [[ ! -f $KARCHIVE || "$(cat "$KARCHIVE.stamp" 2>/dev/null)" != "$stamp" ]]; then
        log "packing the kernel tree with thaw (untimed, shared input)"
        rm -f "$KARCHIVE"
        step kernel-pack "$THAW" pack "$KSRC" -o "$KARCHIVE"
        step kernel-pack-verify "$THAW" verify "$KARCHIVE"
        echo "$stamp" >"$KARCHIVE.stamp"
    fi
}

# Unmounts whatever the suite mounted under $WORK (ratarmount, a thaw serve
# that died) when the suite stops early.
cleanup() {
    local rc=$?
    local m j
    if declare -F remote_down >/dev/null; then remote_down || true; fi
    for j in $(jobs -p); do
        kill "$j" 2>/dev/null || true
    done
    while read -r m; do
        [[ -n $m ]] || continue
        fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | grep -F "$WORK/" | sort -r || true)
    if [[ $rc -ne 0 ]]; then
        printf '\nlogs: %s\n' "${LOGS:-?}" >&2
    fi
}
trap cleanup EXIT

write_meta() {
    local thaw_rev
    thaw_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then
        thaw_rev="$thaw_rev+dirty"
    fi
    "$PY" - "$RESULTS/meta.json" <<EOF
import json, sys
meta = {
    "date": "$(date -Is)",
    "mode": "$([[ $QUICK == 1 ]] && echo quick || echo full)",
    "reps": $REPS,
    "workloads": "${SELECTED[*]}".split(),
    "kernel_config": "$([[ $DEFCONFIG == 1 ]] && echo defconfig || echo tinyconfig)",
    "cpu": """$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)""",
    "cores": $NPROC,
    "memory": """$(free -h | awk '/^Mem:/ {print $2}')""",
    "kernel": """$(uname -srvm)""",
    "os": """$(. /etc/os-release && echo "$PRETTY_NAME")""",
    "work_fs": "$FSTYPE on $(findmnt -no SOURCE -T "$WORK")",
    "versions": {
        "thaw": """$("$THAW" --version) ($thaw_rev)""",
        "rustc": """$(rustc --version)""",
        "zstd": """$(zstd --version | tr -d '*' | xargs)""",
        "tar": """$(tar --version | head -n 1)""",
        "hyperfine": """$(hyperfine --version)""",
        "ratarmount": """$("$VENV/bin/ratarmount" --version 2>&1 | grep -m1 -i '^ratarmount')""",
        "python": """$("$PY" --version)""",
        "gcc": """$(gcc --version | head -n 1)""",
        "make": """$(make --version | head -n 1)""",
    },
}
json.dump(meta, open(sys.argv[1], "w"), indent=2)
EOF
}

# --- main -------------------------------------------------------------------

STAMP=$(date +%F)
SUFFIX=""
if ((QUICK)); then SUFFIX+="-quick"; fi
if [[ -n $ONLY ]]; then SUFFIX+="-only-${ONLY//,/-}"; fi
RESULTS=$BENCH/results/$STAMP$SUFFIX
# A second run of the same day and selection gets its own directory.
for ((n = 2; n < 100; n++)); do
    [[ -e $RESULTS ]] || break
    RESULTS=$BENCH/results/$STAMP$SUFFIX-$n
done
LOGS=$WORK/logs/$STAMP$SUFFIX-$(date +%H%M%S)
mkdir -p "$LOGS"

if ((INSTALL)); then install_deps; fi
check_tools
build_thaw

mkdir -p "$RESULTS"
: >"$RESULTS/results.jsonl"
: >"$RESULTS/comparisons.jsonl"
write_meta
log "thaw: $THAW ($("$THAW" --version)); results: $RESULTS; logs: $LOGS"

# All workload files are sourced: some share inputs (hotread reads
# seqread's large file).
for wl in "${ALL_WORKLOADS[@]}" "${ONLY_WORKLOADS[@]}"; do
    # shellcheck source=/dev/null
    source "$BENCH/workloads/$wl.sh"
done
for wl in "${SELECTED[@]}"; do
    empty_trash
    log "=== workload $wl ==="
    "wl_$wl"
done
rm -rf -- "$WORK/trash"

log "report and plots"
step plot "$PY" "$BENCH/plot.py" "$RESULTS"
step report "$PY" "$BENCH/report.py" "$RESULTS"
sed -n '/^## Goals$/,/goals met\.$/p' "$RESULTS/report.md"
log "done: $RESULTS/report.md"
