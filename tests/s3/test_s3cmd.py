"""S3 API through s3cmd 2.3 (SigV4, path-style via host_bucket = host_base)."""
from s3util import md5_file, random_file, s3cmd


def test_s3cmd_round_trip(lake, tmp_path):
    s3cmd(lake, tmp_path, "mb", "s3://s3cmd-bucket")
    assert "s3://s3cmd-bucket" in s3cmd(lake, tmp_path, "ls").stdout
    small = tmp_path / "small name.txt"
    small.write_bytes(b"s3cmd small\n")
    big = random_file(tmp_path / "big.bin", 20 << 20)  # > 15 MiB: s3cmd goes multipart
    s3cmd(lake, tmp_path, "put", str(small), "s3://s3cmd-bucket/dir/small name.txt")
    s3cmd(lake, tmp_path, "put", str(big), "s3://s3cmd-bucket/dir/big.bin")
    listing = s3cmd(lake, tmp_path, "ls", "s3://s3cmd-bucket/dir/").stdout
    assert "small name.txt" in listing and "big.bin" in listing
    for name, src in (("small name.txt", small), ("big.bin", big)):
        out = tmp_path / ("out-" + name)
        s3cmd(lake, tmp_path, "get", "s3://s3cmd-bucket/dir/" + name, str(out))
        assert md5_file(out) == md5_file(src)
    info = s3cmd(lake, tmp_path, "info", "s3://s3cmd-bucket/dir/small name.txt", check=False).stdout
    assert md5_file(small) in info
    p = s3cmd(lake, tmp_path, "rb", "s3://s3cmd-bucket", check=False)
    assert p.returncode != 0 and "BucketNotEmpty" in (p.stdout + p.stderr)
    s3cmd(lake, tmp_path, "del", "--recursive", "--force", "s3://s3cmd-bucket/")
    s3cmd(lake, tmp_path, "rb", "s3://s3cmd-bucket")
    assert "s3cmd-bucket" not in s3cmd(lake, tmp_path, "ls").stdout
