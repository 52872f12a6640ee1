#!/bin/bash
# run.sh BIN...: a 1 GiB file read with dd (1 MiB reads) from a tree served
# straight from http://127.0.0.1:8731/big.thaw.tar.zst (the seqread archive
# behind nginx, no shaping), alternating binaries; prints the read's wall
# time and the daemon's requests and bytes (its stats.json).
U=http://127.0.0.1:8731/big.thaw.tar.zst
for b in "$@"; do
  d=$(mktemp -d /work/bench-me/sq/r.XXXX)
  $b populate $U $d/t >/dev/null 2>&1
  o=$($b run $U $d/t -- bash -c "t0=\$EPOCHREALTIME; dd if=$d/t/big.bin of=/dev/null bs=1M status=none; echo \$t0 \$EPOCHREALTIME" 2>/dev/null | tail -1)
  s=$(python3 -c "import json;d=json.load(open('$d/.t.thaw/stats.json'));print('requests',d['remote_requests'],'bytes',d['remote_bytes'])")
  echo "$(basename $b) $(echo $o | awk '{printf "%.3f s", $2-$1}') $s"
  rm -rf $d
done
