#!/bin/bash
# ready2.sh NEW OLD: time to ready, cold page cache, no tree deleted during the run (ext4 skips inodes
# deleted in the last 60-300 s when allocating: a tree removed right before slows the next creation)
A=/work/bench-work-v2/linux/linux.thaw.tar.zst; W=/work/bench-me/ready2; N=$1; O=$2
rm -rf $W; mkdir -p $W; sync; echo "waiting 300 s for ext4's recently-deleted window"; sleep 300
for r in 1 2 3; do
  for v in tar new old; do
    mkdir -p $W/$v$r; sync; echo 3 > /proc/sys/vm/drop_caches
    s=$(date +%s.%N)
    case $v in tar) mkdir $W/$v$r/t && tar -I zstd -xf $A -C $W/$v$r/t ;; new) $N populate $A $W/$v$r/t 2>/dev/null ;; old) $O populate $A $W/$v$r/t 2>/dev/null ;; esac
    m=$(date +%s.%N); sync; e=$(date +%s.%N); echo "$v $r exit $(echo "$m - $s" | bc) with-sync $(echo "$e - $s" | bc)"
  done
done
