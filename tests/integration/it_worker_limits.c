/*
 * Records too large to go on, against a real broker and Redis: nothing may
 * stop a partition beyond its retry policy. A record the topic accepted
 * compressed but the worker's producer cannot send again is dead-lettered
 * without its value (in every group that reads it); a valid input whose
 * output is larger than its topic takes is dead-lettered with its value.
 * The good records around them are handled.
 */
#include "check.h"
#include "testutil.h"

#include <signal.h>
#include <sys/wait.h>

/* ---- a group of the test worker ---- */

typedef struct {
    char group[128], out[160], dlq[200], effect[256], log[256];
    char e_in[160], e_out[200], e_group[160], e_effect[300];
    pid_t pid;
} member_t;

static void member_start(member_t *m, const char *in, const char *name)
{
    const char *tmp = lev_test_env("TMPDIR", "/tmp");
    snprintf(m->group, sizeof m->group, "%s-%s", in, name);
    snprintf(m->out, sizeof m->out, "%s-out", m->group);
    lev_dlq_topic_name(m->group, m->dlq, sizeof m->dlq);
    snprintf(m->effect, sizeof m->effect, "%s/%s.effects", tmp, m->group);
    snprintf(m->log, sizeof m->log, "%s/%s.log", tmp, m->group);
    snprintf(m->e_in, sizeof m->e_in, "IN_TOPIC=%s", in);
    snprintf(m->e_out, sizeof m->e_out, "OUT_TOPIC=%s", m->out);
    snprintf(m->e_group, sizeof m->e_group, "LEV_GROUP_ID=%s", m->group);
    snprintf(m->e_effect, sizeof m->e_effect, "EFFECT_LOG=%s", m->effect);
    unlink(m->effect);
    char *env[] = {m->e_in, m->e_out, m->e_group, m->e_effect, NULL};
    m->pid = lev_test_start_worker(env, m->log);
}

/* Waits until the group committed `n` records of a one-partition topic. */
static int64_t wait_committed(const char *group, const char *topic, int64_t n, int timeout_ms)
{
    int64_t deadline = lev_mono_ms() + timeout_ms, c = -1;
    while (lev_mono_ms() < deadline) {
        if (lev_test_committed(group, topic, 1, &c) == 0 && c >= n)
            break;
        lev_test_sleep_ms(200);
    }
    return c;
}

/* ---- hand-made Avro ---- */

static size_t put_long(unsigned char *p, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (z > 0x7f) {
        p[n++] = (unsigned char)(z | 0x80);
        z >>= 7;
    }
    p[n++] = (unsigned char)z;
    return n;
}

static size_t put_str(unsigned char *p, const char *s)
{
    size_t len = strlen(s), n = put_long(p, (int64_t)len);
    memcpy(p + n, s, len);
    return n + len;
}

/* A framed OrderPlaced with `items` identical lines: valid Avro, several
 * megabytes, and a few kilobytes once compressed. Returns its length. */
static size_t big_order(const char *order_id, long items, unsigned char **out)
{
    const lev_schema_t *s = lev_schemas_find(lev_test_schemas(), "shop.order.OrderPlaced");
    unsigned char *b = malloc((size_t)items * 4 + 1024), *p = b;
    uint64_t fp = lev_schema_fingerprint(s);
    *p++ = 0xc3;
    *p++ = 0x01;
    for (int i = 0; i < 8; i++)
        *p++ = (unsigned char)(fp >> (8 * i));
    p += put_str(p, order_id);
    p += put_str(p, "customer-big");
    p += put_long(p, 0); /* customer_email: null */
    p += put_long(p, items);
    for (long i = 0; i < items; i++) {
        p += put_str(p, "s");
        p += put_long(p, 1);
        p += put_long(p, 1);
    }
    p += put_long(p, 0); /* end of the array */
    p += put_str(p, "EUR");
    p += put_long(p, items);
    p += put_str(p, "tok_visa");
    p += put_long(p, lev_now_ms());
    *out = b;
    return (size_t)(p - b);
}

/* Sends one record zstd-compressed, through a producer allowed records that
 * large (the topic takes the compressed batch). */
static int send_compressed(const char *topic, const char *id, const void *value, size_t len)
{
    char errstr[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", lev_test_env("KAFKA_BOOTSTRAP", "127.0.0.1:17092"),
                      errstr, sizeof errstr);
    rd_kafka_conf_set(c, "compression.type", "zstd", errstr, sizeof errstr);
    rd_kafka_conf_set(c, "partitioner", "murmur2_random", errstr, sizeof errstr);
    rd_kafka_conf_set(c, "message.max.bytes", "100000000", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof errstr);
    if (!rk)
        return -1;
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "ce_id", -1, id, -1);
    rd_kafka_header_add(h, "ce_type", -1, "shop.order.OrderPlaced", -1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(id, strlen(id)),
        RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (e)
        rd_kafka_headers_destroy(h);
    int rc = e == 0 && rd_kafka_flush(rk, 30000) == 0 && rd_kafka_outq_len(rk) == 0 ? 0 : -1;
    rd_kafka_destroy(rk);
    return rc;
}

/* ---------------------------------------------------------------------- */

static void a_record_too_large_to_send_again_is_dead_lettered_without_its_value_in_every_group(void)
{
    char in[96];
    lev_test_unique("it-limits-big", in, sizeof in);
    REQUIRE(lev_test_create_topic(in, 1) == 0);
    static char before[5][LEV_UUID_STR_LEN], after[5][LEV_UUID_STR_LEN];
    char big_id[LEV_UUID_STR_LEN];
    lev_uuid4(big_id);
    unsigned char *big;
    size_t big_len = big_order(big_id, 1000000, &big);
    REQUIRE(lev_test_publish_orders(in, 5, before, NULL) == 0);
    REQUIRE(send_compressed(in, big_id, big, big_len) == 0);
    REQUIRE(lev_test_publish_orders(in, 5, after, NULL) == 0);
    free(big);
    fprintf(stderr, "  a valid order of %zu bytes (1,000,000 items) sits between 10 good ones\n",
            big_len);

    /* two groups read the topic, each on its own */
    member_t m[2];
    int64_t t0 = lev_mono_ms();
    member_start(&m[0], in, "a");
    member_start(&m[1], in, "b");
    for (int g = 0; g < 2; g++) {
        int64_t committed = wait_committed(m[g].group, in, 11, 90000);
        fprintf(stderr, "  group %s: committed %" PRId64 " after %.1f s\n", m[g].group, committed,
                (double)(lev_mono_ms() - t0) / 1000.0);
        CHECK_INT(committed, ==, 11);
    }
    for (int g = 0; g < 2; g++) {
        CHECK_INT(lev_test_stop_worker(m[g].pid), ==, 0);
        size_t nout;
        char **out = lev_test_read_order_ids(m[g].out, 10, 30000, &nout);
        CHECK_INT(lev_test_missing(before, 5, out, nout), ==, 0);
        CHECK_INT(lev_test_missing(after, 5, out, nout), ==, 0);
        CHECK_INT(nout, ==, 10);
        lev_test_strings_free(out, nout);
        lev_test_record_t *dl;
        size_t ndl = lev_test_read_topic(m[g].dlq, 1, 30000, &dl);
        CHECK_INT(ndl, ==, 1);
        if (ndl == 1) {
            char b[512], want[32];
            CHECK_STR(lev_test_header(&dl[0], "ce_id", b, sizeof b), big_id);
            CHECK_STR(lev_test_header(&dl[0], LEV_H_ERROR_CLASS, b, sizeof b), "decode");
            CHECK(strstr(lev_test_header(&dl[0], LEV_H_ERROR_MESSAGE, b, sizeof b),
                         "exceeds the limit") != NULL);
            snprintf(want, sizeof want, "%zu", big_len);
            CHECK_STR(lev_test_header(&dl[0], LEV_H_VALUE_OMITTED, b, sizeof b), want);
            CHECK_STR(lev_test_header(&dl[0], LEV_H_ORIG_OFFSET, b, sizeof b), "5");
            CHECK_STR(lev_test_header(&dl[0], LEV_H_ORIG_TOPIC, b, sizeof b), in);
            CHECK_INT(dl[0].value_len, ==, 0);
            CHECK_STR(dl[0].key, big_id);
        }
        lev_test_records_free(dl, ndl);
    }
}

static void an_output_larger_than_its_topic_takes_dead_letters_its_input_with_its_value(void)
{
    char in[96];
    lev_test_unique("it-limits-out", in, sizeof in);
    REQUIRE(lev_test_create_topic(in, 1) == 0);
    member_t m;
    /* the output topic takes records of 4 KiB at most */
    snprintf(m.group, sizeof m.group, "%s-a", in);
    snprintf(m.out, sizeof m.out, "%s-out", m.group);
    const char *cfg[] = {"max.message.bytes", "4096", NULL};
    REQUIRE(lev_test_create_topic_with(m.out, 1, cfg) == 0);

    /* a valid order whose OrderAccepted carries a 6,000-character customer
     * id, between good ones */
    static char ids[7][LEV_UUID_STR_LEN];
    REQUIRE(lev_test_publish_orders(in, 3, ids, NULL) == 0);
    lev_config_t conf;
    lev_error_t err;
    lev_test_config(&conf, "it-limits");
    lev_producer_t *p = lev_producer_new(&conf, NULL, &err);
    lev_config_clear(&conf);
    lev_codec_t *codec = lev_codec_new(lev_test_schemas(), NULL);
    const lev_schema_t *s = lev_schemas_find(lev_test_schemas(), "shop.order.OrderPlaced");
    REQUIRE(p && codec && s);
    lev_uuid4(ids[3]);
    json_t *j = lev_test_order_json(ids[3], 3);
    char *customer = malloc(6001);
    for (int i = 0; i < 6000; i++)
        customer[i] = (char)('a' + (i * 7919) % 26);
    customer[6000] = '\0';
    json_object_set_new(j, "customer_id", json_string(customer));
    free(customer);
    avro_value_t v;
    REQUIRE(lev_codec_from_json(codec, s, j, &v, &err) == 0);
    lev_event_meta_t meta = {.id = ids[3]};
    CHECK(lev_producer_send_event(p, codec, in, ids[3], s, &v, &meta, NULL, NULL, &err) == 0);
    CHECK(lev_producer_flush(p, 30000) == 0);
    avro_value_decref(&v);
    json_decref(j);
    lev_producer_destroy(p);
    lev_codec_destroy(codec);
    REQUIRE(lev_test_publish_orders(in, 3, ids + 4, NULL) == 0);

    member_start(&m, in, "a");
    int64_t committed = wait_committed(m.group, in, 7, 60000);
    CHECK_INT(committed, ==, 7);
    CHECK_INT(lev_test_stop_worker(m.pid), ==, 0);
    size_t nout;
    char **out = lev_test_read_order_ids(m.out, 6, 30000, &nout);
    CHECK_INT(nout, ==, 6);
    CHECK_INT(lev_test_missing(ids, 3, out, nout), ==, 0);
    CHECK_INT(lev_test_missing(ids + 4, 3, out, nout), ==, 0);
    lev_test_strings_free(out, nout);
    lev_test_record_t *dl;
    size_t ndl = lev_test_read_topic(m.dlq, 1, 30000, &dl);
    CHECK_INT(ndl, ==, 1);
    if (ndl == 1) {
        char b[512];
        CHECK_STR(lev_test_header(&dl[0], "ce_id", b, sizeof b), ids[3]);
        CHECK_STR(lev_test_header(&dl[0], LEV_H_ERROR_CLASS, b, sizeof b), "too-large");
        lev_test_header(&dl[0], LEV_H_ERROR_MESSAGE, b, sizeof b);
        fprintf(stderr, "  dead letter: %s\n", b);
        CHECK(strstr(b, "max.message.bytes (4096)") != NULL);
        CHECK(dl[0].value_len > 6000); /* the input itself, kept */
        CHECK_STR(lev_test_header(&dl[0], LEV_H_VALUE_OMITTED, b, sizeof b), "");
    }
    lev_test_records_free(dl, ndl);
}

CHECK_MAIN(CASE(a_record_too_large_to_send_again_is_dead_lettered_without_its_value_in_every_group),
           CASE(an_output_larger_than_its_topic_takes_dead_letters_its_input_with_its_value))
