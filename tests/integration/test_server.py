"""Integration tests of scale-server: the real binary on a loopback ephemeral
port, driven by clients nobody here wrote (Debian's python3-grpcio and
buf curl). Each test that starts a server stops it with SIGTERM and asserts
it exits 0, which under the sanitizer build also means LeakSanitizer found
nothing (a leak makes it exit 23).

Run from this directory: /usr/bin/python3 -m unittest -v test_server
with SCALE_BIN_DIR, SCALE_API_DESC, SCALE_BUF and ASAN_OPTIONS set (see
CMakeLists.txt)."""
import json
import queue
import re
import subprocess
import sys
import threading
import time
import unittest
import uuid

import grpc
from google.protobuf import descriptor_pb2

import scalehelp as h
from scalehelp import msg

PING = "/scale.common.v1.PingService/Ping"
CHECK = "/grpc.health.v1.Health/Check"
WATCH = "/grpc.health.v1.Health/Watch"
DOMAIN_SERVICES = {
    "ingestion": "scale.ingestion.v1.IngestionService",
    "accounts": "scale.accounts.v1.AccountsService",
    "categorization": "scale.categorization.v1.CategorizationService",
    "forecasting": "scale.forecasting.v1.ForecastingService",
    "training": "scale.training.v1.TrainingService",
    "anomaly": "scale.anomaly.v1.AnomalyService",
}
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

PingRequest = msg("scale.common.v1.PingRequest")
HealthRequest = msg("grpc.health.v1.HealthCheckRequest")
HealthResponse = msg("grpc.health.v1.HealthCheckResponse")


def md(call_or_error, key, which="initial"):
    """The first value of a metadata key of a finished call (or RpcError)."""
    items = call_or_error.initial_metadata() if which == "initial" else call_or_error.trailing_metadata()
    for k, v in items or ():
        if k == key:
            return v
    return None


def domain_methods():
    """[(service, method descriptor)] of every domain method in the API."""
    out = []
    for svc in DOMAIN_SERVICES.values():
        for m in h.pool().FindServiceByName(svc).methods:
            out.append((svc, m))
    return out


def run_buf(*args, timeout=60):
    return subprocess.run([h.BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge"] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


class ScaleTestCase(unittest.TestCase):
    """Tracks the servers a test starts; stops each with SIGTERM in tearDown and
    asserts exit 0; prints their logs when the test fails."""

    def setUp(self):
        self.servers = []
        self.channels = []

    def start_server(self, *args, **env):
        s = h.start_server(*args, **env)
        self.servers.append(s)
        return s

    def channel(self, server, *options):
        ch = grpc.insecure_channel(server.target, options=list(options))
        self.channels.append(ch)
        return ch

    def tearDown(self):
        for ch in self.channels:
            ch.close()  # also cancels any call a failed test left open
        for s in self.servers:
            rc = s.stop()
            self.assertEqual(rc, 0, "scale-server on port %s exited %s after SIGTERM (23: leak found); log:\n%s"
                             % (s.port, rc, s.log_text()))

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        super().run(result)
        failed = len(result.failures) + len(result.errors) > before
        for s in getattr(self, "servers", []):
            if failed:
                sys.stderr.write("\n---- scale-server log (port %s) ----\n%s---- end of log ----\n"
                                 % (s.port, s.log_text()))
            s.remove_log()
        return result

    def assertRpcError(self, code, fn, *args, **kwargs):
        """Calls fn, which must fail with the gRPC status code; returns the error."""
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, **kwargs)
        self.assertEqual(cm.exception.code(), code, "details: %r" % cm.exception.details())
        return cm.exception


class ServerTestCase(ScaleTestCase):
    """One server per test, started with server_args/server_env."""
    server_args = ()
    server_env = {}

    def setUp(self):
        super().setUp()
        self.server = self.start_server(*self.server_args, **self.server_env)
        self.ch = self.channel(self.server)
        self.ping = h.ping_stub(self.ch)
        self.check = h.unary(self.ch, CHECK, HealthRequest, HealthResponse)
        self.watch = self.ch.unary_stream(WATCH, request_serializer=HealthRequest.SerializeToString,
                                          response_deserializer=HealthResponse.FromString)

    def rpc_log(self, method, request_id, timeout=2.0, statuses=None):
        """The access-log record of one call (by method and request id), waiting for it."""
        return self.server.wait_log(lambda r: r.get("method") == method and r.get("request_id") == request_id
                                    and (statuses is None or r.get("status") in statuses), timeout)


# ---- health -------------------------------------------------------------------

class HealthTest(ServerTestCase):
    def test_check_overall_server_is_serving(self):
        self.assertEqual(self.check(HealthRequest(service=""), timeout=10).status, HealthResponse.SERVING)

    def test_check_hosted_services_are_serving(self):
        for svc in ["scale.common.v1.PingService", "grpc.health.v1.Health"] + list(DOMAIN_SERVICES.values()):
            with self.subTest(service=svc):
                self.assertEqual(self.check(HealthRequest(service=svc), timeout=10).status, HealthResponse.SERVING)

    def test_check_unknown_service_is_not_found(self):
        err = self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.check, HealthRequest(service="no.such.Service"),
                                  timeout=10)
        self.assertIn("no.such.Service", err.details())

    def test_watch_sends_serving_at_once(self):
        t0 = time.monotonic()
        call = self.watch(HealthRequest(service=""), timeout=30)
        first = next(call)
        elapsed = time.monotonic() - t0
        call.cancel()
        self.assertEqual(first.status, HealthResponse.SERVING)
        self.assertLess(elapsed, 1.0, "the first Watch message took %.2f s" % elapsed)

    def test_watch_unknown_service_says_service_unknown_and_stays_open(self):
        call = self.watch(HealthRequest(service="no.such.Service"), timeout=30)
        self.assertEqual(next(call).status, HealthResponse.SERVICE_UNKNOWN)
        time.sleep(0.6)
        ended = call.done() and "%s: %r" % (call.code(), call.details())
        call.cancel()
        self.assertFalse(ended, "the Watch of an unknown service ended")

    def test_watch_sees_not_serving_then_unavailable_on_sigterm(self):
        call = self.watch(HealthRequest(service=""), timeout=30)
        self.assertEqual(next(call).status, HealthResponse.SERVING)
        t0 = time.monotonic()
        self.server.signal_stop()
        self.assertEqual(next(call).status, HealthResponse.NOT_SERVING)
        self.assertRpcError(grpc.StatusCode.UNAVAILABLE, next, call)
        # A client leaves once told to. (An idle grpcio channel left open holds the
        # core's graceful GOAWAY for ~5 s: grpcio acks its ping only on the backup poll.)
        self.ch.close()
        rc = self.server.wait(timeout=30)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, self.server.log_text())
        # The default grace is 10 s: exiting well before it means the Watch ended by itself.
        self.assertLess(elapsed, 3.0, "the server took %.1f s to exit" % elapsed)


# ---- reflection ---------------------------------------------------------------------

class BufCurlReflectionTest(ServerTestCase):
    """buf curl has no proto files: everything it knows comes from reflection."""

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.server.port, path)

    def test_list_methods(self):
        r = run_buf("--list-methods", self.url())
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = set(r.stdout.split())
        expected = {"scale.common.v1.PingService/Ping", "grpc.health.v1.Health/Check",
                    "grpc.health.v1.Health/Watch"}
        expected |= {"%s/%s" % (svc, m.name) for svc, m in domain_methods()}
        self.assertEqual(expected - listed, set(), "missing from --list-methods:\n" + r.stdout)

    def test_ping_as_json(self):
        r = run_buf("-d", '{"message":"hi"}', self.url(PING))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out.get("message"), "hi")
        self.assertEqual(out.get("server"), "scale-server")
        self.assertTrue(UUID4.match(out.get("requestId", "")), out)

    def test_ping_with_each_reflection_protocol(self):
        for proto, used, unused in [("grpc-v1", "grpc.reflection.v1", "grpc.reflection.v1alpha"),
                                    ("grpc-v1alpha", "grpc.reflection.v1alpha", "grpc.reflection.v1")]:
            with self.subTest(reflect_protocol=proto):
                n_before = len(self.server.log_lines())
                r = run_buf("--reflect-protocol", proto, "-d", '{"message":"hi %s"}' % proto, self.url(PING))
                self.assertEqual(r.returncode, 0, r.stderr)
                out = json.loads(r.stdout)
                self.assertEqual(out.get("message"), "hi " + proto)
                self.assertEqual(out.get("server"), "scale-server")
                # The server's log shows which reflection service answered.
                self.server.wait_log(lambda rec: "ServerReflection/" in rec.get("method", ""))
                methods = [rec.get("method") for rec in self.server.log_lines()[n_before:]]
                self.assertIn("/%s.ServerReflection/ServerReflectionInfo" % used, methods)
                self.assertNotIn("/%s.ServerReflection/ServerReflectionInfo" % unused, methods)


class GrpcioReflectionTest(ServerTestCase):
    Req = msg("grpc.reflection.v1alpha.ServerReflectionRequest")
    Resp = msg("grpc.reflection.v1alpha.ServerReflectionResponse")

    def open_stream(self, package="grpc.reflection.v1alpha"):
        """(ask(**request) -> response, close() -> final status): one bidi stream."""
        reqs = queue.Queue()

        def feed():
            while True:
                r = reqs.get()
                if r is None:
                    return
                yield r

        stub = self.ch.stream_stream("/%s.ServerReflection/ServerReflectionInfo" % package,
                                     request_serializer=self.Req.SerializeToString,
                                     response_deserializer=self.Resp.FromString)
        call = stub(feed(), timeout=30)

        def ask(**fields):
            req = self.Req(host="localhost", **fields)
            reqs.put(req)
            resp = next(call)
            self.assertEqual(resp.original_request, req)
            self.assertEqual(resp.valid_host, "localhost")
            return resp

        def close():
            reqs.put(None)
            rest = list(call)
            self.assertEqual(rest, [], "responses after the last request")
            return call.code()

        return ask, close

    @staticmethod
    def files(resp):
        return [descriptor_pb2.FileDescriptorProto.FromString(b)
                for b in resp.file_descriptor_response.file_descriptor_proto]

    def assertFileClosure(self, resp, first):
        """The response holds `first`, then its dependencies, each once, none missing."""
        self.assertEqual(resp.WhichOneof("message_response"), "file_descriptor_response", resp)
        files = self.files(resp)
        names = [f.name for f in files]
        self.assertEqual(names[0], first)
        self.assertEqual(len(names), len(set(names)), "duplicates: %s" % names)
        for f in files:
            for dep in f.dependency:
                self.assertIn(dep, names, "%s imports %s, which the response lacks" % (f.name, dep))
        return names

    def test_several_requests_on_one_v1alpha_stream(self):
        ask, close = self.open_stream()

        resp = ask(list_services="*")
        services = {s.name for s in resp.list_services_response.service}
        expected = {"scale.common.v1.PingService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                    "grpc.reflection.v1alpha.ServerReflection"} | set(DOMAIN_SERVICES.values())
        self.assertEqual(expected - services, set())

        names = self.assertFileClosure(ask(file_containing_symbol="scale.common.v1.PingService"),
                                       "scale/common/v1/ping.proto")
        self.assertIn("google/api/annotations.proto", names)
        self.assertIn("google/protobuf/timestamp.proto", names)

        # grpcurl asks for methods and messages by symbol too.
        for symbol in ["scale.common.v1.PingService.Ping", "scale.common.v1.PingRequest"]:
            with self.subTest(symbol=symbol):
                self.assertFileClosure(ask(file_containing_symbol=symbol), "scale/common/v1/ping.proto")
        self.assertFileClosure(ask(file_containing_symbol="grpc.health.v1.HealthCheckResponse.ServingStatus"),
                               "grpc/health/v1/health.proto")
        self.assertFileClosure(ask(file_by_filename="google/api/annotations.proto"), "google/api/annotations.proto")

        for kind, value in [("file_by_filename", "no/such/file.proto"), ("file_containing_symbol", "no.such.Symbol")]:
            with self.subTest(kind=kind):
                resp = ask(**{kind: value})
                self.assertEqual(resp.WhichOneof("message_response"), "error_response", resp)
                self.assertEqual(resp.error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])

        # google.api.http extends MethodOptions: the number must be listed.
        resp = ask(all_extension_numbers_of_type="google.protobuf.MethodOptions")
        self.assertEqual(resp.all_extension_numbers_response.base_type_name, "google.protobuf.MethodOptions")
        self.assertIn(72295728, resp.all_extension_numbers_response.extension_number)

        self.assertEqual(close(), grpc.StatusCode.OK)

    def test_pipelined_requests_get_one_response_each_in_order(self):
        Ext = msg("grpc.reflection.v1alpha.ExtensionRequest")
        reqs = [self.Req(host="h%d" % i, **fields) for i, fields in enumerate([
            {"list_services": "*"},
            {"file_by_filename": "no/such/file.proto"},
            {"file_containing_symbol": "grpc.health.v1.Health"},
            {},  # no request at all: UNIMPLEMENTED in-stream
            {"file_containing_extension": Ext(containing_type="google.protobuf.MethodOptions",
                                              extension_number=72295728)},
        ])]
        stub = self.ch.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                     request_serializer=self.Req.SerializeToString,
                                     response_deserializer=self.Resp.FromString)
        resps = list(stub(iter(reqs), timeout=30))
        self.assertEqual([r.original_request for r in resps], reqs)
        self.assertEqual([r.WhichOneof("message_response") for r in resps],
                         ["list_services_response", "error_response", "file_descriptor_response", "error_response",
                          "file_descriptor_response"])
        self.assertEqual(resps[1].error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])
        self.assertEqual(resps[3].error_response.error_code, grpc.StatusCode.UNIMPLEMENTED.value[0])
        self.assertFileClosure(resps[4], "google/api/annotations.proto")

    def test_v1_stream_lists_services(self):
        ask, close = self.open_stream("grpc.reflection.v1")
        services = {s.name for s in ask(list_services="").list_services_response.service}
        self.assertIn("scale.common.v1.PingService", services)
        self.assertEqual(close(), grpc.StatusCode.OK)


# ---- error statuses -------------------------------------------------------------------

class UnimplementedTest(ServerTestCase):
    def raw(self, path):
        return self.ch.unary_unary(path)  # bytes in, bytes out

    def test_unknown_method_path(self):
        err = self.assertRpcError(grpc.StatusCode.UNIMPLEMENTED, self.raw("/x.Y/Z"), b"", timeout=10)
        self.assertEqual(err.details(), "unknown method /x.Y/Z")

    def test_unknown_method_of_a_served_service(self):
        err = self.assertRpcError(grpc.StatusCode.UNIMPLEMENTED, self.raw("/scale.common.v1.PingService/Pong"),
                                  b"", timeout=10)
        self.assertIn("Pong", err.details())

    def test_every_unbuilt_domain_method_names_itself(self):
        auth = h.bearer("6a319805-9ec5-4bcf-bd35-9aa98a2ab216")
        # Built so far: every method of accounts and ingestion.
        built_services = {"scale.accounts.v1.AccountsService", "scale.ingestion.v1.IngestionService"}
        for svc, m in domain_methods():
            path = "/%s/%s" % (svc, m.name)
            if svc in built_services:
                continue
            with self.subTest(method=path):
                if m.client_streaming and m.server_streaming:
                    fn = lambda: list(self.ch.stream_stream(path)(iter([b""]), timeout=10, metadata=auth))
                elif m.client_streaming:
                    fn = lambda: self.ch.stream_unary(path)(iter([b"", b""]), timeout=10, metadata=auth)
                elif m.server_streaming:
                    fn = lambda: list(self.ch.unary_stream(path)(b"", timeout=10, metadata=auth))
                else:
                    fn = lambda: self.raw(path)(b"", timeout=10, metadata=auth)
                err = self.assertRpcError(grpc.StatusCode.UNIMPLEMENTED, fn)
                self.assertEqual(err.details(), "method %s/%s is not implemented yet" % (svc, m.name))

    def test_domain_methods_need_a_token_before_anything_else(self):
        for svc, m in domain_methods():
            if m.client_streaming or m.server_streaming:
                continue
            path = "/%s/%s" % (svc, m.name)
            with self.subTest(method=path):
                err = self.assertRpcError(grpc.StatusCode.UNAUTHENTICATED, self.raw(path), b"", timeout=10)
                self.assertIn("missing bearer token", err.details())


class ServiceSubsetTest(ServerTestCase):
    server_args = ("--services=ingestion",)

    def test_unhosted_domain_is_not_served_by_this_process(self):
        path = "/scale.accounts.v1.AccountsService/GetProfile"
        err = self.assertRpcError(grpc.StatusCode.UNIMPLEMENTED, self.ch.unary_unary(path), b"", timeout=10)
        self.assertIn("scale.accounts.v1.AccountsService", err.details())
        self.assertIn("not served by this process", err.details())
        self.assertRpcError(grpc.StatusCode.NOT_FOUND, self.check,
                            HealthRequest(service="scale.accounts.v1.AccountsService"), timeout=10)

    def test_hosted_domain_and_ping_still_answer(self):
        self.assertEqual(self.check(HealthRequest(service="scale.ingestion.v1.IngestionService"), timeout=10).status,
                         HealthResponse.SERVING)
        path = "/scale.ingestion.v1.IngestionService/ParseStatement"
        err = self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self.ch.unary_unary(path), b"", timeout=10,
                                  metadata=h.bearer("6a319805-9ec5-4bcf-bd35-9aa98a2ab216"))
        self.assertTrue(err.details().startswith("content: empty"), err.details())
        self.assertEqual(self.ping(PingRequest(message="m"), timeout=10).message, "m")


class InvalidArgumentTest(ServerTestCase):
    GARBAGE = {
        "length past the end": b"\x0a\xff\xff\xff\xff\x0f",
        "string field as varint": b"\x08\x01",
        "truncated bytes field": b"\x12\x05ab",
        "varint key too long": b"\xff" * 10 + b"\x01",
        "wire type 7": b"\x0f",
    }

    def test_garbage_bytes(self):
        raw = self.ch.unary_unary(PING)
        for name, data in self.GARBAGE.items():
            with self.subTest(case=name):
                self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, raw, data, timeout=10)
        self.assertEqual(self.ping(PingRequest(message="still up"), timeout=10).message, "still up")

    # proto3 strings must be UTF-8; protobuf-c does not check, the runtime does.
    def test_invalid_utf8_in_a_string_field(self):
        raw = self.ch.unary_unary(PING)
        err = self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, raw, b"\x0a\x02\xff\xfe", timeout=10)
        self.assertEqual(err.details(), "message: not valid UTF-8")
        violations = h.decode_bad_request(h.decode_rpc_status(md(err, "grpc-status-details-bin", "trailing"))["details"][0][1])
        self.assertEqual([f for f, _ in violations], ["message"])

    def test_message_at_the_limit_is_accepted(self):
        self.assertEqual(self.ping(PingRequest(message="x" * 1024), timeout=10).message, "x" * 1024)

    def field_violations(self, req):
        err = self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self.ping, req, timeout=30)
        raw = md(err, "grpc-status-details-bin", "trailing")
        self.assertIsNotNone(raw, "no grpc-status-details-bin in %r" % (err.trailing_metadata(),))
        st = h.decode_rpc_status(raw)
        self.assertEqual(st["code"], grpc.StatusCode.INVALID_ARGUMENT.value[0])
        self.assertEqual(st["message"], err.details())
        self.assertEqual(len(st["details"]), 1, st)
        type_url, value = st["details"][0]
        self.assertEqual(type_url, "type.googleapis.com/google.rpc.BadRequest")
        return h.decode_bad_request(value)

    def test_long_message_reports_a_field_violation(self):
        violations = self.field_violations(PingRequest(message="x" * 1025))
        self.assertEqual([f for f, _ in violations], ["message"])
        self.assertTrue(violations[0][1], "empty description")

    def test_large_payload_reports_a_field_violation(self):
        violations = self.field_violations(PingRequest(payload=b"\0" * ((1 << 20) + 1)))
        self.assertEqual([f for f, _ in violations], ["payload"])


class MessageLimitTest(ServerTestCase):
    server_env = {"SCALE_GRPC_MAX_MESSAGE_BYTES": "64K"}

    def test_request_over_the_limit_is_resource_exhausted(self):
        self.assertRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, self.ping, PingRequest(payload=b"a" * (100 << 10)),
                            timeout=10)

    def test_request_under_the_limit_is_served(self):
        payload = bytes(range(256)) * 240  # 60 KiB
        self.assertEqual(self.ping(PingRequest(payload=payload), timeout=10).payload, payload)


class StreamLimitTest(ServerTestCase):
    server_env = {"SCALE_GRPC_MAX_STREAMS": "2"}

    def first_status(self):
        """The first Watch message's status, or the RpcError code; cancels the call."""
        call = self.watch(HealthRequest(service=""), timeout=30)
        try:
            return next(call).status
        except grpc.RpcError as e:
            return e.code()
        finally:
            call.cancel()

    def test_streams_beyond_the_limit_are_refused_until_one_ends(self):
        calls = [self.watch(HealthRequest(service=""), timeout=30) for _ in range(2)]
        for c in calls:
            self.assertEqual(next(c).status, HealthResponse.SERVING)
        self.assertEqual(self.first_status(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        for c in calls:
            c.cancel()
        # The slots free up once the server notices the cancellations (it polls).
        until, got = time.monotonic() + 3, None
        while got != HealthResponse.SERVING and time.monotonic() < until:
            time.sleep(0.1)
            got = self.first_status()
        self.assertEqual(got, HealthResponse.SERVING)


# ---- deadlines and cancellation ---------------------------------------------------------

class DeadlineTest(ServerTestCase):
    def test_watch_deadline_exceeded_and_server_stops_the_handler(self):
        rid = "watch-deadline-" + uuid.uuid4().hex
        t0 = time.monotonic()
        call = self.watch(HealthRequest(service=""), timeout=0.3, metadata=[("x-request-id", rid)])
        self.assertEqual(next(call).status, HealthResponse.SERVING)
        self.assertRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, next, call)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.25)
        self.assertLess(elapsed, 1.5)
        rec = self.rpc_log(WATCH, rid, timeout=2.0)
        self.assertIsNotNone(rec, "the server logged no end of the Watch call within 2 s")
        self.assertIn(rec.get("status"), ("DEADLINE_EXCEEDED", "CANCELLED"), rec)

    def test_ping_with_a_tiny_timeout(self):
        self.assertRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, self.ping, PingRequest(message="late"),
                            timeout=0.000001)
        self.assertEqual(self.ping(PingRequest(message="in time"), timeout=10).message, "in time")


class CancellationTest(ServerTestCase):
    def test_cancelled_watch_is_stopped_on_the_server(self):
        rid = "watch-cancel-" + uuid.uuid4().hex
        call = self.watch(HealthRequest(service=""), timeout=30, metadata=[("x-request-id", rid)])
        self.assertEqual(next(call).status, HealthResponse.SERVING)
        call.cancel()
        rec = self.rpc_log(WATCH, rid, timeout=2.0)
        self.assertIsNotNone(rec, "the server logged no end of the cancelled Watch within 2 s")
        self.assertEqual(rec.get("status"), "CANCELLED", rec)


# ---- request ids -----------------------------------------------------------------------------

class RequestIdTest(ServerTestCase):
    def call(self, request_id=None):
        metadata = [("x-request-id", request_id)] if request_id is not None else None
        resp, call = self.ping.with_call(PingRequest(message="id"), metadata=metadata, timeout=10)
        header = md(call, "x-request-id")
        self.assertEqual(header, resp.request_id, "the header and the response disagree")
        return header

    def test_client_request_id_is_echoed(self):
        rid = "trace-Abc_123.4:5-" + uuid.uuid4().hex
        self.assertEqual(self.call(rid), rid)
        rec = self.server.wait_log(lambda r: r.get("method") == PING and r.get("request_id") == rid)
        self.assertIsNotNone(rec, "no access-log line carries the client's request id")

    def test_missing_request_id_is_generated_as_uuid4(self):
        a, b = self.call(), self.call()
        self.assertRegex(a, UUID4)
        self.assertRegex(b, UUID4)
        self.assertNotEqual(a, b)

    def test_invalid_request_id_is_replaced(self):
        for bad in ["has spaces in it", "a" * 300]:
            with self.subTest(request_id=bad[:20]):
                got = self.call(bad)
                self.assertNotEqual(got, bad)
                self.assertRegex(got, UUID4)


# ---- load -------------------------------------------------------------------------------------

class LoadTest(ServerTestCase):
    CLIENTS, CALLS = 8, 1250

    def test_ten_thousand_pings_from_eight_clients(self):
        failures, done = [], [0] * self.CLIENTS

        def client(n):
            # A local subchannel pool gives each client its own connection.
            with grpc.insecure_channel(self.server.target, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
                ping = h.ping_stub(ch)
                for i in range(self.CALLS):
                    text = "client %d call %d" % (n, i)
                    try:
                        resp = ping(PingRequest(message=text), timeout=30)
                        if resp.message != text:
                            failures.append("%s: got %r" % (text, resp.message))
                    except grpc.RpcError as e:
                        failures.append("%s: %s %s" % (text, e.code(), e.details()))
                    done[n] += 1

        threads = [threading.Thread(target=client, args=(n,)) for n in range(self.CLIENTS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        total = sum(done)
        sys.stderr.write("\n  load: %d Ping calls from %d clients in %.2f s = %.0f calls/s (sanitizer build)\n"
                         % (total, self.CLIENTS, elapsed, total / elapsed))
        self.assertEqual(total, self.CLIENTS * self.CALLS)
        self.assertEqual(failures, [], "%d failures, first: %s" % (len(failures), failures[:5]))


# ---- the process ------------------------------------------------------------------------------

class ProcessTest(ScaleTestCase):
    def test_help(self):
        r = h.run_server_once(["--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("SCALE_GRPC_ADDR", r.stdout)

    def test_bad_settings_exit_with_one_line_naming_the_variable(self):
        for var, value in [("SCALE_GRPC_THREADS", "abc"), ("SCALE_GRPC_ADDR", "nonsense"),
                           ("SCALE_GRPC_MAX_MESSAGE_BYTES", "lots"), ("SCALE_LOG_LEVEL", "loud")]:
            with self.subTest(var=var, value=value):
                r = h.run_server_once(**{var: value})
                self.assertNotEqual(r.returncode, 0, r.stderr)
                lines = r.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertIn(var, lines[0])

    def test_second_server_on_the_same_port_fails_clearly(self):
        addr = "127.0.0.1:%d" % h.free_port()
        first = self.start_server(SCALE_GRPC_ADDR=addr)
        second = h.Server([], {"SCALE_GRPC_ADDR": addr})
        try:
            rc = second.wait(timeout=30)  # killed (None) if it kept running
            log = second.log_text()
        finally:
            second.remove_log()
        self.assertNotIn(rc, (0, None), "the second server did not fail:\n" + log)
        self.assertNotIn("listening on", log)
        self.assertIn(addr, log, "the error does not name the address")
        with grpc.insecure_channel(first.target) as ch:
            self.assertEqual(h.ping_stub(ch)(PingRequest(message="first"), timeout=10).message, "first")


if __name__ == "__main__":
    unittest.main()
