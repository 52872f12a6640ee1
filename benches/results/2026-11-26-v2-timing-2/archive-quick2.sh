#!/bin/bash
# archive-quick2.sh NEW OLD OUTDIR: #9's timing figures on a quiet machine, each against its baseline in the same call
set -u
T=$1 OLD=$2 O=$3; mkdir -p $O; W=/work/bench-me/aq; rm -rf $W; mkdir -p $W
K=/work/bench-work-v2/linux/src/linux-source-6.1
echo "== pack wall, kernel tree (warm source)" | tee $O/pack-kernel.txt
tar -C $K -cf - . > /dev/null
farm-bench -n 5 --timeout 600 --vs "sh -c 'tar -C $K -cf - . | zstd -T0 -3 -q -f -o $W/b.tar.zst'" -- $T pack $K -o $W/t.tar.zst 2>&1 | tee -a $O/pack-kernel.txt
echo "== pack wall, /usr/include" | tee $O/pack-include.txt
farm-bench -n 9 --timeout 600 --vs "sh -c 'tar -C /usr -cf - include | zstd -T0 -3 -q -f -o $W/bi.tar.zst'" -- $T pack /usr/include -o $W/ti.tar.zst 2>&1 | tee -a $O/pack-include.txt
echo "== sizes" | tee $O/sizes.txt
ls -l $W/*.tar.zst | tee -a $O/sizes.txt
echo "== cat one small file, kernel archive evicted from the page cache (binary cached); new binary vs the session's start (27772e6)" | tee $O/cat.txt
F=virt/kvm/Kconfig
$T cat $W/t.tar.zst $F | cmp - $K/virt/kvm/Kconfig && echo "content ok" | tee -a $O/cat.txt
EV="python3 -c \"import os; fd = os.open('$W/t.tar.zst', os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\""
hyperfine -N --runs 100 --prepare "$EV" "$T cat $W/t.tar.zst $F" "$OLD cat $W/t.tar.zst $F" 2>&1 | tee -a $O/cat.txt
echo "== same, 20 other files spread over the archive (first in path order of every 4,000th entry), cold, one run each x 5" | tee -a $O/cat.txt
$T ls $W/t.tar.zst | awk 'NR % 4000 == 1' > $W/files.txt
n=0; for f in $(cat $W/files.txt); do [ -n "$(tar -C $K -tf /dev/null 2>/dev/null)" ]; [ -f "$K/$f" ] || continue; n=$((n+1)); echo "$f" ; done > $W/regular.txt
hyperfine -N --runs 5 --prepare "$EV" -L f "$(paste -sd, $W/regular.txt)" "$T cat $W/t.tar.zst {f}" --export-json $O/cat-spread.json 2>&1 | grep -E "Benchmark|Time" | tee -a $O/cat.txt
echo "== cat warm" | tee -a $O/cat.txt
hyperfine -N --warmup 3 --runs 100 "$T cat $W/t.tar.zst $F" "$OLD cat $W/t.tar.zst $F" 2>&1 | tee -a $O/cat.txt
rm -rf $W
