/* Ingestion domain: statement import, preview and the record of imports. */
#ifndef SCALE_INGESTION_INGESTION_H
#define SCALE_INGESTION_INGESTION_H

#include "scale/pagetoken.h"
#include "scale/pg.h"
#include "scale/rpc.h"
#include "statement.h"

typedef struct ingest_service {
  sc_pg_pool_t *pool;          /* the database of the in-process ledger; owned by the caller */
  sc_pagetoken_key_t page_key; /* signs ListUploadedFiles page tokens */
} ingest_service_t;

/* scale.ingestion.v1.IngestionService over s. */
sc_rpc_service_t ingest_service(ingest_service_t *s);

#endif
