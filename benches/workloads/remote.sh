# Workload "remote" (issue #11; only with --only remote): archives read over
# HTTP from nginx through a shaped network (100 Mbit/s, 20 ms RTT). thaw
# reads the URL directly; the baseline downloads the whole archive (curl),
# extracts it, then does the same work. Parts (THAW_BENCH_REMOTE_PARTS,
# default "ci kernel dataset"):
#   ci      the ci workload's cargo project + target/: restore + no-op build
#           vs download + extract + no-op build (goal <= 0.10x)
#   kernel  the kernel workload's tree: ready + build (tinyconfig; --quick:
#           only `make tinyconfig`) vs download + extract + build (<= 0.80x)
#   ci and kernel have three sides: download + extract (base), thaw with no
#   profile (thaw), and the README's CI recipe (recipe): the archive packed
#   with `pack --order` of a profile a first `run --record` wrote, served
#   with `run --prefetch` of it; the goals are checked on the recipe.
#   dataset 1 % of the dataset workload's files: thaw vs download + extract
#           + the job, and vs ratarmount (the same URL, else a plain .tar of it)
# Figures also include bytes received and requests (nginx's access log, and
# thaw's own counters from `status --json`).
#
# The network: this kernel has no sch_netem (`tc qdisc add ... netem` fails
# with "qdisc kind unknown"), so the link is made in user space: nginx
# listens on one loopback port, benches/helpers/shaper.py relays another
# port to it as a 100 Mbit/s link with 10 ms one-way delay per direction
# (RTT 20 ms), shared by all connections. Every client (thaw, curl,
# ratarmount) uses the shaped port. Everything stays on 127.0.0.1.
# Sourced by run.sh.

REMOTE_NGINX_PORT=8731
REMOTE_PORT=8732

# Starts nginx and the shaping relay in front of it.
remote_up() {
    RDIR=$WORK/remote
    RWWW=$RDIR/www
    mkdir -p "$RWWW" "$RDIR/tmp"
    command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
    command -v nginx >/dev/null || die "remote: nginx is not installed (apt-get install nginx)"
    cat >"$RDIR/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $RDIR/nginx.pid;
error_log $RDIR/error.log;
events { worker_connections 1024; }
http {
  log_format t '\$request_method \$uri "\$http_range" \$status \$body_bytes_sent';
  access_log $RDIR/access.log t;
  client_body_temp_path $RDIR/tmp; proxy_temp_path $RDIR/tmp; fastcgi_temp_path $RDIR/tmp;
  uwsgi_temp_path $RDIR/tmp; scgi_temp_path $RDIR/tmp;
  sendfile on;
  server { listen 127.0.0.1:$REMOTE_NGINX_PORT; root $RWWW; }
}
EOF
    : >"$RDIR/access.log"
    nginx -c "$RDIR/nginx.conf" -p "$RDIR" >"$LOGS/remote-nginx.log" 2>&1 &
    RNGINX=$!
    "$PY" "$BENCH/helpers/shaper.py" $REMOTE_PORT $REMOTE_NGINX_PORT 100 10 >"$LOGS/remote-shaper.log" 2>&1 &
    RSHAPER=$!
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null "http://127.0.0.1:$REMOTE_PORT/" && break
        sleep 0.1
    done
    curl -s -o /dev/null "http://127.0.0.1:$REMOTE_PORT/" ||
        die "remote: nginx or the shaper did not start (see $RDIR/error.log, $LOGS/remote-shaper.log)"
    log "remote: nginx on :$REMOTE_NGINX_PORT, $(head -n 1 "$LOGS/remote-shaper.log")"
}

remote_down() {
    local p
    for p in ${RSHAPER:-} ${RNGINX:-}; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    RNGINX="" RSHAPER=""
    return 0
}

# publish FILE NAME: serves FILE as /NAME; sets RURL.
publish() {
    ln -f "$1" "$RWWW/$2" 2>/dev/null || cp "$1" "$RWWW/$2"
    RURL=http://127.0.0.1:$REMOTE_PORT/$2
}

# Bytes nginx sent and requests it answered for /NAME since the log was cleared.
served_bytes() { awk -v u="/$1" '$2 == u { s += $NF } END { print s + 0 }' "$RDIR/access.log"; }
served_requests() { awk -v u="/$1" '$2 == u { n++ } END { print n + 0 }' "$RDIR/access.log"; }

# download_extract NAME DIR: the baseline restore: the whole archive over
# HTTP to a file beside DIR, then tar -I zstd -xf into DIR.
download_extract() {
    local url=$1 dir=$2 tmp
    tmp=$(dirname "$dir")/download.tar.zst
    curl -sf -o "$tmp" "$url" && mkdir -p "$dir" && tar -I zstd -xf "$tmp" -C "$dir" && rm -f "$tmp"
}

# remote_side WL NAME REP DIR ARCHIVE_NAME BUILD_CMD [RUN_ARGS...]: one
# repetition of one side (base: download + extract; otherwise thaw from
# the published ARCHIVE_NAME, `thaw run` getting RUN_ARGS); records restore,
# work, total, bytes and requests under the variant NAME (base is recorded
# as "download + extract").
remote_side() {
    local wl=$1 v=$2 rep=$3 dir=$4 name=$5 build=$6 restore
    shift 6
    local url=http://127.0.0.1:$REMOTE_PORT/$name
    fresh_dir "$dir"
    drop_caches
    : >"$RDIR/access.log"
    if [[ $v == base ]]; then
        timed "$wl-restore-base-$rep" bash -c "$(declare -f download_extract); download_extract '$url' '$dir'"
        restore=$T_WALL
        timed "$wl-work-base-$rep" bash -c "$build"
        record "$wl" restore "download + extract" "$rep" "$restore" s
        record "$wl" work "download + extract" "$rep" "$T_WALL" s
        record "$wl" total "download + extract" "$rep" "$(calc "$restore + $T_WALL")" s
        record "$wl" bytes_received "download + extract" "$rep" "$(served_bytes "$name")" B
        record "$wl" requests "download + extract" "$rep" "$(served_requests "$name")" count
    else
        timed "$wl-restore-$v-$rep" "$THAW" populate "$url" "$dir"
        restore=$T_WALL
        timed "$wl-work-$v-$rep" "$THAW" run "$@" "$url" "$dir" -- bash -c "$build"
        record "$wl" restore "$v" "$rep" "$restore" s
        record "$wl" work "$v" "$rep" "$T_WALL" s
        record "$wl" total "$v" "$rep" "$(calc "$restore + $T_WALL")" s
        local got js
        got=$(served_bytes "$name")
        record "$wl" bytes_received "$v" "$rep" "$got" B
        record "$wl" requests "$v" "$rep" "$(served_requests "$name")" count
        js=$(thaw_status "$dir")
        printf '%s\n' "$js" >"$LOGS/$wl-$v-$rep.status.json"
        record "$wl" serve_remote_bytes "$v" "$rep" "$(jq -r .remote_bytes <<<"$js")" B
        record "$wl" serve_remote_requests "$v" "$rep" "$(jq -r .remote_requests <<<"$js")" count
        record "$wl" bytes_hydrated "$v" "$rep" "$(jq -r .bytes_hydrated <<<"$js")" B
        # The issue's figure: bytes received over the compressed bytes of the
        # frames needed (decoded) plus the trailer (index + seek table).
        local need trailer
        trailer=$("$THAW" info --json "$url" | jq -r .index_and_seek_table_bytes)
        need=$(jq -r .compressed_decoded <<<"$js")
        record "$wl" frames_needed_bytes "$v" "$rep" "$((need + trailer))" B
        record "$wl" fetch_amplification "$v" "$rep" "$(calc "$got / ($need + $trailer)")" ratio
    fi
}

# remote_recipe WL ARCHIVE SRC_DIR BUILD_CMD_FN: the README's CI recipe
# made ready for the "recipe" side: the job run once under `thaw run
# --record` (in CI, the previous job), the tree re-packed with `pack
# --order` of that profile and published as WL-ordered.tar.zst. Sets
# RPROFILE. BUILD_CMD_FN DIR TIME LOG prints the job's command line.
remote_recipe() {
    local wl=$1 archive=$2 W=$WORK/$1-recipe build_fn=$3
    RPROFILE=$W/job.profile
    rm -rf "$W"
    mkdir -p "$W/rec"
    log "$wl: recording the job's profile and packing in its order (untimed: the previous CI job's part)"
    step "$wl-recipe-populate" "$THAW" populate "$archive" "$W/rec/tree"
    step "$wl-recipe-record" "$THAW" run --record "$RPROFILE" "$archive" "$W/rec/tree" -- \
        bash -c "$("$build_fn" "$W/rec/tree" "$W/record.time" "$W/record.log")"
    # The source of the re-pack: the archive extracted (exact mtimes, as
    # the job that packed it saw them).
    step "$wl-recipe-extract" "$THAW" extract "$archive" "$W/src"
    step "$wl-recipe-pack" "$THAW" pack "$W/src" -o "$W/ordered.tar.zst" --order "$RPROFILE" --profile-out "$RPROFILE"
    publish "$W/ordered.tar.zst" "$wl-ordered.tar.zst"
    # Moved away, not deleted: the first timed restore comes next, and ext4
    # would skip every inode freed here on each create (see fresh_dir).
    trash_box "$W/src" "$W/rec"
    record "$wl" profile_bytes recipe 1 "$(stat -c %s "$RPROFILE")" B
}

# remote_compare WL GOAL WHAT: the goal (total <= GOAL x the baseline) on
# the recipe side, and the no-profile side and bytes for reference.
remote_compare() {
    local wl=$1 goal=$2 what=$3
    compare "$wl" total recipe "download + extract" "<=" "$goal" "issue #11 goal: $what, README's CI recipe (--prefetch, pack --order)"
    compare "$wl" total thaw "download + extract" info 0 "$what, no profile"
    compare "$wl" bytes_received recipe "download + extract" info 0 "bytes over the network (recipe)"
    compare "$wl" bytes_received thaw "download + extract" info 0 "bytes over the network (no profile)"
}

remote_ci() {
    ci_inputs
    remote_recipe remote-ci "$CI_ARCHIVE" ci_build_cmd
    publish "$CI_ARCHIVE" ci.tar.zst
    local rep v name
    record remote-ci archive_bytes thaw 1 "$(stat -c %s "$CI_ARCHIVE")" B
    for ((rep = 1; rep <= REPS; rep++)); do
        for v in $(order $rep base thaw recipe); do
            log "remote ci: $v, rep $rep"
            local extra=()
            name=ci.tar.zst
            [[ $v == recipe ]] && name=remote-ci-ordered.tar.zst extra=(--prefetch "$RPROFILE")
            remote_side remote-ci "$v" "$rep" "$CI_PROJ" "$name" \
                "$(ci_build_cmd "$CI_PROJ" "$LOGS/remote-ci-$v-$rep.time" "$LOGS/remote-ci-$v-$rep.cargo.log")" "${extra[@]}"
            ci_check_noop "$LOGS/remote-ci-$v-$rep.cargo.log" "remote ci ($v, rep $rep)"
        done
    done
    remote_compare remote-ci 0.10 "restore + no-op build"
    rm -rf "$(dirname "$CI_PROJ")"
}

# The kernel part's job as a BUILD_CMD_FN for remote_recipe.
remote_kernel_job() { kernel_build_cmd "$1" "$(dirname "$2")/record.result" "$2"; }

remote_kernel() {
    kernel_archive
    remote_recipe remote-kernel "$KARCHIVE" remote_kernel_job
    publish "$KARCHIVE" linux.tar.zst
    local rep v name W=$WORK/remote-kernel
    mkdir -p "$W"
    record remote-kernel archive_bytes thaw 1 "$(stat -c %s "$KARCHIVE")" B
    for ((rep = 1; rep <= REPS; rep++)); do
        for v in $(order $rep base thaw recipe); do
            log "remote kernel: $v, rep $rep"
            local dir=$W/$v.box/linux extra=()
            name=linux.tar.zst
            [[ $v == recipe ]] && name=remote-kernel-ordered.tar.zst extra=(--prefetch "$RPROFILE")
            remote_side remote-kernel "$v" "$rep" "$dir" "$name" \
                "$(kernel_build_cmd "$dir" "$W/result-$v-$rep.txt" "$W/build-$v-$rep.time")" "${extra[@]}"
        done
        for v in thaw recipe; do
            diff "$W/result-base-$rep.txt" "$W/result-$v-$rep.txt" >"$LOGS/remote-kernel-result-$v-$rep.diff" ||
                die "remote kernel: the build under thaw ($v) differs (see $LOGS/remote-kernel-result-$v-$rep.diff)"
        done
    done
    remote_compare remote-kernel 0.80 "ready + build"
    rm -rf "$W"
}

# The dataset part: 1 % of the files read by thaw from the URL; baselines:
# download + extract + the job, and ratarmount reading the same data over
# the same shaped link. ratarmount 1.3.0 refuses any .tar.zst over http
# ("Archive to open (<File-like object HTTPFileSystem ...>) has
# unrecognized format"), so it is tried on the thaw archive's URL first and,
# when it cannot mount that, on the same tar stream uncompressed (the
# archive decompressed: same files, same order) published beside it, the
# one form of these files it reads over http. The variant's name says which.
remote_dataset() {
    dataset_inputs
    publish "$DS_ARCHIVE" dataset.tar.zst
    local rep v list=$DS_LISTS/list-1.txt W=$WORK/remote-dataset out rat=0
    mkdir -p "$W"
    for ((rep = 1; rep <= REPS; rep++)); do
        for v in $(order $rep base thaw); do
            log "remote dataset: $v, rep $rep"
            out=$W/job-$v-$rep.json
            remote_side remote-dataset "$v" "$rep" "$W/$v.box/data" dataset.tar.zst \
                "'$PY' '$BENCH/helpers/readjob.py' '$W/$v.box/data' '$list' > '$out'"
            dataset_check "$out" 1 "remote dataset ($v, rep $rep)"
        done
        if remote_ratarmount "$rep" "$W" "$list"; then rat=1; fi
    done
    compare remote-dataset total thaw "download + extract" info 0 "1 % of the files"
    if ((rat)); then
        compare remote-dataset total thaw "$RAT_NAME" "<=" 0.20 "issue #11 goal: >= 5x faster than ratarmount reading the data over the same link"
        compare remote-dataset bytes_received thaw "$RAT_NAME" info 0 "bytes over the network, vs ratarmount"
    fi
    compare remote-dataset bytes_received thaw "download + extract" info 0 "bytes over the network"
    rm -rf "$W"
}

# remote_ratarmount REP W LIST: the job on a ratarmount mount of the
# dataset over http: of the thaw archive's URL when ratarmount can mount it,
# else of the plain tar (see remote_dataset). Sets RAT_NAME, the variant;
# fails (returns 1, nothing recorded) when it can mount neither.
remote_ratarmount() {
    local rep=$1 W=$2 list=$3 mnt=$2/mnt out=$2/job-ratarmount-$1.json t0 t1 pid i name
    mkdir -p "$mnt"
    for name in dataset.tar.zst dataset.tar; do
        if [[ $name == dataset.tar ]]; then
            [[ -f $W/dataset.tar ]] || step remote-dataset-plain-tar bash -c "zstd -dc '$DS_ARCHIVE' > '$W/dataset.tar'"
            publish "$W/dataset.tar" dataset.tar
            RAT_NAME="ratarmount (plain .tar)"
        else
            publish "$DS_ARCHIVE" dataset.tar.zst
            RAT_NAME=ratarmount
        fi
        drop_caches
        : >"$RDIR/access.log"
        t0=$(now)
        "$VENV/bin/ratarmount" -f --recreate-index "$RURL" "$mnt" >"$LOGS/remote-ratarmount-$rep-$name.log" 2>&1 &
        pid=$!
        # Indexing a plain tar over the link reads all of it: up to 10 minutes.
        for ((i = 0; i < 12000; i++)); do
            mountpoint -q "$mnt" && break
            kill -0 $pid 2>/dev/null || break
            sleep 0.05
        done
        mountpoint -q "$mnt" && break
        log "remote dataset: ratarmount cannot mount $RURL (see $LOGS/remote-ratarmount-$rep-$name.log)"
        kill $pid 2>/dev/null || true
        wait $pid 2>/dev/null || true
        [[ $name == dataset.tar ]] && { log "remote dataset: no ratarmount figure"; return 1; }
    done
    "$PY" "$BENCH/helpers/readjob.py" "$mnt" "$list" >"$out" || die "the job failed on the ratarmount mount"
    t1=$(now)
    fusermount3 -u "$mnt" || true
    wait $pid || true
    dataset_check "$out" 1 "remote dataset ($RAT_NAME, rep $rep)"
    record remote-dataset total "$RAT_NAME" "$rep" "$(calc "$t1 - $t0")" s
    record remote-dataset bytes_received "$RAT_NAME" "$rep" "$(served_bytes "$name")" B
    record remote-dataset requests "$RAT_NAME" "$rep" "$(served_requests "$name")" count
    publish "$DS_ARCHIVE" dataset.tar.zst
}

wl_remote() {
    remote_up
    local part
    for part in ${THAW_BENCH_REMOTE_PARTS:-ci kernel dataset}; do
        log "=== remote: $part ==="
        "remote_$part"
    done
    remote_down
}
