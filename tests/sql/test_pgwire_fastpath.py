"""The per-session fast paths of the SQL endpoint (src/sql/pgwire/fastpath.h): prepared
statements cached by query text, literal-only SELECTs answered from a cached row, values
bound in the parameter's inferred type, and buffered reads of pipelined messages. Each test
checks that the shortcut gives the same answers as the slow path would."""
import datetime
import decimal

import psycopg
import pytest

from test_pgwire_basic import dsn


def test_constant_select_text_and_binary_repeated(shared_lake):
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        for binary in (False, True):
            for prepare in (False, True):
                for _ in range(8):  # psycopg prepares server-side after 5 runs
                    cur = conn.cursor(binary=binary)
                    row = cur.execute("select 1, 'it''s' as s, null, true, 2.5, -7 as neg",
                                      prepare=prepare).fetchone()
                    assert row == (1, "it's", None, True, decimal.Decimal("2.5"), -7)
                    assert [d.name for d in cur.description][1] == "s"
                    assert cur.description[5].name == "neg"
                    assert cur.rowcount == 1
        assert conn.execute("select 1").fetchone() == (1,)
        # A server-side cursor (DECLARE/FETCH) over a constant query.
        with conn.transaction():
            with conn.cursor(name="c1") as c:
                c.execute("select 42 as answer")
                assert c.fetchall() == [(42,)]


def test_constant_select_does_not_close_an_open_portal(shared_lake):
    # A literal SELECT answered from the cache needs no DuckDB result, so an open cursor
    # keeps streaming (a DuckDB query would close it).
    with psycopg.connect(dsn(shared_lake)) as conn:
        conn.execute("select 1").fetchone()  # computes the cached row
        with conn.cursor(name="big") as c:
            c.itersize = 10
            c.execute("select range as i from range(1000)")
            first = c.fetchmany(5)
            assert conn.execute("select 1").fetchone() == (1,)
            rest = c.fetchall()
        assert [r[0] for r in first + rest] == list(range(1000))


def test_cached_statements_follow_schema_changes(shared_lake):
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        conn.execute("create table fp_t(a int)")
        conn.execute("insert into fp_t values (1)")
        for prepare in (False, True, False):
            cur = conn.execute("select * from fp_t", prepare=prepare)
            assert cur.fetchall() == [(1,)]
        conn.execute("drop table fp_t")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from fp_t")
        conn.execute("create table fp_t(a text, b int)")
        conn.execute("insert into fp_t values ('x', 2)")
        cur = conn.execute("select * from fp_t")
        assert [d.name for d in cur.description] == ["a", "b"]
        assert cur.fetchall() == [("x", 2)]
        # Another session changes the table under this session's cached statement.
        with psycopg.connect(dsn(shared_lake), autocommit=True) as other:
            other.execute("alter table fp_t add column c double default 1.5")
        cur = conn.execute("select * from fp_t")
        assert cur.fetchall() == [("x", 2, 1.5)]


def test_session_dependent_statements_are_not_cached(shared_lake):
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        conn.execute("set application_name = 'one'")
        assert conn.execute("show application_name").fetchone()[0] == "one"
        assert conn.execute("select current_setting('application_name')").fetchone()[0] == "one"
        conn.execute("set application_name = 'two'")
        assert conn.execute("show application_name").fetchone()[0] == "two"
        assert conn.execute("select current_setting('application_name')").fetchone()[0] == "two"


def test_parameters_of_every_kind_through_cached_statements(shared_lake):
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        conn.execute("create table fp_p(i int, s smallint, b bigint, f float, d double, ok boolean, "
                     "n decimal(10,2), t text, day date, ts timestamp)")
        q = "insert into fp_p values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        rows = []
        for k in range(12):  # unnamed first, then server-side prepared
            row = (k, k - 3, 2**40 + k, k / 4, k / 8, k % 2 == 0, decimal.Decimal("%d.25" % k), "t%d" % k,
                   datetime.date(2024, 1, 1 + k), datetime.datetime(2024, 1, 1, 0, 0, k))
            conn.execute(q, row)
            rows.append(row)
        got = conn.execute("select * from fp_p order by i").fetchall()
        assert got == rows
        # Text-format parameters of unknown type (node-postgres, psql's \bind) too.
        cur = conn.cursor()
        for k in range(7):
            cur.execute("select count(*) from fp_p where i >= %t and t <> %t and ok = %t",
                        (str(k), "none", "true"))
            assert cur.fetchone()[0] == len([r for r in rows if r[0] >= k and r[5]])
        # A value that does not fit the inferred type still reaches DuckDB's checks.
        with pytest.raises(psycopg.Error):
            conn.execute("insert into fp_p(i) values (%t)", ("x",))
        assert conn.execute("select count(*) from fp_p").fetchone()[0] == 12


def test_pipelined_messages(shared_lake):
    # psycopg's pipeline mode sends many Parse/Bind/Execute before one Sync: the server
    # reads them in batches.
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        with conn.pipeline():
            curs = [conn.execute("select %s::int * 2, 'v' || %s::text", (i, i)) for i in range(300)]
        assert [c.fetchone() for c in curs] == [(i * 2, "v%d" % i) for i in range(300)]
        big = "x" * 300000  # one message larger than the read buffer
        assert conn.execute("select length(%s)", (big,)).fetchone()[0] == 300000
