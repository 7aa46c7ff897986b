-- accounts: the caller's profile and settings. Every table is keyed (and,
-- on Citus, distributed) by user_id, the `sub` of the caller's token.
CREATE SCHEMA accounts;

CREATE TABLE accounts.profiles (
  user_id      uuid PRIMARY KEY,
  email        text,
  display_name text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts.settings (
  user_id          uuid PRIMARY KEY,
  default_currency text NOT NULL DEFAULT 'USD' CHECK (default_currency ~ '^[A-Z]{3}$'),
  timezone         text NOT NULL DEFAULT 'UTC',
  locale           text NOT NULL DEFAULT 'en-US',
  updated_at       timestamptz NOT NULL DEFAULT now()
);
