"""Catalog emulation and session statements for psql and drivers: psql meta-commands with
expected output, cursors, SET/SHOW/RESET, BEGIN READ ONLY, DISCARD ALL."""
import os

import psycopg
import pytest

from test_pgwire_basic import dsn, psql


@pytest.fixture(scope="module")
def cat_lake(shared_lake):
    r = psql(shared_lake, "create table if not exists sensors(id integer primary key, name varchar not null, "
             "reading double, ts timestamp); create schema if not exists analytics")
    assert r.returncode == 0, r.stderr
    return shared_lake


def test_psql_list_databases(cat_lake):
    r = psql(cat_lake, "\\l", extra=["-At"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("tarn|root|UTF8|")


def test_psql_list_schemas(cat_lake):
    r = psql(cat_lake, "\\dn", extra=["-At"])
    assert r.returncode == 0, r.stderr
    names = [l.split("|")[0] for l in r.stdout.splitlines()]
    assert "main" in names and "analytics" in names


def test_psql_list_tables(cat_lake):
    r = psql(cat_lake, "\\dt", extra=["-At"])
    assert r.returncode == 0, r.stderr
    assert "main|sensors|table|root" in r.stdout.splitlines()


def test_psql_describe_table(cat_lake):
    r = psql(cat_lake, "\\d sensors")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert 'Table "main.sensors"' in out
    lines = [" ".join(l.split()) for l in out.splitlines()]
    assert any(l.startswith("id | integer |") and "not null" in l for l in lines), out
    assert any(l.startswith("name | text |") for l in lines), out
    assert any(l.startswith("reading | double precision |") for l in lines), out
    assert any(l.startswith("ts | timestamp without time zone |") for l in lines), out
    # The primary key's index, as PostgreSQL lists it (pg_index, pg_constraint, pg_get_indexdef).
    assert "Indexes:" in lines and '"sensors_pkey" PRIMARY KEY, btree (id)' in lines, out


def test_psql_fetch_count_uses_cursors(cat_lake):
    r = psql(cat_lake, "select range as n from range(25)", extra=["-At", "-v", "FETCH_COUNT=10"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(i) for i in range(25)]


def test_sql_cursors(cat_lake):
    with psycopg.connect(dsn(cat_lake)) as conn:
        conn.execute("declare c1 cursor for select range from range(10)")
        assert conn.execute("fetch forward 3 from c1").fetchall() == [(0,), (1,), (2,)]
        conn.execute("move 4 in c1")
        assert conn.execute("fetch next from c1").fetchall() == [(7,)]
        assert conn.execute("fetch all from c1").fetchall() == [(8,), (9,)]
        conn.execute("close c1")
        with pytest.raises(psycopg.errors.InvalidCursorName):
            conn.execute("fetch 1 from c1")
        conn.rollback()
        # WITH HOLD (BI tools' paging): FETCH FORWARD n and MOVE on it.
        conn.execute("declare h binary cursor with hold for select range * 2 as x from range(100)")
        conn.execute("move forward 10 from h")
        assert conn.execute("fetch forward 3 from h").fetchall() == [(20,), (22,), (24,)]
        conn.execute("close h")


def test_session_statements(cat_lake):
    with psycopg.connect(dsn(cat_lake), autocommit=True) as conn:
        for stmt in ("set extra_float_digits = 3", "set search_path = public", "set client_min_messages to warning",
                     "set session characteristics as transaction isolation level read committed",
                     "SET TIME ZONE 'UTC'", "reset all"):
            conn.execute(stmt)
        assert conn.execute("show extra_float_digits").fetchone()[0] == "3"
        assert conn.execute("show transaction isolation level").fetchone()[0]
        assert conn.execute("select current_setting('TimeZone')").fetchone()[0]
        conn.execute("begin read only")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("create table ro_t(a int)")
        conn.execute("rollback")
        conn.execute("set session characteristics as transaction read only")
        assert conn.info.parameter_status("default_transaction_read_only") == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("insert into sensors values (99, 'x', 1, now())")
        conn.execute("set session characteristics as transaction read write")
        conn.execute("discard all")
        assert conn.execute("select 1").fetchone()[0] == 1


def test_driver_connect_time_queries(cat_lake):
    """Queries psycopg/SQLAlchemy/pgJDBC/node-postgres send on connect (from their sources and
    recorded sessions); each must run."""
    corpus = [
        "select version()",
        "select current_schema()",
        "show standard_conforming_strings",
        "show transaction isolation level",
        "select pg_catalog.version()",
        "select current_setting('server_version_num')",
        "SELECT t.oid, typarray FROM pg_type t JOIN pg_namespace ns ON typnamespace = ns.oid WHERE typname = 'hstore'",
        "SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid "
        "FROM pg_catalog.pg_type LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r from pg_namespace as ns "
        "join ( select s.r, (current_schemas(false))[s.r] as nspname from generate_series(1, "
        "array_upper(current_schemas(false), 1)) as s(r) ) as r using ( nspname ) ) as sp ON sp.nspoid = "
        "typnamespace WHERE pg_type.oid = 23 ORDER BY sp.r, pg_type.oid DESC",
        "select c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = current_schema() and c.relname = 'sensors' and c.relkind = any(array['r','p','f','v','m'])",
        "SELECT pg_catalog.pg_get_userbyid(10), pg_catalog.pg_encoding_to_char(6), pg_backend_pid() > 0",
        "select set_config('search_path', 'main', false)",
        "select format_type(1700, ((10 << 16) | 2) + 4), format_type(23, -1)",
        "select 'sensors'::regclass",
        "select * from pg_catalog.pg_get_keywords() limit 1",
        "select nspname from pg_namespace where nspname !~ '^pg_' order by 1",
    ]
    with psycopg.connect(dsn(cat_lake), autocommit=True) as conn:
        for q in corpus:
            try:
                conn.execute(q).fetchall()
            except psycopg.Error as e:
                pytest.fail("%s\n-> %s" % (q, e))
        assert conn.execute("select format_type(1700, ((10 << 16) | 2) + 4)").fetchone()[0] == "numeric(10,2)"
        assert conn.execute("select pg_get_userbyid(10)").fetchone()[0] == "root"


def load_corpus():
    """[(client, columns or None, statement)] from tests/sql/corpus/catalog_queries.sql."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "catalog_queries.sql")
    out, client, columns, buf = [], None, None, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not buf and line.startswith("-- client: "):
                client = line[len("-- client: "):]
            elif not buf and line.startswith("-- columns: "):
                columns = line[len("-- columns: "):].split(", ")
            elif not buf and (line.startswith("--") or not line.strip()):
                continue
            else:
                buf.append(line)
                if line.endswith(";"):
                    out.append((client, columns, "\n".join(buf)[:-1]))
                    buf, columns = [], None
    return out


CORPUS = load_corpus()


@pytest.fixture(scope="module")
def corpus_lake(cat_lake):
    # The objects the corpus was recorded over (record_corpus.py's SETUP), in Tarn's "main".
    r = psql(cat_lake, "create index if not exists sensors_ts on sensors(ts); "
             "create or replace view sensor_names as select id, name from sensors")
    assert r.returncode == 0, r.stderr
    return cat_lake


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_recorded_client_corpus(corpus_lake, protocol):
    """Every query psql, psycopg, pgJDBC and node-postgres were recorded sending (on connect
    and while browsing) runs, and returns PostgreSQL's columns (names compared without case:
    drivers look them up case-insensitively, psql by position)."""
    assert len(CORPUS) >= 50
    assert {c.split()[0] for c, _, _ in CORPUS} >= {"psql", "psycopg", "pgjdbc", "node-postgres"}
    failures = []
    with psycopg.connect(dsn(corpus_lake), autocommit=True) as conn:
        for client, columns, sql in CORPUS:
            try:
                if protocol == "simple":
                    res = conn.pgconn.exec_(sql.encode())
                    if res.status not in (psycopg.pq.ExecStatus.COMMAND_OK, psycopg.pq.ExecStatus.TUPLES_OK):
                        raise psycopg.Error((res.error_message or b"").decode())
                    names = [res.fname(i).decode() for i in range(res.nfields)]
                else:
                    cur = conn.execute(sql, prepare=False)
                    names = [d.name for d in cur.description] if cur.description else []
                    if cur.description:
                        cur.fetchall()
            except psycopg.Error as e:
                failures.append("%s: %s\n  -> %s" % (client, " ".join(sql.split())[:200], str(e).strip()))
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.pgconn.exec_(b"ROLLBACK")
                continue
            if columns is not None and [n.lower() for n in names] != [n.lower() for n in columns]:
                failures.append("%s: %s\n  -> columns %s, PostgreSQL has %s" % (
                    client, " ".join(sql.split())[:200], names, columns))
    assert not failures, "%d of %d corpus statements fail:\n%s" % (len(failures), len(CORPUS), "\n".join(failures))


# PostgreSQL's type OIDs for the columns of a table with every common type.
TYPE_OIDS = {"i2": 21, "i4": 23, "i8": 20, "f4": 700, "f8": 701, "num": 1700, "txt": 25, "flag": 16,
             "d": 1082, "ts": 1114, "tstz": 1184, "u": 2950, "b": 17}


def test_bi_catalog_tables_and_functions(cat_lake):
    """What BI tools read while browsing (their recorded connect-and-browse traffic is the corpus
    above): every catalog table the issue lists answers, with PostgreSQL's type OIDs, and the
    functions they call return PostgreSQL's values."""
    with psycopg.connect(dsn(cat_lake), autocommit=True) as conn:
        conn.execute("create table if not exists bi_types(i2 smallint, i4 integer, i8 bigint, f4 real, f8 double, "
                     "num decimal(10,2), txt varchar, flag boolean, d date, ts timestamp, tstz timestamptz, "
                     "u uuid, b blob)")
        for table in ("pg_namespace", "pg_class", "pg_attribute", "pg_type", "pg_proc", "pg_index", "pg_constraint",
                      "pg_attrdef", "pg_description", "pg_database", "pg_settings", "pg_range", "pg_enum"):
            conn.execute("select * from pg_catalog.%s limit 1" % table).fetchall()
        rows = conn.execute("select a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
                            "where a.attrelid = 'bi_types'::regclass and a.attnum > 0 order by a.attnum").fetchall()
        assert {name: oid for name, oid, _ in rows} == TYPE_OIDS
        assert dict((n, t) for n, _, t in rows)["num"] == "numeric(10,2)"
        # The RowDescription of a query over the table carries the same OIDs.
        cur = conn.execute("select * from bi_types")
        assert {d.name: d.type_code for d in cur.description} == TYPE_OIDS
        assert conn.execute("select typname from pg_type where oid = 1184").fetchone()[0] == "timestamptz"
        got = conn.execute(
            "select version(), current_setting('server_version'), current_database(), current_schema(), "
            "current_schemas(true), pg_get_userbyid(10), pg_table_is_visible('bi_types'::regclass), "
            "format_type(23, -1), obj_description('bi_types'::regclass, 'pg_class'), "
            "col_description('bi_types'::regclass, 1), has_table_privilege('bi_types', 'select'), "
            "has_schema_privilege('main', 'usage'), has_database_privilege('tarn', 'connect'), "
            "set_config('application_name', 'bi', false), "
            "(select count(*) > 100 from pg_get_keywords()), "
            "'bi_types'::regclass = (select oid from pg_class where relname = 'bi_types')").fetchone()
        assert got[0].startswith("PostgreSQL 15.0")
        assert got[1:] == ("15.0 (Tarn)", "tarn", "main", ["pg_catalog", "main"], "root", True, "integer", None, None,
                           True, True, True, "bi", True, True)
        # psql's pattern matching syntax and pg_get_expr over column defaults.
        conn.execute("create table if not exists bi_defaults(a integer default 42)")
        assert conn.execute("select c.relname from pg_catalog.pg_class c where c.relname "
                            "OPERATOR(pg_catalog.~) '^(bi_types)$'").fetchall() == [("bi_types",)]
        assert conn.execute("select pg_get_expr(d.adbin, d.adrelid) from pg_attrdef d "
                            "where d.adrelid = 'bi_defaults'::regclass").fetchone()[0] == "42"
