"""The platform end to end: scale-server against its own ephemeral PostgreSQL
and Redis (tests/with-stack.sh), bearer tokens minted by Python's standard
library (an implementation independent of the server's), the accounts
methods that read and write the database, isolation between users, and
recovery after PostgreSQL restarts.

Run from this directory under tests/with-stack.sh (see CMakeLists.txt)."""
import os
import subprocess
import time
import unittest

import grpc

import scalehelp as h
from scalehelp import msg
from test_server import CHECK, HealthRequest, HealthResponse, ScaleTestCase, run_buf

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STACK = os.path.join(ROOT, "scripts", "stack.sh")
SVC = "/scale.accounts.v1.AccountsService/"
ALICE = "11111111-1111-4111-8111-111111111111"
BOB = "22222222-2222-4222-8222-222222222222"

GetProfileRequest = msg("scale.accounts.v1.GetProfileRequest")
GetProfileResponse = msg("scale.accounts.v1.GetProfileResponse")
GetSettingsRequest = msg("scale.accounts.v1.GetSettingsRequest")
GetSettingsResponse = msg("scale.accounts.v1.GetSettingsResponse")
UpdateSettingsRequest = msg("scale.accounts.v1.UpdateSettingsRequest")
UpdateSettingsResponse = msg("scale.accounts.v1.UpdateSettingsResponse")
Settings = msg("scale.accounts.v1.Settings")


class AccountsTest(ScaleTestCase):
    def setUp(self):
        super().setUp()
        self.server = self.start_server()
        self.ch = self.channel(self.server)
        self.get_profile = h.unary(self.ch, SVC + "GetProfile", GetProfileRequest, GetProfileResponse)
        self.get_settings = h.unary(self.ch, SVC + "GetSettings", GetSettingsRequest, GetSettingsResponse)
        self.update = h.unary(self.ch, SVC + "UpdateSettings", UpdateSettingsRequest, UpdateSettingsResponse)
        self.check = h.unary(self.ch, CHECK, HealthRequest, HealthResponse)

    def settings_of(self, user):
        return self.get_settings(GetSettingsRequest(), metadata=h.bearer(user), timeout=10).settings

    def test_profile_is_the_callers_own(self):
        p = self.get_profile(GetProfileRequest(), metadata=h.bearer(ALICE, email="alice@example.com"),
                             timeout=10).profile
        self.assertEqual(p.user_id, ALICE)
        self.assertEqual(p.email, "alice@example.com")
        self.assertGreater(p.created_at.seconds, time.time() - 3600)
        again = self.get_profile(GetProfileRequest(), metadata=h.bearer(ALICE), timeout=10).profile
        self.assertEqual(again.created_at, p.created_at, "the profile is created once")
        b = self.get_profile(GetProfileRequest(), metadata=h.bearer(BOB), timeout=10).profile
        self.assertEqual(b.user_id, BOB)
        self.assertEqual(b.email, "")

    def test_settings_default_update_and_isolation(self):
        s = self.settings_of(ALICE)
        self.assertEqual((s.default_currency, s.timezone, s.locale), ("USD", "UTC", "en-US"))
        req = UpdateSettingsRequest(settings=Settings(default_currency="EUR", timezone="Europe/Berlin"))
        req.update_mask.paths.extend(["default_currency", "timezone"])
        out = self.update(req, metadata=h.bearer(ALICE), timeout=10).settings
        self.assertEqual((out.default_currency, out.timezone, out.locale), ("EUR", "Europe/Berlin", "en-US"))
        self.assertGreater(out.updated_at.seconds, 0)
        s = self.settings_of(ALICE)
        self.assertEqual((s.default_currency, s.timezone), ("EUR", "Europe/Berlin"))
        # Bob's token never sees Alice's rows.
        b = self.settings_of(BOB)
        self.assertEqual((b.default_currency, b.timezone, b.locale), ("USD", "UTC", "en-US"))
        # A mask limits the update to its paths: locale only, the rest kept.
        req = UpdateSettingsRequest(settings=Settings(default_currency="JPY", locale="de-DE"))
        req.update_mask.paths.append("locale")
        out = self.update(req, metadata=h.bearer(ALICE), timeout=10).settings
        self.assertEqual((out.default_currency, out.locale), ("EUR", "de-DE"))

    def test_bad_settings_name_the_field(self):
        cases = [
            (Settings(default_currency="EURO"), ["default_currency"], "settings.default_currency"),
            (Settings(default_currency="XYZ"), ["default_currency"], "settings.default_currency"),
            (Settings(timezone="Mars/Olympus_Mons"), ["timezone"], "settings.timezone"),
            (Settings(locale="not a locale"), ["locale"], "settings.locale"),
            (Settings(locale="en-US"), ["colour"], "update_mask.paths[0]"),
        ]
        for settings, paths, field in cases:
            with self.subTest(field=field, paths=paths):
                req = UpdateSettingsRequest(settings=settings)
                req.update_mask.paths.extend(paths)
                err = self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self.update, req,
                                          metadata=h.bearer(ALICE), timeout=10)
                self.assertTrue(err.details().startswith(field + ": "), err.details())
                trailer = dict(err.trailing_metadata() or ())["grpc-status-details-bin"]
                violations = h.decode_bad_request(h.decode_rpc_status(trailer)["details"][0][1])
                self.assertIn(field, [f for f, _ in violations])
        self.assertRpcError(grpc.StatusCode.INVALID_ARGUMENT, self.update, UpdateSettingsRequest(),
                            metadata=h.bearer(ALICE), timeout=10)
        # Nothing was written by the failed updates.
        s = self.settings_of(ALICE)
        self.assertEqual((s.default_currency, s.timezone, s.locale), ("USD", "UTC", "en-US"))

    def test_token_rejections_say_why(self):
        now = int(time.time())
        cases = [
            ((), "missing bearer token"),
            ((("authorization", "Basic dXNlcjpwYXNz"),), "authorization must be 'Bearer <JWT>'"),
            ((("authorization", "Bearer " + h.mint_token(ALICE, secret="another-secret-of-sufficient-length-xx")),),
             "signature invalid"),
            ((("authorization", "Bearer " + h.mint_token(ALICE, exp=now - 3600)),), "token expired at "),
            ((("authorization", "Bearer " + h.mint_token(ALICE, nbf=now + 3600)),), "token not valid before "),
            ((("authorization", "Bearer " + h.mint_token(None)),), "no sub"),
            ((("authorization", "Bearer " + h.mint_token("alice")),), "sub is not a UUID"),
            ((("authorization", "Bearer " + h.mint_token(ALICE, aud="anon")),), "audience"),
            ((("authorization", "Bearer " + h.mint_token(ALICE, alg="none")),), "alg none"),
            ((("authorization", "Bearer not.a.jwt"),), "malformed token"),
        ]
        for md, reason in cases:
            with self.subTest(reason=reason):
                err = self.assertRpcError(grpc.StatusCode.UNAUTHENTICATED, self.get_settings, GetSettingsRequest(),
                                          metadata=md, timeout=10)
                self.assertIn(reason, err.details())
                if md and md[0][1].count(".") == 2:
                    self.assertNotIn(md[0][1][-20:], err.details(), "the token must not be echoed")
        # The rejected calls are logged without the tokens either.
        log = self.server.log_text()
        for md, _ in cases:
            if md and md[0][1].count(".") == 2 and len(md[0][1]) > 40:
                self.assertNotIn(md[0][1][-20:], log)

    def test_token_from_scalectl_is_accepted(self):
        scalectl = os.path.join(h.BIN_DIR, "scalectl")
        tok = subprocess.run([scalectl, "token", "--user", BOB, "--ttl", "60"], capture_output=True, text=True,
                             env=dict(os.environ, SCALE_JWT_SECRET=h.JWT_SECRET), timeout=30, check=True).stdout.strip()
        p = self.get_profile(GetProfileRequest(), metadata=(("authorization", "Bearer " + tok),), timeout=10).profile
        self.assertEqual(p.user_id, BOB)

    def test_buf_curl_with_a_token(self):
        res = run_buf("-H", "authorization: Bearer " + h.mint_token(ALICE),
                      "http://%s/scale.accounts.v1.AccountsService/GetSettings" % self.server.target)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn('"defaultCurrency": "USD"', res.stdout)

    def test_database_restart_unavailable_then_recovers(self):
        stack_dir = os.environ["SCALE_TEST_STACK_DIR"]
        md = h.bearer(ALICE)
        self.assertEqual(self.settings_of(ALICE).default_currency, "USD")
        subprocess.run([STACK, "stop", stack_dir], check=True, timeout=120)
        try:
            t0 = time.monotonic()
            err = self.assertRpcError(grpc.StatusCode.UNAVAILABLE, self.get_settings, GetSettingsRequest(),
                                      metadata=md, timeout=30)
            self.assertLess(time.monotonic() - t0, 10, "a dead database must fail fast, not hang")
            self.assertEqual(err.details(), "the database is unavailable; retry shortly")
            self.assertNotIn("postgres", err.details().lower().replace("database", ""))
            # Readiness follows within a poll interval.
            deadline = time.monotonic() + 10
            while self.check(HealthRequest(service=""), timeout=10).status != HealthResponse.NOT_SERVING:
                self.assertLess(time.monotonic(), deadline, "health never went NOT_SERVING")
                time.sleep(0.2)
            self.assertEqual(self.check(HealthRequest(service="liveness"), timeout=10).status,
                             HealthResponse.SERVING, "liveness does not depend on the database")
        finally:
            subprocess.run([STACK, "start", stack_dir, "--ephemeral"], check=True, timeout=120)
        # The same process recovers: no restart.
        deadline = time.monotonic() + 20
        while True:
            try:
                self.assertEqual(self.settings_of(ALICE).default_currency, "USD")
                break
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertLess(time.monotonic(), deadline, "never recovered")
                time.sleep(0.2)
        deadline = time.monotonic() + 10
        while self.check(HealthRequest(service=""), timeout=10).status != HealthResponse.SERVING:
            self.assertLess(time.monotonic(), deadline, "health never came back")
            time.sleep(0.2)


class ProcessTest(ScaleTestCase):
    def test_migrate_subcommand_is_idempotent(self):
        first = h.run_server_once(["migrate"])
        self.assertEqual(first.returncode, 0, first.stderr)
        second = h.run_server_once(["migrate"])
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertIn("0 applied", second.stderr)

    def test_bad_platform_settings_are_named(self):
        cases = [
            ({"SCALE_JWT_SECRET": "short"}, "SCALE_JWT_SECRET"),
            ({"SCALE_JWT_SECRET": ""}, "SCALE_JWT_SECRET"),
            ({"SCALE_MIGRATE": "maybe"}, "SCALE_MIGRATE"),
            ({"SCALE_DATABASE_URL": "postgresql://x:y@[::1"}, "SCALE_DATABASE_URL"),
            ({"SCALE_REDIS_URL": "http://nope"}, "SCALE_REDIS_URL"),
            ({"SCALE_JWT_PUBLIC_KEY_FILE": "/nonexistent.pem"}, "SCALE_JWT_PUBLIC_KEY_FILE"),
            ({"SCALE_DB_POOL_SIZE": "0"}, "SCALE_DB_POOL_SIZE"),
        ]
        for env, name in cases:
            with self.subTest(var=name, env=env):
                res = h.run_server_once(**env)
                self.assertNotEqual(res.returncode, 0)
                lines = [l for l in res.stderr.splitlines() if l.strip()]
                self.assertEqual(len(lines), 1, res.stderr)
                self.assertIn(name, lines[0])
                self.assertNotIn("y@", lines[0], "passwords are not echoed")

    def test_no_database_at_start_fails_clearly(self):
        port = h.free_port()
        res = h.run_server_once(timeout=120, SCALE_DATABASE_URL="postgresql://postgres@127.0.0.1:%d/scale" % port,
                                SCALE_MIGRATE_WAIT_S="2")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("migrations failed", res.stderr)


if __name__ == "__main__":
    unittest.main()
