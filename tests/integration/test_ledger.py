"""The transaction ledger through the real scale-server and PostgreSQL:
AppendTransactions (the one write path: fingerprint dedup, repeats kept,
zero amounts skipped, all or nothing, possible duplicates reported),
ListTransactions (filters, keyset paging, tamper-evident tokens, paging
while rows arrive) and GetTransaction, each scoped to the caller."""
import os
import subprocess
import time
import unittest
import uuid

import grpc

import scalehelp as h
from scalehelp import msg
from test_server import ScaleTestCase

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STACK = os.path.join(ROOT, "scripts", "stack.sh")
SVC = "/scale.accounts.v1.AccountsService/"

AppendRequest = msg("scale.accounts.v1.AppendTransactionsRequest")
AppendResponse = msg("scale.accounts.v1.AppendTransactionsResponse")
Header = msg("scale.accounts.v1.AppendTransactionsHeader")
NewTransaction = msg("scale.accounts.v1.NewTransaction")
ListRequest = msg("scale.accounts.v1.ListTransactionsRequest")
ListResponse = msg("scale.accounts.v1.ListTransactionsResponse")
GetRequest = msg("scale.accounts.v1.GetTransactionRequest")
GetResponse = msg("scale.accounts.v1.GetTransactionResponse")
SOURCE_IMPORT = 1


def row(line, date, amount, merchant="", description="", currency="EUR", **kw):
    return NewTransaction(line=line, date=date, amount_minor=amount, currency=currency, merchant=merchant,
                          description=description, **kw)


class LedgerTest(ScaleTestCase):
    def setUp(self):
        super().setUp()
        # Tests share one database: each gets users of its own.
        self.alice, self.bob = str(uuid.uuid4()), str(uuid.uuid4())
        self.server = self.start_server()
        self.ch = self.channel(self.server)
        self._append = self.ch.stream_unary(SVC + "AppendTransactions", request_serializer=AppendRequest.SerializeToString,
                                            response_deserializer=AppendResponse.FromString)
        self.list = h.unary(self.ch, SVC + "ListTransactions", ListRequest, ListResponse)
        self.get = h.unary(self.ch, SVC + "GetTransaction", GetRequest, GetResponse)

    def append(self, user, rows, report=False, batch=2):
        def messages():
            yield AppendRequest(header=Header(source=SOURCE_IMPORT, report_possible_duplicates=report),
                                rows=rows[:batch])
            for i in range(batch, len(rows), batch):
                yield AppendRequest(rows=rows[i:i + batch])
        return self._append(messages(), metadata=h.bearer(user), timeout=30)

    def all_rows(self, user, **filters):
        out, token = [], ""
        while True:
            page = self.list(ListRequest(page_size=2, page_token=token, **filters), metadata=h.bearer(user),
                             timeout=10)
            out.extend(page.transactions)
            token = page.next_page_token
            if not token:
                return out

    def test_dedup_keeps_genuine_repeats_and_skips_zero_amounts(self):
        rows = [row(1, "2026-01-05", -350, "Cafe", "Coffee"), row(2, "2026-01-05", -350, "Cafe", "Coffee"),
                row(3, "2026-01-05", 0, "Bank", "Fee reversal"), row(4, "2026-01-06", 250000, "", "Salary")]
        r = self.append(self.alice, rows)
        self.assertEqual((r.inserted, r.skipped_duplicates, r.skipped_zero_amount), (3, 0, 1))
        again = self.append(self.alice, rows)
        self.assertEqual((again.inserted, again.skipped_duplicates, again.skipped_zero_amount), (0, 3, 1))
        listed = self.all_rows(self.alice)
        self.assertEqual(len(listed), 3)
        self.assertEqual(sorted(t.amount_minor for t in listed), [-350, -350, 250000])
        self.assertEqual(len({t.fingerprint for t in listed}), 3, "the two coffees have distinct fingerprints")
        # Bob shares nothing with Alice, and the same rows are new for him.
        self.assertEqual(self.all_rows(self.bob), [])
        self.assertEqual(self.append(self.bob, rows).inserted, 3)

    def test_a_bad_row_fails_the_whole_append(self):
        rows = [row(1, "2026-01-05", -100, "A"), row(2, "2026-01-05", -200, "B", currency="EURO"),
                row(3, "2026-01-05", -300, "C")]
        with self.assertRaises(grpc.RpcError) as cm:
            self.append(self.alice, rows)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("rows[1].currency", cm.exception.details())
        self.assertIn("line 2", cm.exception.details())
        self.assertEqual(self.all_rows(self.alice), [], "nothing of a failed append is kept")
        with self.assertRaises(grpc.RpcError) as cm:
            self.append(self.alice, [row(1, "2026-02-30", -1)])
        self.assertIn("rows[0].date", cm.exception.details())

    def test_possible_duplicates_are_reported_not_merged(self):
        self.append(self.alice, [row(1, "2026-01-10", -4999, "Amazon", "Order 1")])
        r = self.append(self.alice, [row(7, "2026-01-12", -4999, "AMZN Mktp", "AMZN*Order"),
                                row(8, "2026-01-20", -4999, "Amazon", "Order 3")], report=True)
        self.assertEqual(r.inserted, 2)
        self.assertEqual(len(r.possible_duplicates), 1)
        d = r.possible_duplicates[0]
        self.assertEqual((d.line, d.date, d.existing_date, d.amount_minor, d.currency),
                         (7, "2026-01-12", "2026-01-10", -4999, "EUR"))
        self.assertEqual(len(self.all_rows(self.alice)), 3, "both kept")

    def test_listing_order_filters_and_paging(self):
        rows = [row(i, "2026-03-%02d" % (1 + i % 5), -(100 * i), "Shop %d" % (i % 3), "Item %d" % i,
                    currency="EUR" if i % 4 else "USD") for i in range(1, 21)]
        self.assertEqual(self.append(self.alice, rows).inserted, 20)
        listed = self.all_rows(self.alice)
        self.assertEqual(len(listed), 20)
        self.assertEqual(len({t.id for t in listed}), 20, "no row repeats across pages")
        keys = [(t.date, t.id) for t in listed]
        self.assertEqual(keys, sorted(keys, reverse=True), "newest first, ties by id")
        usd = self.all_rows(self.alice, currency="usd")
        self.assertEqual({t.currency for t in usd}, {"USD"})
        self.assertEqual(len(usd), 5)
        ranged = self.all_rows(self.alice, from_date="2026-03-02", to_date="2026-03-03")
        self.assertTrue(ranged and all("2026-03-02" <= t.date <= "2026-03-03" for t in ranged))
        req = ListRequest(page_size=100)
        req.min_amount_minor.value = -500
        req.max_amount_minor.value = -200
        amounts = sorted(t.amount_minor for t in self.list(req, metadata=h.bearer(self.alice), timeout=10).transactions)
        self.assertEqual(amounts, [-500, -400, -300, -200])
        self.assertEqual({t.merchant for t in self.all_rows(self.alice, merchant="shop 1")}, {"Shop 1"})
        q = self.all_rows(self.alice, query="item 1")
        self.assertEqual(sorted(t.description for t in q), sorted(["Item 1"] + ["Item %d" % i for i in range(10, 20)]))
        self.assertEqual(self.all_rows(self.alice, query="100%"), [], "LIKE wildcards in the query are literal")
        big = self.list(ListRequest(page_size=5000), metadata=h.bearer(self.alice), timeout=10)
        self.assertEqual(len(big.transactions), 20, "page_size over 1000 is capped, not refused")

    def test_page_tokens_are_tamper_evident_and_bound_to_filters(self):
        self.append(self.alice, [row(i, "2026-04-%02d" % i, -i, "M") for i in range(1, 8)])
        first = self.list(ListRequest(page_size=3, currency="EUR"), metadata=h.bearer(self.alice), timeout=10)
        token = first.next_page_token
        self.assertTrue(token)
        tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
        for label, req in (("modified", ListRequest(page_size=3, currency="EUR", page_token=tampered)),
                           ("other filters", ListRequest(page_size=3, currency="USD", page_token=token)),
                           ("garbage", ListRequest(page_size=3, page_token="not a token!"))):
            with self.subTest(label):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.list(req, metadata=h.bearer(self.alice), timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertTrue(cm.exception.details().startswith("page_token: "), cm.exception.details())
        # Another user cannot continue Alice's listing with her token.
        with self.assertRaises(grpc.RpcError) as cm:
            self.list(ListRequest(page_size=3, currency="EUR", page_token=token), metadata=h.bearer(self.bob), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        # page_size may change between pages.
        nxt = self.list(ListRequest(page_size=10, currency="EUR", page_token=token), metadata=h.bearer(self.alice),
                        timeout=10)
        self.assertEqual(len(nxt.transactions), 4)
        self.assertEqual(nxt.next_page_token, "")

    def test_paging_while_rows_arrive_never_repeats_or_skips(self):
        self.append(self.alice, [row(i, "2026-05-%02d" % (10 + i), -i, "M%d" % i) for i in range(1, 7)])
        page1 = self.list(ListRequest(page_size=3), metadata=h.bearer(self.alice), timeout=10)
        cursor_date = page1.transactions[-1].date
        # New rows: one newer than the cursor, one older.
        self.append(self.alice, [row(1, "2026-05-30", -99, "Newer"), row(2, "2026-05-01", -98, "Older")])
        rest, token = [], page1.next_page_token
        while token:
            p = self.list(ListRequest(page_size=3, page_token=token), metadata=h.bearer(self.alice), timeout=10)
            rest.extend(p.transactions)
            token = p.next_page_token
        seen = [t.id for t in page1.transactions] + [t.id for t in rest]
        self.assertEqual(len(seen), len(set(seen)), "no repeats")
        self.assertIn("Older", [t.merchant for t in rest], "a new row older than the cursor is not skipped")
        self.assertNotIn("Newer", [t.merchant for t in rest], "a row newer than the cursor belongs to page 1")
        self.assertTrue(all(t.date <= cursor_date for t in rest))

    def test_get_transaction_is_scoped(self):
        self.append(self.alice, [row(1, "2026-06-01", -1234, "Shop", "Thing", reference="R1")])
        t = self.all_rows(self.alice)[0]
        got = self.get(GetRequest(id=t.id), metadata=h.bearer(self.alice), timeout=10).transaction
        self.assertEqual((got.amount_minor, got.reference, got.date), (-1234, "R1", "2026-06-01"))
        for user, req, code in ((self.bob, GetRequest(id=t.id), grpc.StatusCode.NOT_FOUND),
                                (self.alice, GetRequest(id="nope"), grpc.StatusCode.INVALID_ARGUMENT)):
            with self.assertRaises(grpc.RpcError) as cm:
                self.get(req, metadata=h.bearer(user), timeout=10)
            self.assertEqual(cm.exception.code(), code)

    def test_bad_filters_name_the_field(self):
        cases = [(ListRequest(from_date="2026-13-01"), "from_date"), (ListRequest(to_date="yesterday"), "to_date"),
                 (ListRequest(from_date="2026-02-01", to_date="2026-01-01"), "to_date"),
                 (ListRequest(currency="EURO"), "currency"), (ListRequest(page_size=-1), "page_size"),
                 (ListRequest(import_id="x"), "import_id")]
        for req, field in cases:
            with self.subTest(field=field):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.list(req, metadata=h.bearer(self.alice), timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertTrue(cm.exception.details().startswith(field + ": "), cm.exception.details())

    def test_database_lost_mid_append_leaves_no_trace_and_a_retry_inserts_once(self):
        stack_dir = os.environ["SCALE_TEST_STACK_DIR"]
        rows = [row(i, "2026-07-%02d" % (1 + i % 28), -i, "Shop") for i in range(1, 2001)]
        stopped = []

        def messages():
            yield AppendRequest(header=Header(source=SOURCE_IMPORT), rows=rows[:1000])
            subprocess.run([STACK, "stop", stack_dir], check=True, timeout=120)
            stopped.append(True)
            yield AppendRequest(rows=rows[1000:])

        try:
            with self.assertRaises(grpc.RpcError) as cm:
                self._append(messages(), metadata=h.bearer(self.alice), timeout=60)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        finally:
            subprocess.run([STACK, "start", stack_dir, "--ephemeral"], check=True, timeout=120)
        self.assertTrue(stopped)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.assertEqual(self.all_rows(self.alice), [], "no rows of the interrupted append")
                break
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.3)
        r = self.append(self.alice, rows, batch=500)
        self.assertEqual((r.inserted, r.skipped_duplicates), (2000, 0))
        self.assertEqual(self.append(self.alice, rows, batch=500).inserted, 0)


if __name__ == "__main__":
    unittest.main()
