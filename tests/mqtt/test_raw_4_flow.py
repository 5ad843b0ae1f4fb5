"""Resource limits: a client that never reads is cut off without harming others; many idle
connections cost little memory."""
import os
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawmqtt import Raw, connect, publish, subscribe  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_client_that_never_reads_is_disconnected_others_unaffected(lake):
    host, port = lake.host_port("mqtt")
    stuck = Raw(host, port)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(client_id="stuck", version=5, username="root", password=lake.PASSWORD)
    stuck.send(subscribe("flood/#", 0, version=5))
    assert stuck.read_packet()[0] == 9
    good = Raw(host, port)
    good.connect(client_id="good", version=5, username="root", password=lake.PASSWORD)
    good.send(subscribe("flood/#", 0, version=5))
    assert good.read_packet()[0] == 9
    pub = Raw(host, port)
    pub.connect(client_id="flooder", version=5, username="root", password=lake.PASSWORD)
    payload = b"x" * 60000
    received = 0
    for i in range(200):  # 12 MB towards a client that reads nothing
        pub.send(publish("flood/%d" % i, payload, version=5))
        while True:  # the good subscriber keeps up
            good.sock.settimeout(0.001)
            try:
                chunk = good.sock.recv(1 << 20)
            except socket.timeout:
                break
            received += len(chunk)
    deadline = time.time() + 10
    while received < 200 * 60000 and time.time() < deadline:
        good.sock.settimeout(1)
        chunk = good.sock.recv(1 << 20)
        if not chunk:
            break
        received += len(chunk)
    assert received >= 200 * 60000  # every message reached the reading client
    metrics = urllib.request.urlopen(lake.url() + "/metrics", timeout=5).read().decode()
    line = [l for l in metrics.splitlines()
            if l.startswith("tarn_stream_slow_consumer_aborts_total") and 'listener="mqtt"' in l]
    assert line and float(line[0].split()[-1]) >= 1
    # The stuck client's connection is gone (reset), the two others are still open.
    stuck.sock.settimeout(5)
    closed = False
    try:
        while True:
            if not stuck.sock.recv(1 << 20):
                closed = True
                break
    except (ConnectionResetError, socket.timeout):
        closed = True
    assert closed
    gauge = [l for l in metrics.splitlines()
             if l.startswith("tarn_stream_open_connections") and 'listener="mqtt"' in l]
    assert gauge and float(gauge[0].split()[-1]) == 2
    good.sock.settimeout(0.5)
    try:
        while good.sock.recv(1 << 20):  # drain the rest of the flood
            pass
    except socket.timeout:
        pass
    good.sock.settimeout(5)
    good.send(b"\xc0\x00")  # the reading client is still served
    while True:
        p = good.read_packet()
        if p[0] == 13:
            break


def test_idle_connections_memory(lake):
    host, port = lake.host_port("mqtt")
    n = 2000
    before = rss_kib(lake.proc.pid)
    socks = []
    pkt = connect(client_id="", version=4, username="root", password=lake.PASSWORD, keepalive=600)
    for i in range(n):
        s = socket.create_connection((host, port))
        s.sendall(pkt)
        socks.append(s)
    for s in socks:
        s.settimeout(10)
        assert s.recv(4)[:1] == b"\x20"
    after = rss_kib(lake.proc.pid)
    per_conn = (after - before) * 1024 / n
    print("RSS per idle connection: %.0f bytes" % per_conn)
    assert per_conn < 10 * 1024
    # The broker still serves.
    r = Raw(host, port)
    r.connect(client_id="still", version=5, username="root", password=lake.PASSWORD)
    r.send(subscribe("idle/#", version=5))
    assert r.read_packet()[0] == 9
    for s in socks:
        s.close()
