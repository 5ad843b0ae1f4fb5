"""TLS on the SQL endpoint with a configured certificate from a test CA: psql and psycopg
with sslmode=verify-full succeed; a client trusting another CA is refused."""
import os
import subprocess

import psycopg
import pytest

from harness import Lake


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_lake(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    for name in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + name, cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    cfg = d / "tarn.yaml"
    cfg.write_text("tls:\n  cert_file: %s\n  key_file: %s\n" % (d / "server.crt", d / "server.key"))
    lk = Lake(extra_args=["--config", str(cfg)])
    lk.start()
    lk.pki = d
    yield lk
    lk.stop()
    lk.cleanup()


def test_verify_full_with_test_ca(tls_lake):
    host, port = tls_lake.host_port("sql")
    dsn = "host=%s port=%d user=root password=%s dbname=tarn sslmode=verify-full sslrootcert=%s" % (
        host, port, Lake.PASSWORD, tls_lake.pki / "ca.crt")
    with psycopg.connect(dsn) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select 5").fetchone()[0] == 5
    env = dict(os.environ, PGPASSWORD=Lake.PASSWORD)
    r = subprocess.run(["psql", "-X", "-At", dsn.replace("password=%s " % Lake.PASSWORD, ""), "-c", "select 6"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "6"


def test_verify_full_rejects_other_ca(tls_lake):
    host, port = tls_lake.host_port("sql")
    dsn = "host=%s port=%d user=root password=%s dbname=tarn sslmode=verify-full sslrootcert=%s" % (
        host, port, Lake.PASSWORD, tls_lake.pki / "other-ca.crt")
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(dsn)
    assert "certificate" in str(e.value)
