#!/bin/bash
# amp2.sh BIN ARCHIVE...: replay the kernel build's profile on each archive; print decode amplification
T=$1; shift
P=/work/bench-work-v2/remote-kernel-recipe/job.profile
for A in "$@"; do
  N=/work/bench-me/amp/t; rm -rf $N /work/bench-me/amp/.t.thaw
  $T populate $A $N >/dev/null 2>&1
  $T serve $A $N > s.out 2> s.err &
  p=$!
  while ! grep -q ready s.out 2>/dev/null; do sleep 0.1; done
  python3 replay.py $N $P > r.out
  kill $p; wait $p
  python3 -c "
import json;d=json.load(open('/work/bench-me/amp/.t.thaw/stats.json'))
print('$(basename $A)', 'events',d['events'],'frames',d['frames_decoded'],'decoded',d['bytes_decoded'],'written',d['bytes_written'],'amp %.2f'%(d['bytes_decoded']/max(1,d['bytes_written'])))"
done
