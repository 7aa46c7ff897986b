/* The domains of the modular monolith. A domain whose methods are not built
 * yet is listed with no handlers: it is served (reflection shows it, health
 * reports it) and each of its methods answers UNIMPLEMENTED naming itself. */
#include "domains.h"

#include "scale/accounts/v1/accounts.pb-c.h"
#include "scale/anomaly/v1/anomaly.pb-c.h"
#include "scale/categorization/v1/categorization.pb-c.h"
#include "scale/forecasting/v1/forecasting.pb-c.h"
#include "scale/ingestion/v1/ingestion.pb-c.h"
#include "scale/training/v1/training.pb-c.h"

const domain_t server_domains[] = {
    {"ingestion", {.descriptor = &scale__ingestion__v1__ingestion_service__descriptor}},
    {"accounts", {.descriptor = &scale__accounts__v1__accounts_service__descriptor}},
    {"categorization", {.descriptor = &scale__categorization__v1__categorization_service__descriptor}},
    {"forecasting", {.descriptor = &scale__forecasting__v1__forecasting_service__descriptor}},
    {"training", {.descriptor = &scale__training__v1__training_service__descriptor}},
    {"anomaly", {.descriptor = &scale__anomaly__v1__anomaly_service__descriptor}},
};
const size_t server_domain_count = sizeof(server_domains) / sizeof(server_domains[0]);
