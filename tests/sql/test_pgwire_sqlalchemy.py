"""SQLAlchemy 1.4 (Debian python3-sqlalchemy over python3-psycopg2) against the SQL endpoint: its
connect-time queries, reflection (the Inspector's catalog queries: schemas, tables, columns,
primary keys, unique constraints, indexes) and Core statements with bound parameters."""
import datetime as dt

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy")
pytest.importorskip("psycopg2")

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, inspect, select, text  # noqa: E402

from harness import Lake  # noqa: E402


@pytest.fixture(scope="module")
def engine(shared_lake):
    host, port = shared_lake.host_port("sql")
    eng = create_engine("postgresql+psycopg2://root:%s@%s:%d/tarn?sslmode=disable" % (Lake.PASSWORD, host, port),
                        future=True)
    yield eng
    eng.dispose()


def test_connect_and_core_statements(engine):
    with engine.begin() as conn:
        assert conn.execute(text("select 40 + :x"), {"x": 2}).scalar() == 42
        conn.execute(text("create table sa_readings(id integer primary key, device varchar not null unique, "
                          "reading double, ts timestamp)"))
    meta = MetaData()
    readings = Table("sa_readings", meta, autoload_with=engine)
    assert [c.name for c in readings.columns] == ["id", "device", "reading", "ts"]
    assert [c.name for c in readings.primary_key.columns] == ["id"]
    with engine.begin() as conn:
        conn.execute(readings.insert(), [
            {"id": i, "device": "d%d" % i, "reading": i / 2, "ts": dt.datetime(2026, 1, 1, 0, 0, i)}
            for i in range(5)])
    with engine.connect() as conn:
        rows = conn.execute(select(readings.c.device, readings.c.reading)
                            .where(readings.c.reading >= 1.0).order_by(readings.c.id)).all()
        assert rows == [("d2", 1.0), ("d3", 1.5), ("d4", 2.0)]


def test_inspector_reflects_keys_and_indexes(engine):
    with engine.begin() as conn:
        conn.execute(text("create table sa_keys(a integer, b varchar, c integer, primary key (c, a), unique (b))"))
        conn.execute(text("create index sa_keys_a on sa_keys(a)"))
    insp = inspect(engine)
    assert "main" in insp.get_schema_names()
    assert "sa_keys" in insp.get_table_names()
    cols = {c["name"]: c for c in insp.get_columns("sa_keys")}
    assert list(cols) == ["a", "b", "c"]
    assert isinstance(cols["a"]["type"], Integer) and isinstance(cols["b"]["type"], (String, sqlalchemy.Text))
    assert not cols["c"]["nullable"]
    pk = insp.get_pk_constraint("sa_keys")
    assert pk["constrained_columns"] == ["c", "a"] and pk["name"] == "sa_keys_pkey"
    uniques = insp.get_unique_constraints("sa_keys")
    assert [u["column_names"] for u in uniques] == [["b"]]
    assert insp.has_table("sa_keys") and not insp.has_table("sa_nope")
    # A table defined through SQLAlchemy's own DDL round-trips.
    meta = MetaData()
    # (autoincrement=False: SQLAlchemy would write SERIAL, which DuckDB has no type for.)
    Table("sa_made", meta, Column("id", Integer, primary_key=True, autoincrement=False), Column("name", String(40)))
    meta.create_all(engine)
    assert inspect(engine).get_pk_constraint("sa_made")["constrained_columns"] == ["id"]
