/*
 * The producer against a real broker: CloudEvents headers, keyed
 * partitioning, and recovery from a fatal idempotent-producer error without
 * losing a message.
 */
#include "check.h"
#include "producer_internal.h"
#include "testutil.h"

typedef struct {
    int ok, failed;
} acks_t;

static void ack(void *opaque, int err, const char *errstr, int32_t p, int64_t o)
{
    acks_t *a = opaque;
    (void)errstr;
    (void)p;
    (void)o;
    if (err)
        a->failed++;
    else
        a->ok++;
}

static void events_carry_cloudevents_headers_and_one_key_stays_in_one_partition(void)
{
    char topic[128];
    lev_test_unique("it-producer-ce", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 4) == 0);
    enum { N = 20 };
    static char ids[N][LEV_UUID_STR_LEN];
    /* publish_orders keys each event by its order id: give ten of them one key */
    REQUIRE(lev_test_publish_orders(topic, N, ids, NULL) == 0);
    lev_test_record_t *recs;
    size_t n = lev_test_read_topic(topic, N, 30000, &recs);
    CHECK_INT(n, ==, N);
    for (size_t i = 0; i < n; i++) {
        char b[256];
        CHECK_STR(lev_test_header(&recs[i], "ce_specversion", b, sizeof b), "1.0");
        CHECK_STR(lev_test_header(&recs[i], "ce_type", b, sizeof b), "shop.order.OrderPlaced");
        CHECK_STR(lev_test_header(&recs[i], "ce_id", b, sizeof b), recs[i].key);
        CHECK_STR(lev_test_header(&recs[i], "ce_source", b, sizeof b), "/tests");
        CHECK_STR(lev_test_header(&recs[i], "content-type", b, sizeof b), "application/avro");
        int64_t t;
        CHECK(lev_time_parse(lev_test_header(&recs[i], "ce_time", b, sizeof b), &t) == 0);
        CHECK_INT(strlen(lev_test_header(&recs[i], "traceparent", b, sizeof b)), ==, 55);
        CHECK_STR(lev_test_header(&recs[i], "correlation_id", b, sizeof b), recs[i].key);
        CHECK(recs[i].value_len > 10 && ((unsigned char *)recs[i].value)[0] == 0xC3);
    }
    lev_test_records_free(recs, n);

    /* same key -> same partition, whatever the order of sends */
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "it-producer");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    REQUIRE(p);
    char topic2[160];
    snprintf(topic2, sizeof topic2, "%s-keys", topic);
    REQUIRE(lev_test_create_topic(topic2, 4) == 0);
    acks_t a = {0};
    for (int i = 0; i < 40; i++) {
        const char *key = i % 2 ? "order-a" : "order-b";
        lev_msg_t m = {.topic = topic2,
                       .partition = LEV_PARTITION_ANY,
                       .key = key,
                       .key_len = strlen(key),
                       .value = "x",
                       .value_len = 1};
        CHECK(lev_producer_send(p, &m, ack, &a, &err) == 0);
    }
    CHECK(lev_producer_flush(p, 10000) == 0);
    CHECK_INT(a.ok, ==, 40);
    lev_producer_destroy(p);
    n = lev_test_read_topic(topic2, 40, 30000, &recs);
    CHECK_INT(n, ==, 40);
    int32_t pa = -1, pb = -1;
    int same = 1;
    for (size_t i = 0; i < n; i++) {
        int32_t *slot = strcmp(recs[i].key, "order-a") == 0 ? &pa : &pb;
        if (*slot < 0)
            *slot = recs[i].partition;
        same &= *slot == recs[i].partition;
    }
    CHECK(same);
    lev_test_records_free(recs, n);
}

/* Kafka's murmur2 (the Java client's Utils.murmur2), written from its
 * description: seed 0x9747b28c, m 0x5bd1e995, r 24, little-endian words. */
static int32_t kafka_murmur2(const char *data, size_t len)
{
    const uint32_t m = 0x5bd1e995u;
    const int r = 24;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        const unsigned char *b = (const unsigned char *)data + i;
        uint32_t k =
            (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    const unsigned char *t = (const unsigned char *)data + i;
    switch (len & 3) {
    case 3:
        h ^= (uint32_t)t[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)t[1] << 8;
        /* fall through */
    case 1:
        h ^= t[0];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

/* Producers that are not ours partition keys as the Java client does, so
 * ours must too: every key lands on (murmur2(key) & 0x7fffffff) % n. */
static void keys_land_where_the_java_client_puts_them(void)
{
    CHECK_INT(kafka_murmur2("21", 2), ==, -973932308); /* Kafka's own test vector */
    char topic[128];
    lev_test_unique("it-producer-murmur2", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 6) == 0);
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "it-producer");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    REQUIRE(p);
    enum { N = 60 };
    acks_t a = {0};
    char keys[N][48];
    for (int i = 0; i < N; i++) {
        lev_uuid4(keys[i]);
        lev_msg_t m = {.topic = topic,
                       .partition = LEV_PARTITION_ANY,
                       .key = keys[i],
                       .key_len = strlen(keys[i]),
                       .value = "x",
                       .value_len = 1};
        CHECK(lev_producer_send(p, &m, ack, &a, &err) == 0);
    }
    CHECK(lev_producer_flush(p, 10000) == 0);
    lev_producer_destroy(p);
    lev_test_record_t *recs;
    size_t n = lev_test_read_topic(topic, N, 30000, &recs);
    CHECK_INT(n, ==, N);
    int wrong = 0, used[6] = {0};
    for (size_t i = 0; i < n; i++) {
        int32_t want =
            (int32_t)(((uint32_t)kafka_murmur2(recs[i].key, strlen(recs[i].key)) & 0x7fffffffu) %
                      6u);
        wrong += recs[i].partition != want;
        if (recs[i].partition >= 0 && recs[i].partition < 6)
            used[recs[i].partition] = 1;
    }
    CHECK_INT(wrong, ==, 0);
    CHECK_INT(used[0] + used[1] + used[2] + used[3] + used[4] + used[5], >, 1);
    lev_test_records_free(recs, n);
}

static void fatal_producer_error_recreates_the_client_and_loses_no_message(void)
{
    char topic[128];
    lev_test_unique("it-producer-fatal", topic, sizeof topic);
    REQUIRE(lev_test_create_topic(topic, 2) == 0);
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "it-producer");
    const lev_kv_t extra[] = {{"linger.ms", "50"}, {NULL, NULL}};
    lev_producer_t *p = lev_producer_new(&conf, extra, &err);
    lev_config_clear(&conf);
    REQUIRE(p);
    enum { N = 1000 };
    acks_t a = {0};
    for (int i = 0; i < N; i++) {
        char v[32];
        int len = snprintf(v, sizeof v, "m-%d", i);
        lev_msg_t m = {.topic = topic,
                       .partition = LEV_PARTITION_ANY,
                       .key = v,
                       .key_len = (size_t)len,
                       .value = v,
                       .value_len = (size_t)len};
        CHECK(lev_producer_send(p, &m, ack, &a, &err) == 0);
        if (i == N / 2) /* what a sequence desynchronisation looks like to us */
            rd_kafka_test_fatal_error(lev_producer_client(p),
                                      RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                      "test: simulated fatal error");
    }
    CHECK(lev_producer_flush(p, 30000) == 0);
    CHECK_INT(lev_producer_recreations(p), ==, 1);
    CHECK_INT(a.ok, ==, N);
    CHECK_INT(a.failed, ==, 0);
    lev_producer_destroy(p);

    /* every message is in the topic (a resend may have duplicated some) */
    lev_test_record_t *recs;
    size_t n = lev_test_read_topic(topic, N, 30000, &recs);
    CHECK(n >= N);
    char *seen = calloc(N, 1);
    for (size_t i = 0; i < n; i++) {
        int k = atoi((char *)recs[i].key + 2);
        if (k >= 0 && k < N)
            seen[k] = 1;
    }
    int all = 1;
    for (int i = 0; i < N; i++)
        all &= seen[i];
    CHECK(all);
    free(seen);
    lev_test_records_free(recs, n);
}

CHECK_MAIN(CASE(events_carry_cloudevents_headers_and_one_key_stays_in_one_partition),
           CASE(keys_land_where_the_java_client_puts_them),
           CASE(fatal_producer_error_recreates_the_client_and_loses_no_message))
