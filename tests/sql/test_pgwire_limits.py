"""Limits of the SQL endpoint (tarn.yaml `sql:`, docs/sql.md "Limits"): the default
statement_timeout (57014), the warehouse memory limit (53200, the server keeps serving),
concurrent statements per login (53400) and sessions per login (53300), and per-login overrides
(sql.users.<login>) that cap what that login's sessions may do."""
import os
import time

import psycopg
import pytest

from harness import Lake
from test_pgwire_basic import dsn

LIMITS = """
sql:
  statement_timeout_ms: 1500
  max_queries_per_user: 2
  max_connections_per_user: 4
  memory_limit: 200MB
  threads: 2
  users:
    capped:
      statement_timeout_ms: 800
      max_queries: 1
      max_connections: 2
"""


@pytest.fixture(scope="module")
def limited_lake(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("cfg") / "tarn.yaml"
    cfg.write_text(LIMITS)
    lk = Lake(extra_args=["--config", str(cfg)])
    lk.start()
    yield lk
    lk.stop()
    lk.cleanup()


LONG_QUERY = "select count(*) from range(100000000000) a"


def test_configured_statement_timeout(limited_lake):
    with psycopg.connect(dsn(limited_lake), autocommit=True) as conn:
        assert conn.execute("show statement_timeout").fetchone()[0] == "1500ms"
        start = time.time()
        with pytest.raises(psycopg.errors.QueryCanceled) as e:
            conn.execute(LONG_QUERY)
        assert e.value.sqlstate == "57014"
        assert "statement timeout" in str(e.value)
        assert time.time() - start < 20
        # The session keeps working; SET overrides the default and RESET brings it back.
        conn.execute("set statement_timeout = '5s'")
        assert conn.execute("show statement_timeout").fetchone()[0] == "5000ms"
        assert conn.execute("select 2").fetchone()[0] == 2
        conn.execute("reset statement_timeout")
        assert conn.execute("show statement_timeout").fetchone()[0] == "1500ms"
        conn.execute("set statement_timeout to default")
        assert conn.execute("show statement_timeout").fetchone()[0] == "1500ms"
    # An open cursor is not timed while the client pauses between FETCHes.
    with psycopg.connect(dsn(limited_lake)) as conn:
        conn.execute("set statement_timeout = '300ms'")
        with conn.cursor(name="slow_reader") as cur:
            cur.itersize = 10
            cur.execute("select range from range(200000)")
            got = cur.fetchmany(10)
            time.sleep(0.8)
            got += cur.fetchall()
        assert [r[0] for r in got] == list(range(200000))
    # libpq's `options` (PGOPTIONS) sets it at connect time, as PostgreSQL does.
    with psycopg.connect(dsn(limited_lake), options="-c statement_timeout=1234", autocommit=True) as conn:
        assert conn.execute("show statement_timeout").fetchone()[0] == "1234ms"


def test_memory_limit_gives_53200_and_the_server_keeps_serving(limited_lake):
    with psycopg.connect(dsn(limited_lake), autocommit=True) as conn:
        conn.execute("set statement_timeout = '60s'")
        # One aggregate state far beyond the 200MB warehouse limit (a list cannot spill).
        with pytest.raises(psycopg.Error) as e:
            conn.execute("select len(list(range)) from range(100000000)")
        assert e.value.sqlstate == "53200", str(e.value)
        assert conn.execute("select sum(range) from range(1000)").fetchone()[0] == 499500
    with psycopg.connect(dsn(limited_lake), autocommit=True) as other:
        assert other.execute("select 41 + 1").fetchone()[0] == 42
        # Sessions may not raise the warehouse's limits.
        for sql in ("set memory_limit = '100GB'", "SET GLOBAL threads = 64", "pragma memory_limit='1TB'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                other.execute(sql)
        assert other.execute("select current_setting('memory_limit')").fetchone()[0] != "100.0 GiB"


def test_concurrent_queries_per_user(limited_lake):
    # A statement holds a slot while its result is open: a suspended server-side cursor
    # keeps it, so two open cursors fill root's two slots deterministically.
    conns = [psycopg.connect(dsn(limited_lake)) for _ in range(3)]
    try:
        cursors = []
        for c in conns[:2]:
            cur = c.cursor(name="hold")
            cur.itersize = 10
            cur.execute("select range from range(100000)")
            assert len(cur.fetchmany(5)) == 5
            cursors.append(cur)
        third = conns[2]
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as e:
            third.execute("select count(*) from range(10)")
        assert e.value.sqlstate == "53400"
        assert "too many concurrent queries" in str(e.value)
        third.rollback()
        # A literal SELECT (health checks) needs no DuckDB work and no slot.
        assert third.execute("select 1").fetchone()[0] == 1
        third.rollback()
        # Closing one cursor frees its slot.
        cursors[0].close()
        conns[0].rollback()
        assert third.execute("select count(*) from range(10)").fetchone()[0] == 10
        third.rollback()
        assert len(cursors[1].fetchmany(5)) == 5
    finally:
        for c in conns:
            c.close()
    # Every slot comes back when sessions end (the server notices the closed sockets).
    with psycopg.connect(dsn(limited_lake), autocommit=True) as a, psycopg.connect(dsn(limited_lake)) as b:
        cur = b.cursor(name="again")
        cur.execute("select range from range(1000)")
        cur.fetchmany(1)
        deadline = time.time() + 10
        while True:
            try:
                assert a.execute("select count(*) from range(5)").fetchone()[0] == 5
                break
            except psycopg.errors.ConfigurationLimitExceeded:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)


def test_connections_per_user(limited_lake):
    limited_lake.aws("iam", "create-user", "--user-name", "erin", check=True)
    limited_lake.aws("iam", "create-login-profile", "--user-name", "erin", "--password", "Erin-pass-1",
                     check=True)
    conns = [psycopg.connect(dsn(limited_lake)) for _ in range(4)]
    try:
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(dsn(limited_lake))
        assert 'too many connections for role "root"' in str(e.value)
        # Another login still connects.
        with psycopg.connect(dsn(limited_lake, user="erin", password="Erin-pass-1")) as erin:
            assert erin.execute("select 1").fetchone()[0] == 1
    finally:
        for c in conns:
            c.close()
    deadline = time.time() + 10
    while True:  # the server notices the closed sessions
        try:
            with psycopg.connect(dsn(limited_lake)) as again:
                assert again.execute("select 1").fetchone()[0] == 1
            break
        except psycopg.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_per_login_limits_override_the_defaults(limited_lake):
    limited_lake.aws("iam", "create-user", "--user-name", "capped", check=True)
    limited_lake.aws("iam", "create-login-profile", "--user-name", "capped", "--password", "Capped-pass-1",
                     check=True)
    capped = dsn(limited_lake, user="capped", password="Capped-pass-1")
    with psycopg.connect(capped, autocommit=True) as conn:
        # Its own statement_timeout (800 ms, not the warehouse's 1500 ms) ...
        assert conn.execute("show statement_timeout").fetchone()[0] == "800ms"
        with pytest.raises(psycopg.errors.QueryCanceled) as e:
            conn.execute(LONG_QUERY)
        assert "statement timeout" in str(e.value)
        # ... is also its ceiling: lower is allowed, higher or none is 22023.
        conn.execute("set statement_timeout = '300ms'")
        assert conn.execute("show statement_timeout").fetchone()[0] == "300ms"
        for value in ("'5s'", "0"):
            with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
                conn.execute("set statement_timeout = %s" % value)
            assert "sql.users.capped.statement_timeout_ms" in str(e.value)
        assert conn.execute("show statement_timeout").fetchone()[0] == "300ms"
        conn.execute("reset statement_timeout")
        assert conn.execute("show statement_timeout").fetchone()[0] == "800ms"
    # PGOPTIONS cannot raise it either: lowered to the login's limit.
    with psycopg.connect(capped, options="-c statement_timeout=0", autocommit=True) as conn:
        assert conn.execute("show statement_timeout").fetchone()[0] == "800ms"
    # One statement at a time (root's limit is 2) and two sessions (root's is 4).
    a = psycopg.connect(capped)
    b = psycopg.connect(capped)
    try:
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(capped)
        assert 'too many connections for role "capped"' in str(e.value)
        cur = a.cursor(name="hold")
        cur.execute("select range from range(100000)")
        assert len(cur.fetchmany(5)) == 5
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as e:
            b.execute("select count(*) from range(10)")
        assert "sql.users.capped.max_queries = 1" in str(e.value)
        b.rollback()
        # Root's own limit is untouched by capped's slot.
        with psycopg.connect(dsn(limited_lake), autocommit=True) as root:
            assert root.execute("select count(*) from range(7)").fetchone()[0] == 7
        cur.close()
        a.rollback()
        assert b.execute("select count(*) from range(10)").fetchone()[0] == 10
    finally:
        a.close()
        b.close()
