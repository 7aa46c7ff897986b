"""/metrics of scale-server: the real binary with its Prometheus listener on a
loopback ephemeral port, scraped with urllib and read by a strict parser of
the text exposition format 0.0.4 written here (and by Prometheus's own
promtool where it is installed).

Run from this directory under tests/with-stack.sh (see CMakeLists.txt)."""
import math
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

import grpc

import scalehelp as h
from scalehelp import msg
from test_server import PING, PingRequest, ScaleTestCase

GET_PROFILE = "/scale.accounts.v1.AccountsService/GetProfile"
GetProfileRequest = msg("scale.accounts.v1.GetProfileRequest")
GetProfileResponse = msg("scale.accounts.v1.GetProfileResponse")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Straight to loopback, whatever *_proxy variables the environment has.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---- a strict reader of the text exposition format 0.0.4 ---------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NUMBER = re.compile(r"^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$")
_HELP = re.compile(r"^# HELP (" + _NAME + r")(?: (.*))?$")
_TYPE = re.compile(r"^# TYPE (" + _NAME + r") (counter|gauge|histogram|summary|untyped)$")
_SAMPLE_NAME = re.compile(r"^(" + _NAME + r")")


class ExpositionError(AssertionError):
    pass


def _value(s, line):
    if not _NUMBER.match(s):
        raise ExpositionError("bad value %r in %r" % (s, line))
    return float(s)


def _labels(s, line):
    """'{a="x",b="y"}' -> {'a': 'x', 'b': 'y'}, unescaping \\\\, \\" and \\n only."""
    out, i = {}, 1
    while s[i] != "}":
        m = _LABEL.match(s, i)
        if not m or s[m.end():m.end() + 2] != '="':
            raise ExpositionError("bad label at %d in %r" % (i, line))
        name, i, val = m.group(0), m.end() + 2, []
        while s[i] != '"':
            c = s[i]
            if c == "\n":
                raise ExpositionError("raw newline in a label value: %r" % line)
            if c == "\\":
                i += 1
                esc = {"\\": "\\", '"': '"', "n": "\n"}.get(s[i])
                if esc is None:
                    raise ExpositionError("bad escape \\%s in %r" % (s[i], line))
                c = esc
            val.append(c)
            i += 1
        i += 1
        if name in out:
            raise ExpositionError("label %s repeated in %r" % (name, line))
        out[name] = "".join(val)
        if s[i] == ",":
            i += 1
        elif s[i] != "}":
            raise ExpositionError("expected , or } at %d in %r" % (i, line))
    if i != len(s) - 1:
        raise ExpositionError("text after the labels in %r" % line)
    return out


def _split_sample(line):
    """'name{labels} value' -> (name, labels, value); no timestamps expected."""
    m = _SAMPLE_NAME.match(line)
    if not m:
        raise ExpositionError("not a sample: %r" % line)
    name, rest = m.group(1), line[m.end():]
    labels = {}
    if rest.startswith("{"):
        # The label set ends at the first } outside a quoted value.
        i, quoted = 0, False
        while i < len(rest):
            if quoted and rest[i] == "\\":
                i += 2
                continue
            if rest[i] == '"':
                quoted = not quoted
            elif rest[i] == "}" and not quoted:
                break
            i += 1
        if i == len(rest):
            raise ExpositionError("unterminated labels: %r" % line)
        labels, rest = _labels(rest[:i + 1], line), rest[i + 1:]
    if not rest.startswith(" ") or " " in rest[1:]:
        raise ExpositionError("expected one space and a value: %r" % line)
    return name, labels, _value(rest[1:], line)


def parse_exposition(text):
    """{family: {'type', 'help', 'samples': [(name, labels, value)]}}, or raises
    ExpositionError: every line is HELP, TYPE or a sample; each family has HELP
    and TYPE (once) before its samples, which are contiguous; sample names
    belong to their family; no series repeats; histogram buckets are
    cumulative, their le bounds increase, and they end in +Inf equal to
    _count, with a _sum."""
    if not text.endswith("\n"):
        raise ExpositionError("no final newline")
    fams, current, helped, series = {}, None, {}, set()
    for line in text[:-1].split("\n"):
        m = _HELP.match(line)
        if m:
            if m.group(1) in helped or m.group(1) in fams:
                raise ExpositionError("second HELP for %s" % m.group(1))
            doc, i = m.group(2) or "", 0
            while i < len(doc):
                if doc[i] == "\\":
                    if doc[i + 1:i + 2] not in ("\\", "n"):
                        raise ExpositionError("bad escape in HELP: %r" % line)
                    i += 1
                i += 1
            helped[m.group(1)] = doc
            continue
        m = _TYPE.match(line)
        if m:
            name = m.group(1)
            if name in fams:
                raise ExpositionError("second TYPE for %s" % name)
            if name not in helped:
                raise ExpositionError("TYPE before HELP for %s" % name)
            fams[name] = {"type": m.group(2), "help": helped[name], "samples": []}
            current = name
            continue
        if line.startswith("#") or not line:
            raise ExpositionError("unexpected line %r" % line)
        name, labels, value = _split_sample(line)
        if current is None:
            raise ExpositionError("sample before any TYPE: %r" % line)
        allowed = {current}
        if fams[current]["type"] == "histogram":
            allowed = {current + "_bucket", current + "_sum", current + "_count"}
        if name not in allowed:
            raise ExpositionError("sample %s outside its family (current: %s)" % (name, current))
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ExpositionError("series repeated: %r" % line)
        series.add(key)
        fams[current]["samples"].append((name, labels, value))
    for fam, f in fams.items():
        if f["type"] == "histogram":
            _check_histogram(fam, f["samples"])
    return fams


def _check_histogram(fam, samples):
    groups = {}
    for name, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name.endswith("_bucket"):
            if "le" not in labels:
                raise ExpositionError("%s bucket without le" % fam)
            g["buckets"].append((_value(labels["le"], labels["le"]), value))
        elif name.endswith("_sum"):
            g["sum"] = value
        else:
            g["count"] = value
    for rest, g in groups.items():
        b = g["buckets"]
        if not b or g["sum"] is None or g["count"] is None:
            raise ExpositionError("%s%s lacks buckets, _sum or _count" % (fam, dict(rest)))
        if not math.isinf(b[-1][0]) or b[-1][0] < 0:
            raise ExpositionError("%s%s does not end in +Inf" % (fam, dict(rest)))
        for (le0, c0), (le1, c1) in zip(b, b[1:]):
            if not le0 < le1:
                raise ExpositionError("%s%s: le %s then %s" % (fam, dict(rest), le0, le1))
            if c1 < c0:
                raise ExpositionError("%s%s: buckets not cumulative at le=%s" % (fam, dict(rest), le1))
        if b[-1][1] != g["count"]:
            raise ExpositionError("%s%s: +Inf %s != _count %s" % (fam, dict(rest), b[-1][1], g["count"]))


def sample(fams, family, name=None, **labels):
    """The value of the one sample with exactly these labels, or None."""
    for n, l, v in fams.get(family, {}).get("samples", []):
        if n == (name or family) and l == labels:
            return v
    return None


class ParserSelfTest(unittest.TestCase):
    """The parser refuses what it must, so the tests below can fail."""

    GOOD = ('# HELP a_total A.\n# TYPE a_total counter\na_total{x="q\\"\\\\\\n"} 1\n'
            '# HELP h H.\n# TYPE h histogram\nh_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.5\nh_count 2\n')

    def test_accepts_well_formed_text(self):
        fams = parse_exposition(self.GOOD)
        self.assertEqual(sample(fams, "a_total", x='q"\\\n'), 1)

    def test_refuses_malformed_text(self):
        bad = {
            "no newline": self.GOOD[:-1],
            "no TYPE": "# HELP a A.\na 1\n",
            "no HELP": "# TYPE a counter\na 1\n",
            "bad escape": '# HELP a A.\n# TYPE a counter\na{x="\\t"} 1\n',
            "bad value": "# HELP a A.\n# TYPE a counter\na one\n",
            "foreign sample": "# HELP a A.\n# TYPE a counter\nb 1\n",
            "not cumulative": self.GOOD.replace('le="+Inf"} 2', 'le="+Inf"} 0').replace("h_count 2", "h_count 0"),
            "+Inf != count": self.GOOD.replace("h_count 2", "h_count 3"),
            "no +Inf": self.GOOD.replace('h_bucket{le="+Inf"} 2\n', ""),
            "repeated family": self.GOOD + "# HELP a_total A.\n# TYPE a_total counter\n",
        }
        for what, text in bad.items():
            with self.subTest(what):
                with self.assertRaises(ExpositionError):
                    parse_exposition(text)


# ---- the server ------------------------------------------------------------------

def fetch(port, path="/metrics", method="GET"):
    """(status, headers, body text) of one request to the listener."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with _opener.open(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")


def listening_ports(pid):
    """TCP ports the process listens on, from /proc (its socket inodes)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


class MetricsTest(ScaleTestCase):
    def start(self):
        self.metrics_port = h.free_port()
        s = self.start_server(SCALE_METRICS_ADDR="127.0.0.1:%d" % self.metrics_port)
        return s

    def scrape(self):
        status, headers, body = fetch(self.metrics_port)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("Content-Type"), CONTENT_TYPE)
        return body, parse_exposition(body)

    def test_calls_are_counted_by_method_and_code(self):
        s = self.start()
        rec = s.wait_log(lambda r: r.get("msg", "").startswith("metrics on "))
        self.assertIsNotNone(rec, "no 'metrics on' log line")
        self.assertEqual(rec["msg"], "metrics on http://127.0.0.1:%d/metrics" % self.metrics_port)
        ch = self.channel(s)
        ping = h.ping_stub(ch)
        pings = 7
        for i in range(pings):
            self.assertEqual(ping(PingRequest(message="m%d" % i), timeout=10).message, "m%d" % i)
        get_profile = h.unary(ch, GET_PROFILE, GetProfileRequest, GetProfileResponse)
        self.assertRpcError(grpc.StatusCode.UNAUTHENTICATED, get_profile, GetProfileRequest(), timeout=10)
        # A token gets past auth: a different code for the same method.
        get_profile(GetProfileRequest(), metadata=h.bearer("33333333-3333-4333-8333-333333333333"), timeout=10)

        body, fams = self.scrape()
        self.assertEqual(fams["scale_rpc_requests_total"]["type"], "counter")
        self.assertEqual(sample(fams, "scale_rpc_requests_total", method=PING, code="OK"), pings, body)
        self.assertEqual(sample(fams, "scale_rpc_requests_total", method=GET_PROFILE, code="UNAUTHENTICATED"), 1,
                         body)
        self.assertEqual(sample(fams, "scale_rpc_requests_total", method=GET_PROFILE, code="OK"), 1, body)
        self.assertEqual(fams["scale_rpc_duration_seconds"]["type"], "histogram")
        self.assertEqual(sample(fams, "scale_rpc_duration_seconds", "scale_rpc_duration_seconds_count", method=PING),
                         pings)
        self.assertEqual(sample(fams, "scale_rpc_duration_seconds", "scale_rpc_duration_seconds_bucket", method=PING,
                                le="10"), pings, "no Ping took 10 s")
        self.assertGreater(sample(fams, "scale_rpc_duration_seconds", "scale_rpc_duration_seconds_sum", method=PING), 0)
        self.assertEqual(fams["scale_rpc_in_flight"]["type"], "gauge")
        self.assertEqual(sample(fams, "scale_rpc_in_flight"), 0, "nothing runs at rest")
        start = sample(fams, "process_start_time_seconds")
        self.assertTrue(time.time() - 600 < start <= time.time() + 1, start)
        versions = [l.get("version") for n, l, v in fams["scale_build_info"]["samples"] if v == 1]
        self.assertEqual(len(versions), 1)
        self.assertRegex(versions[0], r"^\d+\.\d+\.\d+")

        # Scraping is not an RPC, and counts do not move at rest.
        _, again = self.scrape()
        self.assertEqual(sample(again, "scale_rpc_requests_total", method=PING, code="OK"), pings)

    def test_scrapes_during_calls_stay_consistent(self):
        s = self.start()
        threads, calls, errors = 4, 40, []

        def client():
            try:
                with grpc.insecure_channel(s.target) as ch:
                    ping = h.ping_stub(ch)
                    for _ in range(calls):
                        ping(PingRequest(message="x"), timeout=10)
            except Exception as e:  # reported below
                errors.append(e)

        ts = [threading.Thread(target=client) for _ in range(threads)]
        for t in ts:
            t.start()
        scrapes = 0
        while any(t.is_alive() for t in ts) or scrapes == 0:
            self.scrape()  # parses, histograms included, mid-flight
            scrapes += 1
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        _, fams = self.scrape()
        self.assertEqual(sample(fams, "scale_rpc_requests_total", method=PING, code="OK"), threads * calls)
        self.assertEqual(sample(fams, "scale_rpc_in_flight"), 0)

    def test_other_paths_and_methods(self):
        self.start()
        status, _, _ = fetch(self.metrics_port, "/other")
        self.assertEqual(status, 404)
        status, _, _ = fetch(self.metrics_port, "/")
        self.assertEqual(status, 404)
        status, headers, _ = fetch(self.metrics_port, "/metrics", method="POST")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("Allow"), "GET, HEAD")
        status, _, _ = fetch(self.metrics_port, "/metrics?x=1")
        self.assertEqual(status, 200)

    def test_listener_is_its_own_port_and_off_serves_nothing(self):
        on = self.start()
        self.assertEqual(listening_ports(on.proc.pid), {on.port, self.metrics_port})
        off = self.start_server(SCALE_METRICS_ADDR="off")
        self.assertEqual(listening_ports(off.proc.pid), {off.port}, "only gRPC listens")
        self.assertIsNone(off.wait_log(lambda r: r.get("msg", "").startswith("metrics on"), timeout=0.5))

    def test_bad_address_exits_naming_it(self):
        for value in ("nonsense", "127.0.0.1:99999", "unix:/tmp/metrics.sock"):
            with self.subTest(value=value):
                r = h.run_server_once(SCALE_METRICS_ADDR=value)
                self.assertNotEqual(r.returncode, 0, r.stderr)
                lines = r.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertIn("SCALE_METRICS_ADDR", lines[0])

    def test_taken_port_exits_naming_it(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            addr = "127.0.0.1:%d" % busy.getsockname()[1]
            r = h.run_server_once(timeout=120, SCALE_METRICS_ADDR=addr)
        self.assertNotIn(r.returncode, (0, 23), r.stderr)
        last = r.stderr.strip().splitlines()[-1]
        self.assertIn("SCALE_METRICS_ADDR", last)
        self.assertIn(addr, last)
        self.assertNotIn('"listening on', r.stderr)

    @unittest.skipUnless(shutil.which("promtool"),
                         "promtool (Debian package prometheus) is not installed: the exposition was checked by "
                         "this file's own parser only")
    def test_promtool_accepts_the_exposition(self):
        s = self.start()
        with grpc.insecure_channel(s.target) as ch:
            h.ping_stub(ch)(PingRequest(message="x"), timeout=10)
        body, _ = self.scrape()
        r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
