"""Helpers for the MQTT integration tests: paho clients that connect to the test lake and
collect messages, with bounded waits instead of sleeps."""
import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

USER = "root"


def make_client(lake, client_id="", version=4, clean=True, transport="tcp", password=None,
                userdata=None, listener="mqtt"):
    proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
    kw = dict(client_id=client_id, protocol=proto, transport=transport, userdata=userdata)
    if version != 5:
        kw["clean_session"] = clean
    c = mqtt.Client(**kw)
    c.username_pw_set(USER, password if password is not None else lake.PASSWORD)
    c.messages = queue.Queue()
    c.connected = threading.Event()
    c.connack = None
    c.subacks = queue.Queue()

    def on_connect(client, userdata, flags, rc, properties=None):
        client.connack = (flags, rc)
        client.connected.set()

    def on_message(client, userdata, msg):
        client.messages.put(msg)

    def on_subscribe(client, userdata, mid, granted, properties=None):
        client.subacks.put((mid, granted))

    c.on_connect = on_connect
    c.on_message = on_message
    c.on_subscribe = on_subscribe
    return c


def start(c, lake, listener="mqtt", version=4, clean=True, session_expiry=None, timeout=10,
          connect_props=None):
    host, port = lake.host_port(listener)
    if version == 5:
        p = connect_props or Properties(PacketTypes.CONNECT)
        if session_expiry is not None:
            p.SessionExpiryInterval = session_expiry
        c.connect(host, port, keepalive=30, clean_start=clean, properties=p)
    else:
        c.connect(host, port, keepalive=30)
    c.loop_start()
    assert c.connected.wait(timeout), "no CONNACK"
    return c


def subscribe(c, topic, qos=0, **kw):
    c.subscribe(topic, qos, **kw)
    mid, granted = c.subacks.get(timeout=10)
    return granted


def collect(c, n, timeout=10):
    out = []
    deadline = time.time() + timeout
    while len(out) < n:
        left = deadline - time.time()
        if left <= 0:
            break
        try:
            out.append(c.messages.get(timeout=left))
        except queue.Empty:
            break
    return out


def nothing_more(c, wait=0.5):
    try:
        m = c.messages.get(timeout=wait)
        return m
    except queue.Empty:
        return None


def stop(*clients):
    for c in clients:
        try:
            c.disconnect()
        except Exception:
            pass
        c.loop_stop()
