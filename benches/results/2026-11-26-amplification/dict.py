import zstandard as z, sys, random, time
data = open('/work/bench-work-v2/linux/linux-source-6.1.tar','rb').read()
base = len(z.ZstdCompressor(level=3).compress(data))  # one frame, like zstd -3
print(f"whole tar, one frame: {base}")
for size in (16<<10, 32<<10, 64<<10):
    chunks = [data[i:i+size] for i in range(0, len(data), size)]
    c = z.ZstdCompressor(level=3)
    plain = sum(len(c.compress(x)) for x in chunks)
    random.seed(1)
    sample = random.sample(chunks, min(len(chunks), 4000))
    t=time.time()
    d = z.train_dictionary(112640, sample, level=3)
    cd = z.ZstdCompressor(level=3, dict_data=d)
    withd = sum(len(cd.compress(x)) for x in chunks) + len(d.as_bytes())
    print(f"{size>>10} KiB pieces: plain {plain} ({plain/base:.3f}x), with a 110 KiB dictionary {withd} ({withd/base:.3f}x), train {time.time()-t:.1f}s")
