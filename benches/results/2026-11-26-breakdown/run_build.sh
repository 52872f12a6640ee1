#!/bin/bash
# run_build.sh base|thaw REP [perf]: one cold tinyconfig build (make tinyconfig && make -j2),
# as in benches/workloads/kernel.sh. base = the extracted tree (mrproper'd after),
# thaw = a freshly populated stub tree built under `thaw run`. With "perf", a
# system-wide `perf record -a -g` (cpu-clock 1999 Hz + sched_switch/sched_waking) runs alongside.
set -euo pipefail
V=$1 REP=$2 PERFREC=${3:-}
S=/work/perfscratch; A=$S/linux.tar.zst; T=/work/wt-perf/target/release/thaw
OUT=/work/wt-perf/benches/results/2026-11-26-breakdown/raw; PD=$S/runs
export KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 2024" KBUILD_BUILD_USER=thaw KBUILD_BUILD_HOST=bench KBUILD_BUILD_VERSION=1
tag=$V-$REP${PERFREC:+-perf}
if [[ $V == base ]]; then DIR=$S/linux-source-6.1; else DIR=$S/thaw/linux; fi
if [[ $V == thaw ]]; then
  rm -rf $S/thaw; mkdir -p $S/thaw
  $T populate $A $DIR > /dev/null
fi
sync; echo 3 > /proc/sys/vm/drop_caches
BUILD="cd $DIR && /usr/bin/time -v -o $OUT/$tag.time bash -c 'make -s tinyconfig && make -s -j2' > $PD/$tag.log 2>&1"
pre=$(awk '{print $2}' /proc/stat | head -0; grep '^cpu ' /proc/stat)
if [[ -n $PERFREC ]]; then
  perf record -a -g -F 1999 -e cpu-clock -e sched:sched_switch -e sched:sched_waking -o $PD/$tag.data > $PD/$tag.perf.log 2>&1 &
  PP=$!; sleep 2
fi
t0=$(date +%s.%N)
if [[ $V == base ]]; then
  bash -c "$BUILD"
else
  /usr/bin/time -v -o $OUT/$tag.outer.time $T run $A $DIR -- bash -c "$BUILD" &
  TIMEP=$!; sleep 0.3; TP=$(pgrep -P $TIMEP -x thaw)
  # Daemon CPU: per-thread utime/stime of the thaw process (the server runs
  # in threads of `thaw run`; the build is a child process, not counted).
  while kill -0 $TP 2>/dev/null; do
    snap=""
    for f in /proc/$TP/task/*/stat; do read -r l < $f 2>/dev/null && snap+="$l"$'\n'; done
    [[ -n $snap ]] && printf '%s' "$snap" > $OUT/$tag.daemon_threads.stat
    sleep 1
  done
  wait $TIMEP
fi
t1=$(date +%s.%N)
if [[ -n $PERFREC ]]; then kill -INT $PP; wait $PP || true; fi
post=$(grep '^cpu ' /proc/stat)
echo "{\"variant\":\"$V\",\"rep\":$REP,\"perf\":\"${PERFREC}\",\"outer_wall\":$(echo "$t1 - $t0" | bc),\"cpu_pre\":\"$pre\",\"cpu_post\":\"$post\"}" > $OUT/$tag.run.json
RD=$DIR; [[ $V == thaw ]] && RD=$S/thaw/.linux.thaw/tree
(cd $RD && size -A vmlinux | grep -v '^vmlinux' | md5sum; sha256sum .config) > $OUT/$tag.result
if [[ $V == thaw ]]; then
  cp $S/thaw/.linux.thaw/stats.json $OUT/$tag.stats.json
  $T status --json $DIR > $OUT/$tag.status.json 2>/dev/null || true
else
  make -C $DIR -s mrproper
fi
echo "$tag done: $(echo "$t1 - $t0" | bc) s"
