#!/bin/bash
# archive-quick.sh BIN OUTDIR: #9's timing figures on a quiet machine, each against its baseline in the same call
set -u
T=$1 O=$2; mkdir -p $O; W=/work/bench-me/aq; rm -rf $W; mkdir -p $W
K=/work/bench-work-v2/linux/src/linux-source-6.1
echo "== pack wall, kernel tree (warm source)" | tee $O/pack-kernel.txt
tar -C $K -cf - . > /dev/null
farm-bench -n 5 --timeout 600 --vs "sh -c 'tar -C $K -cf - . | zstd -T0 -3 -q -f -o $W/b.tar.zst'" -- $T pack $K -o $W/t.tar.zst 2>&1 | tee -a $O/pack-kernel.txt
echo "== pack wall, /usr/include" | tee $O/pack-include.txt
farm-bench -n 5 --timeout 600 --vs "sh -c 'tar -C /usr -cf - include | zstd -T0 -3 -q -f -o $W/bi.tar.zst'" -- $T pack /usr/include -o $W/ti.tar.zst 2>&1 | tee -a $O/pack-include.txt
echo "== sizes" | tee $O/sizes.txt
ls -l $W/*.tar.zst | tee -a $O/sizes.txt
echo "== cat one small file, kernel archive evicted from the page cache (binary cached)" | tee $O/cat.txt
F=virt/kvm/Kconfig
$T cat $W/t.tar.zst $F | cmp - $K/virt/kvm/Kconfig && echo "content ok" | tee -a $O/cat.txt
EV="python3 -c \"import os; fd = os.open('$W/t.tar.zst', os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\""
hyperfine -N --runs 30 --prepare "$EV" "$T cat $W/t.tar.zst $F" 2>&1 | tee -a $O/cat.txt
echo "== cat warm" | tee -a $O/cat.txt
hyperfine -N --warmup 3 --runs 30 "$T cat $W/t.tar.zst $F" 2>&1 | tee -a $O/cat.txt
echo "== extract, cold (page cache dropped), alternating with tar -I zstd -xf" | tee $O/extract.txt
for r in 1 2 3; do
  for v in thaw tar; do
    rm -rf $W/x; mkdir $W/x; sync; echo 3 > /proc/sys/vm/drop_caches
    s=$(date +%s.%N)
    if [ $v = thaw ]; then $T extract $W/t.tar.zst $W/x > /dev/null; else tar -I zstd -xf $W/t.tar.zst -C $W/x; fi
    sync; e=$(date +%s.%N); echo "$v rep $r: $(echo "$e - $s" | bc) s (including sync)" | tee -a $O/extract.txt
  done
done
rm -rf $W
