"""Small helpers for the integration tests: start a real scale-server, read
its JSON log, build message classes from the API descriptor set at runtime,
and decode google.rpc.Status by hand (google/rpc is not in the set)."""
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

BIN_DIR = os.environ.get("SCALE_BIN_DIR", "")
API_DESC = os.environ.get("SCALE_API_DESC", "")
BUF = os.environ.get("SCALE_BUF", "")
SERVER = os.path.join(BIN_DIR, "scale-server")

START_TIMEOUT = 30.0  # the sanitizer build starts slowly on a busy machine
STOP_TIMEOUT = 30.0


# ---- messages ---------------------------------------------------------------

_pool = None
_factory = None
_classes = {}


def _load_pool():
    global _pool, _factory
    if _pool is None:
        fds = descriptor_pb2.FileDescriptorSet()
        with open(API_DESC, "rb") as f:
            fds.ParseFromString(f.read())
        pool = descriptor_pool.DescriptorPool()
        for fd in fds.file:  # --include_imports lists dependencies first
            pool.Add(fd)
        _pool, _factory = pool, message_factory.MessageFactory(pool)
    return _pool


def pool():
    """The descriptor pool built from SCALE_API_DESC."""
    return _load_pool()


def msg(full_name):
    """The message class for a fully qualified name, e.g. 'scale.common.v1.PingRequest'."""
    cls = _classes.get(full_name)
    if cls is None:
        desc = _load_pool().FindMessageTypeByName(full_name)
        get = getattr(message_factory, "GetMessageClass", None)
        cls = get(desc) if get else _factory.GetPrototype(desc)
        _classes[full_name] = cls
    return cls


def unary(channel, path, req_cls, resp_cls):
    return channel.unary_unary(path, request_serializer=req_cls.SerializeToString,
                               response_deserializer=resp_cls.FromString)


def ping_stub(channel):
    return unary(channel, "/scale.common.v1.PingService/Ping",
                 msg("scale.common.v1.PingRequest"), msg("scale.common.v1.PingResponse"))


# ---- hand decoding of the protobuf wire format --------------------------------

def _varint(b, i):
    shift = result = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        if not c & 0x80:
            return result, i
        shift += 7


def wire_fields(b):
    """[(field_number, value)] of a serialized message; value is int or bytes."""
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            if i + n > len(b):
                raise ValueError("truncated length-delimited field")
            v, i = bytes(b[i:i + n]), i + n
        elif wt == 1:
            v, i = bytes(b[i:i + 8]), i + 8
        elif wt == 5:
            v, i = bytes(b[i:i + 4]), i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        out.append((num, v))
    return out


def decode_rpc_status(b):
    """google.rpc.Status bytes -> {'code', 'message', 'details': [(type_url, value)]}."""
    st = {"code": 0, "message": "", "details": []}
    for num, v in wire_fields(b):
        if num == 1:
            st["code"] = v
        elif num == 2:
            st["message"] = v.decode()
        elif num == 3:
            any_ = dict(wire_fields(v))
            st["details"].append((any_.get(1, b"").decode(), any_.get(2, b"")))
    return st


def decode_bad_request(b):
    """google.rpc.BadRequest bytes -> [(field, description)]."""
    out = []
    for num, v in wire_fields(b):
        if num == 1:
            fv = dict(wire_fields(v))
            out.append((fv.get(1, b"").decode(), fv.get(2, b"").decode()))
    return out


# ---- the server process -----------------------------------------------------

def free_port():
    """A port nobody listens on right now (for tests that need an explicit one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The HS256 secret test servers verify with (tests mint their own tokens).
JWT_SECRET = "scale-integration-tests-secret-0123456789abcdef"


def mint_token(sub, secret=JWT_SECRET, ttl=600, alg="HS256", **claims):
    """An HS256 JWT made with Python's standard library alone (hmac, hashlib,
    base64, json): an implementation independent of the server's."""
    now = int(time.time())
    payload = {"sub": sub, "aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + ttl}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = (head + "." + body).encode()
    sig = b64(hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()) if alg == "HS256" else ""
    return head + "." + body + "." + sig


def bearer(sub, **kw):
    """gRPC metadata carrying a token for user `sub`."""
    return (("authorization", "Bearer " + mint_token(sub, **kw)),)


def server_env(**env):
    """The environment of a test server: the ephemeral PostgreSQL and Redis
    that tests/with-stack.sh started (SCALE_DATABASE_URL, SCALE_REDIS_URL come
    from os.environ), an ephemeral port, and the test JWT secret."""
    e = dict(os.environ)
    e.update({"SCALE_GRPC_ADDR": "127.0.0.1:0", "SCALE_LOG_LEVEL": "info", "SCALE_LOG_FORMAT": "json",
              "SCALE_JWT_SECRET": JWT_SECRET})
    e.update({k: str(v) for k, v in env.items()})
    return e


class Server:
    """A running scale-server; stderr goes to a temp file (a pipe could fill up)."""

    def __init__(self, args, env):
        self._log = tempfile.NamedTemporaryFile(prefix="scale-server-", suffix=".log", delete=False)
        self.log_path = self._log.name
        self.proc = subprocess.Popen([SERVER] + list(args), env=server_env(**env), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._log)
        self.port = None
        self.returncode = None

    def wait_listening(self, timeout=START_TIMEOUT):
        """Waits for the 'listening on' line; returns the port or raises with the log."""
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            for rec in self.log_lines():
                m = rec.get("msg", "")
                if m.startswith("listening on "):
                    self.port = int(m.split()[2].rsplit(":", 1)[1])
                    return self.port
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise AssertionError("scale-server did not start (exit %s):\n%s" % (self.returncode, self.log_text()))

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def log_text(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def log_lines(self):
        """The JSON log records written so far (other lines are skipped)."""
        out = []
        for line in self.log_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def wait_log(self, pred, timeout=2.0):
        """The first log record matching pred within timeout, else None."""
        until = time.monotonic() + timeout
        while True:
            for rec in self.log_lines():
                if pred(rec):
                    return rec
            if time.monotonic() >= until:
                return None
            time.sleep(0.05)

    def signal_stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=STOP_TIMEOUT):
        """Exit code, killing the process (and returning None) if it does not exit in time."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.returncode = None
        self._log.close()
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then wait; returns the exit code (None: it hung and was killed)."""
        if self.returncode is None and self.proc.returncode is None:
            self.signal_stop()
        return self.wait(timeout)

    def remove_log(self):
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


def start_server(*args, **env):
    """Starts scale-server with args and SCALE_* env overrides; returns it listening."""
    s = Server(args, env)
    s.wait_listening()
    return s


def run_server_once(args=(), timeout=30, **env):
    """Runs scale-server to completion (for --help and bad config); CompletedProcess."""
    return subprocess.run([SERVER] + list(args), env=server_env(**env), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)
