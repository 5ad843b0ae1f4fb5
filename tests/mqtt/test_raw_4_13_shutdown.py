"""MQTT 5.0 §4.13 / §3.14: on SIGTERM the broker tells 5.0 clients it is shutting down
(DISCONNECT 0x8B), syncs its log and exits 0."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import Lake  # noqa: E402
from rawmqtt import Raw, disconnect_reason  # noqa: E402


def test_sigterm_sends_server_shutting_down():
    lake = Lake()
    lake.start()
    try:
        r5 = Raw(*lake.host_port("mqtt"))
        r5.connect(client_id="v5", version=5, username="root", password=lake.PASSWORD)
        r3 = Raw(*lake.host_port("mqtt"))
        r3.connect(client_id="v3", version=4, username="root", password=lake.PASSWORD)
        assert lake.stop() == 0
        assert disconnect_reason(r5.expect_closed()) == 0x8B
        assert r3.expect_closed() == []  # 3.1.1 has no server DISCONNECT: just closed
    finally:
        lake.cleanup()
