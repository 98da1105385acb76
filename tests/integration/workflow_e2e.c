/*
 * End to end: the three real service binaries (order, billing,
 * notification) against the real Kafka broker and Redis of the test
 * fixtures, with a real HTTP payment gateway and webhook receiver
 * (workflow_http.py).
 *
 *   workflow_e2e <scenario> --order BIN --billing BIN --notification BIN --http SCRIPT
 *                [--evctl BIN]
 *
 * Scenarios:
 *   steady     N orders (default 1000: valid, invalid, declined) through the
 *              gateway and the webhook; no crashes.
 *   crash      the same while each service is killed with SIGKILL at random
 *              moments and restarted (a bounded number of kills).
 *   duplicate  the built-in ledger and the sink file; every OrderPlaced is
 *              published again (same event id, or same order id with a new
 *              event id), some back to back, some after the order finished.
 *   replay     (needs --evctl) N/5 orders through the gateway and the webhook
 *              to the end; then `evctl replay` copies the whole orders topic
 *              (as it was) into itself while the services run: every group
 *              reads each event again and must skip it as a duplicate (no
 *              request reaches the gateway or the webhook, no event is
 *              emitted again); then a few orders whose payment token the
 *              gateway refuses (HTTP 400) are dead-lettered by billing, the
 *              gateway is fixed, `evctl dlq redrive --dry-run` must send
 *              nothing, and `evctl dlq redrive` must get them confirmed with
 *              one charge and one notification each.
 *   outage     N/5 orders while the webhook is down for 60 s (connections
 *              closed unanswered) and the gateway for 30 s (HTTP 503): the
 *              services' circuit breakers open and hold the orders, nothing
 *              is dead-lettered, and everything drains once both are back.
 *   slow       N/5 orders against a webhook that takes 500 ms and a gateway
 *              that takes 300 ms per request: the requests run side by
 *              side (the fakes count how many at once), not one by one.
 *   prometheus (needs --prometheus, --promtool, --dashboard) N/5 orders as
 *              in steady, each service with its HTTP endpoint
 *              (LEV_HTTP_ADDR), a real Prometheus server scraping the three
 *              every second: each service's /readyz answers 200; through
 *              Prometheus' HTTP API, the business counters equal the plan
 *              (orders by state, charges by outcome, notifications
 *              delivered) and every query of the committed Grafana
 *              dashboard returns data; `promtool check metrics` accepts
 *              each service's /metrics.
 *
 *   scale-eager, scale-cooperative
 *              N orders over about 40 s while a second and a third instance
 *              of each service join their groups and leave them again
 *              (SIGTERM), with eager (range) or cooperative-sticky
 *              assignment: the invariants hold, every instance exits 0, and
 *              the longest gap in each service's outputs around each
 *              membership change is printed (the pause a rebalance costs).
 *   failover   (needs --cluster tools/kafka-cluster) the run starts its own
 *              KRaft cluster of 3 nodes (replication factor 3,
 *              min.insync.replicas 2) and runs 2N orders over about a minute;
 *              a quarter in, the node leading most of the run's partitions is
 *              killed with SIGKILL and started again 12 s later; past the
 *              half, the active controller likewise. The services are never
 *              restarted; with --evctl, the orders around the first kill
 *              go out through one `evctl publish --rate` running across it,
 *              which must exit 0. Prints, for each kill, how long until
 *              every order published before it was notified.
 *
 * Invariants checked after the stack went quiet (every group's committed
 * offset at the end of every input topic):
 *   - every order has exactly one terminal event id (OrderRejected,
 *     OrderConfirmed or OrderCancelled), the one its plan expects, and its
 *     Redis record says the same;
 *   - every order has exactly one decision (OrderAccepted | OrderRejected) id;
 *   - every accepted order has exactly one payment result id and one payment
 *     id, and was charged exactly once (gateway: one "charge" record under
 *     one Idempotency-Key; ledger: one record in Redis); rejected orders
 *     were never charged;
 *   - every order has exactly one NotificationSent id, one notification id,
 *     and the receiver saw exactly that one X-Event-Id (re-deliveries of the
 *     same id are allowed after crashes), all signatures valid;
 *   - no dead letters (replay: exactly one per refused order, in billing's
 *     dead-letter topic); no copies of a record in any topic (crash: allowed
 *     and counted, since a killed producer may send again with the same id;
 *     replay: exactly the records evctl copied back into the orders topic);
 *   - SIGTERM stops every service with exit status 0.
 *
 * Environment: KAFKA_BOOTSTRAP, REDIS_URL, LEV_SCHEMA_DIRS (set by ctest),
 * LEV_BINARY_DIR (run directory under test-runs/), WORKFLOW_ORDERS (count),
 * LEV_TEST_SEED (random seed, printed at the start).
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NSVC 3
#define PARTITIONS 4
#define RETRY_LEVELS 4
#define RETRY_DELAYS "1s,2s,3s,5s"
#define MAX_FAILURES_SHOWN 25
/* the run's topics: orders, payments, notifications, then each group's
 * retry topics and dead-letter topic (topic_names) */
#define NTOPICS (3 + NSVC * (RETRY_LEVELS + 1))

enum { SVC_ORDER = 0, SVC_BILLING = 1, SVC_NOTIFICATION = 2 };
static const char *const svc_names[NSVC] = {"order-service", "billing-service",
                                            "notification-service"};

/* ======================================================================
 * Plan and results per order
 * ====================================================================== */

typedef enum { EXP_CONFIRMED = 0, EXP_REJECTED, EXP_CANCELLED } expect_t;
static const char *const expect_names[] = {"confirmed", "rejected", "cancelled"};

typedef enum {
    K_VALID = 0,
    K_BAD_QUANTITY,
    K_BAD_PRICE,
    K_BAD_CURRENCY,
    K_BAD_TOTAL,
    K_NO_ITEMS,
    K_MANY_PROBLEMS,
    K_DECLINE_TOKEN,
    K_DECLINE_AMOUNT,
    K_REFUSED, /* valid, but the gateway refuses its token with a 400 until fixed */
    K_KINDS
} plan_kind_t;

/* Up to four distinct ids, and how many distinct ones were seen in all. */
typedef struct idset_s {
    char ids[4][40];
    int n;
} idset_t;

/* Adds id; returns 1 when it was new. */
static int idset_add(idset_t *s, const char *id)
{
    int stored = s->n < 4 ? s->n : 4;
    for (int i = 0; i < stored; i++)
        if (strcmp(s->ids[i], id) == 0)
            return 0;
    if (s->n < 4)
        snprintf(s->ids[s->n], sizeof s->ids[0], "%s", id);
    s->n++;
    return 1;
}

typedef struct order_s {
    char id[LEV_UUID_STR_LEN];
    char event_id[LEV_UUID_STR_LEN]; /* ce_id of its first OrderPlaced */
    plan_kind_t kind;
    expect_t expect;
    char *json; /* the OrderPlaced, Avro JSON encoding */
    /* results */
    idset_t decision, terminal, payment, payment_ids, sent, notif_ids, hook_ids, gw_keys, sink_ids;
    int terminal_kind; /* expect_t of the last terminal event seen, -1 none */
    int paid;          /* PaymentSucceeded records */
    int hook_deliveries, gw_charges, gw_declines, gw_replays, gw_503, gw_refused, sink_lines;
    int dead_letters;     /* records of this order in billing's dead-letter topic */
    int done;             /* a NotificationSent was seen */
    char traceparent[64]; /* jaeger: the context its OrderPlaced carries ("" elsewhere) */
} order_t;

typedef struct run_s {
    const char *scenario;
    const char *bin[NSVC];
    const char *http_script;
    const char *evctl;
    char u[64], dir[512];
    char orders_topic[128], payments_topic[128], notifications_topic[128];
    char group[NSVC][128];
    int ledger; /* 1: no gateway, no webhook (ledger and sink file) */
    char secret[40];
    pid_t http_pid;
    int gw_port, hook_port;
    pid_t pid[NSVC];
    int kills[NSVC];
    char log[NSVC][600];
    char sink[600];
    lev_config_t conf;
    lev_schemas_t *schemas;
    lev_codec_t *codec;
    lev_producer_t *producer;
    size_t acked, send_errors;
    rd_kafka_t *admin; /* for watermarks */
    order_t *orders;
    size_t n;
    /* counters */
    size_t dup_records, dead_letters, bad_signatures, bad_requests, foreign_records;
    size_t expected_copies;                 /* records put back into the orders topic on purpose */
    size_t replayed_records;                /* orders-topic records with evctl's replay header */
    size_t redriven_records;                /* ... with evctl's redrive header */
    int exact_deliveries;                   /* strict also means one webhook delivery per id */
    int gw_inflight_max, hook_inflight_max; /* most requests at once at the fakes */
    size_t gw_down, hook_down;              /* requests answered while "down" */
    const char *extra_env[8];               /* more service environment (NULL-ended) */
    /* prometheus: the server, promtool, the dashboard; the services' and
     * the server's ports */
    const char *prometheus, *promtool, *dashboard;
    int http_port[NSVC], prom_port;
    pid_t prom_pid;
    /* jaeger: tools/jaeger, its ports, its state directory once started */
    const char *jaeger;
    int otlp_port, query_port;
    char jaeger_dir[600];
    char otel_env[2][128];
    /* scale: the second and third instance of each service */
    pid_t extra_pid[NSVC][2];
    int extra_stopping[NSVC][2]; /* sent SIGTERM, not reaped yet */
    char extra_log[NSVC][2][600];
    /* failover: tools/kafka-cluster, its state dir and first port */
    const char *cluster;
    char cluster_dir[600];
    int cluster_port;
    int failures;
    uint64_t rng;
} run_t;

/* Records a failed invariant (printing the first few). */
static void fail(run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(run_t *r, const char *fmt, ...)
{
    if (r->failures++ < MAX_FAILURES_SHOWN) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAIL: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
}

/* Progress line on stderr with a time stamp. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char ts[32];
    lev_time_format(lev_now_ms(), ts);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] ", ts + 11);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* xorshift64*: reproducible from the printed seed. */
static uint64_t rnd(run_t *r)
{
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 2685821657736338717ULL;
}

/* A random integer in [0, n). */
static int rnd_below(run_t *r, int n)
{
    return (int)(rnd(r) % (uint64_t)n);
}

/* qsort/bsearch order of orders: by id. */
static int order_cmp(const void *a, const void *b)
{
    return strcmp(((const order_t *)a)->id, ((const order_t *)b)->id);
}

/* The order with this id, or NULL. r->orders is sorted by id. */
static order_t *find_order(run_t *r, const char *id)
{
    order_t key;
    snprintf(key.id, sizeof key.id, "%s", id ? id : "");
    return bsearch(&key, r->orders, r->n, sizeof *r->orders, order_cmp);
}

/* ======================================================================
 * Processes
 * ====================================================================== */

/* Starts service i with the run's environment. */
static pid_t spawn_service(run_t *r, int i, const char *log);

static void start_service(run_t *r, int i)
{
    r->pid[i] = spawn_service(r, i, r->log[i]);
}

/* Starts instance k (0, 1) beyond the first of service i. */
static void start_extra(run_t *r, int i, int k)
{
    snprintf(r->extra_log[i][k], sizeof r->extra_log[i][k], "%s/%s-%d.log", r->dir, svc_names[i],
             k + 2);
    r->extra_pid[i][k] = spawn_service(r, i, r->extra_log[i][k]);
}

static pid_t spawn_service(run_t *r, int i, const char *log)
{
    static char env[32][700];
    int n = 0;
#define ENV(...) snprintf(env[n++], sizeof env[0], __VA_ARGS__)
    ENV("LEV_GROUP_ID=%s", r->group[i]);
    ENV("ORDERS_TOPIC=%s", r->orders_topic);
    ENV("PAYMENTS_TOPIC=%s", r->payments_topic);
    ENV("NOTIFICATIONS_TOPIC=%s", r->notifications_topic);
    ENV("LEV_RETRY_DELAYS=%s", RETRY_DELAYS);
    ENV("LEV_RETRY_BACKOFF_MS=50");
    ENV("LEV_RETRY_BACKOFF_MAX_MS=200");
    ENV("LEV_IDEMPOTENCY_LEASE_MS=3s");
    ENV("LEV_SHUTDOWN_TIMEOUT_MS=10000");
    ENV("KAFKA_SESSION_TIMEOUT_MS=6000");
    /* a breaker's probe may be an order the fake gateway answers 503 five
     * times: with the default backoff (up to 60 s between probes) that alone
     * outlasts a run's time to finish */
    ENV("BILLING_GATEWAY_BREAKER_OPEN_MAX_MS=10s");
    ENV("NOTIFY_WEBHOOK_BREAKER_OPEN_MAX_MS=10s");
    if (r->ledger) {
        ENV("NOTIFY_SINK_FILE=%s", r->sink);
        ENV("BILLING_GATEWAY_URL=");
        ENV("NOTIFY_WEBHOOK_URL=");
    } else {
        ENV("BILLING_GATEWAY_URL=http://127.0.0.1:%d/charges", r->gw_port);
        ENV("BILLING_GATEWAY_TIMEOUT_MS=5s");
        ENV("NOTIFY_WEBHOOK_URL=http://127.0.0.1:%d/notify", r->hook_port);
        ENV("NOTIFY_WEBHOOK_SECRET=%s", r->secret);
        ENV("NOTIFY_WEBHOOK_TIMEOUT_MS=5s");
    }
    if (r->http_port[i] > 0) {
        ENV("LEV_HTTP_ADDR=127.0.0.1:%d", r->http_port[i]);
        ENV("KAFKA_STATISTICS_INTERVAL_MS=1000");
    }
    for (int k = 0; r->extra_env[k]; k++)
        ENV("%s", r->extra_env[k]);
#undef ENV
    char *envp[33];
    for (int k = 0; k < n; k++)
        envp[k] = env[k];
    envp[n] = NULL;
    char *argv[] = {(char *)r->bin[i], NULL};
    return lev_test_spawn(argv, envp, log);
}

static void reap_extra(run_t *r, int i, int k, int timeout_ms);

/* Checks that no service exited on its own; fails the run if one did. */
static int services_alive(run_t *r)
{
    int ok = 1;
    for (int i = 0; i < NSVC; i++) {
        int status;
        if (r->pid[i] > 0 && waitpid(r->pid[i], &status, WNOHANG) == r->pid[i]) {
            fail(r, "%s exited on its own (status 0x%x); see %s", svc_names[i], status, r->log[i]);
            r->pid[i] = 0;
            ok = 0;
        }
        for (int k = 0; k < 2; k++) {
            pid_t p = r->extra_pid[i][k];
            if (r->extra_stopping[i][k]) {
                reap_extra(r, i, k, 0);
                continue;
            }
            if (p > 0 && waitpid(p, &status, WNOHANG) == p) {
                fail(r, "instance %d of %s exited on its own (status 0x%x); see %s", k + 2,
                     svc_names[i], status, r->extra_log[i][k]);
                r->extra_pid[i][k] = 0;
                ok = 0;
            }
        }
    }
    return ok;
}

/* After SIGTERM to instance k beyond the first of service i: it must leave
 * its group and exit 0; waits for it up to timeout_ms (0: only looks). */
static void reap_extra(run_t *r, int i, int k, int timeout_ms)
{
    int status = 0;
    pid_t p = r->extra_pid[i][k];
    if (p <= 0 || !r->extra_stopping[i][k])
        return;
    if (timeout_ms == 0) {
        if (waitpid(p, &status, WNOHANG) != p)
            return;
    } else if (lev_test_wait(p, timeout_ms, &status) != 0) {
        fail(r, "instance %d of %s did not stop within 40 s of SIGTERM", k + 2, svc_names[i]);
        kill(p, SIGKILL);
        lev_test_wait(p, 5000, &status);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail(r, "instance %d of %s exited with status 0x%x after SIGTERM; see %s", k + 2,
             svc_names[i], status, r->extra_log[i][k]);
    }
    r->extra_pid[i][k] = 0;
    r->extra_stopping[i][k] = 0;
}

/* SIGTERM to instance k beyond the first of service i (reap_extra checks
 * how it ends). */
static void stop_extra(run_t *r, int i, int k)
{
    if (r->extra_pid[i][k] > 0 && kill(r->extra_pid[i][k], SIGTERM) == 0)
        r->extra_stopping[i][k] = 1;
}

/* SIGTERM every service and expect exit status 0 from each. */
static void stop_services(run_t *r)
{
    for (int i = 0; i < NSVC; i++)
        if (r->pid[i] > 0)
            kill(r->pid[i], SIGTERM);
    for (int i = 0; i < NSVC; i++) {
        int status = 0;
        if (r->pid[i] <= 0)
            continue;
        if (lev_test_wait(r->pid[i], 40000, &status) != 0) {
            fail(r, "%s did not stop within 40 s of SIGTERM", svc_names[i]);
            kill(r->pid[i], SIGKILL);
            lev_test_wait(r->pid[i], 5000, &status);
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fail(r, "%s stopped with status 0x%x after SIGTERM, not exit 0", svc_names[i], status);
        }
        r->pid[i] = 0;
    }
}

/* Starts workflow_http.py and reads its ports. */
static int start_http(run_t *r)
{
    char dir_arg[600], secret_arg[64], ports[600];
    snprintf(dir_arg, sizeof dir_arg, "%s", r->dir);
    snprintf(secret_arg, sizeof secret_arg, "%s", r->secret);
    char *argv[] = {"/usr/bin/env", "python3", (char *)r->http_script, "--dir", dir_arg, "--secret",
                    secret_arg,     NULL};
    char log[600];
    snprintf(log, sizeof log, "%s/http.log", r->dir);
    r->http_pid = lev_test_spawn(argv, NULL, log);
    snprintf(ports, sizeof ports, "%s/ports.json", r->dir);
    /* they listen once ports.json exists (it is written after binding) */
    for (int64_t deadline = lev_mono_ms() + 30000; lev_mono_ms() < deadline;) {
        json_t *j = json_load_file(ports, 0, NULL);
        if (j) {
            r->gw_port = (int)json_integer_value(json_object_get(j, "gateway"));
            r->hook_port = (int)json_integer_value(json_object_get(j, "webhook"));
            json_decref(j);
            return r->gw_port > 0 && r->hook_port > 0 ? 0 : -1;
        }
        int status;
        if (waitpid(r->http_pid, &status, WNOHANG) == r->http_pid) {
            r->http_pid = 0;
            return -1; /* exited: see its log */
        }
        lev_test_sleep_ms(20);
    }
    return -1;
}

/* Stops workflow_http.py (SIGTERM, then SIGKILL). */
static void stop_http(run_t *r)
{
    int status;
    if (r->http_pid <= 0)
        return;
    kill(r->http_pid, SIGTERM);
    if (lev_test_wait(r->http_pid, 10000, &status) != 0) {
        kill(r->http_pid, SIGKILL);
        lev_test_wait(r->http_pid, 5000, &status);
    }
    r->http_pid = 0;
}

/* ======================================================================
 * Setup
 * ====================================================================== */

static int setup(run_t *r)
{
    lev_error_t err;
    char buf[800], name[200];
    lev_test_unique("wf", r->u, sizeof r->u);
    snprintf(r->dir, sizeof r->dir, "%s/test-runs/workflow-%s-%s",
             lev_test_env("LEV_BINARY_DIR", "."), r->scenario, r->u);
    char parent[600];
    snprintf(parent, sizeof parent, "%s/test-runs", lev_test_env("LEV_BINARY_DIR", "."));
    mkdir(parent, 0755);
    if (mkdir(r->dir, 0755) != 0) {
        fprintf(stderr, "cannot make %s: %s\n", r->dir, strerror(errno));
        return -1;
    }
    snprintf(r->orders_topic, sizeof r->orders_topic, "orders.%s", r->u);
    snprintf(r->payments_topic, sizeof r->payments_topic, "payments.%s", r->u);
    snprintf(r->notifications_topic, sizeof r->notifications_topic, "notifications.%s", r->u);
    snprintf(r->sink, sizeof r->sink, "%s/notifications.jsonl", r->dir);
    for (int i = 0; i < NSVC; i++) {
        snprintf(r->group[i], sizeof r->group[i], "%s.%s", svc_names[i], r->u);
        snprintf(r->log[i], sizeof r->log[i], "%s/%s.log", r->dir, svc_names[i]);
    }
    char u[LEV_UUID_STR_LEN];
    lev_uuid4(u);
    snprintf(r->secret, sizeof r->secret, "s3cr3t-%.12s", u);
    say("run %s in %s", r->u, r->dir);

    /* topics: the workflow's and each group's retry and dead-letter topics */
    const char *topics[] = {r->orders_topic, r->payments_topic, r->notifications_topic};
    for (size_t i = 0; i < 3; i++)
        if (lev_test_create_topic(topics[i], PARTITIONS) != 0)
            return fprintf(stderr, "cannot create %s\n", topics[i]), -1;
    for (int i = 0; i < NSVC; i++) {
        for (int l = 1; l <= RETRY_LEVELS; l++) {
            lev_retry_topic_name(r->group[i], l, name, sizeof name);
            if (lev_test_create_topic(name, PARTITIONS) != 0)
                return fprintf(stderr, "cannot create %s\n", name), -1;
        }
        lev_dlq_topic_name(r->group[i], name, sizeof name);
        if (lev_test_create_topic(name, PARTITIONS) != 0)
            return fprintf(stderr, "cannot create %s\n", name), -1;
    }

    /* codec and producer for publishing and reading back */
    if (lev_config_from_env(&r->conf, "workflow-e2e", &err) != 0) {
        fprintf(stderr, "config: %s\n", lev_error_format(&err, buf, sizeof buf));
        return -1;
    }
    r->schemas = lev_schemas_new();
    if (lev_schemas_load_path(r->schemas, r->conf.schema_dirs, &err) != 0) {
        fprintf(stderr, "schemas: %s\n", lev_error_format(&err, buf, sizeof buf));
        return -1;
    }
    r->codec = lev_codec_new(r->schemas, NULL);
    const lev_kv_t extra[] = {{"linger.ms", "5"}, {NULL, NULL}};
    if (!(r->producer = lev_producer_new(&r->conf, extra, &err))) {
        fprintf(stderr, "producer: %s\n", lev_error_format(&err, buf, sizeof buf));
        return -1;
    }
    char errstr[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "bootstrap.servers", r->conf.bootstrap, errstr, sizeof errstr);
    rd_kafka_conf_set(kc, "log_level", "3", errstr, sizeof errstr);
    r->admin = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof errstr);
    if (!r->admin)
        return fprintf(stderr, "rd_kafka_new: %s\n", errstr), -1;

    if (!r->ledger && start_http(r) != 0)
        return fprintf(stderr, "the HTTP fakes did not start; see %s/http.log\n", r->dir), -1;
    return 0;
}

/* The names of the run's NTOPICS topics. */
static void topic_names(const run_t *r, char names[NTOPICS][200])
{
    size_t n = 0;
    snprintf(names[n++], sizeof names[0], "%s", r->orders_topic);
    snprintf(names[n++], sizeof names[0], "%s", r->payments_topic);
    snprintf(names[n++], sizeof names[0], "%s", r->notifications_topic);
    for (int i = 0; i < NSVC; i++) {
        for (int l = 1; l <= RETRY_LEVELS; l++)
            lev_retry_topic_name(r->group[i], l, names[n++], sizeof names[0]);
        lev_dlq_topic_name(r->group[i], names[n++], sizeof names[0]);
    }
}

/* Deletes the run's topics (after a passing run; a failing run keeps them
 * for inspection). */
static void delete_topics(run_t *r)
{
    char names[NTOPICS][200];
    rd_kafka_DeleteTopic_t *dt[NTOPICS];
    size_t n = NTOPICS;
    topic_names(r, names);
    for (size_t i = 0; i < n; i++)
        dt[i] = rd_kafka_DeleteTopic_new(names[i]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(r->admin);
    rd_kafka_DeleteTopics(r->admin, dt, n, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    if (!ev || rd_kafka_event_error(ev))
        say("could not delete the run's topics: %s",
            ev ? rd_kafka_event_error_string(ev) : "no answer");
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy_array(dt, n);
}

/* Kills what still runs, deletes the topics of a passing run, frees. */
static void teardown(run_t *r)
{
    for (int i = 0; i < NSVC; i++) {
        if (r->pid[i] > 0) {
            int status;
            kill(r->pid[i], SIGKILL);
            lev_test_wait(r->pid[i], 5000, &status);
        }
        for (int k = 0; k < 2; k++) {
            int status;
            if (r->extra_pid[i][k] > 0) {
                kill(r->extra_pid[i][k], SIGKILL);
                lev_test_wait(r->extra_pid[i][k], 5000, &status);
            }
        }
    }
    stop_http(r);
    if (r->jaeger_dir[0]) {
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "'%s' stop --dir '%s' >&2", r->jaeger, r->jaeger_dir);
        if (system(cmd) != 0)
            say("stopping jaeger failed");
        r->jaeger_dir[0] = '\0';
    }
    if (r->prom_pid > 0) {
        int status;
        kill(r->prom_pid, SIGTERM);
        if (lev_test_wait(r->prom_pid, 20000, &status) != 0) {
            kill(r->prom_pid, SIGKILL);
            lev_test_wait(r->prom_pid, 5000, &status);
        }
        r->prom_pid = 0;
    }
    if (r->admin && !r->failures && r->orders_topic[0])
        delete_topics(r);
    lev_producer_destroy(r->producer);
    lev_codec_destroy(r->codec);
    lev_schemas_destroy(r->schemas);
    if (r->admin)
        rd_kafka_destroy(r->admin);
    lev_config_clear(&r->conf);
    for (size_t i = 0; i < r->n; i++)
        free(r->orders[i].json);
    free(r->orders);
}

/* ======================================================================
 * Orders: plan and publish
 * ====================================================================== */

/* Builds the OrderPlaced JSON of order o (index i) by its kind. */
static char *order_json(run_t *r, order_t *o, size_t i)
{
    static const char *const currencies[] = {"EUR", "USD", "GBP", "JPY", "CHF"};
    char customer[32], email[48], token[48], sku[32];
    const char *currency = currencies[rnd_below(r, 5)];
    snprintf(customer, sizeof customer, "cust-%zu", i % 97);
    snprintf(email, sizeof email, "cust-%zu@example.com", i % 97);
    snprintf(token, sizeof token, "tok_visa_%zu", i);
    json_t *items = json_array();
    int nitems = o->kind == K_NO_ITEMS ? 0 : 1 + rnd_below(r, 3);
    int64_t total = 0;
    for (int k = 0; k < nitems; k++) {
        int64_t qty = 1 + rnd_below(r, 5), price = 100 + rnd_below(r, 19900);
        if (o->kind == K_DECLINE_AMOUNT && k == 0) {
            qty = 1;
            price = 2000000; /* above the gateway's and the ledger's limits */
        }
        if ((o->kind == K_BAD_QUANTITY || o->kind == K_MANY_PROBLEMS) && k == 0)
            qty = 0;
        if (o->kind == K_BAD_PRICE && k == 0)
            price = -250;
        total += qty * price;
        snprintf(sku, sizeof sku, "sku-%d", rnd_below(r, 500));
        json_array_append_new(items,
                              json_pack("{s:s, s:I, s:I}", "sku", sku, "quantity", (json_int_t)qty,
                                        "unit_price_minor", (json_int_t)price));
    }
    if (o->kind == K_BAD_TOTAL)
        total += 1;
    if (o->kind == K_BAD_CURRENCY || o->kind == K_MANY_PROBLEMS)
        currency = "EURO";
    if (o->kind == K_DECLINE_TOKEN)
        snprintf(token, sizeof token, "tok_decline_%zu", i);
    if (o->kind == K_REFUSED)
        snprintf(token, sizeof token, "tok_refuse_%zu", i); /* see workflow_http.py */
    json_t *j =
        json_pack("{s:s, s:s, s:o, s:o, s:s, s:I, s:s, s:I}", "order_id", o->id, "customer_id",
                  o->kind == K_MANY_PROBLEMS ? "" : customer, "customer_email",
                  i % 5 == 0 ? json_null() : json_pack("{s:s}", "string", email), "items", items,
                  "currency", currency, "total_minor", (json_int_t)total, "payment_token", token,
                  "placed_at", (json_int_t)lev_now_ms());
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

/* Plans n more orders (appended to r->orders, unsorted) of the given kind,
 * or when kind is K_KINDS: 70% valid, 15% invalid in six ways, 15% declined. */
static void plan_more(run_t *r, size_t n, plan_kind_t kind)
{
    order_t *grown = realloc(r->orders, (r->n + n) * sizeof *r->orders);
    if (!grown)
        abort();
    r->orders = grown;
    memset(&r->orders[r->n], 0, n * sizeof *r->orders);
    for (size_t i = r->n; i < r->n + n; i++) {
        order_t *o = &r->orders[i];
        lev_uuid4(o->id);
        lev_uuid4(o->event_id);
        int p = rnd_below(r, 100);
        if (kind != K_KINDS)
            o->kind = kind;
        else if (p < 70)
            o->kind = K_VALID;
        else if (p < 85)
            o->kind = (plan_kind_t)(K_BAD_QUANTITY + rnd_below(r, 6));
        else
            o->kind = rnd_below(r, 2) ? K_DECLINE_TOKEN : K_DECLINE_AMOUNT;
        o->expect = o->kind == K_VALID || o->kind == K_REFUSED                  ? EXP_CONFIRMED
                    : o->kind == K_DECLINE_TOKEN || o->kind == K_DECLINE_AMOUNT ? EXP_CANCELLED
                                                                                : EXP_REJECTED;
        o->json = order_json(r, o, i);
    }
    r->n += n;
}

/* Plans the run's n orders: 70% valid, 15% invalid in six ways, 15% declined. */
static void plan_orders(run_t *r, size_t n)
{
    plan_more(r, n, K_KINDS);
}

/* Delivery report of a published OrderPlaced. */
static void on_delivery(void *opaque, int err, const char *errstr, int32_t partition,
                        int64_t offset)
{
    run_t *r = opaque;
    if (err) {
        r->send_errors++;
        fprintf(stderr, "publish failed: %s\n", errstr ? errstr : "?");
    } else {
        r->acked++;
    }
}

/* Publishes the OrderPlaced of o with ce_id event_id (queued, not flushed). */
static int publish(run_t *r, const order_t *o, const char *event_id)
{
    lev_error_t err;
    char buf[800];
    avro_value_t v;
    const lev_schema_t *s = lev_schemas_find(r->schemas, "shop.order.OrderPlaced");
    json_t *j = json_loads(o->json, 0, NULL);
    int rc = s && j ? lev_codec_from_json(r->codec, s, j, &v, &err) : -1;
    json_decref(j);
    if (rc != 0) {
        fprintf(stderr, "OrderPlaced: %s\n", lev_error_format(&err, buf, sizeof buf));
        return -1;
    }
    lev_event_meta_t meta = {.id = event_id,
                             .source = "/workflow-e2e",
                             .traceparent = o->traceparent[0] ? o->traceparent : NULL};
    rc = lev_producer_send_event(r->producer, r->codec, r->orders_topic, o->id, s, &v, &meta,
                                 on_delivery, r, &err);
    avro_value_decref(&v);
    if (rc != 0)
        fprintf(stderr, "send: %s\n", lev_error_format(&err, buf, sizeof buf));
    return rc;
}

/* Publishes orders [from, to) with their own event ids. */
static int publish_range(run_t *r, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (publish(r, &r->orders[i], r->orders[i].event_id) != 0)
            return -1;
    return 0;
}

/* Waits until every published event is acknowledged. */
static int flush_producer(run_t *r)
{
    if (lev_producer_flush(r->producer, 30000) != 0 || r->send_errors) {
        fprintf(stderr, "publishing failed (%zu errors)\n", r->send_errors);
        return -1;
    }
    return 0;
}

/* ======================================================================
 * Reading results
 * ====================================================================== */

/* Counts the orders with a NotificationSent (keys of the notifications topic). */
static size_t count_finished(run_t *r)
{
    lev_test_record_t *recs;
    size_t n = lev_test_read_topic(r->notifications_topic, 0, 5000, &recs), done = 0;
    for (size_t i = 0; i < n; i++) {
        order_t *o = find_order(r, recs[i].key);
        if (o && !o->done) {
            o->done = 1;
            done++;
        }
    }
    lev_test_records_free(recs, n);
    for (size_t i = 0; i < r->n; i++)
        r->orders[i].done = 0;
    return done;
}

/* Waits until every order has a NotificationSent or timeout_ms passed. */
static int wait_finished(run_t *r, int timeout_ms)
{
    int64_t deadline = lev_mono_ms() + timeout_ms;
    size_t last = 0;
    for (;;) {
        size_t done = count_finished(r);
        if (done != last)
            say("finished %zu / %zu orders", done, r->n);
        last = done;
        if (done == r->n)
            return 0;
        if (!services_alive(r) || lev_mono_ms() > deadline)
            return -1;
        lev_test_sleep_ms(1000);
    }
}

/* 1 when group has committed every partition of topic up to its end;
 * with `report`, says which partitions lag. */
static int caught_up(run_t *r, const char *group, const char *topic, int report)
{
    int64_t committed[PARTITIONS];
    int ok = 1;
    if (lev_test_committed(group, topic, PARTITIONS, committed) != 0)
        return 0;
    for (int p = 0; p < PARTITIONS; p++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(r->admin, topic, p, &lo, &hi, 5000) != 0)
            return 0;
        if (hi > 0 && committed[p] != hi) {
            ok = 0;
            if (report)
                fail(r, "group %s lags on %s [%d]: committed %lld, end %lld", group, topic, p,
                     (long long)committed[p], (long long)hi);
        }
    }
    return ok;
}

/* Reports every (group, input topic) that has not caught up. */
static void report_lag(run_t *r)
{
    char name[200];
    for (int i = 0; i < NSVC; i++) {
        caught_up(r, r->group[i], r->orders_topic, 1);
        if (i == SVC_ORDER)
            caught_up(r, r->group[i], r->payments_topic, 1);
        for (int l = 1; l <= RETRY_LEVELS; l++) {
            lev_retry_topic_name(r->group[i], l, name, sizeof name);
            caught_up(r, r->group[i], name, 1);
        }
    }
}

/* Waits until every group committed every input topic to its end, twice
 * in a row (nothing in flight between them). */
static int wait_quiet(run_t *r, int timeout_ms)
{
    int64_t deadline = lev_mono_ms() + timeout_ms;
    int streak = 0;
    while (lev_mono_ms() < deadline) {
        int quiet = 1;
        char name[200];
        for (int i = 0; i < NSVC && quiet; i++) {
            quiet = caught_up(r, r->group[i], r->orders_topic, 0);
            if (quiet && i == SVC_ORDER)
                quiet = caught_up(r, r->group[i], r->payments_topic, 0);
            for (int l = 1; l <= RETRY_LEVELS && quiet; l++) {
                lev_retry_topic_name(r->group[i], l, name, sizeof name);
                quiet = caught_up(r, r->group[i], name, 0);
            }
        }
        streak = quiet ? streak + 1 : 0;
        if (streak >= 2)
            return 0;
        lev_test_sleep_ms(1500);
    }
    return -1;
}

/* Decodes a record's value and returns string field `name` copied into out. */
static int field_of(run_t *r, const lev_test_record_t *rec, const char *name, char *out,
                    size_t size)
{
    avro_value_t v;
    const char *s;
    out[0] = '\0';
    if (lev_codec_decode(r->codec, rec->value, rec->value_len, NULL, &v, NULL, NULL) != 0)
        return -1;
    int rc = lev_value_get_string(&v, name, &s, NULL);
    if (rc == 0)
        snprintf(out, size, "%s", s);
    avro_value_decref(&v);
    return rc;
}

/* Reads a workflow topic into the orders' results. */
static void collect_topic(run_t *r, const char *topic)
{
    lev_test_record_t *recs;
    char type[160], id[128], field[128], from[300];
    size_t n = lev_test_read_topic(topic, 0, 10000, &recs);
    for (size_t i = 0; i < n; i++) {
        lev_test_header(&recs[i], LEV_H_CE_TYPE, type, sizeof type);
        lev_test_header(&recs[i], LEV_H_CE_ID, id, sizeof id);
        if (*lev_test_header(&recs[i], "evctl_replay_from", from, sizeof from))
            r->replayed_records++;
        if (*lev_test_header(&recs[i], "evctl_redrive_from", from, sizeof from))
            r->redriven_records++;
        order_t *o = find_order(r, recs[i].key);
        if (!o) {
            r->foreign_records++;
            continue;
        }
        int fresh = 1;
        if (!strcmp(type, "shop.order.OrderPlaced")) {
            continue;
        } else if (!strcmp(type, "shop.order.OrderAccepted")) {
            fresh = idset_add(&o->decision, id);
        } else if (!strcmp(type, "shop.order.OrderRejected")) {
            fresh = idset_add(&o->decision, id);
            idset_add(&o->terminal, id);
            o->terminal_kind = EXP_REJECTED;
        } else if (!strcmp(type, "shop.order.OrderConfirmed") ||
                   !strcmp(type, "shop.order.OrderCancelled")) {
            fresh = idset_add(&o->terminal, id);
            o->terminal_kind =
                !strcmp(type, "shop.order.OrderConfirmed") ? EXP_CONFIRMED : EXP_CANCELLED;
        } else if (!strcmp(type, "shop.billing.PaymentSucceeded")) {
            fresh = idset_add(&o->payment, id);
            o->paid++;
            if (field_of(r, &recs[i], "payment_id", field, sizeof field) == 0)
                idset_add(&o->payment_ids, field);
        } else if (!strcmp(type, "shop.billing.PaymentFailed")) {
            fresh = idset_add(&o->payment, id);
        } else if (!strcmp(type, "shop.notification.NotificationSent")) {
            fresh = idset_add(&o->sent, id);
            if (field_of(r, &recs[i], "notification_id", field, sizeof field) == 0)
                idset_add(&o->notif_ids, field);
        } else {
            fail(r, "unexpected event type \"%s\" in %s", type, topic);
        }
        if (!fresh)
            r->dup_records++;
    }
    lev_test_records_free(recs, n);
}

/* Reads <dir>/<name> as JSON lines, calling fn for each object. */
static void read_jsonl(run_t *r, const char *path, void (*fn)(run_t *, json_t *))
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    if (!f)
        return;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j) {
            fail(r, "%s: a line is not JSON (torn write?)", path);
            continue;
        }
        fn(r, j);
        json_decref(j);
    }
    free(line);
    fclose(f);
}

/* One line of gateway.jsonl into its order's results. */
static void on_gateway_record(run_t *r, json_t *j)
{
    const char *kind = json_string_value(json_object_get(j, "kind"));
    order_t *o = find_order(r, json_string_value(json_object_get(j, "order_id")));
    const char *key = json_string_value(json_object_get(j, "key"));
    if (kind && !strcmp(kind, "bad-request"))
        r->bad_requests++;
    if (kind && !strcmp(kind, "down"))
        r->gw_down++;
    int inflight = (int)json_integer_value(json_object_get(j, "inflight"));
    if (inflight > r->gw_inflight_max)
        r->gw_inflight_max = inflight;
    if (!o || !kind)
        return;
    if (key)
        idset_add(&o->gw_keys, key);
    if (!strcmp(kind, "charge")) {
        const char *result = json_string_value(json_object_get(j, "result"));
        if (result && !strcmp(result, "charged"))
            o->gw_charges++;
        else
            o->gw_declines++;
    } else if (!strcmp(kind, "replay")) {
        o->gw_replays++;
    } else if (!strcmp(kind, "fail503")) {
        o->gw_503++;
    } else if (!strcmp(kind, "refused")) {
        o->gw_refused++;
    }
}

/* One line of webhook.jsonl into its order's results. */
static void on_webhook_record(run_t *r, json_t *j)
{
    const char *kind = json_string_value(json_object_get(j, "kind"));
    if (kind && !strcmp(kind, "bad-signature"))
        r->bad_signatures++;
    if (kind && !strcmp(kind, "bad-request"))
        r->bad_requests++;
    if (kind && !strcmp(kind, "down"))
        r->hook_down++;
    int inflight = (int)json_integer_value(json_object_get(j, "inflight"));
    if (inflight > r->hook_inflight_max)
        r->hook_inflight_max = inflight;
    order_t *o = find_order(r, json_string_value(json_object_get(j, "order_id")));
    if (!o || !kind || strcmp(kind, "delivery") != 0)
        return;
    idset_add(&o->hook_ids, json_string_value(json_object_get(j, "event_id")));
    o->hook_deliveries++;
}

/* One line of the sink file into its order's results. */
static void on_sink_line(run_t *r, json_t *j)
{
    order_t *o = find_order(r, json_string_value(json_object_get(j, "order_id")));
    const char *nid = json_string_value(json_object_get(j, "notification_id"));
    if (!o || !nid) {
        fail(r, "sink line without a known order or a notification id");
        return;
    }
    idset_add(&o->sink_ids, nid);
    o->sink_lines++;
}

/* Gathers everything the run produced into the orders' results. */
static void collect(run_t *r)
{
    char path[700], name[200];
    for (size_t i = 0; i < r->n; i++) {
        order_t *o = &r->orders[i];
        memset(&o->decision, 0, (size_t)((char *)&o->done - (char *)&o->decision));
        o->terminal_kind = -1;
    }
    r->dup_records = r->dead_letters = r->bad_signatures = r->bad_requests = 0;
    r->foreign_records = r->replayed_records = r->redriven_records = 0;
    collect_topic(r, r->orders_topic);
    collect_topic(r, r->payments_topic);
    collect_topic(r, r->notifications_topic);
    for (int i = 0; i < NSVC; i++) {
        lev_test_record_t *recs;
        char cls[64], msg[300];
        lev_dlq_topic_name(r->group[i], name, sizeof name);
        size_t n = lev_test_read_topic(name, 0, 3000, &recs);
        for (size_t k = 0; k < n; k++) {
            order_t *o = find_order(r, recs[k].key);
            lev_test_header(&recs[k], LEV_H_ERROR_CLASS, cls, sizeof cls);
            lev_test_header(&recs[k], LEV_H_ERROR_MESSAGE, msg, sizeof msg);
            /* the one expected kind: billing refused by the gateway (HTTP 400) */
            if (o && o->kind == K_REFUSED && i == SVC_BILLING && !strcmp(cls, "handler") &&
                strstr(msg, "HTTP 400")) {
                o->dead_letters++;
                continue;
            }
            if (r->dead_letters++ < 3)
                fail(r, "dead letter in %s: class %s: %s", name, cls, msg);
        }
        lev_test_records_free(recs, n);
    }
    if (r->ledger) {
        read_jsonl(r, r->sink, on_sink_line);
    } else {
        snprintf(path, sizeof path, "%s/gateway.jsonl", r->dir);
        read_jsonl(r, path, on_gateway_record);
        snprintf(path, sizeof path, "%s/webhook.jsonl", r->dir);
        read_jsonl(r, path, on_webhook_record);
    }
}

/* ======================================================================
 * Invariants
 * ====================================================================== */

/* Checks the Redis records of order o: its state and (ledger) its charge. */
static void check_redis(run_t *r, lev_store_t *store, const order_t *o)
{
    char key[200], *text = NULL;
    snprintf(key, sizeof key, "order-service:order:%s", o->id);
    if (lev_store_get(store, key, &text, NULL) != 0 || !text) {
        fail(r, "order %s: no state record in Redis", o->id);
    } else {
        json_t *j = json_loads(text, 0, NULL);
        const char *status = json_string_value(json_object_get(j, "status"));
        if (!status || strcmp(status, expect_names[o->expect]) != 0)
            fail(r, "order %s: Redis says %s, expected %s", o->id, status ? status : "?",
                 expect_names[o->expect]);
        json_decref(j);
    }
    free(text);
    text = NULL;
    snprintf(key, sizeof key, "billing-service:charge:%s", o->id);
    if (lev_store_get(store, key, &text, NULL) != 0) {
        fail(r, "order %s: cannot read the ledger", o->id);
    } else if (o->expect == EXP_REJECTED && text) {
        fail(r, "order %s: rejected but billing has a record", o->id);
    } else if (o->expect != EXP_REJECTED && !text) {
        fail(r, "order %s: accepted but billing has no record", o->id);
    } else if (text) {
        json_t *j = json_loads(text, 0, NULL);
        const char *result = json_string_value(json_object_get(j, "result"));
        const char *want = o->expect == EXP_CONFIRMED ? "succeeded" : "failed";
        if (!result || strcmp(result, want) != 0)
            fail(r, "order %s: ledger says %s, expected %s", o->id, result ? result : "?", want);
        json_decref(j);
    }
    free(text);
}

/* Lines of service i's log that hold text. */
static size_t log_count(const run_t *r, int i, const char *text)
{
    FILE *f = fopen(r->log[i], "r");
    char line[4096];
    size_t n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return n;
}

static int log_has(const run_t *r, int i, const char *text)
{
    return log_count(r, i, text) > 0;
}

/* Checks every invariant; strict: no copies of records at all, and no
 * charge asked again but after a request that got no answer (a timeout:
 * the gateway may have charged, so the retry asks again with the same
 * Idempotency-Key, which is how it must be). */
static void verify(run_t *r, int strict)
{
    lev_error_t err;
    lev_store_t *store = lev_store_new(r->conf.redis_url, 5000, &err);
    size_t by_expect[3] = {0}, hook_redeliveries = 0, replays = 0, retried = 0, charges = 0;
    if (!store)
        fail(r, "cannot connect to Redis at %s", r->conf.redis_url);
    for (size_t i = 0; i < r->n; i++) {
        order_t *o = &r->orders[i];
        const char *id = o->id;
        by_expect[o->expect]++;
        if (o->decision.n != 1)
            fail(r, "order %s (%s): %d decision ids, expected 1", id, expect_names[o->expect],
                 o->decision.n);
        if (o->terminal.n != 1)
            fail(r, "order %s: %d terminal event ids, expected 1", id, o->terminal.n);
        else if (o->terminal_kind != (int)o->expect)
            fail(r, "order %s: ended %s, expected %s", id,
                 o->terminal_kind >= 0 ? expect_names[o->terminal_kind] : "nowhere",
                 expect_names[o->expect]);
        int accepted = o->expect != EXP_REJECTED;
        if (o->payment.n != accepted)
            fail(r, "order %s: %d payment result ids, expected %d", id, o->payment.n, accepted);
        if (o->expect == EXP_CONFIRMED && o->payment_ids.n != 1)
            fail(r, "order %s: %d payment ids, expected 1", id, o->payment_ids.n);
        if (o->sent.n != 1 || o->notif_ids.n != 1)
            fail(r, "order %s: %d NotificationSent ids and %d notification ids, expected 1", id,
                 o->sent.n, o->notif_ids.n);
        if (r->ledger) {
            if (o->sink_ids.n != 1 ||
                (o->notif_ids.n == 1 && strcmp(o->sink_ids.ids[0], o->notif_ids.ids[0]) != 0))
                fail(r, "order %s: %d notification ids in the sink file, expected its one", id,
                     o->sink_ids.n);
            if (strict && o->sink_lines != 1)
                fail(r, "order %s: %d sink lines, expected 1", id, o->sink_lines);
        } else {
            if (o->hook_ids.n != 1 ||
                (o->notif_ids.n == 1 && strcmp(o->hook_ids.ids[0], o->notif_ids.ids[0]) != 0))
                fail(r, "order %s: %d X-Event-Ids at the webhook, expected its one", id,
                     o->hook_ids.n);
            hook_redeliveries += (size_t)(o->hook_deliveries > 1 ? o->hook_deliveries - 1 : 0);
            if (strict && r->exact_deliveries && o->hook_deliveries != 1)
                fail(r, "order %s: its notification was delivered %d times, expected once", id,
                     o->hook_deliveries);
            if (o->gw_charges != (o->expect == EXP_CONFIRMED))
                fail(r, "order %s (%s): charged %d times at the gateway", id,
                     expect_names[o->expect], o->gw_charges);
            if (o->gw_declines != (o->expect == EXP_CANCELLED))
                fail(r, "order %s (%s): declined %d times at the gateway", id,
                     expect_names[o->expect], o->gw_declines);
            if (o->gw_keys.n != accepted)
                fail(r, "order %s: %d Idempotency-Keys, expected %d", id, o->gw_keys.n, accepted);
            if (o->expect == EXP_CONFIRMED && o->gw_keys.n == 1 && o->payment_ids.n == 1 &&
                strcmp(o->gw_keys.ids[0], o->payment_ids.ids[0]) != 0)
                fail(r, "order %s: Idempotency-Key is not the payment id", id);
            if ((o->kind == K_REFUSED) != (o->gw_refused > 0))
                fail(r, "order %s: the gateway refused its token %d times", id, o->gw_refused);
            if (o->kind == K_REFUSED && o->dead_letters != 1)
                fail(r, "order %s: %d dead letters in billing's dead-letter topic, expected 1", id,
                     o->dead_letters);
            replays += (size_t)o->gw_replays;
            retried += o->gw_503 > 0;
            charges += (size_t)o->gw_charges;
        }
        if (store)
            check_redis(r, store, o);
    }
    lev_store_destroy(store);
    if (r->dead_letters)
        fail(r, "%zu dead letters", r->dead_letters);
    if (r->bad_signatures)
        fail(r, "%zu webhook calls with a bad signature", r->bad_signatures);
    if (r->bad_requests)
        fail(r, "%zu malformed requests to the HTTP fakes", r->bad_requests);
    if (r->foreign_records)
        fail(r, "%zu records keyed by no order of this run", r->foreign_records);
    if (strict && r->dup_records != r->expected_copies)
        fail(r, "%zu copies of records (same ce_id twice) in the workflow topics, expected %zu",
             r->dup_records, r->expected_copies);
    size_t unanswered = log_count(r, SVC_BILLING, "\"error\":\"no answer from the gateway");
    if (strict && replays > unanswered)
        fail(r, "%zu charges asked again of the gateway, %zu after no answer", replays, unanswered);
    say("orders: %zu confirmed, %zu rejected, %zu cancelled expected; gateway charges %zu, "
        "replays %zu (requests unanswered %zu), orders through 503s %zu; webhook re-deliveries "
        "%zu; record copies %zu",
        by_expect[EXP_CONFIRMED], by_expect[EXP_REJECTED], by_expect[EXP_CANCELLED], charges,
        replays, unanswered, retried, hook_redeliveries, r->dup_records);
}

/* ======================================================================
 * Scenarios
 * ====================================================================== */

/* Runs until every order finished and everything is quiet, then checks. */
static void finish(run_t *r, int timeout_ms, int strict)
{
    if (wait_finished(r, timeout_ms) != 0)
        fail(r, "not every order finished in time");
    if (wait_quiet(r, 90000) != 0) {
        fail(r, "the consumer groups did not catch up");
        report_lag(r);
    }
    if (!services_alive(r))
        return;
    collect(r);
    verify(r, strict);
    stop_services(r);
}

/* N orders, no crashes; strict: no copies, no second gateway calls. */
static void scenario_steady(run_t *r, size_t n)
{
    plan_orders(r, n);
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    for (int i = 0; i < NSVC; i++)
        start_service(r, i);
    if (publish_range(r, 0, r->n) != 0 || flush_producer(r) != 0)
        return fail(r, "cannot publish the orders");
    say("published %zu orders", r->n);
    finish(r, 150000, 1);
}

/* Kills service i with SIGKILL and starts it again after a random pause. */
static void kill_and_restart(run_t *r, int i, int nth)
{
    int status;
    kill(r->pid[i], SIGKILL);
    waitpid(r->pid[i], &status, 0);
    r->kills[i]++;
    int down = rnd_below(r, 1000);
    say("killed %s (kill %d), restarting in %d ms", svc_names[i], nth, down);
    lev_test_sleep_ms(down);
    start_service(r, i);
}

static void scenario_crash(run_t *r, size_t n)
{
    /* one kill shortly after each wave of orders, while the services are
     * busy with it, and a few more while retries are still pending; each
     * service is killed the same number of times, in random order */
    enum { WAVES = 10, TAIL_KILLS = 2, KILLS = WAVES + TAIL_KILLS };
    int victims[KILLS];
    plan_orders(r, n);
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    for (int k = 0; k < KILLS; k++)
        victims[k] = k % NSVC;
    for (int k = KILLS - 1; k > 0; k--) {
        int j = rnd_below(r, k + 1), t = victims[k];
        victims[k] = victims[j];
        victims[j] = t;
    }
    for (int i = 0; i < NSVC; i++)
        start_service(r, i);
    size_t published = 0, per_wave = (n + WAVES - 1) / WAVES;
    for (int k = 0; k < KILLS; k++) {
        if (!services_alive(r))
            return;
        if (published < n) {
            size_t to = published + per_wave < n ? published + per_wave : n;
            if (publish_range(r, published, to) != 0 || flush_producer(r) != 0)
                return fail(r, "cannot publish the orders");
            published = to;
        }
        lev_test_sleep_ms(rnd_below(r, 700));
        kill_and_restart(r, victims[k], k + 1);
        lev_test_sleep_ms(500 + rnd_below(r, 1500));
    }
    say("published %zu orders; killed order-service %d, billing-service %d, "
        "notification-service %d times",
        published, r->kills[0], r->kills[1], r->kills[2]);
    if (published < n)
        return fail(r, "only %zu of %zu orders published", published, n);
    finish(r, 150000, 0);
}

/* Every OrderPlaced published twice; the second must change nothing. */
static void scenario_duplicate(run_t *r, size_t n)
{
    /* the first half finishes before its duplicates arrive; the second
     * half is published with its duplicates back to back */
    size_t half = n / 2;
    plan_orders(r, n);
    for (int i = 0; i < NSVC; i++)
        start_service(r, i);
    if (publish_range(r, 0, half) != 0 || flush_producer(r) != 0)
        return fail(r, "cannot publish the orders");
    size_t all = r->n;
    r->n = half; /* wait for the first half only */
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    if (wait_finished(r, 120000) != 0)
        return fail(r, "the first orders did not finish");
    if (wait_quiet(r, 60000) != 0)
        return fail(r, "the consumer groups did not catch up");
    r->n = all;
    say("first %zu orders finished; publishing duplicates", half);

    /* late duplicates: same event id for even orders, a new event id for odd ones */
    for (size_t i = 0; i < half; i++) {
        char fresh[LEV_UUID_STR_LEN];
        lev_uuid4(fresh);
        if (publish(r, &r->orders[i], i % 2 ? fresh : r->orders[i].event_id) != 0)
            return fail(r, "cannot publish a duplicate");
    }
    /* in-flight duplicates: each order twice in a row */
    for (size_t i = half; i < n; i++) {
        char fresh[LEV_UUID_STR_LEN];
        lev_uuid4(fresh);
        if (publish(r, &r->orders[i], r->orders[i].event_id) != 0 ||
            publish(r, &r->orders[i], i % 2 ? fresh : r->orders[i].event_id) != 0)
            return fail(r, "cannot publish a duplicate");
    }
    if (flush_producer(r) != 0)
        return fail(r, "cannot publish the duplicates");
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    finish(r, 120000, 1);
}

/* ----------------------------------------------------------------------
 * replay: evctl replay and evctl dlq redrive against the running services
 * ---------------------------------------------------------------------- */

/* What the run's topics and the HTTP fakes hold at one moment. */
typedef struct snapshot_s {
    int64_t end[NTOPICS][PARTITIONS]; /* end offsets, topic_names order */
    int64_t committed[NSVC];     /* each group's committed offsets on the orders topic, summed */
    size_t gw_lines, hook_lines; /* requests recorded by the gateway and the webhook */
    long log_size[NSVC];         /* bytes in each service's log */
} snapshot_t;

/* Lines in a file (0 when missing). */
static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    int c;
    if (!f)
        return 0;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Sum of the end offsets of topic k of a snapshot. */
static int64_t end_sum(const snapshot_t *s, int k)
{
    int64_t sum = 0;
    for (int p = 0; p < PARTITIONS; p++)
        sum += s->end[k][p];
    return sum;
}

/* Takes a snapshot; returns -1 (and fails the run) when the broker does not answer. */
static int take_snapshot(run_t *r, snapshot_t *s)
{
    char names[NTOPICS][200], path[700];
    struct stat st;
    memset(s, 0, sizeof *s);
    topic_names(r, names);
    for (int k = 0; k < NTOPICS; k++) {
        for (int p = 0; p < PARTITIONS; p++) {
            int64_t lo = 0;
            if (rd_kafka_query_watermark_offsets(r->admin, names[k], p, &lo, &s->end[k][p], 5000) !=
                0) {
                fail(r, "cannot read the end offsets of %s", names[k]);
                return -1;
            }
        }
    }
    for (int i = 0; i < NSVC; i++) {
        int64_t committed[PARTITIONS];
        if (lev_test_committed(r->group[i], r->orders_topic, PARTITIONS, committed) != 0) {
            fail(r, "cannot read the committed offsets of %s", r->group[i]);
            return -1;
        }
        for (int p = 0; p < PARTITIONS; p++)
            s->committed[i] += committed[p] > 0 ? committed[p] : 0;
        s->log_size[i] = stat(r->log[i], &st) == 0 ? (long)st.st_size : 0;
    }
    snprintf(path, sizeof path, "%s/gateway.jsonl", r->dir);
    s->gw_lines = count_lines(path);
    snprintf(path, sizeof path, "%s/webhook.jsonl", r->dir);
    s->hook_lines = count_lines(path);
    return 0;
}

/* Fails the run for every topic whose end moved between two snapshots,
 * except the orders topic, which must have grown by exactly orders_growth;
 * and when the gateway or the webhook received any request in between. */
static void expect_unchanged(run_t *r, const snapshot_t *a, const snapshot_t *b,
                             int64_t orders_growth, const char *when)
{
    char names[NTOPICS][200];
    topic_names(r, names);
    if (end_sum(b, 0) - end_sum(a, 0) != orders_growth)
        fail(r, "%s: %s grew by %lld records, expected %lld", when, names[0],
             (long long)(end_sum(b, 0) - end_sum(a, 0)), (long long)orders_growth);
    for (int k = 1; k < NTOPICS; k++)
        for (int p = 0; p < PARTITIONS; p++)
            if (a->end[k][p] != b->end[k][p])
                fail(r, "%s: %s [%d] moved from %lld to %lld", when, names[k], p,
                     (long long)a->end[k][p], (long long)b->end[k][p]);
    if (b->gw_lines != a->gw_lines)
        fail(r, "%s: the gateway received %zu requests (charges, key replays or refusals)", when,
             b->gw_lines - a->gw_lines);
    if (b->hook_lines != a->hook_lines)
        fail(r, "%s: the webhook received %zu requests", when, b->hook_lines - a->hook_lines);
}

/* Runs evctl with args (NULL-ended, without the program name); stdout and
 * stderr go to <dir>/evctl-<step>.out and .err. Returns its exit status
 * (-1 when it did not end within 2 minutes), its last stdout line (the
 * summary) parsed in *summary (NULL when not JSON) and its count of stdout
 * lines in *lines. */
static int run_evctl(run_t *r, const char *step, const char *const args[], json_t **summary,
                     size_t *lines)
{
    char out[700], err[700], *line = NULL, *last = NULL;
    const char *argv[24];
    size_t n = 0, cap = 0;
    int status = 0, rc;
    argv[n++] = r->evctl;
    for (size_t i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    snprintf(out, sizeof out, "%s/evctl-%s.out", r->dir, step);
    snprintf(err, sizeof err, "%s/evctl-%s.err", r->dir, step);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fin = open("/dev/null", O_RDONLY);
        int fout = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int ferr = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fin < 0 || fout < 0 || ferr < 0)
            _exit(127);
        dup2(fin, 0);
        dup2(fout, 1);
        dup2(ferr, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (lev_test_wait(pid, 120000, &status) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        rc = -1;
    } else {
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    *summary = NULL;
    *lines = 0;
    FILE *f = fopen(out, "r");
    while (f && getline(&line, &cap, f) > 0) {
        (*lines)++;
        free(last);
        last = strdup(line);
    }
    if (f)
        fclose(f);
    if (last)
        *summary = json_loads(last, 0, NULL);
    free(line);
    free(last);
    say("evctl %s: exit %d (output in %s, %s)", step, rc, out, err);
    return rc;
}

/* A number of an evctl summary (-1 when absent). */
static long long summary_int(const json_t *summary, const char *name)
{
    json_t *v = json_object_get(summary, name);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* POSTs body to the gateway's /control endpoint; 0 when it answered 200. */
/* POSTs body to /control of the fake listening on port. */
static int http_control(int port, const char *body)
{
    char req[512], resp[512];
    size_t got = 0;
    struct sockaddr_in a;
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_STREAM, 0), n;
    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    n = snprintf(req, sizeof req,
                 "POST /control HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 strlen(body), body);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        write(fd, req, (size_t)n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    for (ssize_t k; got + 1 < sizeof resp && (k = read(fd, resp + got, sizeof resp - 1 - got)) > 0;)
        got += (size_t)k;
    resp[got] = '\0';
    close(fd);
    return strncmp(resp, "HTTP/1.1 200", 12) == 0 || strncmp(resp, "HTTP/1.0 200", 12) == 0 ? 0
                                                                                            : -1;
}

static int gateway_control(run_t *r, const char *body)
{
    return http_control(r->gw_port, body);
}

/* qsort/bsearch order of string pointers. */
static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks that service i's log, from byte `from` on, says "duplicate
 * skipped" for each of the `nwant` event ids in want (sorted in place), and
 * for no other id. */
static void expect_skipped(run_t *r, int i, long from, char **want, size_t nwant)
{
    FILE *f = fopen(r->log[i], "r");
    char *line = NULL;
    size_t cap = 0, ngot = 0, gcap = 256, missing = 0, foreign = 0;
    char **got = malloc(gcap * sizeof *got);
    if (!f || !got || fseek(f, from, SEEK_SET) != 0) {
        fail(r, "cannot read %s", r->log[i]);
        if (f)
            fclose(f);
        free(got);
        return;
    }
    while (getline(&line, &cap, f) > 0) {
        if (!strstr(line, "duplicate skipped"))
            continue;
        json_t *j = json_loads(line, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "msg"));
        const char *id = json_string_value(json_object_get(j, "event_id"));
        if (msg && id && !strcmp(msg, "duplicate skipped")) {
            if (ngot == gcap && !(got = realloc(got, (gcap *= 2) * sizeof *got)))
                abort();
            got[ngot++] = strdup(id);
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    qsort(got, ngot, sizeof *got, str_cmp);
    qsort(want, nwant, sizeof *want, str_cmp);
    for (size_t k = 0; k < nwant; k++)
        if (!bsearch(&want[k], got, ngot, sizeof *got, str_cmp) && missing++ < 3)
            fail(r, "%s did not skip the replayed event %s as a duplicate", svc_names[i], want[k]);
    for (size_t k = 0; k < ngot; k++)
        if (!bsearch(&got[k], want, nwant, sizeof *want, str_cmp) && foreign++ < 3)
            fail(r, "%s skipped event %s, which was not replayed to it", svc_names[i], got[k]);
    if (missing || foreign)
        fail(r, "%s: %zu replayed events not skipped, %zu other events skipped", svc_names[i],
             missing, foreign);
    say("%s skipped %zu replayed events as duplicates (%zu log lines), expected %zu", svc_names[i],
        lev_test_distinct(got, ngot), ngot, nwant);
    lev_test_strings_free(got, ngot);
}

/* Waits until every order finished and the groups caught up. */
static int settle(run_t *r, int timeout_ms)
{
    if (wait_finished(r, timeout_ms) != 0)
        return fail(r, "not every order finished in time"), -1;
    if (wait_quiet(r, 90000) != 0) {
        fail(r, "the consumer groups did not catch up");
        report_lag(r);
        return -1;
    }
    return services_alive(r) ? 0 : -1;
}

/* Replays the orders topic into itself; every group must skip every
 * replayed event it handles, with no side effect and no emitted event. */
static void replay_processed(run_t *r)
{
    snapshot_t a, b;
    char until[200];
    size_t used = 0, copied;
    json_t *sum;
    if (take_snapshot(r, &a) != 0)
        return;
    for (int p = 0; p < PARTITIONS; p++)
        used += (size_t)snprintf(until + used, sizeof until - used, "%s%d:%lld", p ? "," : "", p,
                                 (long long)a.end[0][p]);
    say("before the replay: %lld records in the orders topic (up to %s), %lld payment results, "
        "%lld NotificationSent; %zu gateway requests, %zu webhook requests",
        (long long)end_sum(&a, 0), until, (long long)end_sum(&a, 1), (long long)end_sum(&a, 2),
        a.gw_lines, a.hook_lines);

    const char *args[] = {"replay", r->orders_topic, "--from",        "beginning", "--until",
                          until,    "--to",          r->orders_topic, NULL};
    size_t lines;
    int rc = run_evctl(r, "replay", args, &sum, &lines);
    long long n = summary_int(sum, "copied");
    if (rc != 0 || n != end_sum(&a, 0) || summary_int(sum, "failed") != 0) {
        fail(r, "evctl replay: exit %d, copied %lld of %lld records, failed %lld", rc, n,
             (long long)end_sum(&a, 0), summary_int(sum, "failed"));
        json_decref(sum);
        return;
    }
    json_decref(sum);
    copied = (size_t)n;
    say("replayed %zu records into %s", copied, r->orders_topic);
    /* each replayed decision or terminal event is a copy of one already there
     * (collect_topic does not count OrderPlaced copies) */
    r->expected_copies = copied - r->n;
    if (wait_quiet(r, 60000) != 0) {
        fail(r, "the consumer groups did not catch up with the replay");
        report_lag(r);
        return;
    }
    if (!services_alive(r) || take_snapshot(r, &b) != 0)
        return;
    expect_unchanged(r, &a, &b, (int64_t)copied, "after the replay");
    for (int i = 0; i < NSVC; i++) {
        say("%s: committed offsets on the orders topic moved from %lld to %lld", svc_names[i],
            (long long)a.committed[i], (long long)b.committed[i]);
        if (b.committed[i] - a.committed[i] != (int64_t)copied)
            fail(r, "%s committed %lld more offsets on the orders topic, expected %zu",
                 svc_names[i], (long long)(b.committed[i] - a.committed[i]), copied);
    }

    /* who must have skipped what: order-service every OrderPlaced, billing
     * every OrderAccepted, notification every terminal event */
    char **want = calloc(r->n, sizeof *want);
    if (!want)
        abort();
    for (int i = 0; i < NSVC; i++) {
        size_t k = 0;
        for (size_t j = 0; j < r->n; j++) {
            const order_t *o = &r->orders[j];
            if (i == SVC_ORDER)
                want[k++] = (char *)o->event_id;
            else if (i == SVC_BILLING && o->expect != EXP_REJECTED && o->decision.n == 1)
                want[k++] = (char *)o->decision.ids[0];
            else if (i == SVC_NOTIFICATION && o->terminal.n == 1)
                want[k++] = (char *)o->terminal.ids[0];
        }
        expect_skipped(r, i, a.log_size[i], want, k);
    }
    free(want);

    /* and every invariant still holds, with the copies accounted for */
    collect(r);
    verify(r, 1);
    if (r->replayed_records != copied)
        fail(r, "%zu records carry the replay header, evctl copied %zu", r->replayed_records,
             copied);
}

/* Billing dead-letters orders the gateway refuses; after the gateway is
 * fixed, a dry-run redrive sends nothing and a redrive gets them confirmed. */
static void redrive_refused(run_t *r, size_t count)
{
    char dlq[200], key[300], *text = NULL;
    snapshot_t a, b;
    json_t *sum;
    size_t first = r->n, lines, n = 0;
    lev_error_t err;

    plan_more(r, count, K_REFUSED);
    if (publish_range(r, first, r->n) != 0 || flush_producer(r) != 0)
        return fail(r, "cannot publish the orders");
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    say("published %zu orders the gateway refuses", count);

    lev_dlq_topic_name(r->group[SVC_BILLING], dlq, sizeof dlq);
    for (int64_t deadline = lev_mono_ms() + 60000; lev_mono_ms() < deadline;) {
        lev_test_record_t *recs;
        n = lev_test_read_topic(dlq, count, 2000, &recs);
        lev_test_records_free(recs, n);
        if (n >= count || !services_alive(r))
            break;
        lev_test_sleep_ms(500);
    }
    if (n < count)
        return fail(r, "%zu of %zu refused orders reached %s", n, count, dlq);
    if (wait_quiet(r, 60000) != 0) {
        fail(r, "the consumer groups did not catch up");
        report_lag(r);
        return;
    }
    /* dead-lettered, stuck in "accepted", not charged, not notified */
    collect(r);
    if (r->dead_letters)
        fail(r, "%zu unexpected dead letters", r->dead_letters);
    lev_store_t *store = lev_store_new(r->conf.redis_url, 5000, &err);
    if (!store)
        return fail(r, "cannot connect to Redis at %s", r->conf.redis_url);
    for (size_t i = 0; i < r->n; i++) {
        const order_t *o = &r->orders[i];
        if (o->kind != K_REFUSED)
            continue;
        if (o->dead_letters != 1 || o->gw_refused < 1 || o->gw_charges || o->decision.n != 1 ||
            o->payment.n || o->terminal.n || o->sent.n || o->hook_deliveries)
            fail(r,
                 "refused order %s: %d dead letters, %d refusals, %d charges, %d decisions, "
                 "%d payment results, %d terminal events, %d NotificationSent, %d deliveries",
                 o->id, o->dead_letters, o->gw_refused, o->gw_charges, o->decision.n, o->payment.n,
                 o->terminal.n, o->sent.n, o->hook_deliveries);
        snprintf(key, sizeof key, "order-service:order:%s", o->id);
        json_t *j = NULL;
        if (lev_store_get(store, key, &text, NULL) == 0 && text)
            j = json_loads(text, 0, NULL);
        const char *status = json_string_value(json_object_get(j, "status"));
        if (!status || strcmp(status, "accepted") != 0)
            fail(r, "refused order %s: Redis says %s, expected accepted", o->id,
                 status ? status : "nothing");
        json_decref(j);
        free(text);
        text = NULL;
        snprintf(key, sizeof key, "billing-service:charge:%s", o->id);
        if (lev_store_get(store, key, &text, NULL) != 0 || text)
            fail(r, "refused order %s: billing recorded an outcome: %s", o->id,
                 text ? text : "(cannot read)");
        free(text);
        text = NULL;
    }
    lev_store_destroy(store);
    if (r->failures)
        return;
    say("%zu refused orders are in %s; fixing the gateway", count, dlq);

    if (gateway_control(r, "{\"refuse\": false}") != 0)
        return fail(r, "the gateway's /control did not answer 200");
    if (take_snapshot(r, &a) != 0)
        return;
    const char *dry[] = {"dlq", "redrive", r->group[SVC_BILLING], "--dry-run", NULL};
    int rc = run_evctl(r, "redrive-dry-run", dry, &sum, &lines);
    if (rc != 0 || summary_int(sum, "would_copy") != (long long)count || lines != count + 1)
        fail(r,
             "evctl dlq redrive --dry-run: exit %d, would copy %lld, %zu output lines; "
             "expected exit 0, %zu and %zu",
             rc, summary_int(sum, "would_copy"), lines, count, count + 1);
    json_decref(sum);
    /* had the dry run sent anything, it would be in the topics by now (evctl
     * exits after its deliveries); once every group has caught up, it would
     * also have been handled (charges, notifications) */
    if (wait_quiet(r, 60000) != 0) {
        fail(r, "the consumer groups did not catch up after the dry run");
        report_lag(r);
        return;
    }
    if (take_snapshot(r, &b) != 0)
        return;
    expect_unchanged(r, &a, &b, 0, "after the dry-run redrive");
    if (r->failures)
        return;

    const char *real[] = {"dlq", "redrive", r->group[SVC_BILLING], NULL};
    rc = run_evctl(r, "redrive", real, &sum, &lines);
    if (rc != 0 || summary_int(sum, "copied") != (long long)count)
        fail(r, "evctl dlq redrive: exit %d, copied %lld of %zu", rc, summary_int(sum, "copied"),
             count);
    json_decref(sum);
    r->expected_copies += count; /* the OrderAccepted events, with their ids */
}

/* N processed orders replayed, then dead letters redriven. */
static void scenario_replay(run_t *r, size_t n)
{
    enum { REFUSED = 8 }; /* orders the gateway refuses until it is fixed */
    plan_orders(r, n);
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    for (int i = 0; i < NSVC; i++)
        start_service(r, i);
    if (publish_range(r, 0, r->n) != 0 || flush_producer(r) != 0)
        return fail(r, "cannot publish the orders");
    say("published %zu orders", r->n);
    if (settle(r, 150000) != 0)
        return;
    collect(r);
    verify(r, 1);
    if (r->failures)
        return;
    replay_processed(r);
    if (r->failures)
        return;
    redrive_refused(r, REFUSED);
    if (r->failures)
        return;
    finish(r, 90000, 1);
    if (r->redriven_records != REFUSED)
        fail(r, "%zu records carry the redrive header, expected %d", r->redriven_records, REFUSED);
}

/* ======================================================================
 * main
 * ====================================================================== */

/* 1 when the service's log has a line with `text`. */
static void scenario_outage(run_t *r, size_t n)
{
    enum { HOOK_DOWN_S = 60, GATEWAY_DOWN_S = 30 };
    /* short probe intervals (every scenario's, see start_service), so the
     * test does not wait long after the end */
    plan_orders(r, n);
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    char body[64];
    snprintf(body, sizeof body, "{\"down_s\": %d}", HOOK_DOWN_S);
    if (http_control(r->hook_port, body) != 0)
        return fail(r, "cannot take the webhook down");
    snprintf(body, sizeof body, "{\"down_s\": %d}", GATEWAY_DOWN_S);
    if (http_control(r->gw_port, body) != 0)
        return fail(r, "cannot take the gateway down");
    int64_t down_at = lev_mono_ms();
    say("webhook down for %d s, gateway for %d s", HOOK_DOWN_S, GATEWAY_DOWN_S);
    for (int i = 0; i < NSVC; i++)
        start_service(r, i);
    /* half at once, half while the outage goes on */
    if (publish_range(r, 0, r->n / 2) != 0 || flush_producer(r) != 0)
        return fail(r, "cannot publish the orders");
    lev_test_sleep_ms(GATEWAY_DOWN_S * 1000 / 2);
    if (publish_range(r, r->n / 2, r->n) != 0 || flush_producer(r) != 0)
        return fail(r, "cannot publish the orders");
    say("published %zu orders during the outage", r->n);
    int64_t back_at = down_at + HOOK_DOWN_S * 1000;
    while (lev_mono_ms() < back_at && services_alive(r))
        lev_test_sleep_ms(500); /* the outage lasts */
    say("webhook back");
    finish(r, 150000, 1);
    say("drained %.1f s after the webhook came back", (double)(lev_mono_ms() - back_at) / 1000.0);
    if (r->hook_down == 0 || r->gw_down == 0)
        fail(r, "the outage was not seen: %zu webhook and %zu gateway calls while down",
             r->hook_down, r->gw_down);
    for (int i = SVC_BILLING; i <= SVC_NOTIFICATION; i++) {
        if (!log_has(r, i, "\"msg\":\"circuit breaker opened\""))
            fail(r, "%s never opened its circuit breaker; see %s", svc_names[i], r->log[i]);
        if (!log_has(r, i, "\"msg\":\"circuit breaker closed\""))
            fail(r, "%s never closed its circuit breaker; see %s", svc_names[i], r->log[i]);
    }
    say("calls while down: webhook %zu, gateway %zu", r->hook_down, r->gw_down);
}

static void scenario_slow(run_t *r, size_t n)
{
    plan_orders(r, n);
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    if (http_control(r->hook_port, "{\"delay_ms\": 500}") != 0 ||
        http_control(r->gw_port, "{\"delay_ms\": 300}") != 0)
        return fail(r, "cannot slow the fakes down");
    for (int i = 0; i < NSVC; i++)
        start_service(r, i);
    if (publish_range(r, 0, r->n) != 0 || flush_producer(r) != 0)
        return fail(r, "cannot publish the orders");
    say("published %zu orders; webhook takes 500 ms, gateway 300 ms", r->n);
    finish(r, 150000, 1);
    say("requests at once: webhook %d, gateway %d", r->hook_inflight_max, r->gw_inflight_max);
    /* one request at a time would be 1; the services run them side by side */
    if (r->hook_inflight_max < 8)
        fail(r, "at most %d webhook requests at once, expected 8 or more", r->hook_inflight_max);
    if (r->gw_inflight_max < 8)
        fail(r, "at most %d gateway requests at once, expected 8 or more", r->gw_inflight_max);
}

/* ======================================================================
 * Prometheus
 * ====================================================================== */

/* Writes the server's configuration: one job per service, named after it,
 * scraped every second. */
static int write_prometheus_config(run_t *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
               "scrape_configs:\n");
    for (int i = 0; i < NSVC; i++)
        fprintf(f, "  - job_name: %s\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n",
                svc_names[i], r->http_port[i]);
    return fclose(f);
}

/* 1 when Prometheus says it is ready. */
static int prometheus_ready(void *arg)
{
    run_t *r = arg;
    return lev_test_http("GET", r->prom_port, "/-/ready", 2000, NULL, NULL) == 200;
}

/* Starts Prometheus on reserved ports (one for it, one per service's
 * endpoint), its data under the run directory; another set of ports
 * should one be taken after all. */
static int start_prometheus(run_t *r)
{
    char config[600], data[600], log[600], listen[64], cfg_arg[640], data_arg[640];
    snprintf(config, sizeof config, "%s/prometheus.yml", r->dir);
    snprintf(data, sizeof data, "%s/prometheus-data", r->dir);
    snprintf(log, sizeof log, "%s/prometheus.log", r->dir);
    snprintf(cfg_arg, sizeof cfg_arg, "--config.file=%s", config);
    snprintf(data_arg, sizeof data_arg, "--storage.tsdb.path=%s", data);
    for (int attempt = 1; attempt <= 3; attempt++) {
        int base = lev_test_reserve_ports(NSVC + 1);
        if (base < 0)
            return -1;
        for (int i = 0; i < NSVC; i++)
            r->http_port[i] = base + i;
        r->prom_port = base + NSVC;
        if (write_prometheus_config(r, config) != 0)
            return -1;
        snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", r->prom_port);
        char *argv[] = {(char *)r->prometheus, cfg_arg, data_arg, listen, NULL};
        r->prom_pid = lev_test_spawn(argv, NULL, log);
        int64_t deadline = lev_mono_ms() + 60000;
        while (lev_mono_ms() < deadline) {
            int status;
            if (prometheus_ready(r)) {
                say("prometheus ready on 127.0.0.1:%d (log %s)", r->prom_port, log);
                return 0;
            }
            if (waitpid(r->prom_pid, &status, WNOHANG) == r->prom_pid) {
                r->prom_pid = 0;
                break; /* exited: its port was taken, or worse (see the log) */
            }
            lev_test_sleep_ms(100);
        }
        if (r->prom_pid > 0) {
            kill(r->prom_pid, SIGKILL);
            lev_test_wait(r->prom_pid, 5000, NULL);
            r->prom_pid = 0;
        }
        say("prometheus did not start on 127.0.0.1:%d; see %s", r->prom_port, log);
    }
    return -1;
}

/* Percent-encodes s for a query string. */
static void url_encode(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s && n + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
}

/* Asks Prometheus for the instant value of query q: the result vector (a
 * new reference), or NULL (with the reason in why) when it failed. */
static json_t *prom_query(run_t *r, const char *q, char *why, size_t why_size)
{
    char path[8192], enc[7000];
    url_encode(q, enc, sizeof enc);
    snprintf(path, sizeof path, "/api/v1/query?query=%s", enc);
    char *body = NULL;
    int status = lev_test_http("GET", r->prom_port, path, 10000, &body, NULL);
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    json_t *res = json_object_get(json_object_get(j, "data"), "result");
    if (status != 200 || !json_is_array(res)) {
        snprintf(why, why_size, "HTTP %d: %.300s", status, body ? body : "(no answer)");
        res = NULL;
    } else {
        json_incref(res);
    }
    json_decref(j);
    free(body);
    return res;
}

/* The sum of the values of a query's result (-1 when it failed or is empty). */
static double prom_value(run_t *r, const char *q)
{
    char why[400];
    json_t *res = prom_query(r, q, why, sizeof why);
    double sum = -1;
    size_t i;
    json_t *sample;
    json_array_foreach(res, i, sample)
    {
        const char *v = json_string_value(json_array_get(json_object_get(sample, "value"), 1));
        sum = (sum < 0 ? 0 : sum) + (v ? strtod(v, NULL) : 0);
    }
    json_decref(res);
    return sum;
}

typedef struct prom_want_s {
    run_t *r;
    const char *q;
    double want;
    int at_least;
} prom_want_t;

static int prom_is(void *arg)
{
    prom_want_t *w = arg;
    double v = prom_value(w->r, w->q);
    return w->at_least ? v >= w->want : v == w->want;
}

/* Checks, with a deadline, that Prometheus sees q at `want` (at_least:
 * `want` or more). */
static void expect_prom_as(run_t *r, const char *q, double want, int at_least)
{
    prom_want_t w = {r, q, want, at_least};
    char what[600];
    snprintf(what, sizeof what, "Prometheus: %s %s %g", q, at_least ? ">=" : "==", want);
    if (lev_test_wait_for(prom_is, &w, 500, 60000, what) != 0)
        fail(r, "%s is %g through Prometheus, not %s%g", q, prom_value(r, q),
             at_least ? "at least " : "", want);
}

static void expect_prom(run_t *r, const char *q, double want)
{
    expect_prom_as(r, q, want, 0);
}

/* Runs the queries of a list of dashboard panels (and of the panels of
 * collapsed rows), with the variables set to every service and a
 * one-minute rate window, and expects each to return data. Returns the
 * number of queries. */
static int check_panels(run_t *r, const json_t *panels)
{
    size_t i, k;
    json_t *p, *t;
    int n = 0;
    json_array_foreach(panels, i, p)
    {
        n += check_panels(r, json_object_get(p, "panels"));
        json_array_foreach(json_object_get(p, "targets"), k, t)
        {
            const char *expr = json_string_value(json_object_get(t, "expr"));
            if (!expr)
                continue;
            char q[4096];
            size_t o = 0;
            for (const char *c = expr; *c && o + 16 < sizeof q;) {
                if (strncmp(c, "$__rate_interval", 16) == 0) {
                    o += (size_t)snprintf(q + o, sizeof q - o, "1m");
                    c += 16;
                } else if (strncmp(c, "$job", 4) == 0) {
                    o += (size_t)snprintf(q + o, sizeof q - o, ".*");
                    c += 4;
                } else {
                    q[o++] = *c++;
                }
            }
            q[o] = '\0';
            char why[400] = "no data";
            json_t *res = prom_query(r, q, why, sizeof why);
            if (!res || json_array_size(res) == 0)
                fail(r, "dashboard panel \"%s\": %s gives %s",
                     json_string_value(json_object_get(p, "title")), q, res ? "no data" : why);
            json_decref(res);
            n++;
        }
    }
    return n;
}

/* Every query of the dashboard returns data; the number of queries. */
static int check_dashboard(run_t *r)
{
    json_error_t jerr;
    json_t *d = json_load_file(r->dashboard, 0, &jerr);
    if (!d) {
        fail(r, "%s: %s (line %d)", r->dashboard, jerr.text, jerr.line);
        return 0;
    }
    int n = check_panels(r, json_object_get(d, "panels"));
    json_decref(d);
    return n;
}

typedef struct {
    run_t *r;
    int port;
} probe_t;

static int service_ready(void *arg)
{
    probe_t *p = arg;
    return lev_test_http("GET", p->port, "/readyz", 5000, NULL, NULL) == 200;
}

/* promtool check metrics on service i's /metrics. */
static void promtool_service(run_t *r, int i)
{
    char *body = NULL, path[700], cmd[1600];
    if (lev_test_http("GET", r->http_port[i], "/metrics", 10000, &body, NULL) != 200 || !body) {
        fail(r, "%s: GET /metrics failed", svc_names[i]);
        free(body);
        return;
    }
    snprintf(path, sizeof path, "%s/%s.metrics.txt", r->dir, svc_names[i]);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(body, f);
        fclose(f);
    }
    free(body);
    snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' >&2", r->promtool, path);
    if (system(cmd) != 0)
        fail(r, "promtool check metrics refuses %s's /metrics (%s)", svc_names[i], path);
}

/* Steady orders with the three services watched by a real Prometheus. */
static void scenario_prometheus(run_t *r, size_t n)
{
    if (start_prometheus(r) != 0)
        return fail(r, "Prometheus did not start");
    plan_orders(r, n);
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    for (int i = 0; i < NSVC; i++)
        start_service(r, i);
    for (int i = 0; i < NSVC; i++) {
        probe_t pr = {r, r->http_port[i]};
        char what[128];
        snprintf(what, sizeof what, "%s /readyz 200", svc_names[i]);
        if (lev_test_wait_for(service_ready, &pr, 200, 90000, what) != 0)
            fail(r, "%s never said it is ready", svc_names[i]);
    }
    /* scraped before and during the run, not only after it */
    expect_prom(r, "count(up == 1)", NSVC);
    if (publish_range(r, 0, r->n) != 0 || flush_producer(r) != 0)
        return fail(r, "cannot publish the orders");
    say("published %zu orders", r->n);
    if (wait_finished(r, 150000) != 0)
        fail(r, "not every order finished in time");
    if (wait_quiet(r, 90000) != 0) {
        fail(r, "the consumer groups did not catch up");
        report_lag(r);
    }
    if (!services_alive(r))
        return;
    /* rates over the dashboard's window need a few scrapes of each */
    expect_prom_as(r, "min(count_over_time(up[1m]))", 5, 1);

    /* what the services counted, as Prometheus scraped it, is the plan */
    int confirmed = 0, rejected = 0, cancelled = 0;
    for (size_t i = 0; i < r->n; i++) {
        confirmed += r->orders[i].expect == EXP_CONFIRMED;
        rejected += r->orders[i].expect == EXP_REJECTED;
        cancelled += r->orders[i].expect == EXP_CANCELLED;
    }
    expect_prom(r, "sum(shop_orders_total{job=\"order-service\",state=\"accepted\"})",
                confirmed + cancelled);
    expect_prom(r, "sum(shop_orders_total{job=\"order-service\",state=\"rejected\"})", rejected);
    expect_prom(r, "sum(shop_orders_total{job=\"order-service\",state=\"confirmed\"})", confirmed);
    expect_prom(r, "sum(shop_orders_total{job=\"order-service\",state=\"cancelled\"})", cancelled);
    expect_prom(r, "sum(shop_charges_total{job=\"billing-service\",outcome=\"succeeded\"})",
                confirmed);
    expect_prom(r, "sum(shop_charges_total{job=\"billing-service\",outcome=\"declined\"})",
                cancelled);
    expect_prom(r,
                "sum(shop_notifications_total{job=\"notification-service\",channel=\"webhook\","
                "outcome=\"delivered\"})",
                (double)r->n);
    expect_prom(r, "sum(lev_dead_letters_total)", 0);
    /* the last of the work is in the series the dashboard reads: the
     * OrderPlaced handled by order-service */
    expect_prom(r,
                "sum(lev_records_handled_total{job=\"order-service\","
                "type=\"shop.order.OrderPlaced\",result=\"ok\"})",
                (double)r->n);
    int nq = check_dashboard(r);
    say("%d queries of the dashboard answered through Prometheus", nq);
    if (nq < 10)
        fail(r, "the dashboard has only %d queries", nq);
    for (int i = 0; i < NSVC; i++)
        promtool_service(r, i);

    collect(r);
    verify(r, 1);
    stop_services(r);
}

/* ======================================================================
 * Jaeger
 * ====================================================================== */

/* Starts Jaeger with tools/jaeger on reserved loopback ports. */
static int start_jaeger(run_t *r)
{
    snprintf(r->jaeger_dir, sizeof r->jaeger_dir, "%s/jaeger", r->dir);
    for (int attempt = 1; attempt <= 3; attempt++) {
        int base = lev_test_reserve_ports(3); /* OTLP, query, query's gRPC */
        if (base < 0)
            break;
        r->otlp_port = base;
        r->query_port = base + 1;
        char cmd[1400];
        snprintf(cmd, sizeof cmd,
                 "'%s' start --dir '%s' --otlp-port %d --query-port %d --timeout 120 >&2",
                 r->jaeger, r->jaeger_dir, r->otlp_port, r->query_port);
        if (system(cmd) == 0) {
            say("jaeger ready: OTLP on 127.0.0.1:%d, query on 127.0.0.1:%d", r->otlp_port,
                r->query_port);
            return 0;
        }
        snprintf(cmd, sizeof cmd, "'%s' stop --dir '%s' >&2", r->jaeger, r->jaeger_dir);
        if (system(cmd) != 0)
            say("stopping jaeger failed");
    }
    r->jaeger_dir[0] = '\0';
    return -1;
}

/* One span of a trace as Jaeger's query API returns it. */
typedef struct jspan_s {
    const char *id, *parent, *service, *op, *kind;
} jspan_t;

static const char *jtag(json_t *span, const char *key)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(span, "tags"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "key")), key) == 0)
            return json_string_value(json_object_get(t, "value"));
    }
    return NULL;
}

static const jspan_t *jfind(const jspan_t *s, size_t n, const char *id)
{
    for (size_t i = 0; id && i < n; i++)
        if (strcmp(s[i].id, id) == 0)
            return &s[i];
    return NULL;
}

/* Checks an order's trace: spans of the services it went through, each
 * process span the child of the publish span of the event it handled,
 * from notification-service back to the first order-service span. 0 when
 * it is complete, 1 when not yet (spans still coming), -1 when wrong. */
static int check_trace(run_t *r, const order_t *o, int final)
{
    char path[128], *body = NULL;
    snprintf(path, sizeof path, "/api/traces/%.32s", o->traceparent + 3);
    int status = lev_test_http("GET", r->query_port, path, 5000, &body, NULL);
    json_t *doc = status == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    json_t *trace = json_array_get(json_object_get(doc, "data"), 0);
    json_t *spans = json_object_get(trace, "spans"), *procs = json_object_get(trace, "processes");
    size_t n = json_array_size(spans), i;
    jspan_t *js = calloc(n ? n : 1, sizeof *js);
    json_t *sp;
    json_array_foreach(spans, i, sp)
    {
        json_t *ref = json_array_get(json_object_get(sp, "references"), 0);
        js[i].id = json_string_value(json_object_get(sp, "spanID"));
        js[i].parent = ref ? json_string_value(json_object_get(ref, "spanID")) : NULL;
        js[i].service = json_string_value(json_object_get(
            json_object_get(procs, json_string_value(json_object_get(sp, "processID"))),
            "serviceName"));
        js[i].op = json_string_value(json_object_get(sp, "operationName"));
        js[i].kind = jtag(sp, "span.kind");
    }
    /* the notification's process span, and the chain of process spans above it */
    int accepted = o->expect == EXP_CONFIRMED || o->expect == EXP_CANCELLED;
    const char *want[4] = {"notification-service", "order-service",
                           accepted ? "billing-service" : NULL, accepted ? "order-service" : NULL};
    const jspan_t *at = NULL;
    for (size_t k = 0; k < n && !at; k++)
        if (js[k].service && !strcmp(js[k].service, "notification-service") && js[k].kind &&
            !strcmp(js[k].kind, "consumer"))
            at = &js[k];
    int step = 0, wrong = 0;
    char seen[300] = "";
    while (at && step < 4 && want[step]) {
        size_t used = strlen(seen);
        snprintf(seen + used, sizeof seen - used, "%s%s", used ? " <- " : "",
                 at->service ? at->service : "?");
        if (!at->service || strcmp(at->service, want[step]) != 0 || !at->kind ||
            strcmp(at->kind, "consumer") != 0) {
            wrong = 1;
            break;
        }
        step++;
        /* the publish span of the event it handled, in the service before */
        const jspan_t *pub = jfind(js, n, at->parent);
        if (!pub)
            break;
        if (!pub->kind || strcmp(pub->kind, "producer") != 0 ||
            (want[step] && (!pub->service || strcmp(pub->service, want[step]) != 0))) {
            wrong = 1;
            break;
        }
        at = jfind(js, n, pub->parent);
    }
    int complete = !wrong && step == (accepted ? 4 : 2);
    if (final && !complete)
        fail(r, "order %s: its trace %.32s has %zu spans; chain of process spans found: %s%s",
             o->id, o->traceparent + 3, n, seen[0] ? seen : "(none)",
             wrong ? " (out of order)" : " (incomplete)");
    free(js);
    json_decref(doc);
    return complete ? 0 : wrong ? -1 : 1;
}

/* Orders through the three services, each traced into a real Jaeger: one
 * trace per order, its spans from each service in parent/child order. */
static void scenario_jaeger(run_t *r, size_t n)
{
    if (start_jaeger(r) != 0)
        return fail(r, "Jaeger did not start (tools/jaeger; see %s/jaeger)", r->dir);
    snprintf(r->otel_env[0], sizeof r->otel_env[0],
             "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:%d", r->otlp_port);
    snprintf(r->otel_env[1], sizeof r->otel_env[1], "OTEL_BSP_SCHEDULE_DELAY=200");
    r->extra_env[0] = r->otel_env[0];
    r->extra_env[1] = r->otel_env[1];
    r->extra_env[2] = NULL;
    plan_orders(r, n);
    for (size_t i = 0; i < r->n; i++)
        lev_traceparent_new(NULL, r->orders[i].traceparent);
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    for (int i = 0; i < NSVC; i++)
        start_service(r, i);
    if (publish_range(r, 0, r->n) != 0 || flush_producer(r) != 0)
        return fail(r, "cannot publish the orders");
    say("published %zu orders", r->n);
    if (wait_finished(r, 150000) != 0)
        fail(r, "not every order finished in time");
    if (!services_alive(r))
        return;
    /* the services export their last spans when they stop */
    stop_services(r);
    size_t complete = 0;
    int64_t deadline = lev_mono_ms() + 30000;
    while (lev_mono_ms() < deadline) {
        complete = 0;
        int wrong = 0;
        for (size_t i = 0; i < r->n && !wrong; i++) {
            int c = check_trace(r, &r->orders[i], 0);
            complete += c == 0;
            wrong |= c < 0;
        }
        if (complete == r->n || wrong)
            break;
        lev_test_sleep_ms(500);
    }
    if (complete != r->n)
        for (size_t i = 0; i < r->n; i++)
            check_trace(r, &r->orders[i], 1);
    say("%zu of %zu orders have their whole trace in Jaeger", complete, r->n);
    collect(r);
    verify(r, 1);
}

/* ======================================================================
 * scale: instances join and leave while orders flow
 * ====================================================================== */

static int ts_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Timestamps (ms) of the records service i emitted, sorted; their count. */
static size_t output_times(run_t *r, int i, int64_t **out)
{
    const char *topic = i == SVC_ORDER     ? r->orders_topic
                        : i == SVC_BILLING ? r->payments_topic
                                           : r->notifications_topic;
    lev_test_record_t *recs;
    char type[160];
    size_t n = lev_test_read_topic(topic, 0, 10000, &recs), m = 0;
    int64_t *t = malloc((n ? n : 1) * sizeof *t);
    for (size_t k = 0; t && k < n; k++) {
        lev_test_header(&recs[k], LEV_H_CE_TYPE, type, sizeof type);
        if (strcmp(type, "shop.order.OrderPlaced") != 0) /* the test's own */
            t[m++] = recs[k].timestamp;
    }
    lev_test_records_free(recs, n);
    if (t)
        qsort(t, m, sizeof *t, ts_cmp);
    *out = t;
    return t ? m : 0;
}

/* The longest gap between consecutive times within [from, to]. */
static int64_t longest_gap(const int64_t *t, size_t n, int64_t from, int64_t to)
{
    int64_t best = 0;
    for (size_t k = 1; k < n; k++)
        if (t[k] >= from && t[k - 1] <= to && t[k] - t[k - 1] > best)
            best = t[k] - t[k - 1];
    return best;
}

static void scenario_scale(run_t *r, size_t n, int eager)
{
    enum { WAVES = 160, WAVE_MS = 250, CHANGES = 4 };
    static const char *eager_env[] = {"KAFKA_PARTITION_ASSIGNMENT_STRATEGY=range", NULL};
    static const char *const what[CHANGES] = {
        "a second instance of each service joins", "a third instance joins",
        "the second instance leaves (SIGTERM)", "the third instance leaves (SIGTERM)"};
    const int at[CHANGES] = {20, 50, 90, 120};
    int64_t when[CHANGES] = {0}; /* wall clock ms, as the records' timestamps */
    if (eager)
        r->extra_env[0] = eager_env[0];
    plan_orders(r, n);
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    for (int i = 0; i < NSVC; i++)
        start_service(r, i);
    size_t published = 0, per_wave = (n + WAVES - 1) / WAVES;
    for (int w = 0; w < WAVES; w++) {
        int64_t t0 = lev_mono_ms();
        if (!services_alive(r))
            return;
        for (int c = 0; c < CHANGES; c++) {
            if (w != at[c])
                continue;
            when[c] = lev_now_ms();
            for (int i = 0; i < NSVC; i++) {
                if (c < 2)
                    start_extra(r, i, c);
                else
                    stop_extra(r, i, c - 2);
            }
            say("%s (%s assignment), after %zu orders", what[c], eager ? "eager" : "cooperative",
                published);
        }
        if (published < n) {
            size_t to = published + per_wave < n ? published + per_wave : n;
            if (publish_range(r, published, to) != 0)
                return fail(r, "cannot publish the orders");
            published = to;
        }
        int64_t left = WAVE_MS - (lev_mono_ms() - t0);
        if (left > 0)
            lev_test_sleep_ms((int)left);
    }
    if (flush_producer(r) != 0)
        return fail(r, "cannot publish the orders");
    for (int i = 0; i < NSVC; i++)
        for (int k = 0; k < 2; k++)
            reap_extra(r, i, k, 40000);
    if (wait_finished(r, 150000) != 0)
        fail(r, "not every order finished in time");
    /* the pause each change cost, from the services' outputs: the longest
     * gap in 10 s after it, against the longest before the first change */
    for (int i = 0; i < NSVC; i++) {
        int64_t *t;
        size_t m = output_times(r, i, &t);
        char line[600];
        int off = snprintf(line, sizeof line,
                           "%s: longest gap in its outputs: %lld ms before "
                           "any change",
                           svc_names[i], (long long)longest_gap(t, m, when[0] - 4000, when[0]));
        for (int c = 0; c < CHANGES && off > 0 && (size_t)off < sizeof line; c++)
            off += snprintf(line + off, sizeof line - (size_t)off, "; %lld ms after change %d",
                            (long long)longest_gap(t, m, when[c], when[c] + 10000), c + 1);
        say("%s", line);
        free(t);
    }
    finish(r, 30000, 1); /* members that leave gracefully leave no copies */
}

/* ======================================================================
 * failover: a 3-node cluster, its busiest broker and its controller killed
 * ====================================================================== */

/* Runs `tools/kafka-cluster CMD ...` for the run's cluster; the first line
 * of its standard output goes to out (may be NULL). Returns its status. */
static int cluster_cmd(run_t *r, const char *cmd, char *out, size_t size)
{
    char line[1600];
    snprintf(line, sizeof line, "'%s' %s --dir '%s' --port %d --nodes 3 2>>'%s.log'", r->cluster,
             cmd, r->cluster_dir, r->cluster_port, r->cluster_dir);
    FILE *p = popen(line, "r");
    if (!p)
        return -1;
    char buf[512] = "";
    if (!fgets(buf, sizeof buf, p))
        buf[0] = '\0';
    while (fgetc(p) != EOF) {
    }
    int st = pclose(p);
    buf[strcspn(buf, "\n")] = '\0';
    if (out)
        snprintf(out, size, "%s", buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Starts the run's cluster and points KAFKA_BOOTSTRAP (the services', the
 * topics', the producer's) at it. */
static int start_cluster(run_t *r)
{
    char env[600];
    snprintf(env, sizeof env, "%s/test-runs", lev_test_env("LEV_BINARY_DIR", "."));
    mkdir(env, 0755);
    for (int attempt = 0; attempt < 3; attempt++) {
        r->cluster_port = lev_test_reserve_ports(6);
        if (r->cluster_port < 0)
            return -1;
        snprintf(r->cluster_dir, sizeof r->cluster_dir, "%s/test-runs/cluster-%d-%d",
                 lev_test_env("LEV_BINARY_DIR", "."), (int)getpid(), attempt);
        int64_t t0 = lev_mono_ms();
        if (cluster_cmd(r, "start --timeout 240", NULL, 0) == 0 &&
            cluster_cmd(r, "env", env, sizeof env) == 0 && !strncmp(env, "KAFKA_BOOTSTRAP=", 16)) {
            setenv("KAFKA_BOOTSTRAP", env + 16, 1);
            say("a 3-node cluster on %s in %.1f s", env + 16, (lev_mono_ms() - t0) / 1000.0);
            return 0;
        }
        cluster_cmd(r, "stop --clean", NULL, 0);
    }
    return -1;
}

static void stop_cluster(run_t *r)
{
    if (r->cluster_dir[0] && cluster_cmd(r, r->failures ? "stop" : "stop --clean", NULL, 0) != 0)
        say("stopping the cluster failed");
    r->cluster_dir[0] = '\0';
}

/* The node leading most partitions of the run's topics, or -1. */
static int busiest_broker(run_t *r)
{
    int leads[16] = {0}, best = -1;
    const char *topics[] = {r->orders_topic, r->payments_topic, r->notifications_topic};
    for (size_t t = 0; t < 3; t++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->admin, topics[t], NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (rkt && rd_kafka_metadata(r->admin, 0, rkt, &md, 5000) == 0) {
            for (int p = 0; md->topic_cnt == 1 && p < md->topics[0].partition_cnt; p++) {
                int l = md->topics[0].partitions[p].leader;
                if (l >= 0 && l < 16)
                    leads[l]++;
            }
            rd_kafka_metadata_destroy(md);
        }
        if (rkt)
            rd_kafka_topic_destroy(rkt);
    }
    for (int i = 1; i < 16; i++)
        if (leads[i] > 0 && (best < 0 || leads[i] > leads[best]))
            best = i;
    if (best > 0)
        say("node %d leads %d of the run's partitions", best, leads[best]);
    return best;
}

/* kill -9 of node id; 0 or -1. */
static int kill_node(run_t *r, int id)
{
    char cmd[64], pid[32];
    snprintf(cmd, sizeof cmd, "pid --node %d", id);
    if (cluster_cmd(r, cmd, pid, sizeof pid) != 0 || atoi(pid) <= 0)
        return -1;
    return kill((pid_t)atoi(pid), SIGKILL);
}

typedef struct kill_s {
    const char *what;
    int node;
    int64_t at;      /* when it was killed (lev_mono_ms) */
    size_t before;   /* orders published before it */
    int64_t drained; /* ms until they were all notified, -1 not yet */
    int restarted;
} kill_t;

/* Starts `evctl publish --rate R/s` of orders [from, to) (the lines the
 * harness would send: same event id, key and value); its pid. */
static pid_t evctl_publish_async(run_t *r, size_t from, size_t to, int rate, const char *path,
                                 const char *log)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (size_t i = from; i < to; i++)
        fprintf(f,
                "{\"type\":\"shop.order.OrderPlaced\",\"id\":\"%s\",\"key\":\"%s\","
                "\"value\":%s}\n",
                r->orders[i].event_id, r->orders[i].id, r->orders[i].json);
    fclose(f);
    char rate_s[32];
    snprintf(rate_s, sizeof rate_s, "%d/s", rate);
    char *argv[] = {
        (char *)r->evctl, "publish", (char *)path, "--topic", r->orders_topic, "--rate", rate_s,
        "--timeout",      "60s",     "--quiet",    NULL};
    char *envp[] = {NULL};
    return lev_test_spawn(argv, envp, log);
}

static void scenario_failover(run_t *r, size_t n)
{
    enum { WAVES = 60, WAVE_MS = 1000, DOWN_WAVES = 12 };
    plan_orders(r, n);
    qsort(r->orders, r->n, sizeof *r->orders, order_cmp);
    for (int i = 0; i < NSVC; i++)
        start_service(r, i);
    kill_t kills[2] = {{"the broker leading most partitions", -1, 0, 0, -1, 0},
                       {"the active controller", -1, 0, 0, -1, 0}};
    const int kill_wave[2] = {WAVES / 4, WAVES / 4 + DOWN_WAVES + 8};
    size_t published = 0, per_wave = (n + WAVES - 1) / WAVES;
    /* with --evctl, the orders of the waves around the first kill go out
     * through one `evctl publish --rate` that runs across it */
    enum { EVCTL_FROM = WAVES / 4 - 2, EVCTL_WAVES = 8 };
    pid_t evctl_pid = -1;
    char evctl_in[700], evctl_log[700];
    size_t evctl_lines = 0;
    for (int w = 0; w < WAVES + 3 * DOWN_WAVES; w++) {
        int64_t t0 = lev_mono_ms();
        if (!services_alive(r))
            return fail(r, "a service exited while the brokers failed over");
        if (r->evctl && w == EVCTL_FROM && published < n) {
            size_t to =
                published + EVCTL_WAVES * per_wave < n ? published + EVCTL_WAVES * per_wave : n;
            snprintf(evctl_in, sizeof evctl_in, "%s/evctl-orders.jsonl", r->dir);
            snprintf(evctl_log, sizeof evctl_log, "%s/evctl-publish.log", r->dir);
            evctl_pid = evctl_publish_async(r, published, to, (int)per_wave, evctl_in, evctl_log);
            if (evctl_pid <= 0)
                return fail(r, "cannot start evctl publish");
            evctl_lines = to - published;
            say("evctl publish of %zu orders at %zu/s started, to run across the first kill",
                evctl_lines, per_wave);
            published = to;
        }
        if (published < n) {
            size_t to = published + per_wave < n ? published + per_wave : n;
            if (publish_range(r, published, to) != 0)
                return fail(r, "cannot publish the orders");
            published = to;
        }
        for (int k = 0; k < 2; k++) {
            kill_t *x = &kills[k];
            if (w == kill_wave[k]) {
                char id[32] = "";
                x->node = k == 0                                             ? busiest_broker(r)
                          : cluster_cmd(r, "controller", id, sizeof id) == 0 ? atoi(id)
                                                                             : -1;
                if (x->node <= 0 || kill_node(r, x->node) != 0)
                    return fail(r, "cannot find or kill %s", x->what);
                x->at = lev_mono_ms();
                x->before = published;
                say("killed node %d, %s, with SIGKILL after %zu orders", x->node, x->what,
                    published);
            }
            if (x->at && !x->restarted && w == kill_wave[k] + DOWN_WAVES) {
                if (cluster_cmd(r, "start --timeout 120", NULL, 0) != 0)
                    return fail(r, "cannot start node %d again", x->node);
                x->restarted = 1;
                say("node %d is back after %.1f s", x->node, (lev_mono_ms() - x->at) / 1000.0);
            }
            if (x->at && x->drained < 0 && count_finished(r) >= x->before) {
                x->drained = lev_mono_ms() - x->at;
                say("drained after killing %s: every order published before it notified %.1f s "
                    "after the kill",
                    x->what, x->drained / 1000.0);
            }
        }
        if (published >= n && kills[1].restarted && kills[0].drained >= 0 && kills[1].drained >= 0)
            break;
        int64_t left = WAVE_MS - (lev_mono_ms() - t0);
        if (left > 0)
            lev_test_sleep_ms((int)left);
    }
    if (flush_producer(r) != 0)
        return fail(r, "cannot publish the orders");
    if (evctl_pid > 0) {
        int status = -1;
        if (lev_test_wait(evctl_pid, 120000, &status) != 0) {
            kill(evctl_pid, SIGKILL);
            lev_test_wait(evctl_pid, 5000, &status);
            fail(r, "evctl publish did not finish; see %s", evctl_log);
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fail(r, "evctl publish across the broker kill exited with status 0x%x; see %s", status,
                 evctl_log);
        } else {
            say("evctl publish of %zu orders across the first kill exited 0 without a restart",
                evctl_lines);
        }
    }
    say("published %zu orders across two broker kills", published);
    for (int k = 0; k < 2; k++)
        if (kills[k].drained < 0)
            fail(r, "the orders published before killing %s were not all notified in time",
                 kills[k].what);
    finish(r, 180000, 0);
}

static void usage(void)
{
    fprintf(stderr, "usage: workflow_e2e steady|crash|duplicate|replay|outage|slow|prometheus|"
                    "jaeger|failover|scale-eager|scale-cooperative\n"
                    "       --order BIN --billing BIN --notification BIN --http SCRIPT\n"
                    "       [--evctl BIN] [--prometheus BIN --promtool BIN --dashboard JSON]\n"
                    "       [--jaeger tools/jaeger] [--cluster tools/kafka-cluster]\n"
                    "(replay needs --evctl; prometheus needs --prometheus, --promtool and "
                    "--dashboard; jaeger needs --jaeger)\n");
}

int main(int argc, char **argv)
{
    static run_t run;
    run_t *r = &run;
    if (argc < 2) {
        usage();
        return 2;
    }
    r->scenario = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--order"))
            r->bin[SVC_ORDER] = argv[i + 1];
        else if (!strcmp(argv[i], "--billing"))
            r->bin[SVC_BILLING] = argv[i + 1];
        else if (!strcmp(argv[i], "--notification"))
            r->bin[SVC_NOTIFICATION] = argv[i + 1];
        else if (!strcmp(argv[i], "--http"))
            r->http_script = argv[i + 1];
        else if (!strcmp(argv[i], "--evctl"))
            r->evctl = argv[i + 1];
        else if (!strcmp(argv[i], "--prometheus"))
            r->prometheus = argv[i + 1];
        else if (!strcmp(argv[i], "--promtool"))
            r->promtool = argv[i + 1];
        else if (!strcmp(argv[i], "--dashboard"))
            r->dashboard = argv[i + 1];
        else if (!strcmp(argv[i], "--jaeger"))
            r->jaeger = argv[i + 1];
        else if (!strcmp(argv[i], "--cluster"))
            r->cluster = argv[i + 1];
    }
    if (!r->bin[0] || !r->bin[1] || !r->bin[2] || !r->http_script) {
        usage();
        return 2;
    }
    const char *seed = lev_test_env("LEV_TEST_SEED", NULL);
    r->rng = seed ? strtoull(seed, NULL, 10) : (uint64_t)lev_now_ms();
    if (r->rng == 0)
        r->rng = 1;
    size_t n = (size_t)atoi(lev_test_env("WORKFLOW_ORDERS", "1000"));
    say("scenario %s, %zu orders, seed %llu", r->scenario, n, (unsigned long long)r->rng);
    r->ledger = !strcmp(r->scenario, "duplicate");
    r->exact_deliveries = !strcmp(r->scenario, "replay");
    int watched = !strcmp(r->scenario, "prometheus"), traced = !strcmp(r->scenario, "jaeger");
    int failover = !strcmp(r->scenario, "failover");
    int scale = !strcmp(r->scenario, "scale-eager") || !strcmp(r->scenario, "scale-cooperative");
    if ((strcmp(r->scenario, "steady") && strcmp(r->scenario, "crash") &&
         strcmp(r->scenario, "outage") && strcmp(r->scenario, "slow") && !r->ledger &&
         !r->exact_deliveries && !watched && !traced && !failover && !scale) ||
        (failover && !r->cluster) || (r->exact_deliveries && !r->evctl) ||
        (watched && (!r->prometheus || !r->promtool || !r->dashboard)) || (traced && !r->jaeger)) {
        usage();
        return 2;
    }

    int64_t t0 = lev_mono_ms();
    if (failover && start_cluster(r) != 0) {
        fprintf(stderr, "the 3-node cluster did not start\n");
        stop_cluster(r);
        return 1;
    }
    if (setup(r) != 0) {
        teardown(r);
        stop_cluster(r);
        return 1;
    }
    if (!strcmp(r->scenario, "steady"))
        scenario_steady(r, n);
    else if (!strcmp(r->scenario, "crash"))
        scenario_crash(r, n);
    else if (!strcmp(r->scenario, "replay"))
        scenario_replay(r, n < 50 ? 50 : n / 5);
    else if (!strcmp(r->scenario, "outage"))
        scenario_outage(r, n < 50 ? 50 : n / 5);
    else if (!strcmp(r->scenario, "slow"))
        scenario_slow(r, n < 50 ? 50 : n / 5);
    else if (watched)
        scenario_prometheus(r, n < 50 ? 50 : n / 5);
    else if (traced)
        scenario_jaeger(r, n < 50 ? 50 : n / 20);
    else if (failover)
        scenario_failover(r, 2 * n);
    else if (scale)
        scenario_scale(r, n, !strcmp(r->scenario, "scale-eager"));
    else
        scenario_duplicate(r, n < 20 ? 20 : n / 10);
    teardown(r);
    stop_cluster(r);
    say("%s: %s in %.1f s (%d failures); logs in %s", r->scenario, r->failures ? "FAILED" : "ok",
        (double)(lev_mono_ms() - t0) / 1000.0, r->failures, r->dir);
    return r->failures ? 1 : 0;
}
