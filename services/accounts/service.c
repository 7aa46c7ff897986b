/* scale.accounts.v1.AccountsService: the caller's profile and settings here,
 * the ledger in ledger_service.c. Every statement is scoped to the caller's
 * user id (the token's `sub`); no request field can name another user. */
#include "accounts_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/timestamp.pb-c.h"
#include "scale/accounts/v1/accounts.pb-c.h"
#include "scale/pbutil.h"

#define DEFAULT_CURRENCY "USD"
#define DEFAULT_TIMEZONE "UTC"
#define DEFAULT_LOCALE "en-US"
#define DB_UNAVAILABLE "the database is unavailable; retry shortly"

/* Database failures: the detail goes to the log, the client gets words it can
 * act on. */
sc_status_t acct_db_fail(sc_call_t *call, sc_status_t st, const sc_err_t *why) {
  const char *msg = st == SC_UNAVAILABLE          ? DB_UNAVAILABLE
                    : st == SC_DEADLINE_EXCEEDED  ? "the database did not answer in time"
                    : st == SC_RESOURCE_EXHAUSTED ? "the server is busy; retry shortly"
                                                  : "internal error";
  if (st != SC_UNAVAILABLE && st != SC_DEADLINE_EXCEEDED && st != SC_RESOURCE_EXHAUSTED) st = SC_INTERNAL;
  return sc_call_fail_internal(call, st, msg, why->msg);
}

/* Active ISO 4217 codes (funds and test codes excluded). */
static const char iso4217[] =
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF "
    "CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD "
    "HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL "
    "LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR "
    "PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND "
    "TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VED VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWG ZWL";

bool acct_currency_valid(const char *code) {
  if (code == NULL || strlen(code) != 3) return false;
  for (int i = 0; i < 3; i++) {
    if (code[i] < 'A' || code[i] > 'Z') return false;
  }
  for (const char *p = iso4217; *p; p += 4) {
    if (strncmp(p, code, 3) == 0) return true;
    if (p[3] == '\0') break;
  }
  return false;
}

/* BCP 47 language tag, the common shapes: ll[l][-Ssss][-RR|-999] ("en-US",
 * "pt-BR", "zh-Hant-TW", "es-419"). */
bool acct_locale_valid(const char *tag) {
  if (tag == NULL) return false;
  size_t n = strlen(tag);
  if (n < 2 || n > 35) return false;
  const char *p = tag;
  size_t k = 0;
  while (isalpha((unsigned char)p[k]))
    k++;
  if (k < 2 || k > 3) return false;
  p += k;
  int part = 0;
  while (*p) {
    if (*p != '-' && *p != '_') return false;
    p++;
    k = 0;
    while (isalnum((unsigned char)p[k]))
      k++;
    int alpha = 1, digit = 1;
    for (size_t i = 0; i < k; i++) {
      alpha &= isalpha((unsigned char)p[i]) != 0;
      digit &= isdigit((unsigned char)p[i]) != 0;
    }
    int script = k == 4 && alpha && part == 0;
    int region = (k == 2 && alpha) || (k == 3 && digit);
    if (!script && !region) return false;
    part = script ? 1 : 2;
    p += k;
    if (part == 2 && *p) return false;
  }
  return true;
}

/* The caller, or a failed call: methods here are never open, so the auth
 * interceptor has set it; anything else is our bug, not the client's. */
static const char *caller(sc_call_t *call) {
  const char *uid = sc_call_user_id(call);
  if (uid == NULL) sc_call_fail(call, SC_UNAUTHENTICATED, "no authenticated user");
  return uid;
}

static char *col(sc_arena_t *a, PGresult *r, int row, int c) { return sc_arena_strdup(a, PQgetvalue(r, row, c)); }

static sc_status_t get_profile(sc_call_t *call, const ProtobufCMessage *req, ProtobufCMessage **resp_, void *svc) {
  (void)req;
  acct_service_t *s = svc;
  const char *uid = caller(call);
  if (uid == NULL) return SC_UNAUTHENTICATED;
  sc_arena_t *a = sc_call_arena(call);
  sc_pg_conn_t *conn = NULL;
  sc_err_t why = {{0}};
  sc_status_t st = sc_pg_acquire(s->pool, &conn, &why);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  /* Get or create: the profile appears on the user's first call. The email
   * comes from the token, refreshed when it changes. */
  static const char sql[] =
      "WITH ins AS ("
      "  INSERT INTO accounts.profiles (user_id, email) VALUES ($1::uuid, NULLIF($2, ''))"
      "  ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, updated_at = now()"
      "    WHERE accounts.profiles.email IS DISTINCT FROM EXCLUDED.email AND EXCLUDED.email IS NOT NULL"
      "  RETURNING user_id, email, display_name, created_at)"
      " SELECT user_id::text, coalesce(email, ''), coalesce(display_name, ''),"
      "        (extract(epoch FROM created_at) * 1000000)::bigint FROM ins"
      " UNION ALL"
      " SELECT user_id::text, coalesce(email, ''), coalesce(display_name, ''),"
      "        (extract(epoch FROM created_at) * 1000000)::bigint"
      "   FROM accounts.profiles WHERE user_id = $1::uuid AND NOT EXISTS (SELECT 1 FROM ins)";
  const char *email = sc_call_user_email(call);
  const char *params[] = {uid, email ? email : ""};
  PGresult *r = NULL;
  st = sc_pg_exec(conn, a, sql, 2, params, &r, &why);
  sc_pg_release(conn);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  if (PQntuples(r) != 1) return sc_call_fail_internal(call, SC_INTERNAL, "profile lookup failed", "no row");

  Scale__Accounts__V1__GetProfileResponse *resp = sc_arena_alloc(a, sizeof(*resp));
  Scale__Accounts__V1__Profile *p = sc_arena_alloc(a, sizeof(*p));
  if (resp == NULL || p == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  scale__accounts__v1__get_profile_response__init(resp);
  scale__accounts__v1__profile__init(p);
  p->user_id = col(a, r, 0, 0);
  p->email = col(a, r, 0, 1);
  p->display_name = col(a, r, 0, 2);
  p->created_at = sc_timestamp_from_us(a, PQgetvalue(r, 0, 3));
  /* transaction_count and accounts come from the ledger (ingestion): none
   * exists yet, so zero and empty are the truth. */
  resp->profile = p;
  *resp_ = &resp->base;
  return SC_OK;
}

static Scale__Accounts__V1__Settings *settings_from_row(sc_arena_t *a, PGresult *r) {
  Scale__Accounts__V1__Settings *set = sc_arena_alloc(a, sizeof(*set));
  if (set == NULL) return NULL;
  scale__accounts__v1__settings__init(set);
  if (r != NULL && PQntuples(r) == 1) {
    set->default_currency = col(a, r, 0, 0);
    set->timezone = col(a, r, 0, 1);
    set->locale = col(a, r, 0, 2);
    set->updated_at = sc_timestamp_from_us(a, PQgetvalue(r, 0, 3));
  } else {
    set->default_currency = DEFAULT_CURRENCY;
    set->timezone = DEFAULT_TIMEZONE;
    set->locale = DEFAULT_LOCALE;
  }
  return set;
}

#define SETTINGS_COLUMNS "default_currency, timezone, locale, (extract(epoch FROM updated_at) * 1000000)::bigint"

static sc_status_t get_settings(sc_call_t *call, const ProtobufCMessage *req, ProtobufCMessage **resp_, void *svc) {
  (void)req;
  acct_service_t *s = svc;
  const char *uid = caller(call);
  if (uid == NULL) return SC_UNAUTHENTICATED;
  sc_arena_t *a = sc_call_arena(call);
  sc_pg_conn_t *conn = NULL;
  sc_err_t why = {{0}};
  sc_status_t st = sc_pg_acquire(s->pool, &conn, &why);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  const char *params[] = {uid};
  PGresult *r = NULL;
  st = sc_pg_exec(conn, a, "SELECT " SETTINGS_COLUMNS " FROM accounts.settings WHERE user_id = $1::uuid", 1, params, &r,
                  &why);
  sc_pg_release(conn);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  Scale__Accounts__V1__GetSettingsResponse *resp = sc_arena_alloc(a, sizeof(*resp));
  if (resp == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  scale__accounts__v1__get_settings_response__init(resp);
  resp->settings = settings_from_row(a, r);
  if (resp->settings == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  *resp_ = &resp->base;
  return SC_OK;
}

enum { F_CURRENCY, F_TIMEZONE, F_LOCALE, N_FIELDS };

static int field_of_path(const char *path) {
  /* Both the proto name and the JSON name, as AIP-161 field masks allow. */
  if (strcmp(path, "default_currency") == 0 || strcmp(path, "defaultCurrency") == 0) return F_CURRENCY;
  if (strcmp(path, "timezone") == 0) return F_TIMEZONE;
  if (strcmp(path, "locale") == 0) return F_LOCALE;
  return -1;
}

static sc_status_t update_settings(sc_call_t *call, const ProtobufCMessage *req_, ProtobufCMessage **resp_, void *svc) {
  acct_service_t *s = svc;
  const Scale__Accounts__V1__UpdateSettingsRequest *req = (const void *)req_;
  const char *uid = caller(call);
  if (uid == NULL) return SC_UNAUTHENTICATED;
  sc_arena_t *a = sc_call_arena(call);
  if (req->settings == NULL) return sc_call_fail_field(call, "settings", "required");
  const Scale__Accounts__V1__Settings *in = req->settings;
  const char *value[N_FIELDS] = {in->default_currency, in->timezone, in->locale};
  bool set[N_FIELDS] = {false, false, false};
  if (req->update_mask != NULL && req->update_mask->n_paths > 0) {
    for (size_t i = 0; i < req->update_mask->n_paths; i++) {
      int f = field_of_path(req->update_mask->paths[i]);
      if (f < 0) {
        char field[48];
        snprintf(field, sizeof(field), "update_mask.paths[%zu]", i);
        return sc_call_fail_field(call, field, "unknown field '%s' (updatable: default_currency, timezone, locale)",
                                  req->update_mask->paths[i]);
      }
      set[f] = true;
    }
  } else {
    /* No mask: every field the request sets. */
    for (int f = 0; f < N_FIELDS; f++)
      set[f] = value[f] != NULL && value[f][0] != '\0';
  }
  if (!set[F_CURRENCY] && !set[F_TIMEZONE] && !set[F_LOCALE]) {
    return sc_call_fail_field(call, "update_mask", "nothing to update");
  }
  sc_status_t bad = SC_OK;
  if (set[F_CURRENCY] && !acct_currency_valid(value[F_CURRENCY])) {
    bad = sc_call_fail_field(call, "settings.default_currency", "'%s' is not an ISO 4217 currency code",
                             value[F_CURRENCY]);
  }
  if (set[F_LOCALE] && !acct_locale_valid(value[F_LOCALE])) {
    bad =
        sc_call_fail_field(call, "settings.locale", "'%s' is not a BCP 47 language tag such as en-US", value[F_LOCALE]);
  }
  if (set[F_TIMEZONE] && (value[F_TIMEZONE] == NULL || value[F_TIMEZONE][0] == '\0')) {
    bad = sc_call_fail_field(call, "settings.timezone", "required when in update_mask");
  }

  sc_pg_conn_t *conn = NULL;
  sc_err_t why = {{0}};
  sc_status_t st = sc_pg_acquire(s->pool, &conn, &why);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  PGresult *r = NULL;
  if (set[F_TIMEZONE] && value[F_TIMEZONE] && value[F_TIMEZONE][0]) {
    /* PostgreSQL's time zone database is the one later date arithmetic
     * uses: ask it. */
    const char *tz[] = {value[F_TIMEZONE]};
    st = sc_pg_exec(conn, a, "SELECT 1 FROM pg_timezone_names WHERE name = $1", 1, tz, &r, &why);
    if (st != SC_OK) goto fail;
    if (PQntuples(r) == 0) {
      bad = sc_call_fail_field(call, "settings.timezone", "'%s' is not an IANA time zone such as Europe/Berlin",
                               value[F_TIMEZONE]);
    }
  }
  if (bad != SC_OK) {
    sc_pg_release(conn);
    return bad;
  }
  const char *params[] = {uid, set[F_CURRENCY] ? value[F_CURRENCY] : NULL, set[F_TIMEZONE] ? value[F_TIMEZONE] : NULL,
                          set[F_LOCALE] ? value[F_LOCALE] : NULL};
  st = sc_pg_exec(conn, a,
                  "INSERT INTO accounts.settings AS s (user_id, default_currency, timezone, locale)"
                  " VALUES ($1::uuid, coalesce($2, '" DEFAULT_CURRENCY "'), coalesce($3, '" DEFAULT_TIMEZONE "'),"
                  "         coalesce($4, '" DEFAULT_LOCALE "'))"
                  " ON CONFLICT (user_id) DO UPDATE SET default_currency = coalesce($2, s.default_currency),"
                  "   timezone = coalesce($3, s.timezone), locale = coalesce($4, s.locale), updated_at = now()"
                  " RETURNING " SETTINGS_COLUMNS,
                  4, params, &r, &why);
  if (st != SC_OK) goto fail;
  sc_pg_release(conn);
  Scale__Accounts__V1__UpdateSettingsResponse *resp = sc_arena_alloc(a, sizeof(*resp));
  if (resp == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  scale__accounts__v1__update_settings_response__init(resp);
  resp->settings = settings_from_row(a, r);
  if (resp->settings == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  *resp_ = &resp->base;
  return SC_OK;
fail:
  sc_pg_release(conn);
  return acct_db_fail(call, st, &why);
}

static const sc_rpc_method_t methods[] = {
    {.name = "GetProfile", .kind = SC_RPC_UNARY, .unary = get_profile},
    {.name = "GetSettings", .kind = SC_RPC_UNARY, .unary = get_settings},
    {.name = "UpdateSettings", .kind = SC_RPC_UNARY, .unary = update_settings},
    {.name = "AppendTransactions", .kind = SC_RPC_CLIENT_STREAMING, .client_stream = acct_append_transactions},
    {.name = "ListTransactions", .kind = SC_RPC_UNARY, .unary = acct_list_transactions},
    {.name = "GetTransaction", .kind = SC_RPC_UNARY, .unary = acct_get_transaction},
};

sc_rpc_service_t acct_service(acct_service_t *s) {
  sc_rpc_service_t svc = {
      .descriptor = &scale__accounts__v1__accounts_service__descriptor,
      .methods = methods,
      .n_methods = sizeof(methods) / sizeof(methods[0]),
      .data = s,
  };
  return svc;
}
