"""Helpers shared by the S3 integration tests: both awscli builds, s3cmd, checksums."""
import hashlib
import os
import subprocess

AWS_V1 = "aws"           # aws-cli 1.45 / botocore 1.43 on PATH: CRC32 trailers by default
AWS_V2 = "/usr/bin/aws"  # Debian's aws-cli 2.9


def aws(lake, *args, cli=AWS_V1, check=True, input=None, timeout=600):
    cmd = [cli, "--endpoint-url", lake.url()] + list(args)
    p = subprocess.run(cmd, env=lake.aws_env(), capture_output=True, text=True, input=input,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def random_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 << 20)
            f.write(os.urandom(n))
            left -= n
    return path


def s3cmd(lake, tmp_path, *args, check=True):
    host = lake.endpoints["api"]
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        "[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\n"
        "use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
        "check_ssl_certificate = False\n" % (lake.ACCESS_KEY, lake.SECRET_KEY, host, host))
    cmd = ["s3cmd", "-c", str(cfg)] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p
