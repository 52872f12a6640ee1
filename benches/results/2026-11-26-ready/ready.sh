#!/bin/bash
# ready.sh NEW OLD: time to ready, cold page cache: thaw populate (NEW, OLD) vs tar -I zstd -xf, 4 rotated rounds
A=/work/bench-work-v2/linux/linux.thaw.tar.zst; W=/work/bench-me/ready; N=$1; O=$2
for r in 1 2 3 4; do
  for v in tar new old; do
    rm -rf $W; mkdir -p $W/box; sync; echo 3 > /proc/sys/vm/drop_caches
    s=$(date +%s.%N)
    case $v in tar) mkdir $W/box/t && tar -I zstd -xf $A -C $W/box/t ;; new) $N populate $A $W/box/t 2>/dev/null ;; old) $O populate $A $W/box/t 2>/dev/null ;; esac
    m=$(date +%s.%N); sync; e=$(date +%s.%N); echo "$v $r exit $(echo "$m - $s" | bc) with-sync $(echo "$e - $s" | bc)"
  done
done
rm -rf $W
