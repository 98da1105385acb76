/* Private: access to the producer's client for the project's own tests. */
#ifndef LEV_PRODUCER_INTERNAL_H
#define LEV_PRODUCER_INTERNAL_H

#include "kafka_internal.h"

/* The current librdkafka client (replaced after a fatal error). */
rd_kafka_t *lev_producer_client(lev_producer_t *p);

#endif
