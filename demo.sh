#!/usr/bin/env bash
# demo.sh - thaw in one command.
#
# Builds thaw, packs the bundled sample project (examples/demo: a small C
# program plus ~34 MiB of assets its build never reads) into a thaw archive,
# then compiles and runs the program from a tree that thaw serves lazily, and
# shows with `thaw status` how few bytes had to be decompressed.
#
#   ./demo.sh              run the demo (as root; re-runs itself with sudo)
#   ./demo.sh --keep       leave the archive and the tree for you to explore
#   ./demo.sh --no-install do not call apt-get (everything must be there)
#
# Environment: THAW_DEMO_WORK=DIR moves the work directory (default
# target/demo in the repository); THAW_DEMO_LOOP=1 forces the loop-mounted
# ext4 image even on a filesystem that would do; CARGO_TARGET_DIR is honoured.
#
# Needs: Linux >= 6.14 (fanotify pre-content events), root (CAP_SYS_ADMIN),
# Debian/Ubuntu for the automatic package install, and a Rust toolchain
# (cargo; see rust-version in Cargo.toml). Safe to run again: each run starts from scratch.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SAMPLE=$REPO/examples/demo
PACKAGES=(build-essential pkg-config zstd e2fsprogs util-linux mount ca-certificates)

KEEP=0 INSTALL=1
for arg in "$@"; do
    case $arg in
    --keep) KEEP=1 ;;
    --no-install) INSTALL=0 ;;
    -h | --help)
        sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "demo.sh: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

if [[ -t 1 ]]; then
    BOLD=$'\e[1m' DIM=$'\e[2m' RED=$'\e[31m' GREEN=$'\e[32m' RESET=$'\e[0m'
else
    BOLD='' DIM='' RED='' GREEN='' RESET=''
fi
step() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$RESET"; }
note() { printf '%s    %s%s\n' "$DIM" "$*" "$RESET"; }
die() {
    printf '\n%sdemo.sh: error: %s%s\n' "$RED" "$*" "$RESET" >&2
    exit 1
}
trap 'rc=$?; printf "\n%sdemo.sh: FAILED (exit %s) at line %s: %s%s\n" "$RED" "$rc" "$LINENO" "$BASH_COMMAND" "$RESET" >&2' ERR

# --- root ------------------------------------------------------------------
# fanotify pre-content marks need CAP_SYS_ADMIN. Re-run as root through sudo,
# keeping PATH and the Rust toolchain location of the invoking user (the
# build itself then runs as that user again, so target/ stays theirs).
if ((EUID != 0)); then
    if ! command -v sudo >/dev/null 2>&1; then
        die "thaw serves files through fanotify pre-content events, which need root (CAP_SYS_ADMIN).
    Run this script as root, e.g.:  su -c '$REPO/demo.sh'"
    fi
    echo "demo.sh: fanotify pre-content events need root (CAP_SYS_ADMIN): re-running with sudo"
    envs=("PATH=$PATH" "THAW_DEMO_USER=$(id -un)")
    for v in CARGO_HOME RUSTUP_HOME CARGO_TARGET_DIR THAW_DEMO_WORK THAW_DEMO_LOOP; do
        [[ -n ${!v:-} ]] && envs+=("$v=${!v}")
    done
    [[ -z ${CARGO_HOME:-} && -d $HOME/.cargo ]] && envs+=("CARGO_HOME=$HOME/.cargo")
    [[ -z ${RUSTUP_HOME:-} && -d $HOME/.rustup ]] && envs+=("RUSTUP_HOME=$HOME/.rustup")
    exec sudo -- env "${envs[@]}" bash "$REPO/demo.sh" "$@"
fi
BUILD_USER=${THAW_DEMO_USER:-${SUDO_USER:-root}}

# as_builder CMD...: runs CMD as the user who started the demo (so that cargo
# writes target/ and ~/.cargo as them), or directly when that is root.
as_builder() {
    if [[ $BUILD_USER != root ]] && command -v sudo >/dev/null 2>&1; then
        local envs=("PATH=$PATH")
        for v in CARGO_HOME RUSTUP_HOME CARGO_TARGET_DIR; do
            [[ -n ${!v:-} ]] && envs+=("$v=${!v}")
        done
        sudo -u "$BUILD_USER" -- env "${envs[@]}" "$@"
    else
        "$@"
    fi
}

# --- kernel ----------------------------------------------------------------
step "Checking the kernel"
kernel=$(uname -r)
IFS=.- read -r kmajor kminor _ <<<"$kernel"
if ! [[ $kmajor =~ ^[0-9]+$ && $kminor =~ ^[0-9]+$ ]]; then
    die "cannot read the kernel version from 'uname -r' ($kernel)"
fi
if ((kmajor < 6 || (kmajor == 6 && kminor < 14))); then
    die "thaw needs Linux >= 6.14 for fanotify pre-content events (FAN_PRE_ACCESS); this kernel is $kernel.
    Boot a newer kernel (Debian 12: the bookworm-backports linux-image, or Debian 13) and run again."
fi
note "Linux $kernel: fanotify pre-content events available"

# --- packages --------------------------------------------------------------
step "Installing what the demo needs"
missing_pkgs() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}
if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
    mapfile -t need < <(missing_pkgs)
    if ((${#need[@]} == 0)); then
        note "already installed: ${PACKAGES[*]}"
    elif ((INSTALL == 0)); then
        die "missing packages: ${need[*]} (run without --no-install, or: apt-get install ${need[*]})"
    else
        note "apt-get install ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || note "apt-get update failed; trying the install with the package lists as they are"
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
            die "apt-get install ${need[*]} failed (see the messages above)"
    fi
else
    note "no apt-get here: checking the tools instead"
fi
export PATH=$PATH:/usr/sbin:/sbin # mkfs.ext4 and losetup live there
for tool in cc make zstd tar mkfs.ext4 mount umount; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: install it (Debian: apt-get install ${PACKAGES[*]})"
done

# --- cargo -----------------------------------------------------------------
find_cargo() {
    local c home
    if c=$(command -v cargo 2>/dev/null); then
        echo "$c"
        return
    fi
    home=$(getent passwd "$BUILD_USER" | cut -d: -f6 || true)
    for c in "${CARGO_HOME:-/nonexistent}/bin/cargo" "$home/.cargo/bin/cargo" /root/.cargo/bin/cargo /usr/local/cargo/bin/cargo; do
        [[ -x $c ]] && { echo "$c"; return; }
    done
    return 1
}
MSRV=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$REPO/Cargo.toml")
CARGO=$(find_cargo) || die "cargo not found. thaw is written in Rust and needs a toolchain (Rust >= ${MSRV:-?}):
    install one with rustup (https://rustup.rs) and run this script again.
    (Debian 12's own 'cargo' package is too old for thaw.)"
PATH=$(dirname "$CARGO"):$PATH
export PATH
note "$("$CARGO" --version)"

# --- build -----------------------------------------------------------------
step "Building thaw (cargo build --release)"
cd "$REPO"
target_dir=${CARGO_TARGET_DIR:-$REPO/target}
[[ $target_dir == /* ]] || target_dir=$REPO/$target_dir
if [[ $BUILD_USER != root ]]; then
    writable=$target_dir
    [[ -e $writable ]] || writable=$(dirname "$writable")
    if ! as_builder "$CARGO" --version >/dev/null 2>&1; then
        note "$CARGO does not run as $BUILD_USER: building as root"
        BUILD_USER=root
    elif ! as_builder test -w "$writable"; then
        note "$writable is not writable by $BUILD_USER: building as root"
        BUILD_USER=root
    else
        note "building as $BUILD_USER"
    fi
fi
as_builder "$CARGO" build --release --quiet || die "cargo build --release failed (see the messages above)"
THAW=$target_dir/release/thaw
[[ -x $THAW ]] || die "the build did not produce $THAW"
note "$THAW ($("$THAW" --version))"

# --- work directory --------------------------------------------------------
WORK=${THAW_DEMO_WORK:-$REPO/target/demo}
MNT=$WORK/mnt
BASE='' DIR='' ARCHIVE=''

# Unmounts everything below $WORK (a served DIR, the loop image), deepest first.
unmount_work() {
    local mp
    [[ -d $WORK ]] || return 0
    local work_real
    work_real=$(realpath "$WORK")
    while read -r mp; do
        umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
    done < <(awk -v w="$work_real" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

cleanup() {
    local rc=$?
    trap - ERR
    if ((KEEP)) && ((rc == 0)); then
        return
    fi
    cd /
    unmount_work
    if [[ -d $WORK ]]; then
        rm -rf "$WORK" 2>/dev/null || note "could not remove $WORK completely"
    fi
    exit "$rc"
}

step "Preparing a work directory"
# Only ever delete a directory this script made (it holds .thaw-demo).
if [[ -e $WORK && ! -e $WORK/.thaw-demo && -n $(ls -A "$WORK" 2>/dev/null) ]]; then
    die "$WORK exists and was not made by demo.sh: choose another THAW_DEMO_WORK"
fi
unmount_work # left over from an interrupted run
rm -rf "$WORK" || die "cannot remove the old work directory $WORK"
mkdir -p "$WORK" || die "cannot create $WORK"
touch "$WORK/.thaw-demo"
trap cleanup EXIT
trap 'printf "\n%sdemo.sh: interrupted: cleaning up%s\n" "$RED" "$RESET" >&2; exit 130' INT TERM

fstype=$(findmnt -no FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK")
case $fstype in
ext2/ext3 | ext4 | xfs | btrfs) native=1 ;;
*) native=0 ;;
esac
if ((native)) && [[ ${THAW_DEMO_LOOP:-0} != 1 ]]; then
    BASE=$WORK
    note "$WORK is on $fstype: fanotify pre-content marks work there"
else
    why="$WORK is on $fstype, which does not take fanotify pre-content marks"
    [[ ${THAW_DEMO_LOOP:-0} == 1 ]] && why="THAW_DEMO_LOOP=1"
    note "$why: using a loop-mounted ext4 image"
    mkdir -p "$MNT"
    truncate -s 1G "$WORK/ext4.img" || die "cannot create $WORK/ext4.img"
    mkfs.ext4 -q -F -O ^has_journal "$WORK/ext4.img" || die "mkfs.ext4 failed"
    mount -o loop "$WORK/ext4.img" "$MNT" ||
        die "cannot loop-mount $WORK/ext4.img (no loop devices here? try THAW_DEMO_WORK=/some/ext4/dir)"
    BASE=$MNT
    note "mounted $WORK/ext4.img on $MNT"
fi

# --- the sample tree and its archive ---------------------------------------
step "Packing the sample project into a thaw archive"
SRC=$BASE/src/icicle
mkdir -p "$SRC"
tar -C "$SAMPLE" --exclude=./build -cf - . | tar -C "$SRC" -xf -
"$SAMPLE/tools/make-assets.sh" "$SRC" >/dev/null || die "generating the sample's assets failed"
nsrc=$(find "$SRC/src" -name '*.[ch]' | wc -l)
note "examples/demo: $nsrc C files + Makefile ($(du -sh --apparent-size "$SRC/src" | cut -f1)), plus generated assets/ ($(du -sh --apparent-size "$SRC/assets" | cut -f1)) that the build never reads"
ARCHIVE=$BASE/icicle.tar.zst
"$THAW" pack "$SRC" -o "$ARCHIVE"
"$THAW" info "$ARCHIVE" | sed -n '/^entries/p; /^frames/p; /^archive /p'
note "a standard .tar.zst: 'tar -I zstd -xf' extracts it too"

# --- build and run the program from the lazily served tree -----------------
DIR=$BASE/icicle
JOBS=$(nproc 2>/dev/null || echo 2)
step "thaw run icicle.tar.zst icicle -- make && run the program"
note "thaw lays out sparse stubs, serves them through fanotify, runs the command,"
note "and fills each stub from the archive only when something reads it."
cd "$BASE"
start=$(date +%s%N)
# shellcheck disable=SC2016 # the inner script gets its values as $1 and $2
"$THAW" run "$ARCHIVE" "$DIR" -- sh -ec '
    make --no-print-directory -C "$1" -j"$2"
    echo
    "$1/build/icicle"
    echo
    echo "One small read in the middle of a 6 MiB asset:"
    "$1/build/icicle" peek "$1/assets/testvectors/vectors-02.bin" 3000000 32
' demo "$DIR" "$JOBS" || die "the build or the program failed under 'thaw run' (see above)"
ms=$((($(date +%s%N) - start) / 1000000))
note "populate + serve + build + run + stop: ${ms} ms"

step "thaw status icicle"
"$THAW" status "$DIR"
json=$("$THAW" status "$DIR" --json)
field() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" <<<"$json" | head -1; }
hydrated=$(field bytes_hydrated) total=$(field bytes_total)
if [[ -n $hydrated && -n $total && $total -gt 0 ]]; then
    awk -v h="$hydrated" -v t="$total" -v on="$GREEN" -v off="$RESET" 'BEGIN {
        printf "\n%s    Only %.1f MiB of the tree'"'"'s %.1f MiB (%.1f%%) is hydrated: whatever the build and the\n", on, h / 1048576, t / 1048576, 100 * h / t
        printf "    program did not read is still a hole, never decompressed.%s\n", off
    }'
fi
if [[ -n $(ls -A "$DIR") ]]; then
    die "$DIR is not empty after 'thaw run' ended: it should be unmounted"
fi
note "$DIR is empty again now that nothing serves it: no reader can see a stub's holes as zeros."

step "Running it again: make finds nothing to do (mtimes survive, nothing is decoded twice)"
"$THAW" run "$ARCHIVE" "$DIR" -- make --no-print-directory -C "$DIR" ||
    die "the second 'thaw run' failed"

if ((KEEP)); then
    step "Kept for you to explore"
    cat <<EOF
    cd $BASE
    T=$THAW
    \$T serve icicle.tar.zst icicle &     # serve it again: ls, cat, cp, make as you like
    \$T status icicle
    \$T hydrate icicle                    # fill every stub
    \$T verify icicle                     # compare what is hydrated with the archive
    kill %1                               # stop serving: icicle/ is empty again

    The stubs live in $BASE/.icicle.thaw/.
    Remove it all with:  umount $MNT 2>/dev/null; rm -rf $WORK
EOF
fi
step "${GREEN}Demo finished${RESET}"
