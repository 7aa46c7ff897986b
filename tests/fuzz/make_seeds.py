#!/usr/bin/env python3
"""Writes the committed seed corpora under tests/fuzz/corpus/ (run by hand
when a target's input format or the API changes; the files are committed).

    tests/fuzz/make_seeds.py build/fuzz

Needs protoc, openssl and the built fuzz_request (its FUZZ_REQUEST_LIST=1
output maps request type names to the index byte seeds start with). The JWT
secret and EC key are fuzz_jwt.c's; `now` there is 2023-11-14, so tokens
expiring in 2100 stay valid.
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
PROTOC_INCLUDES = [
    "-I", os.path.join(ROOT, "protos"), "-I", "/usr/include", "-I", "/usr/share/grpc-proto",
    "-I", "/usr/share/gocode/src/github.com/gogo/googleapis",
]

SECRET = b"scale-fuzz-hs256-secret-0123456789abcdef"
EC_KEY_PEM = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgg8+ox+tozfdRo36+
C6sjw0NUqRG/tgXFoD9P2lyVJ1yhRANCAAQmgseyinOBcdY2CgVO0LQgg1O/r3Sc
SN5wc2TxB5JtEMsFzECe+EbK8RtVU7sflZ6brNLkAlGNb0I7KjXx7YZA
-----END PRIVATE KEY-----
"""
SUB = "3f2b8c4e-9d1a-4e6b-8f70-5a2c1d0e9b84"
EXP_2100 = 4102444800
NOW = 1700000000


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    assert len(data) < 4096, (target, name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def js(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def hs256(header, payload, secret=SECRET):
    signing = b64(js(header)) + b"." + b64(js(payload))
    return signing + b"." + b64(hmac.new(secret, signing, hashlib.sha256).digest())


def der_to_raw(der):
    """ECDSA-Sig-Value (SEQUENCE of two INTEGERs) to JWS's r||s."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


def es256(header, payload):
    signing = b64(js(header)) + b"." + b64(js(payload))
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as key:
        key.write(EC_KEY_PEM)
        key.flush()
        der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key.name], input=signing,
                             capture_output=True, check=True).stdout
    return signing + b"." + b64(der_to_raw(der))


def jwt_seeds():
    claims = {"sub": SUB, "aud": "authenticated", "role": "authenticated", "iat": NOW, "exp": EXP_2100,
              "email": "user@example.com"}
    hs = {"alg": "HS256", "typ": "JWT"}
    es = {"alg": "ES256", "typ": "JWT"}
    # Mode 0 ('0'): the token as sent.
    write("jwt", "hs256_valid", b"0" + hs256(hs, claims))
    write("jwt", "es256_valid", b"0" + es256(es, dict(claims, iss="https://auth.scale.test/v1")))
    write("jwt", "hs256_expired", b"0" + hs256(hs, dict(claims, exp=NOW - 3600)))
    write("jwt", "hs256_wrong_secret", b"0" + hs256(hs, claims, secret=b"x" * 32))
    write("jwt", "alg_none", b"0" + b64(js({"alg": "none", "typ": "JWT"})) + b"." + b64(js(claims)) + b".")
    write("jwt", "alg_none_mixed_case", b"0" + b64(js({"alg": "NoNe"})) + b"." + b64(js(claims)) + b".AAAA")
    write("jwt", "es256_claimed_hs256", b"0" + hs256(es, claims))
    write("jwt", "two_parts", b"0eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0")
    # Modes 1 and 2: "<header JSON>\n<payload JSON>", signed by the target.
    write("jwt", "resign_hs256_claims",
          b"1" + js(hs) + b"\n" + js({"sub": SUB.upper(), "aud": ["other", "authenticated"], "exp": 4.1e9,
                                      "nbf": NOW - 10, "role": "authenticated",
                                      "iss": "https://auth.scale.test/v1"}))
    write("jwt", "resign_hs256_not_yet", b"1" + js(hs) + b"\n" + js(dict(claims, nbf=NOW + 3600)))
    write("jwt", "resign_hs256_no_alg", b"1" + js({"typ": "JWT"}) + b"\n" + js(claims))
    write("jwt", "resign_hs256_exp_string", b"1" + js(hs) + b"\n" + js(dict(claims, exp="2100-01-01")))
    write("jwt", "resign_hs256_bad_sub", b"1" + js(hs) + b"\n" + js(dict(claims, sub="not-a-uuid")))
    write("jwt", "resign_es256_claims",
          b"2" + js(es) + b"\n" + js(dict(claims, iss="https://auth.scale.test/v1", exp=9223372036854775000)))


def descpool_seeds():
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "t.proto"), "w") as f:
            f.write('syntax = "proto3";\npackage t;\nmessage M { string s = 1; }\n')
        with open(os.path.join(d, "b.proto"), "w") as f:
            f.write('syntax = "proto2";\npackage p.b;\nmessage B { optional int32 x = 1; extensions 100 to 200;\n'
                    '  enum K { K0 = 0; K1 = 1; } message N { optional K k = 1; } }\n'
                    'extend B { optional string tag = 100; }\n')
        with open(os.path.join(d, "a.proto"), "w") as f:
            f.write('syntax = "proto3";\npackage p.a;\nimport "b.proto";\nenum E { E0 = 0; }\n'
                    'message A { p.b.B b = 1; E e = 2; }\n'
                    'service S { rpc Get(A) returns (A); rpc Watch(A) returns (stream A); }\n')
        out = os.path.join(d, "out.desc")

        def protoc(*args):
            subprocess.run(["protoc", "-I", d, "--descriptor_set_out=" + out, *args], check=True)
            with open(out, "rb") as f:
                return f.read()

        write("descpool", "tiny", protoc(os.path.join(d, "t.proto")))
        write("descpool", "import_and_service", protoc("--include_imports", os.path.join(d, "a.proto")))
        write("descpool", "missing_import", protoc(os.path.join(d, "a.proto")))
    write("descpool", "truncated", b"\x0a\x10\x0a\x03t.p")


def request_seeds(build):
    listing = subprocess.run([os.path.join(build, "bin", "fuzz_request"), "-runs=0"],
                             env=dict(os.environ, FUZZ_REQUEST_LIST="1"), capture_output=True, check=True).stdout
    index = {}
    for line in listing.decode().splitlines():
        i, name = line.split()
        index[name] = int(i)

    def encode(msg_type, text):
        return subprocess.run(["protoc", *PROTOC_INCLUDES, "--encode=" + msg_type, _proto_of(msg_type)],
                              input=text.encode(), capture_output=True, check=True).stdout

    def seed(name, msg_type, wire, cap=0x00):
        write("request", name, bytes([index[msg_type], cap]) + wire)

    seed("ping", "scale.common.v1.PingRequest",
         encode("scale.common.v1.PingRequest", 'message: "héllo" payload: "\\000\\001\\377"'))
    seed("ping_bad_utf8", "scale.common.v1.PingRequest", b"\x0a\x03a\xc3(")
    seed("update_settings", "scale.accounts.v1.UpdateSettingsRequest",
         encode("scale.accounts.v1.UpdateSettingsRequest",
                'settings { default_currency: "EUR" timezone: "Europe/Zürich" locale: "de-CH" '
                'updated_at { seconds: 1700000000 nanos: 5 } } update_mask { paths: "timezone" paths: "locale" }'))
    seed("append_rows_tight_cap", "scale.accounts.v1.AppendTransactionsRequest",
         encode("scale.accounts.v1.AppendTransactionsRequest",
                'header { source: TRANSACTION_SOURCE_IMPORT import_id: "imp-1" } '
                'rows { account_id: "acc" date: "2024-01-31" amount_minor: -1250 currency: "EUR" merchant: "Café" line: 2 } '
                'rows { date: "2024-02-01" amount_minor: 99 description: "\\360\\237\\222\\266" }'), cap=0x84)
    seed("import_statement", "scale.ingestion.v1.ImportStatementRequest",
         encode("scale.ingestion.v1.ImportStatementRequest",
                'filename: "statement.csv" content: "date,amount\\n2024-01-31,-12.50\\n" currency: "EUR" '
                'mapping { date_column { name: "date" } amount_column { index: 1 } } strict: true'))
    seed("import_stream_header", "scale.ingestion.v1.ImportStatementStreamRequest",
         encode("scale.ingestion.v1.ImportStatementStreamRequest", 'header { filename: "s.ofx" }'))
    seed("classify", "scale.categorization.v1.ClassifyRequest",
         encode("scale.categorization.v1.ClassifyRequest", 'transaction_id: "t-1" max_alternatives: 3'))
    seed("reflection_v1", "grpc.reflection.v1.ServerReflectionRequest",
         encode("grpc.reflection.v1.ServerReflectionRequest",
                'host: "localhost" file_containing_symbol: "scale.common.v1.PingService"'))
    seed("reflection_v1alpha", "grpc.reflection.v1alpha.ServerReflectionRequest",
         encode("grpc.reflection.v1alpha.ServerReflectionRequest", 'list_services: ""'))
    seed("health_check", "grpc.health.v1.HealthCheckRequest",
         encode("grpc.health.v1.HealthCheckRequest", 'service: "scale.accounts.v1.AccountsService"'))
    seed("surrogate_in_nested", "scale.accounts.v1.UpdateSettingsRequest", b"\x0a\x05\x12\x03\xed\xa0\x80")


_PROTO_FILES = {
    "scale.common.v1": "scale/common/v1/ping.proto",
    "scale.accounts.v1": "scale/accounts/v1/accounts.proto",
    "scale.ingestion.v1": "scale/ingestion/v1/ingestion.proto",
    "scale.categorization.v1": "scale/categorization/v1/categorization.proto",
    "grpc.reflection.v1": "grpc/reflection/v1/reflection.proto",
    "grpc.reflection.v1alpha": "grpc/reflection/v1alpha/reflection.proto",
    "grpc.health.v1": "grpc/health/v1/health.proto",
}


def _proto_of(msg_type):
    return _PROTO_FILES[msg_type.rsplit(".", 1)[0]]


def config_seeds():
    # Byte 0: validator in the low 2 bits (0 int, 1 bytes, 2 addr, 3 load
    # every type), bounds index (fuzz_config.c's table) above.
    def seed(name, which, bounds, text):
        write("config", name, bytes([which | (bounds << 2)]) + text.encode())

    seed("int", 0, 0, "42")
    seed("int_negative", 0, 3, "-5")
    seed("int_max", 0, 1, "9223372036854775807")
    seed("int_port", 0, 2, "65536")
    seed("bytes_k", 1, 4, "64K")
    seed("bytes_mib", 1, 0, "16MiB")
    seed("bytes_g", 1, 0, "1gb")
    seed("bytes_too_large", 1, 0, "9000000000G")
    seed("addr_v4", 2, 0, "127.0.0.1:50051")
    seed("addr_v6", 2, 0, "[::1]:8080")
    seed("addr_unix", 2, 0, "unix:/tmp/scale.sock")
    seed("addr_no_port", 2, 0, "localhost:")
    seed("load_bool", 3, 0, "yes")
    seed("load_enum", 3, 0, "WARN")


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "fuzz")
    jwt_seeds()
    descpool_seeds()
    request_seeds(build)
    config_seeds()


if __name__ == "__main__":
    main()
