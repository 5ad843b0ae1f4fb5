#!/usr/bin/python3
"""Records the queries real clients send on connect and while browsing, from their own
sessions against a real PostgreSQL 15 (log_statement = all), into catalog_queries.sql, which
tests/sql/test_pgwire_catalog.py replays against Tarn.

Clients: psql's meta-commands, psycopg 3 (TypeInfo lookups; it sends nothing on connect),
pgJDBC's DatabaseMetaData (Browse.java) and node-postgres (browse.js). Run as root on a
machine with postgresql-15, a JDK, node and tests/sql/node's packages
(scripts/fetch_node_test_deps.sh):

    tests/sql/corpus/record_corpus.py
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import psycopg
from psycopg.types import TypeInfo

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
PGBIN = "/usr/lib/postgresql/15/bin"
OUT = os.path.join(HERE, "catalog_queries.sql")

# The objects browsed, as Tarn has them in test_pgwire_catalog.py (schema "main").
SETUP = """
create schema main;
create schema analytics;
alter role postgres set search_path = main, public;
create table main.sensors(id integer primary key, name varchar not null, reading double precision, ts timestamp);
create index sensors_ts on main.sensors(ts);
create view main.sensor_names as select id, name from main.sensors;
"""

PSQL_COMMANDS = [r"\l", r"\dn", r"\dt", r"\dv", r"\di", r"\d", r"\d sensors", r"\d+ sensors", r"\dt main.*",
                 r"\df", r"\du", r"\dT", r"\dx", r"\dp sensors"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    if r.returncode != 0:
        sys.exit("%s failed:\n%s%s" % (cmd, r.stdout, r.stderr))
    return r


def record(work):
    port = free_port()
    data = os.path.join(work, "pg")
    os.makedirs(data)
    shutil.chown(data, "postgres")
    os.chmod(work, 0o755)
    pwfile = os.path.join(work, "pw")
    with open(pwfile, "w") as f:
        f.write("corpus-pass\n")
    shutil.chown(pwfile, "postgres")
    run(["runuser", "-u", "postgres", "--", PGBIN + "/initdb", "-D", data, "-A", "scram-sha-256", "-U", "postgres",
         "--pwfile=" + pwfile])
    rundir = os.path.join(work, "run")  # the server's socket and log, writable by postgres
    os.makedirs(rundir)
    shutil.chown(rundir, "postgres")
    log = os.path.join(rundir, "pg.log")
    opts = ("-p %d -k %s -c listen_addresses=127.0.0.1 -c log_statement=all -c log_line_prefix='%%a|' "
            "-c password_encryption=scram-sha-256" % (port, rundir))
    # The server inherits pg_ctl's stdout: point it away from our pipe.
    subprocess.run(["runuser", "-u", "postgres", "--", PGBIN + "/pg_ctl", "-D", data, "-l", log, "-w", "-o", opts,
                    "start"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=True)
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(port), PGUSER="postgres", PGPASSWORD="corpus-pass",
               PGDATABASE="postgres", PGSSLMODE="disable")
    try:
        run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", SETUP], env=dict(env, PGAPPNAME="setup"))
        for cmd in PSQL_COMMANDS:
            run(["psql", "-X", "-c", cmd], env=dict(env, PGAPPNAME="psql " + cmd))
        dsn = "host=127.0.0.1 port=%d user=postgres password=corpus-pass dbname=postgres" % port
        with psycopg.connect(dsn, application_name="psycopg", autocommit=True) as conn:
            for name in ("numeric", "text[]", "hstore", "sensors"):
                TypeInfo.fetch(conn, name)
        run(["java", "-cp", "/usr/share/java/postgresql.jar", os.path.join(HERE, "Browse.java"),
             "jdbc:postgresql://127.0.0.1:%d/postgres?sslmode=disable" % port, "postgres", "corpus-pass"])
        run(["node", os.path.join(HERE, "browse.js")],
            env=dict(env, NODE_PATH=os.path.join(ROOT, "tests", "sql", "node", "node_modules")))
        time.sleep(0.5)  # the log collector writes asynchronously
        with open(log, encoding="utf-8") as f:
            statements = parse(f.read())
        # PostgreSQL's result columns of each statement, which Tarn must match.
        columns = {}
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _, sql in statements:
                try:
                    cur = conn.execute(sql)
                    columns[sql] = [d.name for d in cur.description] if cur.description else None
                except psycopg.Error:
                    columns[sql] = None
        return statements, columns
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", PGBIN + "/pg_ctl", "-D", data, "-m", "fast", "stop"],
                       capture_output=True)


RECORD = re.compile(r"^([^|\n]*)\|(LOG|DETAIL|ERROR|STATEMENT|HINT|WARNING|FATAL|NOTICE|CONTEXT):  (.*)$")


def parse(log_text):
    """[(client, statement)] in log order; extended-protocol parameters substituted."""
    records = []  # [client, level, text]
    for line in log_text.splitlines():
        m = RECORD.match(line)
        if m:
            records.append([m.group(1), m.group(2), m.group(3)])
        elif records:
            records[-1][2] += "\n" + line
    out = []
    for i, (client, level, text) in enumerate(records):
        if level != "LOG" or not client or client == "setup":
            continue
        if client == "[unknown]":
            client = "pgjdbc"  # its first SETs run before it sends ApplicationName
        m = re.match(r"(?s)(?:statement|execute [^:]*): (.*)", text)
        if not m:
            continue
        sql = m.group(1).strip()
        if i + 1 < len(records) and records[i + 1][1] == "DETAIL" and records[i + 1][2].startswith("parameters: "):
            params = dict(re.findall(r"\$(\d+) = ('(?:[^']|'')*'|NULL)", records[i + 1][2]))
            for n in sorted(params, key=int, reverse=True):
                sql = re.sub(r"\$%s(?!\d)" % n, lambda _: params[n], sql)
        out.append((client, sql))
    return out


def main():
    work = tempfile.mkdtemp(prefix="tarn-corpus-")
    try:
        statements, columns = record(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seen = set()
    lines = [
        "-- Queries real clients send on connect and while browsing, recorded from their own sessions",
        "-- against PostgreSQL 15 (log_statement = all) by tests/sql/corpus/record_corpus.py; regenerate",
        "-- with it. tests/sql/test_pgwire_catalog.py replays every statement against Tarn.",
        "-- Format: a \"-- client:\" line names the client (and psql meta-command) of the statements",
        "-- after it; \"-- columns:\" lists PostgreSQL's result columns of the next statement; each",
        "-- statement ends with a line ending in \";\".",
        "-- node-postgres sends no catalog query of its own (it maps types by the OIDs in",
        "-- RowDescription); its entries are its connect and parameterised query forms.",
    ]
    current = None
    for client, sql in statements:
        key = " ".join(sql.split())
        if key in seen:
            continue
        seen.add(key)
        if client != current:
            lines.append("")
            lines.append("-- client: " + client)
            current = client
        if columns.get(sql):
            lines.append("-- columns: " + ", ".join(columns[sql]))
        lines.append(sql.rstrip().rstrip(";") + ";")
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d statements to %s" % (len(seen), OUT))


if __name__ == "__main__":
    main()
