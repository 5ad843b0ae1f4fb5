"""SQL endpoint over the PostgreSQL wire protocol: login, errors, simple queries (psql and
psycopg 3 as real clients)."""
import os
import subprocess

import psycopg
import pytest

from harness import Lake


def dsn(lake, user="root", password=Lake.PASSWORD, dbname="tarn", sslmode="disable"):
    host, port = lake.host_port("sql")
    return "host=%s port=%d user=%s password=%s dbname=%s sslmode=%s connect_timeout=10" % (
        host, port, user, password, dbname, sslmode)


def psql(lake, sql, sslmode="disable", extra=()):
    host, port = lake.host_port("sql")
    env = dict(os.environ, PGPASSWORD=Lake.PASSWORD)
    cmd = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "host=%s port=%d user=root dbname=tarn sslmode=%s" % (
        host, port, sslmode)] + list(extra) + ["-c", sql]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def test_login_ok_and_parameter_status(shared_lake):
    with psycopg.connect(dsn(shared_lake)) as conn:
        assert conn.info.server_version == 150000
        assert conn.info.parameter_status("server_encoding") == "UTF8"
        assert conn.info.parameter_status("DateStyle").startswith("ISO")
        assert conn.info.parameter_status("integer_datetimes") == "on"
        assert conn.info.parameter_status("standard_conforming_strings") == "on"
        assert conn.execute("select current_database()").fetchone()[0] == "tarn"
        assert conn.execute("select version()").fetchone()[0].startswith("PostgreSQL 15")
        conn.execute("set application_name = 'pgwire-test'")
        assert conn.info.parameter_status("application_name") == "pgwire-test"
        assert conn.execute("show application_name").fetchone()[0] == "pgwire-test"
        assert conn.info.parameter_status("TimeZone") == "UTC"
        conn.execute("set timezone = 'Europe/Berlin'")
        assert conn.info.parameter_status("TimeZone") == "Europe/Berlin"
        conn.execute("set datestyle = 'ISO, DMY'")
        assert conn.info.parameter_status("DateStyle") == "ISO, DMY"
        assert conn.info.parameter_status("client_encoding") == "UTF8"


def test_wrong_password_is_28P01(shared_lake):
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(dsn(shared_lake, password="wrong"))
    assert "password authentication failed" in str(e.value)
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(dsn(shared_lake, user="nobody"))
    assert "password authentication failed" in str(e.value)


def test_unknown_database_is_3D000(shared_lake):
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(dsn(shared_lake, dbname="nope"))
    assert 'database "nope" does not exist' in str(e.value)


def test_errors_carry_sqlstate_and_position(shared_lake):
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable) as e:
            conn.execute("select * from no_such_table")
        assert e.value.sqlstate == "42P01"
        with pytest.raises(psycopg.errors.SyntaxError) as e:
            conn.execute("select 1 frm x")
        assert e.value.sqlstate == "42601"
        assert e.value.diag.statement_position is not None
        # The session keeps working after errors.
        assert conn.execute("select 41 + 1").fetchone()[0] == 42


def test_psql_simple_query_multi_statement(shared_lake):
    r = psql(shared_lake, "create table basic_t(id int, name text); insert into basic_t values (1, 'a'), (2, NULL);"
             " select * from basic_t order by id")
    assert r.returncode == 0, r.stderr
    assert "CREATE TABLE" in r.stdout and "INSERT 0 2" in r.stdout  # psql 15 prints every result
    lines = [l.strip() for l in r.stdout.splitlines()]
    assert "1 | a" in lines
    assert "(2 rows)" in lines


def test_sslmode_require(shared_lake):
    with psycopg.connect(dsn(shared_lake, sslmode="require")) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select 1").fetchone()[0] == 1
    r = psql(shared_lake, "select 7 as seven", sslmode="require")
    assert r.returncode == 0, r.stderr
    assert "7" in r.stdout


def test_transactions_status(shared_lake):
    with psycopg.connect(dsn(shared_lake)) as conn:
        conn.execute("create table tx_t(a int)")
        conn.commit()
        conn.execute("insert into tx_t values (1)")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        conn.rollback()
        assert conn.execute("select count(*) from tx_t").fetchone()[0] == 0
        conn.rollback()
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from nope_tx")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("select 1")
        conn.rollback()
        conn.execute("insert into tx_t values (2)")
        conn.commit()
        assert conn.execute("select count(*) from tx_t").fetchone()[0] == 1


def test_notice_response(shared_lake):
    notices = []
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append((d.severity, d.sqlstate, d.message_primary)))
        conn.execute("commit")  # no transaction: a WARNING notice, not an error
        conn.execute("begin")
        conn.execute("begin")
        conn.execute("rollback")
    assert notices == [("WARNING", "25P01", "there is no transaction in progress"),
                       ("WARNING", "25001", "there is already a transaction in progress")]


def test_restart_keeps_warehouse_tables():
    lk = Lake()
    try:
        lk.start()
        with psycopg.connect(dsn(lk), autocommit=True) as conn:
            conn.execute("create table kept(a int, b text)")
            conn.execute("insert into kept values (1, 'one'), (2, 'two')")
        assert lk.stop() == 0
        lk.start()
        with psycopg.connect(dsn(lk), autocommit=True) as conn:
            assert conn.execute("select b from kept order by a").fetchall() == [("one",), ("two",)]
    finally:
        lk.cleanup()
