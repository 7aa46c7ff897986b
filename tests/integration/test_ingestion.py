"""Statement import end to end: the real scale-server parses files, appends
rows to the ledger in PostgreSQL and keeps the record of imports. Clients:
grpcio (unary and client-streaming) and buf curl."""
import base64
import hashlib
import os
import subprocess
import time
import unittest
import uuid

import grpc

import scalehelp as h
from scalehelp import msg
from test_server import ScaleTestCase, run_buf

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STACK = os.path.join(ROOT, "scripts", "stack.sh")
ING = "/scale.ingestion.v1.IngestionService/"
ACC = "/scale.accounts.v1.AccountsService/"

ImportRequest = msg("scale.ingestion.v1.ImportStatementRequest")
ImportResponse = msg("scale.ingestion.v1.ImportStatementResponse")
StreamRequest = msg("scale.ingestion.v1.ImportStatementStreamRequest")
StreamResponse = msg("scale.ingestion.v1.ImportStatementStreamResponse")
Header = msg("scale.ingestion.v1.ImportStatementHeader")
ParseRequest = msg("scale.ingestion.v1.ParseStatementRequest")
ParseResponse = msg("scale.ingestion.v1.ParseStatementResponse")
FilesRequest = msg("scale.ingestion.v1.ListUploadedFilesRequest")
FilesResponse = msg("scale.ingestion.v1.ListUploadedFilesResponse")
ListRequest = msg("scale.accounts.v1.ListTransactionsRequest")
ListResponse = msg("scale.accounts.v1.ListTransactionsResponse")
CSV_FORMAT = 1

# An HDFC-style export: preamble, Indian grouping, withdrawal/deposit columns,
# a zero row, a malformed row, two genuinely repeated orders, a footer.
HDFC = (
    "HDFC BANK Ltd.\r\n"
    "Statement of account\r\n"
    "Date,Narration,Chq./Ref.No.,Value Dt,Withdrawal Amt.,Deposit Amt.,Closing Balance\r\n"
    "01/01/26,UPI-SWIGGY-swiggy@icici-Food order,0000601234567890,01/01/26,450.00,,\"1,23,456.78\"\r\n"
    "02/01/26,NEFT CR-ACME CORP-SALARY JAN,N002260012345,02/01/26,,\"1,50,000.00\",\"2,73,006.78\"\r\n"
    "03/01/26,ATM WDL-ATM ID 1234,0000000001234,03/01/26,\"5,000.00\",,\"2,68,006.78\"\r\n"
    "03/01/26,REVERSAL,000000,03/01/26,0.00,,\"2,68,006.78\"\r\n"
    "04/01/26,BAD ROW,0000,04/01/26,12x34,,\"2,68,006.78\"\r\n"
    "05/01/26,UPI-SWIGGY-swiggy@icici-Food order,0000601234567891,05/01/26,450.00,,\"2,67,556.78\"\r\n"
    "05/01/26,UPI-SWIGGY-swiggy@icici-Food order,0000601234567891,05/01/26,450.00,,\"2,67,106.78\"\r\n"
    "Total,,,,\"6,350.00\",\"1,50,000.00\",\r\n"
).encode()

# A European export with an unambiguous date column (days past 12).
GERMAN = (
    "Buchungstag;Verwendungszweck;Betrag;Waehrung\n"
    "15.03.2026;REWE Markt;-23,45;EUR\n"
    "16.03.2026;Gehalt;2.500,00;EUR\n"
    "17.03.2026;Miete;-1.200,00;EUR\n"
).encode()


class IngestionTest(ScaleTestCase):
    def setUp(self):
        super().setUp()
        self.user = str(uuid.uuid4())
        self.md = h.bearer(self.user)
        self.server = self.start_server()
        self.ch = self.channel(self.server, ("grpc.max_send_message_length", 64 << 20))
        self.imp = h.unary(self.ch, ING + "ImportStatement", ImportRequest, ImportResponse)
        self.parse = h.unary(self.ch, ING + "ParseStatement", ParseRequest, ParseResponse)
        self.files = h.unary(self.ch, ING + "ListUploadedFiles", FilesRequest, FilesResponse)
        self.list = h.unary(self.ch, ACC + "ListTransactions", ListRequest, ListResponse)
        self.stream = self.ch.stream_unary(ING + "ImportStatementStream", request_serializer=StreamRequest.SerializeToString,
                                           response_deserializer=StreamResponse.FromString)

    def ledger(self, **filters):
        return list(self.list(ListRequest(page_size=1000, **filters), metadata=self.md, timeout=30).transactions)

    def test_import_reports_every_row_and_reimport_writes_nothing(self):
        r = self.imp(ImportRequest(filename="hdfc.csv", content=HDFC, currency="INR", date_format="%d/%m/%y"),
                     metadata=self.md, timeout=30)
        self.assertEqual((r.inserted, r.skipped_zero_amount, r.rejected_count, r.rows_read), (5, 1, 1, 7))
        self.assertEqual([(x.line, "12x34" in x.reason) for x in r.rejected], [(8, True)])
        self.assertEqual(r.detected_format, CSV_FORMAT)
        self.assertEqual(r.sha256, hashlib.sha256(HDFC).hexdigest())
        self.assertEqual((r.date_range.from_date, r.date_range.to_date), ("2026-01-01", "2026-01-05"))
        rows = self.ledger()
        self.assertEqual(sorted(t.amount_minor for t in rows), [-500000, -45000, -45000, -45000, 15000000])
        self.assertTrue(all(t.currency == "INR" and t.import_id == r.import_id for t in rows))
        again = self.imp(ImportRequest(filename="hdfc-copy.csv", content=HDFC, currency="INR", date_format="%d/%m/%y"),
                         metadata=self.md, timeout=30)
        self.assertTrue(again.already_imported)
        self.assertEqual(again.import_id, r.import_id)
        self.assertEqual(len(self.ledger()), 5, "nothing new written")

    def test_overlapping_statement_inserts_only_the_new_rows(self):
        self.imp(ImportRequest(filename="a.csv", content=HDFC, currency="INR", date_format="%d/%m/%y"),
                 metadata=self.md, timeout=30)
        lines = HDFC.decode().split("\r\n")
        # The next month's statement repeats the last two orders and adds one.
        overlap = "\r\n".join(lines[:3] + lines[8:10] + [
            "06/01/26,UPI-ZOMATO-Food,0000601234567899,06/01/26,300.00,,\"2,66,806.78\""]) + "\r\n"
        r = self.imp(ImportRequest(filename="b.csv", content=overlap.encode(), currency="INR", date_format="%d/%m/%y"),
                     metadata=self.md, timeout=30)
        self.assertFalse(r.already_imported)
        self.assertEqual((r.inserted, r.skipped_duplicates), (1, 2))
        self.assertEqual(len(self.ledger()), 6)

    def test_stream_import_of_a_larger_file(self):
        lines = ["Date,Description,Amount"] + [
            "2026-02-%02d,Shop %d,-%d.%02d" % (1 + i % 28, i, 1 + i % 500, i % 100) for i in range(20000)]
        data = ("\n".join(lines) + "\n").encode()

        def chunks():
            yield StreamRequest(header=Header(filename="big.csv", currency="EUR", content_length=len(data)))
            for i in range(0, len(data), 65536):
                yield StreamRequest(chunk=data[i:i + 65536])

        r = self.stream(chunks(), metadata=self.md, timeout=120)
        self.assertEqual((r.inserted, r.rejected_count, r.rows_read), (20000, 0, 20000))
        self.assertEqual(r.sha256, hashlib.sha256(data).hexdigest())
        again = self.stream(chunks(), metadata=self.md, timeout=120)
        self.assertTrue(again.already_imported)

    def test_preview_writes_nothing(self):
        p = self.parse(ParseRequest(filename="de.csv", content=GERMAN, preview_rows=2), metadata=self.md, timeout=30)
        self.assertEqual(p.detected_format, CSV_FORMAT)
        self.assertEqual(p.date_format, "%d.%m.%Y")
        self.assertEqual(list(p.columns), ["Buchungstag", "Verwendungszweck", "Betrag", "Waehrung"])
        self.assertEqual([(x.line, x.date, x.amount_minor, x.currency) for x in p.rows],
                         [(2, "2026-03-15", -2345, "EUR"), (3, "2026-03-16", 250000, "EUR")])
        self.assertEqual(p.rows_read, 3)
        self.assertTrue(all(len(x.fingerprint) == 64 for x in p.rows))
        self.assertEqual(self.ledger(), [])
        amb = self.parse(ParseRequest(filename="hdfc.csv", content=HDFC, currency="INR"), metadata=self.md, timeout=30)
        self.assertTrue(amb.date_format_ambiguous)
        self.assertEqual(sorted(amb.date_format_candidates), ["%d/%m/%y", "%m/%d/%y"])

    def test_record_of_imports(self):
        a = self.imp(ImportRequest(filename="de.csv", content=GERMAN), metadata=self.md, timeout=30)
        b = self.imp(ImportRequest(filename="hdfc.csv", content=HDFC, currency="INR", date_format="%d/%m/%y"),
                     metadata=self.md, timeout=30)
        files = self.files(FilesRequest(), metadata=self.md, timeout=30).files
        self.assertEqual([f.import_id for f in files], [b.import_id, a.import_id], "newest first")
        self.assertEqual((files[1].filename, files[1].size_bytes, files[1].sha256, files[1].inserted),
                         ("de.csv", len(GERMAN), hashlib.sha256(GERMAN).hexdigest(), 3))
        page = self.files(FilesRequest(page_size=1), metadata=self.md, timeout=30)
        self.assertEqual(len(page.files), 1)
        rest = self.files(FilesRequest(page_size=1, page_token=page.next_page_token), metadata=self.md, timeout=30)
        self.assertEqual(rest.files[0].import_id, a.import_id)
        other = self.files(FilesRequest(), metadata=h.bearer(str(uuid.uuid4())), timeout=30)
        self.assertEqual(list(other.files), [], "another user sees none of it")

    def test_bad_input_is_explained_and_leaves_no_trace(self):
        def fails(req, code, starts):
            with self.assertRaises(grpc.RpcError) as cm:
                self.imp(req, metadata=self.md, timeout=30)
            self.assertEqual(cm.exception.code(), code, cm.exception.details())
            self.assertIn(starts, cm.exception.details())

        fails(ImportRequest(filename="x.csv"), grpc.StatusCode.INVALID_ARGUMENT, "content: empty")
        fails(ImportRequest(filename="x.csv", content=HDFC, currency="Rupees"), grpc.StatusCode.INVALID_ARGUMENT,
              "currency")
        fails(ImportRequest(filename="x.csv", content=HDFC, currency="INR"), grpc.StatusCode.INVALID_ARGUMENT,
              "date_format")
        fails(ImportRequest(filename="x.csv", content=b"Name,Colour\nbob,red\n", currency="EUR"),
              grpc.StatusCode.INVALID_ARGUMENT, "Name")
        fails(ImportRequest(filename="x.csv", content=b"Date,Amount\n2026-01-01,1.00\n"),
              grpc.StatusCode.INVALID_ARGUMENT, "currency")
        fails(ImportRequest(filename="x.bin", content=bytes(range(256)) * 64, currency="EUR"),
              grpc.StatusCode.INVALID_ARGUMENT, "")
        fails(ImportRequest(filename="x.csv", content=HDFC, currency="INR", date_format="%d/%m/%y", strict=True),
              grpc.StatusCode.INVALID_ARGUMENT, "line 8")
        self.assertEqual(self.ledger(), [])
        self.assertEqual(list(self.files(FilesRequest(), metadata=self.md, timeout=30).files), [])

    def test_database_down_during_import_leaves_no_trace_then_retry_imports_once(self):
        stack_dir = os.environ["SCALE_TEST_STACK_DIR"]
        subprocess.run([STACK, "stop", stack_dir], check=True, timeout=120)
        try:
            with self.assertRaises(grpc.RpcError) as cm:
                self.imp(ImportRequest(filename="de.csv", content=GERMAN), metadata=self.md, timeout=30)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        finally:
            subprocess.run([STACK, "start", stack_dir, "--ephemeral"], check=True, timeout=120)
        deadline = time.monotonic() + 20
        while True:
            try:
                r = self.imp(ImportRequest(filename="de.csv", content=GERMAN), metadata=self.md, timeout=30)
                break
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.3)
        self.assertEqual((r.inserted, r.already_imported), (3, False))
        self.assertEqual(len(self.ledger()), 3)

    def test_password_protected_xlsx(self):
        path = os.path.join(ROOT, "tests", "unit", "ingestion", "fixtures", "xlsx", "statement_password.xlsx")
        with open(path, "rb") as f:
            data = f.read()
        for password, code, text in ((None, grpc.StatusCode.INVALID_ARGUMENT, "password required"),
                                     ("wrong", grpc.StatusCode.INVALID_ARGUMENT, "password incorrect")):
            with self.subTest(password=password):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.imp(ImportRequest(filename="s.xlsx", content=data, currency="EUR", password=password),
                             metadata=self.md, timeout=60)
                self.assertEqual(cm.exception.code(), code)
                self.assertTrue(cm.exception.details().startswith("password: "), cm.exception.details())
                self.assertIn(text, cm.exception.details())
        r = self.imp(ImportRequest(filename="s.xlsx", content=data, currency="EUR", password="Stat3ment-\u20ac"),
                     metadata=self.md, timeout=60)
        self.assertEqual((r.inserted, r.detected_format, r.encrypted), (2, 2, True))
        self.assertEqual(sorted(t.amount_minor for t in self.ledger()), [-8215, 1999])

    def test_buf_curl_import_with_json(self):
        body = '{"filename":"de.csv","content":"%s"}' % base64.b64encode(GERMAN).decode()
        res = run_buf("-H", "authorization: Bearer " + h.mint_token(self.user), "-d", body,
                      "http://%s/scale.ingestion.v1.IngestionService/ImportStatement" % self.server.target)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn('"inserted": 3', res.stdout)


if __name__ == "__main__":
    unittest.main()
