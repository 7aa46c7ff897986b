"""TLS and mutual TLS on scale-server (SCALE_TLS_CERT_FILE, SCALE_TLS_KEY_FILE,
SCALE_TLS_CA_FILE), with certificates made by openssl for each run and
Python grpcio as the client."""
import os
import subprocess
import tempfile
import unittest

import grpc

import scalehelp as h
from test_server import PingRequest, ScaleTestCase


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


class Certs:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate
    from the same CA, and one from an unrelated CA."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="scale-tls-")
        d = self.dir
        for ca in ("ca", "rogue-ca"):
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=SCALE test " + ca, "-keyout", ca + ".key", "-out", ca + ".pem", cwd=d)
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        with open(os.path.join(d, "client.ext"), "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")
        for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                              ("rogue-client", "rogue-ca", "client.ext")):
            openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + name,
                    "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
            openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                    "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", name + ".pem", cwd=d)

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()


CERTS = None


def setUpModule():
    global CERTS
    CERTS = Certs()


class TlsTest(ScaleTestCase):
    def ping_over(self, server, creds):
        ch = grpc.secure_channel(server.target, creds)
        self.channels.append(ch)
        return h.ping_stub(ch)(PingRequest(message="tls"), timeout=10)

    def test_tls_serves_and_refuses_plaintext(self):
        s = self.start_server(SCALE_TLS_CERT_FILE=CERTS.path("server.pem"),
                              SCALE_TLS_KEY_FILE=CERTS.path("server.key"))
        self.assertIn("(gRPC, TLS)", s.log_text())
        creds = grpc.ssl_channel_credentials(root_certificates=CERTS.read("ca.pem"))
        self.assertEqual(self.ping_over(s, creds).message, "tls")
        plain = h.ping_stub(self.channel(s))
        with self.assertRaises(grpc.RpcError) as cm:
            plain(PingRequest(message="x"), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        # A client trusting another CA refuses the server.
        wrong = grpc.ssl_channel_credentials(root_certificates=CERTS.read("rogue-ca.pem"))
        with self.assertRaises(grpc.RpcError):
            self.ping_over(s, wrong)

    def test_mutual_tls_requires_a_client_certificate_from_the_ca(self):
        s = self.start_server(SCALE_TLS_CERT_FILE=CERTS.path("server.pem"),
                              SCALE_TLS_KEY_FILE=CERTS.path("server.key"), SCALE_TLS_CA_FILE=CERTS.path("ca.pem"))
        self.assertIn("(gRPC, mutual TLS)", s.log_text())
        ok = grpc.ssl_channel_credentials(root_certificates=CERTS.read("ca.pem"), private_key=CERTS.read("client.key"),
                                          certificate_chain=CERTS.read("client.pem"))
        self.assertEqual(self.ping_over(s, ok).message, "tls")
        for label, creds in (
            ("no client certificate", grpc.ssl_channel_credentials(root_certificates=CERTS.read("ca.pem"))),
            ("certificate from another CA",
             grpc.ssl_channel_credentials(root_certificates=CERTS.read("ca.pem"),
                                          private_key=CERTS.read("rogue-client.key"),
                                          certificate_chain=CERTS.read("rogue-client.pem"))),
        ):
            with self.subTest(label):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.ping_over(s, creds)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_bad_tls_configuration_is_named(self):
        cases = [
            ({"SCALE_TLS_CERT_FILE": "/nonexistent.pem"}, "SCALE_TLS_CERT_FILE"),
            ({"SCALE_TLS_CERT_FILE": CERTS.path("server.pem")}, "TLS needs both a certificate and a key file"),
            ({"SCALE_TLS_CERT_FILE": CERTS.path("server.pem"), "SCALE_TLS_KEY_FILE": CERTS.path("ca.pem")},
             "SCALE_TLS_KEY_FILE) is not an unencrypted PEM private key"),
            ({"SCALE_TLS_CERT_FILE": CERTS.path("server.pem"), "SCALE_TLS_KEY_FILE": CERTS.path("client.key")},
             "SCALE_TLS_KEY_FILE) does not match the certificate"),
            ({"SCALE_TLS_CERT_FILE": CERTS.path("server.key"), "SCALE_TLS_KEY_FILE": CERTS.path("server.key")},
             "SCALE_TLS_CERT_FILE) is not a PEM certificate"),
        ]
        for env, needle in cases:
            with self.subTest(needle=needle):
                res = h.run_server_once(**env)
                self.assertNotEqual(res.returncode, 0)
                self.assertIn(needle, res.stderr)


if __name__ == "__main__":
    unittest.main()
