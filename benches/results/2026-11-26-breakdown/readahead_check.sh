#!/bin/bash
# readahead_check.sh: does the mount mark turn readahead off for files under
# the served DIR that are not stubs? Sequential dd (bs=4k, then bs=1M) of
#  (i)  a new 64 MiB file written through DIR (a "build output"),
#  (ii) a completed file (dcn_3_2_0_sh_mask.h, 23.9 MB, hydrated by a cat),
# read through DIR (marked), through the stage tree (same inode, unmarked),
# and (ii) from the extracted tree; page cache dropped before each read
# (echo 1: pages only, inodes and thus the evictable ignore marks stay).
# Counts read requests completed on vda (/proc/diskstats field 4) and sectors.
set -uo pipefail
S=/work/perfscratch; A=$S/linux.tar.zst; T=/work/wt-perf/target/release/thaw
D=$S/ra/linux; ST=$S/ra/.linux.thaw/tree
REL=drivers/gpu/drm/amd/include/asic_reg/dcn/dcn_3_2_0_sh_mask.h
rm -rf $S/ra; mkdir -p $S/ra; $T populate $A $D > /dev/null
$T serve $A $D > $S/runs/ra-serve.log 2>&1 & SP=$!
for i in $(seq 50); do mountpoint -q $D && break; sleep 0.1; done
dd if=/dev/urandom of=$D/ra-new.bin bs=1M count=64 status=none; sync
cat $D/$REL > /dev/null; sync     # hydrates it whole -> complete, ignore mark
sleep 0.5
measure() { # name file bs drop
  sync; echo $4 > /proc/sys/vm/drop_caches
  local r0 s0 r1 s1 t0 t1
  read -r r0 s0 < <(awk '$3=="vda"{print $4, $6}' /proc/diskstats)
  t0=$(date +%s%N); dd if=$2 of=/dev/null bs=$3 status=none; t1=$(date +%s%N)
  read -r r1 s1 < <(awk '$3=="vda"{print $4, $6}' /proc/diskstats)
  printf '%-34s bs=%-3s drop=%s  reads=%6d  avg_req_KiB=%7.1f  ms=%7.1f\n' "$1" $3 $4 $((r1-r0)) \
    $(echo "scale=1; ($s1-$s0)/2/($r1-$r0+0.0001)" | bc) $(echo "scale=1; ($t1-$t0)/1000000" | bc)
}
for bs in 4k 1M; do
  for rep in 1 2; do
    measure "new file via DIR (marked)" $D/ra-new.bin $bs 1
    measure "new file via stage (unmarked)" $ST/ra-new.bin $bs 1
    measure "completed file via DIR (marked)" $D/$REL $bs 1
    measure "completed file via stage" $ST/$REL $bs 1
    measure "same file, extracted tree" $S/linux-source-6.1/$REL $bs 1
  done
  measure "new file via DIR, drop=3" $D/ra-new.bin $bs 3
  measure "completed via DIR, drop=3" $D/$REL $bs 3
done
$T status --json $D | grep -E 'events_served|files_complete"'
kill -INT $SP; wait $SP
