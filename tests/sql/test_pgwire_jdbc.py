"""pgJDBC (Debian libpostgresql-jdbc-java, JDK 17) against the SQL endpoint."""
import os
import shutil
import subprocess

import pytest

from harness import Lake

JAR = "/usr/share/java/postgresql.jar"


@pytest.mark.skipif(not os.path.exists(JAR) or not shutil.which("java"), reason="needs pgJDBC and a JDK")
def test_jdbc_prepared_binary_switch_and_metadata(shared_lake):
    host, port = shared_lake.host_port("sql")
    url = "jdbc:postgresql://%s:%d/tarn?sslmode=disable" % (host, port)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "JdbcSmoke.java")
    r = subprocess.run(["java", "-cp", JAR, src, url, "root", Lake.PASSWORD],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("OK 1|one|12.345|")
