"""Extended query protocol with server-side binds of every common type, in text and binary
formats, through psycopg 3 (libpq); portals with row limits; COPY in and out."""
import datetime as dt
import decimal
import io
import uuid

import psycopg
from psycopg.types.json import Json
import pytest

from test_pgwire_basic import dsn, psql

ROW = dict(
    i2=7, i4=-123456, i8=2 ** 40 + 3, f4=1.5, f8=3.141592653589793,
    num=decimal.Decimal("12345.6789"), txt="héllo, wörld \"quoted\"", flag=True,
    d=dt.date(2024, 2, 29), t=dt.time(13, 14, 15, 123456),
    ts=dt.datetime(1999, 12, 31, 23, 59, 58, 500000),
    tstz=dt.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=dt.timezone.utc),
    iv=dt.timedelta(days=3, hours=4, minutes=5, seconds=6, microseconds=7),
    u=uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), b=b"\x00\x01binary\xff",
    j={"k": [1, 2, {"n": None}]}, arr=[1, None, 3], sarr=["a", "b c", None, "d,e"],
)
DDL = ("create table if not exists alltypes(i2 smallint, i4 integer, i8 bigint, f4 real, f8 double, "
       "num decimal(18,4), txt varchar, flag boolean, d date, t time, ts timestamp, tstz timestamptz, "
       "iv interval, u uuid, b blob, j json, arr integer[], sarr varchar[])")
COLS = list(ROW)


def check_row(got):
    for name, value in zip(COLS, got):
        want = ROW[name]
        if name == "f4":
            assert abs(value - want) < 1e-6, name
        elif name == "j":
            assert value == want or value == psycopg.types.json.Json(want).obj, (name, value)
        else:
            assert value == want, (name, value, want)


def params_for(row):
    out = dict(row)
    out["j"] = Json(row["j"])
    return out


@pytest.mark.parametrize("fmt", ["t", "b"])
def test_binds_and_results_every_type(shared_lake, fmt):
    table = "alltypes_" + fmt
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        conn.execute(DDL.replace("alltypes", table))
        placeholders = ", ".join("%%(%s)%s" % (c, fmt) for c in COLS)
        conn.execute("insert into %s values (%s)" % (table, placeholders), params_for(ROW))
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            got = cur.execute("select %s from %s" % (", ".join(COLS), table)).fetchone()
            check_row(got)
            # Every value round-trips as a bound parameter in a WHERE clause too.
            for c in ("i4", "i8", "num", "txt", "d", "ts", "tstz", "u", "b", "flag"):
                n = cur.execute("select count(*) from %s where %s = %%(v)%s" % (table, c, fmt),
                                {"v": ROW[c]}).fetchone()[0]
                assert n == 1, (c, binary)


def test_nulls_and_prepared_reuse(shared_lake):
    with psycopg.connect(dsn(shared_lake), autocommit=True, prepare_threshold=0) as conn:
        conn.execute("create table if not exists reuse(a int, b text)")
        for i in range(10):
            conn.execute("insert into reuse values (%s, %s)", (i, None if i % 2 else "x%d" % i))
        rows = conn.execute("select a, b from reuse where a >= %s order by a", (5,)).fetchall()
        assert rows == [(5, None), (6, "x6"), (7, None), (8, "x8"), (9, None)]
        # Same statement, binary results (pgJDBC switches to binary after 5 executions).
        for _ in range(6):
            assert conn.cursor(binary=True).execute("select sum(a)::bigint from reuse where a < %s",
                                                    (10,)).fetchone()[0] == 45


def test_portal_row_limits_stream(shared_lake):
    with psycopg.connect(dsn(shared_lake)) as conn:
        # A named (server-side) cursor fetches through Execute with a row limit → PortalSuspended.
        with conn.cursor(name="big") as cur:
            cur.itersize = 1000
            cur.execute("select range as n from range(250000)")
            total = 0
            count = 0
            for (n,) in cur:
                total += n
                count += 1
        assert count == 250000
        assert total == sum(range(250000))


def test_copy_out_and_in_text_and_csv(shared_lake):
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        conn.execute("create table copy_src(a int, b text, c date)")
        conn.execute("insert into copy_src values (1, 'tab\there', '2024-01-02'), (2, NULL, NULL), "
                     "(3, 'comma, \"q\"', '2024-03-04')")
        buf = io.BytesIO()
        with conn.cursor().copy("copy copy_src to stdout") as cp:
            for data in cp:
                buf.write(data)
        text = buf.getvalue().decode()
        assert text.splitlines() == ["1\ttab\\there\t2024-01-02", "2\t\\N\t\\N", "3\tcomma, \"q\"\t2024-03-04"]
        buf = io.BytesIO()
        with conn.cursor().copy("copy (select * from copy_src order by a) to stdout with (format csv, header)") as cp:
            for data in cp:
                buf.write(data)
        csv_text = buf.getvalue().decode()
        assert csv_text.splitlines()[0] == "a,b,c"
        assert '3,"comma, ""q""",2024-03-04' in csv_text
        conn.execute("create table copy_dst(a int, b text, c date)")
        with conn.cursor().copy("copy copy_dst from stdin") as cp:
            cp.write(text)
        with conn.cursor().copy("copy copy_dst from stdin (format csv, header)") as cp:
            cp.write(csv_text)
        rows = conn.execute("select a, b, c from copy_dst order by a, b").fetchall()
        assert len(rows) == 6
        assert rows[0] == (1, "tab\there", dt.date(2024, 1, 2))
        assert (2, None, None) in rows
        assert rows[-1] == (3, 'comma, "q"', dt.date(2024, 3, 4))
        # Row by row through psycopg's copy.write_row (text format).
        with conn.cursor().copy("copy copy_dst (a, b) from stdin") as cp:
            for i in range(100, 1100):
                cp.write_row((i, "r%d" % i))
        assert conn.execute("select count(*) from copy_dst where a >= 100").fetchone()[0] == 1000


def test_copy_binary_out(shared_lake):
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        with conn.cursor().copy("copy (select 42::int as a, 'x'::text as b) to stdout (format binary)") as cp:
            cp.set_types(["int4", "text"])
            rows = list(cp.rows())
        assert rows == [(42, "x")]


COPY_QUERY = ("select range::int as i, case when range % 7 = 0 then null when range % 11 = 0 then '' "
              "else 'v' || range || chr(9) || chr(10) || chr(92) || chr(13) || ',\"' end as s, "
              "range / 2 as f, range % 2 = 0 as b, date '2024-01-01' + range::int as d, "
              "range * 1000000000 as big from range(5000) order by range")
COPY_TYPES = ["int4", "text", "float8", "bool", "date", "int8"]


@pytest.mark.parametrize("fmt", ["text", "binary"])
def test_copy_out_many_chunks_matches_select(shared_lake, fmt):
    # 5 000 rows: several DuckDB chunks and several 64 KB batches; escapes, NULLs and empty
    # strings. psycopg parses COPY's text and binary formats itself.
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        want = conn.execute(COPY_QUERY).fetchall()
        with conn.cursor().copy("copy (%s) to stdout (format %s)" % (COPY_QUERY, fmt)) as cp:
            cp.set_types(COPY_TYPES)
            got = list(cp.rows())
        assert got == want
        # The text form spells the escapes PostgreSQL does.
        if fmt == "text":
            buf = io.BytesIO()
            with conn.cursor().copy("copy (select 'a' || chr(9) || 'b' || chr(92) || chr(10) || chr(8) as x, "
                                    "null as y, 5 as z) to stdout") as cp:
                for data in cp:
                    buf.write(bytes(data))
            assert buf.getvalue() == b"a\\tb\\\\\\n\\b\t\\N\t5\n"


def test_copy_out_csv_many_chunks(shared_lake):
    import csv
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        want = conn.execute(COPY_QUERY).fetchall()
        buf = io.BytesIO()
        with conn.cursor().copy("copy (%s) to stdout (format csv, header)" % COPY_QUERY) as cp:
            for data in cp:
                buf.write(bytes(data))
        text = buf.getvalue().decode()
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert rows[0] == ["i", "s", "f", "b", "d", "big"]
        assert len(rows) == 5001
        for w, g in zip(want, rows[1:]):
            assert g[0] == str(w[0])
            assert g[1] == ("" if w[1] is None else w[1])
            assert float(g[2]) == w[2]
            assert g[3] == ("true" if w[3] else "false") or g[3] == ("t" if w[3] else "f")
            assert g[5] == str(w[5])
        # NULL is an empty field, the empty string a quoted one (PostgreSQL's CSV).
        assert text.split("\n")[1].startswith("0,,")
        assert '\n7,,' in text and '\n11,"",' in text


def test_psql_copy_roundtrip(shared_lake, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,name\n1,alpha\n2,\"be,ta\"\n")
    r = psql(shared_lake, "create table psql_copy(id int, name text)")
    assert r.returncode == 0, r.stderr
    r = psql(shared_lake, "\\copy psql_copy from '%s' with (format csv, header)" % src)
    assert r.returncode == 0, r.stderr
    assert "COPY 2" in r.stdout
    r = psql(shared_lake, "select name from psql_copy order by id", extra=["-At"])
    assert r.stdout.split("\n")[:2] == ["alpha", "be,ta"]


def test_copy_in_unending_record_is_54000_and_nothing_is_loaded(shared_lake):
    # A CSV record that never ends (an unterminated quote) is refused once it passes 64 MB
    # instead of growing the session's buffer without bound; the table is left as it was.
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        conn.execute("create table copy_unending(a int, b text)")
        conn.execute("insert into copy_unending values (1, 'kept')")
        with pytest.raises(psycopg.errors.ProgramLimitExceeded) as e:
            with conn.cursor().copy("copy copy_unending from stdin (format csv)") as cp:
                cp.write('2,"ok"\n3,"never closed ')
                block = "x" * (1 << 20)
                for _ in range(70):
                    cp.write(block)
        assert "longer than 64 MB" in str(e.value)
        assert conn.execute("select a, b from copy_unending").fetchall() == [(1, "kept")]
