#!/bin/bash
# ds.sh BIN ARCHIVE...: read the dataset workload's 1 % list whole from a served lazy tree; print decode amplification
T=$1; shift
L=/work/bench-work-v2/dataset/src.lists/list-1.txt
for A in "$@"; do
  N=/work/bench-me/amp/t; rm -rf $N /work/bench-me/amp/.t.thaw
  $T populate $A $N >/dev/null 2>&1
  $T serve $A $N > s.out 2> s.err &
  p=$!
  while ! grep -q ready s.out 2>/dev/null; do sleep 0.1; done
  (cd $N && xargs -a $L cat > /dev/null)
  kill $p; wait $p
  python3 -c "
import json;d=json.load(open('/work/bench-me/amp/.t.thaw/stats.json'))
print('$(basename $A)', 'size', $(stat -c %s $A), 'frames',d['frames_decoded'],'decoded',d['bytes_decoded'],'written',d['bytes_written'],'amp %.2f'%(d['bytes_decoded']/max(1,d['bytes_written'])))"
  rm -rf $N /work/bench-me/amp/.t.thaw
done
