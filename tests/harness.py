"""Integration-test harness: starts the real `tarn serve` on free ports with a temporary
data directory, waits for <data>/run/endpoints.json (never sleeps), and stops it.

Usable from pytest (the `lake` fixture in conftest.py) and from shell scripts:

    python3 tests/harness.py start DIR   # prints endpoints.json, leaves the server running
    python3 tests/harness.py stop DIR
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tarn_binary():
    b = os.environ.get("TARN_BIN")
    if b:
        return b
    for cand in ("build/bin/tarn", "build-asan/bin/tarn"):
        p = os.path.join(REPO, cand)
        if os.path.exists(p):
            return p
    raise RuntimeError("set TARN_BIN or build with ./tarn.sh build")

def thread_cpu(pid):
    """CPU seconds of the process's threads grouped by name without its trailing number
    ("rules-0" and "rules-1" count as "rules"), from /proc/<pid>/task/*/stat."""
    out = {}
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        group = re.sub(r"[-_]?\d+$", "", comm)
        out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def restartable_ports(names=("api", "sql", "mqtt", "mqtts", "mqtt-ws", "console")):
    """Listen addresses for a lake that is killed and restarted on the same ports. They are
    taken below the kernel's ephemeral range: a port the kernel chose (bind to port 0) lies
    inside it, and while the lake is down, a client's outgoing connection (a device
    reconnecting) can be given that very port as its local one, so the restart fails with
    "address already in use"."""
    import random
    import socket
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    chosen = {}
    while len(chosen) < len(names):
        port = rng.randrange(10000, max(10001, low))
        if port in chosen.values():
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen[names[len(chosen)]] = port
    return {name: "127.0.0.1:%d" % port for name, port in chosen.items()}


class Lake:
    """A running `tarn serve` on free loopback ports."""

    ACCESS_KEY = "AKIATESTROOT00000001"
    SECRET_KEY = "testsecretkey/0000000000000000000000000+"
    PASSWORD = "test-root-password"
    ACCOUNT = "123456789012"
    REGION = "us-east-1"

    def __init__(self, data_dir=None, extra_args=(), env=None, listeners=None, config=None):
        """`config`: the text of a tarn.yaml, passed with --config."""
        self.owned_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="tarn-it-")
        self.extra_args = list(extra_args)
        self.config_dir = None
        if config is not None:
            self.config_dir = tempfile.mkdtemp(prefix="tarn-cfg-")
            path = os.path.join(self.config_dir, "tarn.yaml")
            with open(path, "w") as f:
                f.write(config)
            self.extra_args += ["--config", path]
        self.proc = None
        self.endpoints = {}
        self.env = dict(os.environ)
        self.env.update({
            "TARN_ROOT_ACCESS_KEY_ID": self.ACCESS_KEY,
            "TARN_ROOT_SECRET_ACCESS_KEY": self.SECRET_KEY,
            "TARN_ROOT_PASSWORD": self.PASSWORD,
            "TARN_ACCOUNT_ID": self.ACCOUNT,
            "TARN_REGION": self.REGION,
        })
        if env:
            self.env.update(env)
        self.listeners = listeners or {
            "api": "127.0.0.1:0", "sql": "127.0.0.1:0", "mqtt": "127.0.0.1:0",
            "mqtts": "127.0.0.1:0", "mqtt-ws": "127.0.0.1:0", "console": "127.0.0.1:0",
        }
        self.log_path = os.path.join(self.data_dir, "serve.log")

    @property
    def endpoints_file(self):
        return os.path.join(self.data_dir, "run", "endpoints.json")

    def start(self, timeout=60):
        if os.path.exists(self.endpoints_file):
            os.remove(self.endpoints_file)
        args = [tarn_binary(), "serve", "--data-dir", self.data_dir]
        for name, addr in self.listeners.items():
            args += ["--%s-listen" % name, addr]
        args += self.extra_args
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tarn serve exited with %d:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                with open(self.endpoints_file) as f:
                    self.endpoints = json.load(f)
                return self
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.02)
        raise RuntimeError("tarn serve did not write endpoints.json in %ss:\n%s" % (timeout, self.read_log()))

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("tarn serve did not stop within %ss" % timeout)
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        return rc

    def kill(self):
        return self.stop(sig=signal.SIGKILL)

    def cleanup(self):
        if self.proc:
            self.kill()
        if self.owned_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.config_dir:
            shutil.rmtree(self.config_dir, ignore_errors=True)

    # -- helpers for clients --
    def url(self, name="api", scheme="http"):
        return "%s://%s" % (scheme, self.endpoints[name])

    def host_port(self, name):
        host, port = self.endpoints[name].rsplit(":", 1)
        return host.strip("[]"), int(port)

    def aws_env(self):
        env = dict(os.environ)
        env.update({
            "AWS_ACCESS_KEY_ID": self.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET_KEY,
            "AWS_DEFAULT_REGION": self.REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_PAGER": "",
        })
        return env

    def aws(self, *args, check=False, input=None):
        """Runs the awscli against this lake; returns CompletedProcess."""
        cmd = ["aws", "--endpoint-url", self.url()] + list(args)
        return subprocess.run(cmd, env=self.aws_env(), capture_output=True, text=True,
                              check=check, input=input, timeout=120)

    def boto3_client(self, service, **kw):
        import boto3
        from botocore.config import Config
        cfg = kw.pop("config", None) or Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
        return boto3.client(service, endpoint_url=self.url(), aws_access_key_id=self.ACCESS_KEY,
                            aws_secret_access_key=self.SECRET_KEY, region_name=self.REGION,
                            config=cfg, **kw)

    def audit_events(self, event_name, event_source=None):
        """CloudTrail records (parsed) with this event name, newest first, via LookupEvents."""
        ct = self.boto3_client("cloudtrail")
        out = ct.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": event_name}],
                               MaxResults=50)
        events = [json.loads(e["CloudTrailEvent"]) for e in out["Events"]]
        return [e for e in events if event_source is None or e["eventSource"] == event_source]


def main(argv):
    if len(argv) < 3 or argv[1] not in ("start", "stop"):
        print(__doc__)
        return 2
    lake = Lake(data_dir=argv[2])
    if argv[1] == "start":
        os.makedirs(argv[2], exist_ok=True)
        lake.start()
        print(json.dumps(lake.endpoints))
        with open(os.path.join(argv[2], "run", "harness.pid"), "w") as f:
            f.write(str(lake.proc.pid))
        return 0
    with open(os.path.join(argv[2], "run", "harness.pid")) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGTERM)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
