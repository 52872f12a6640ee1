#!/bin/bash
# catbench.sh ARCHIVE BIN... : cold cat of the files in f2.txt, binaries interleaved per file
A=$1; shift
EV="python3 -c \"import os; fd = os.open('$A', os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\""
cmds=(); for b in "$@"; do cmds+=("$b cat $A {f}"); done
hyperfine -N --runs 7 --prepare "$EV" -L f "$(paste -sd, f2.txt)" "${cmds[@]}" --export-json /tmp/cb.json >/dev/null 2>&1
python3 - "$@" <<'PY'
import json,statistics as s,sys
r=json.load(open("/tmp/cb.json"))["results"]
for b in sys.argv[1:]:
  m=[x["median"]*1000 for x in r if x["command"].startswith(b+" ")]
  print(b,len(m),"cold: median of per-file medians %.2f ms"%s.median(m), "min %.2f max %.2f"%(min(m),max(m)))
PY
