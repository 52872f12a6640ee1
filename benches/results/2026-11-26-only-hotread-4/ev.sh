#!/bin/bash
A=/work/bench-work-v2/seqread/big.thaw.tar.zst
for r in 1 2 3; do for b in "$@"; do
  d=/work/bench-me/ev/t$RANDOM; mkdir -p $d; $b populate $A $d/t >/dev/null 2>&1
  echo "$(basename $b) $($b run $A $d/t -- python3 /work/bench-me/ev/ev.py $d/t/big.bin 2>/dev/null | tail -1)"
  rm -rf $d
done; done
