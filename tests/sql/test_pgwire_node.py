"""node-postgres (`pg` from npm, pinned in tests/sql/node/package-lock.json) against the SQL
endpoint: SCRAM login with and without TLS, simple and parameterised queries of every type,
named statements, errors and transactions (tests/sql/node/pg_test.js)."""
import os
import shutil
import subprocess

import pytest

from harness import Lake

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def ensure_node_postgres():
    if not shutil.which("node"):
        pytest.skip("node is not installed")
    r = subprocess.run([os.path.join(ROOT, "scripts", "fetch_node_test_deps.sh")], capture_output=True,
                       text=True, timeout=600)
    if r.returncode == 3:
        pytest.skip("node-postgres could not be installed from npm: " + r.stderr.strip())
    assert r.returncode == 0, r.stderr


def test_node_postgres(shared_lake):
    ensure_node_postgres()
    host, port = shared_lake.host_port("sql")
    env = dict(os.environ, PGHOST=host, PGPORT=str(port), PGUSER="root", PGPASSWORD=Lake.PASSWORD, TZ="UTC")
    r = subprocess.run(["node", os.path.join(HERE, "node", "pg_test.js")], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok "), r.stdout
    assert int(r.stdout.split()[1]) > 200  # every check ran
