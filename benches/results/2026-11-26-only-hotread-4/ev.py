import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
n = 16384
for off in range(0, n * 4096, 1 << 20):  # hydrate the range first
    os.pread(fd, 1 << 20, off)
res = []
for r in range(6):
    t = time.perf_counter()
    for i in range(n):
        os.pread(fd, 4096, i * 4096)
    res.append((time.perf_counter() - t) / n * 1e6)
print(" ".join(f"{x:.1f}" for x in res))
