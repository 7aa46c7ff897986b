-- accounts: the transaction ledger, the one table every path that stores a
-- transaction writes (imports, webhooks, device sync) through
-- AccountsService.AppendTransactions. (user_id, fingerprint) is the dedup
-- key of shared/specs/fingerprint.md.
CREATE TABLE accounts.transactions (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id             uuid NOT NULL,
  account_id          text NOT NULL DEFAULT '',
  date                date NOT NULL,
  amount_minor        bigint NOT NULL CHECK (amount_minor <> 0),
  currency            char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  merchant            text NOT NULL DEFAULT '',
  description         text NOT NULL DEFAULT '',
  payment_method      text NOT NULL DEFAULT '',
  reference           text NOT NULL DEFAULT '',
  bank_transaction_id text NOT NULL DEFAULT '',
  category            text NOT NULL DEFAULT '',
  fingerprint         char(64) NOT NULL,
  import_id           uuid,
  source              smallint NOT NULL DEFAULT 0,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, fingerprint)
);

-- Newest first with ties broken by id: the keyset of ListTransactions.
CREATE INDEX transactions_user_date_id ON accounts.transactions (user_id, date DESC, id DESC);
-- Possible-duplicate lookups: same amount within a few days.
CREATE INDEX transactions_user_amount_date ON accounts.transactions (user_id, amount_minor, date);
CREATE INDEX transactions_user_import ON accounts.transactions (user_id, import_id);
