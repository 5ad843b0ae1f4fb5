"""Cancel, statement timeout, many connections and malformed protocol input: each gets the
protocol's error or a closed connection, and the server keeps serving."""
import socket
import struct
import threading
import time

import psycopg
import pytest

from test_pgwire_basic import dsn


def test_cancel_long_query_from_second_connection(shared_lake):
    other = []
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        def cancel_soon():
            time.sleep(0.5)
            # The long query blocks no other session: this one completes while it runs (it
            # only ends when cancelled below).
            with psycopg.connect(dsn(shared_lake), autocommit=True) as c2:
                other.append(c2.execute("select sum(range) from range(1000)").fetchone()[0])
            conn.cancel()  # libpq sends CancelRequest on a new connection
        t = threading.Thread(target=cancel_soon)
        t.start()
        start = time.time()
        with pytest.raises(psycopg.errors.QueryCanceled) as e:
            conn.execute("select count(*) from range(1000000) a cross join range(1000000) b where a.range <> b.range")
        t.join()
        assert other == [499500]
        assert e.value.sqlstate == "57014"
        assert time.time() - start < 30
        assert conn.execute("select 1").fetchone()[0] == 1


def test_statement_timeout(shared_lake):
    with psycopg.connect(dsn(shared_lake), autocommit=True) as conn:
        conn.execute("set statement_timeout = '300ms'")
        assert conn.execute("show statement_timeout").fetchone()[0] == "300ms"
        with pytest.raises(psycopg.errors.QueryCanceled) as e:
            conn.execute("select count(*) from range(100000000000) a")
        assert "statement timeout" in str(e.value)
        conn.execute("set statement_timeout = 0")
        assert conn.execute("select 2").fetchone()[0] == 2


def test_200_concurrent_connections(shared_lake):
    errors = []
    conns = []
    lock = threading.Lock()

    def worker(i):
        try:
            # Every one must be served; how fast depends on the machine's load (a later
            # connect_timeout in the conninfo wins).
            c = psycopg.connect(dsn(shared_lake) + " connect_timeout=120", autocommit=True)
            assert c.execute("select %s::int + 1", (i,)).fetchone()[0] == i + 1
            with lock:
                conns.append(c)
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(e)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors[:3]
        assert len(conns) == 200
    finally:
        for c in conns:
            c.close()
    with psycopg.connect(dsn(shared_lake)) as c:
        assert c.execute("select 3").fetchone()[0] == 3


def raw(lake):
    host, port = lake.host_port("sql")
    s = socket.create_connection((host, port), timeout=10)
    return s


def startup_bytes(user="root", db="tarn"):
    body = struct.pack("!i", 196608) + b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
    return struct.pack("!i", len(body) + 4) + body


def read_all(s):
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    return out


@pytest.mark.parametrize("payload", [
    struct.pack("!i", 2 ** 31 - 1) + b"x" * 8,          # huge startup length
    struct.pack("!I", 2 ** 31) + b"x" * 8,              # length 2^31
    struct.pack("!i", 3),                                # shorter than the length field
    struct.pack("!i", 8) + struct.pack("!i", 12345),    # unknown protocol
    struct.pack("!i", 12) + struct.pack("!i", 196608) + b"user",  # unterminated parameters
    b"\x00\x00",                                         # truncated then closed
])
def test_bad_startup_packets(shared_lake, payload):
    s = raw(shared_lake)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server may already have closed the connection
    data = read_all(s)
    s.close()
    assert data == b"" or data[:1] == b"E"
    with psycopg.connect(dsn(shared_lake)) as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_ssl_and_gss_requests_answered(shared_lake):
    s = raw(shared_lake)
    s.sendall(struct.pack("!ii", 8, 80877104))  # GSSENCRequest
    assert s.recv(1) == b"N"
    s.close()


def authenticated(lake):
    """Connects with psycopg's libpq only to learn nothing; raw sessions use SCRAM below."""
    return raw(lake)


def test_bad_messages_after_login(shared_lake):
    with psycopg.connect(dsn(shared_lake), autocommit=True) as c:
        c.execute("create table kept_through_abuse as select range as n from range(1000)")
    # Log in through libpq, then speak raw bytes on the same socket.
    conn = psycopg.connect(dsn(shared_lake))
    fd = conn.pgconn.socket
    s = socket.socket(fileno=__import__("os").dup(fd))
    s.settimeout(10)
    # Unknown message type → FATAL 08P01 and the connection closes.
    s.sendall(b"?" + struct.pack("!i", 4))
    data = read_all(s)
    assert b"08P01" in data
    s.close()
    conn.close()
    conn = psycopg.connect(dsn(shared_lake))
    s = raw_socket(conn)
    # Length 2^31 on a regular message.
    s.sendall(b"Q" + struct.pack("!I", 2 ** 31))
    data = read_all(s)
    assert b"08P01" in data
    s.close()
    conn.close()
    # Bind with the wrong number of parameters: ErrorResponse, then ReadyForQuery after Sync.
    conn = psycopg.connect(dsn(shared_lake))
    s = raw_socket(conn)
    parse = msg(b"P", b"s1\0select $1::int\0" + struct.pack("!h", 0))
    bind = msg(b"B", b"\0s1\0" + struct.pack("!hh", 0, 0) + struct.pack("!h", 0))
    bad_fmt = msg(b"B", b"\0s1\0" + struct.pack("!hhh", 1, 7, 1) + struct.pack("!i", 1) + b"1" + struct.pack("!h", 0))
    bad_utf8 = msg(b"Q", b"select '\xff\xfe'\0")
    s.sendall(parse + bind + msg(b"S", b"") + bad_fmt + msg(b"S", b"") + bad_utf8)
    data = b""
    deadline = time.time() + 10
    while data.count(b"Z\x00\x00\x00\x05") < 3 and time.time() < deadline:
        data += s.recv(65536)
    assert data.count(b"Z\x00\x00\x00\x05") == 3
    assert data.count(b"E\x00") >= 3
    assert b"22021" in data  # invalid UTF-8
    s.close()
    conn.close()
    with psycopg.connect(dsn(shared_lake)) as c:
        assert c.execute("select 1").fetchone()[0] == 1
        # The warehouse lost nothing.
        assert c.execute("select count(*), sum(n) from kept_through_abuse").fetchone() == (1000, 499500)


def raw_socket(conn):
    """A second handle on a psycopg connection's socket, for writing raw protocol messages."""
    s = socket.socket(fileno=__import__("os").dup(conn.pgconn.socket))
    s.settimeout(10)
    return s


def msg(t, body):
    """One frontend message: type byte, int32 length, body."""
    return t + struct.pack("!i", len(body) + 4) + body


def test_client_disconnect_mid_result(shared_lake):
    for _ in range(3):
        conn = psycopg.connect(dsn(shared_lake))
        s = raw_socket(conn)
        q = b"select range, repeat('x', 100) from range(5000000)\0"
        s.sendall(b"Q" + struct.pack("!i", len(q) + 4) + q)
        s.recv(65536)
        s.close()
        conn.pgconn.finish()
    with psycopg.connect(dsn(shared_lake)) as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_execute_row_limit_portal_suspended(shared_lake):
    conn = psycopg.connect(dsn(shared_lake))
    s = raw_socket(conn)
    s.sendall(msg(b"P", b"\0select range from range(5)\0" + struct.pack("!h", 0)) +
              msg(b"B", b"p1\0\0" + struct.pack("!hhh", 0, 0, 1) + struct.pack("!h", 1)) +
              msg(b"E", b"p1\0" + struct.pack("!i", 2)) +
              msg(b"E", b"p1\0" + struct.pack("!i", 2)) +
              msg(b"E", b"p1\0" + struct.pack("!i", 0)) +
              msg(b"S", b""))
    data = b""
    deadline = time.time() + 10
    while not data.endswith(b"Z\x00\x00\x00\x05I") and time.time() < deadline:
        data += s.recv(65536)
    # Parse the message stream.
    msgs = []
    i = 0
    while i < len(data):
        t = data[i:i + 1]
        n = struct.unpack("!i", data[i + 1:i + 5])[0]
        msgs.append((t, data[i + 5:i + 1 + n]))
        i += 1 + n
    types = b"".join(t for t, _ in msgs)
    assert types == b"12DDsDDsDCZ", types
    # Binary int8 values 0..4 in order.
    values = [struct.unpack("!q", body[6:14])[0] for t, body in msgs if t == b"D"]
    assert values == [0, 1, 2, 3, 4]
    assert msgs[-2][1].rstrip(b"\0") == b"SELECT 1"
    s.close()
    conn.close()


def test_bind_with_wrong_result_format_count_then_more_queries(shared_lake):
    # A Bind whose result-format count matches neither 1 nor the column count is 08P01; the
    # portal it started is dropped cleanly and the session runs the next statements (the
    # server once kept a pointer to the dropped portal's stream).
    conn = psycopg.connect(dsn(shared_lake))
    s = raw_socket(conn)
    parse = msg(b"P", b"\0select range from range(100000)\0" + struct.pack("!h", 0))
    bad = msg(b"B", b"\0\0" + struct.pack("!hh", 0, 0) + struct.pack("!hhhh", 3, 1, 1, 1))
    parse2 = msg(b"P", b"\0select 40 + range from range(3)\0" + struct.pack("!h", 0))
    good = msg(b"B", b"\0\0" + struct.pack("!hh", 0, 0) + struct.pack("!h", 0))
    execute = msg(b"E", b"\0" + struct.pack("!i", 0))
    for _ in range(3):
        s.sendall(parse + bad + msg(b"S", b"") + parse2 + good + execute + msg(b"S", b""))
    data = b""
    deadline = time.time() + 10
    while data.count(b"Z\x00\x00\x00\x05") < 6 and time.time() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    assert data.count(b"Z\x00\x00\x00\x05") == 6, data
    assert data.count(b"08P01") == 3
    assert data.count(b"C\x00\x00\x00\x0dSELECT 3\x00") == 3
    s.close()
    conn.close()
    with psycopg.connect(dsn(shared_lake)) as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_close_and_flush_messages(shared_lake):
    # Flush (H) makes the server send what it has without a Sync; Close (C) of a named statement
    # answers CloseComplete and a later Bind of it is 26000; Close of an unknown name is no error
    # (§55.7 Close).
    conn = psycopg.connect(dsn(shared_lake))
    s = raw_socket(conn)
    s.sendall(msg(b"P", b"named\0select 5\0" + struct.pack("!h", 0)) + msg(b"H", b""))
    assert s.recv(5) == b"1\x00\x00\x00\x04"  # ParseComplete, before any Sync
    s.sendall(msg(b"C", b"Snamed\0") + msg(b"C", b"Snever\0") + msg(b"H", b""))
    assert s.recv(10) == b"3\x00\x00\x00\x04" * 2  # CloseComplete twice
    s.sendall(msg(b"B", b"\0named\0" + struct.pack("!hhh", 0, 0, 0)) + msg(b"S", b""))
    data = b""
    deadline = time.time() + 10
    while not data.endswith(b"Z\x00\x00\x00\x05I") and time.time() < deadline:
        data += s.recv(65536)
    assert data.startswith(b"E") and b"26000" in data
    s.close()
    conn.close()


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM")


def test_large_results_stream_in_constant_memory():
    """Results go from DuckDB to the socket chunk by chunk: 1 GB through COPY TO STDOUT and 1 GB of
    DataRows through psql's FETCH_COUNT cursor leave the server's peak RSS far below either."""
    import subprocess
    from harness import Lake
    lk = Lake()
    lk.start()
    try:
        host, port = lk.host_port("sql")
        env = dict(__import__("os").environ, PGPASSWORD=Lake.PASSWORD)
        conninfo = "host=%s port=%d user=root dbname=tarn sslmode=disable" % (host, port)
        rows = "select range, repeat('x', 1000) as pad from range(1000000)"  # ~1 GB as text
        for args in (["-c", "copy (%s) to stdout" % rows], ["-v", "FETCH_COUNT=20000", "-At", "-c", rows]):
            with open("/dev/null", "wb") as devnull:
                p = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", conninfo] + args, stdout=devnull,
                                   stderr=subprocess.PIPE, env=env, timeout=600)
            assert p.returncode == 0, p.stderr
        peak = peak_rss_mb(lk.proc.pid)
        assert peak < 600, "peak RSS %d MB after streaming 2 GB" % peak
        with psycopg.connect(dsn(lk)) as c:
            assert c.execute("select 1").fetchone()[0] == 1
    finally:
        lk.stop()
        lk.cleanup()
