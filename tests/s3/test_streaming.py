"""A large PUT and GET stream through the server with bounded memory (VmRSS sampled).

1 GiB by default, to keep the CI run short; TARN_STREAM_TEST_GIB=5 runs the issue's 5 GiB case.
"""
import hashlib
import os
import threading
import time


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sampler:
    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()


class PatternFile:
    """A seekable 2 GiB read-only stream of a repeating pattern (no disk, no memory)."""

    def __init__(self, size):
        self.size, self.pos = size, 0
        block = hashlib.sha256(b"tarn").digest() * 32768  # 1 MiB
        self.block = block

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, self.size - self.pos, 1 << 20)
        off = self.pos % len(self.block)
        out = (self.block[off:] + self.block)[:n]
        self.pos += n
        return out

    def seek(self, pos, whence=0):
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else self.size + pos)
        return self.pos

    def tell(self):
        return self.pos

    def __len__(self):
        return self.size


def test_large_put_get_bounded_rss(lake):
    size = int(float(os.environ.get("TARN_STREAM_TEST_GIB", "1")) * (1 << 30))
    s3 = lake.boto3_client("s3")
    pid = lake.proc.pid
    base = rss_kib(pid)
    src = PatternFile(size)
    expected = hashlib.md5()
    while True:
        chunk = src.read(1 << 20)
        if not chunk:
            break
        expected.update(chunk)
    src.seek(0)
    with Sampler(pid) as put_rss:
        r = s3.put_object(Bucket="landing", Key="stream/big.bin", Body=src, ContentLength=size)
    assert r["ETag"] == '"%s"' % expected.hexdigest()
    got = hashlib.md5()
    n = 0
    with Sampler(pid) as get_rss:
        body = s3.get_object(Bucket="landing", Key="stream/big.bin")["Body"]
        for chunk in body.iter_chunks(1 << 20):
            got.update(chunk)
            n += len(chunk)
    assert n == size and got.hexdigest() == expected.hexdigest()
    assert os.path.getsize(os.path.join(lake.data_dir, "objects", "landing", "stream", "big.bin")) == size
    # The server never held the object in memory: growth stays far below the size moved.
    limit_kib = 128 * 1024
    assert put_rss.peak - base < limit_kib, (base, put_rss.peak)
    assert get_rss.peak - base < limit_kib, (base, get_rss.peak)
    print("RSS base %d MiB, PUT peak %d MiB, GET peak %d MiB" %
          (base // 1024, put_rss.peak // 1024, get_rss.peak // 1024))
