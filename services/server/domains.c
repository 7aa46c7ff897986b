/* The domains of the modular monolith. A domain whose methods are not built
 * yet is listed with no handlers: it is served (reflection shows it, health
 * reports it) and each of its methods answers UNIMPLEMENTED naming itself. */
#include "domains.h"

#include "accounts.h"
#include "ingestion.h"
#include "scale/accounts/v1/accounts.pb-c.h"
#include "scale/anomaly/v1/anomaly.pb-c.h"
#include "scale/categorization/v1/categorization.pb-c.h"
#include "scale/forecasting/v1/forecasting.pb-c.h"
#include "scale/ingestion/v1/ingestion.pb-c.h"
#include "scale/training/v1/training.pb-c.h"

/* One scale-server per process: the domains' state lives with main's. */
static acct_service_t accounts_state;

static ingest_service_t ingestion_state;

static sc_rpc_service_t make_ingestion(const server_deps_t *deps) {
  ingestion_state.pool = deps->pg;
  sc_pagetoken_key_init(&ingestion_state.page_key, deps->page_token_secret);
  return ingest_service(&ingestion_state);
}

static sc_rpc_service_t make_accounts(const server_deps_t *deps) {
  accounts_state.pool = deps->pg;
  sc_pagetoken_key_init(&accounts_state.page_key, deps->page_token_secret);
  return acct_service(&accounts_state);
}

const domain_t server_domains[] = {
    {"ingestion", &scale__ingestion__v1__ingestion_service__descriptor, make_ingestion},
    {"accounts", &scale__accounts__v1__accounts_service__descriptor, make_accounts},
    {"categorization", &scale__categorization__v1__categorization_service__descriptor, NULL},
    {"forecasting", &scale__forecasting__v1__forecasting_service__descriptor, NULL},
    {"training", &scale__training__v1__training_service__descriptor, NULL},
    {"anomaly", &scale__anomaly__v1__anomaly_service__descriptor, NULL},
};
const size_t server_domain_count = sizeof(server_domains) / sizeof(server_domains[0]);

sc_rpc_service_t server_domain_service(size_t i, const server_deps_t *deps) {
  if (server_domains[i].make != NULL) return server_domains[i].make(deps);
  sc_rpc_service_t s = {.descriptor = server_domains[i].descriptor};
  return s;
}
