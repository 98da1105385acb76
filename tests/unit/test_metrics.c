/* Metrics: the registry and its Prometheus text exposition, the
 * application's counters, and the worker's HTTP endpoint before it runs
 * (no broker needed: the worker is made, never run). */
#include "check.h"
#include "metrics_internal.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

static char *render(lev_mx_t *mx)
{
    lev_mx_buf_t b = {0};
    lev_mx_render(mx, &b);
    if (b.failed) {
        lev_mx_buf_free(&b);
        return NULL;
    }
    return b.p;
}

static void exposition_of_counters_gauges_and_histograms(void)
{
    lev_mx_t *mx = lev_mx_new();
    REQUIRE(mx);
    const char *cl[] = {"topic", "result", NULL};
    const double bounds[] = {0.5, 1, 2.5};
    lev_mx_family_t *c = lev_mx_family_new(mx, LEV_MX_COUNTER, "x_records_total", "Records seen",
                                           cl, NULL, 0, 0, NULL);
    lev_mx_family_t *g =
        lev_mx_family_new(mx, LEV_MX_GAUGE, "x_in_flight", "Held now", NULL, NULL, 0, 0, NULL);
    lev_mx_family_t *h = lev_mx_family_new(mx, LEV_MX_HISTOGRAM, "x_duration_seconds", "Took", NULL,
                                           bounds, 3, 0, NULL);
    lev_mx_family_t *empty =
        lev_mx_family_new(mx, LEV_MX_COUNTER, "x_never_total", "Nothing", NULL, NULL, 0, 0, NULL);
    REQUIRE(c && g && h && empty);
    const char *v1[] = {"orders", "ok"}, *v2[] = {"orders", "transient"};
    lev_mx_add(lev_mx_series(c, v1), 3);
    lev_mx_add(lev_mx_series(c, v2), 1);
    lev_mx_add(lev_mx_series(c, v1), 2); /* the same series again */
    lev_mx_set(lev_mx_series(g, NULL), -4);
    lev_mx_series_t *hs = lev_mx_series(h, NULL);
    lev_mx_observe(hs, 0.25);
    lev_mx_observe(hs, 0.5); /* on a bound: that bucket (le is "less or equal") */
    lev_mx_observe(hs, 2);
    lev_mx_observe(hs, 100);
    char *text = render(mx);
    REQUIRE(text);
    const char *want = "# HELP x_records_total Records seen\n"
                       "# TYPE x_records_total counter\n"
                       "x_records_total{topic=\"orders\",result=\"ok\"} 5\n"
                       "x_records_total{topic=\"orders\",result=\"transient\"} 1\n"
                       "# HELP x_in_flight Held now\n"
                       "# TYPE x_in_flight gauge\n"
                       "x_in_flight -4\n"
                       "# HELP x_duration_seconds Took\n"
                       "# TYPE x_duration_seconds histogram\n"
                       "x_duration_seconds_bucket{le=\"0.5\"} 2\n"
                       "x_duration_seconds_bucket{le=\"1\"} 2\n"
                       "x_duration_seconds_bucket{le=\"2.5\"} 3\n"
                       "x_duration_seconds_bucket{le=\"+Inf\"} 4\n"
                       "x_duration_seconds_sum 102.75\n"
                       "x_duration_seconds_count 4\n"
                       "# HELP lev_metrics_series_dropped_total Label combinations not "
                       "recorded: their metric had as many as it may have, or a value was not "
                       "UTF-8\n"
                       "# TYPE lev_metrics_series_dropped_total counter\n"
                       "lev_metrics_series_dropped_total 0\n";
    CHECK_STR(text, want);
    free(text);
    lev_mx_destroy(mx);
}

static void label_values_and_help_are_escaped(void)
{
    lev_mx_t *mx = lev_mx_new();
    const char *l[] = {"v", NULL};
    lev_mx_family_t *f =
        lev_mx_family_new(mx, LEV_MX_COUNTER, "y_total", "a \\ back\nslash", l, NULL, 0, 0, NULL);
    REQUIRE(f);
    lev_mx_add(lev_mx_series1(f, "say \"hi\"\\\nbye"), 1);
    char *text = render(mx);
    REQUIRE(text);
    CHECK(strstr(text, "# HELP y_total a \\\\ back\\nslash\n") != NULL);
    CHECK(strstr(text, "y_total{v=\"say \\\"hi\\\"\\\\\\nbye\"} 1\n") != NULL);
    free(text);
    lev_mx_destroy(mx);
}

static void names_and_labels_are_checked(void)
{
    lev_mx_t *mx = lev_mx_new();
    lev_error_t err = {0};
    const char *le[] = {"le", NULL}, *reserved[] = {"__x", NULL}, *twice[] = {"a", "a", NULL},
               *bad[] = {"a-b", NULL}, *ok[] = {"a", NULL};
    CHECK(!lev_mx_family_new(mx, LEV_MX_COUNTER, "9lives_total", NULL, NULL, NULL, 0, 0, &err));
    CHECK_INT(err.code, ==, LEV_ERR_ARG);
    CHECK(!lev_mx_family_new(mx, LEV_MX_COUNTER, "a-b_total", NULL, NULL, NULL, 0, 0, NULL));
    CHECK(!lev_mx_family_new(mx, LEV_MX_COUNTER, "z_total", NULL, le, NULL, 0, 0, NULL));
    CHECK(!lev_mx_family_new(mx, LEV_MX_COUNTER, "z_total", NULL, reserved, NULL, 0, 0, NULL));
    CHECK(!lev_mx_family_new(mx, LEV_MX_COUNTER, "z_total", NULL, twice, NULL, 0, 0, NULL));
    CHECK(!lev_mx_family_new(mx, LEV_MX_COUNTER, "z_total", NULL, bad, NULL, 0, 0, NULL));
    const double down[] = {2, 1};
    CHECK(!lev_mx_family_new(mx, LEV_MX_HISTOGRAM, "z_seconds", NULL, NULL, down, 2, 0, NULL));
    CHECK(!lev_mx_family_new(mx, LEV_MX_HISTOGRAM, "z_seconds", NULL, NULL, down, 0, 0, NULL));
    CHECK(lev_mx_family_new(mx, LEV_MX_COUNTER, "ns:z_total", NULL, ok, NULL, 0, 0, NULL));
    memset(&err, 0, sizeof err);
    CHECK(!lev_mx_family_new(mx, LEV_MX_GAUGE, "ns:z_total", NULL, NULL, NULL, 0, 0, &err));
    CHECK(strstr(err.text, "exists already") != NULL);
    lev_mx_destroy(mx);
}

static void series_beyond_the_bound_are_dropped_and_counted(void)
{
    lev_mx_t *mx = lev_mx_new();
    const char *l[] = {"k", NULL};
    lev_mx_family_t *f =
        lev_mx_family_new(mx, LEV_MX_COUNTER, "w_total", NULL, l, NULL, 0, 2, NULL);
    REQUIRE(f);
    CHECK(lev_mx_series1(f, "a") != NULL);
    CHECK(lev_mx_series1(f, "b") != NULL);
    CHECK(lev_mx_series1(f, "a") != NULL); /* known ones still count */
    CHECK(lev_mx_series1(f, "c") == NULL);
    CHECK(lev_mx_series1(f, "d") == NULL);
    lev_mx_family_t *u =
        lev_mx_family_new(mx, LEV_MX_COUNTER, "u_total", NULL, l, NULL, 0, 0, NULL);
    CHECK(lev_mx_series1(u, "\xff\xfe") == NULL); /* not UTF-8: never written out */
    CHECK(lev_mx_series1(u, "ok") != NULL);
    char *text = render(mx);
    REQUIRE(text);
    CHECK(lev_test_metric(text, "lev_metrics_series_dropped_total", "") == 3);
    CHECK(lev_test_metric(text, "w_total", "k=\"c\"") == -1);
    free(text);
    lev_mx_destroy(mx);
}

/* ---- a worker that is made but never run ---- */

static lev_worker_t *worker_with_endpoint(const char *addr, lev_error_t *err)
{
    lev_config_t conf;
    lev_test_config(&conf, "test-metrics");
    lev_config_set_str(&conf.redis_url, "");
    lev_config_set_str(&conf.http_addr, addr);
    lev_worker_t *w = lev_worker_new(&conf, err);
    lev_config_clear(&conf);
    return w;
}

typedef struct {
    lev_counter_t *c;
    const char *outcome;
} adder_t;

static void *add_many(void *arg)
{
    adder_t *a = arg;
    const char *v[2] = {"webhook", a->outcome};
    for (int i = 0; i < 100000; i++)
        lev_counter_inc(a->c, v);
    return NULL;
}

static void application_counters_count_from_any_thread(void)
{
    lev_error_t err = {0};
    lev_worker_t *w = worker_with_endpoint("127.0.0.1:0", &err);
    REQUIRE(w);
    const char *labels[] = {"channel", "outcome", NULL};
    CHECK(!lev_metrics_counter_new(w, "shop_notifications", "no _total", labels, &err));
    CHECK(!lev_metrics_counter_new(w, "lev_mine_total", "the worker's prefix", labels, NULL));
    CHECK(!lev_metrics_counter_new(w, "process_mine_total", "the worker's prefix", NULL, NULL));
    lev_counter_t *c = lev_metrics_counter_new(
        w, "shop_notifications_total", "Notifications by channel and outcome", labels, &err);
    lev_counter_t *plain = lev_metrics_counter_new(w, "shop_runs_total", NULL, NULL, &err);
    REQUIRE(c && plain);
    CHECK(!lev_metrics_counter_new(w, "shop_runs_total", NULL, NULL, NULL)); /* taken */
    pthread_t th[4];
    adder_t a[4] = {{c, "delivered"}, {c, "delivered"}, {c, "failed"}, {c, "delivered"}};
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, add_many, &a[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    lev_counter_add(plain, NULL, 7);
    const char *bad[2] = {"webhook", "\xc3"}; /* cut UTF-8 */
    lev_counter_inc(c, bad);
    int port = lev_worker_http_port(w);
    CHECK_INT(port, >, 0);
    char *body = NULL;
    CHECK_INT(lev_test_http("GET", port, "/metrics", 5000, &body, NULL), ==, 200);
    REQUIRE(body);
    CHECK(lev_test_metric(body, "shop_notifications_total",
                          "channel=\"webhook\",outcome=\"delivered\"") == 300000);
    CHECK(lev_test_metric(body, "shop_notifications_total",
                          "channel=\"webhook\",outcome=\"failed\"") == 100000);
    CHECK(lev_test_metric(body, "shop_runs_total", "") == 7);
    CHECK(strstr(body, "# HELP shop_notifications_total Notifications by channel and outcome\n"));
    CHECK(strstr(body, "\n# TYPE shop_runs_total counter\n"));
    CHECK(strstr(body, "\xc3") == NULL);
    /* the worker's own families and the process' are there too */
    CHECK(lev_test_metric(body, "lev_records_in_flight", "") == 0);
    CHECK(lev_test_metric(body, "process_open_fds", "") > 0);
    CHECK(lev_test_metric(body, "process_resident_memory_bytes", "") > 0);
    CHECK(lev_test_metric(body, "process_start_time_seconds", "") > 1.7e9);
    free(body);
    lev_worker_destroy(w);
}

static void counters_count_without_the_endpoint(void)
{
    lev_worker_t *w = worker_with_endpoint("", NULL);
    REQUIRE(w);
    CHECK_INT(lev_worker_http_port(w), ==, 0);
    lev_counter_t *c = lev_metrics_counter_new(w, "app_x_total", NULL, NULL, NULL);
    CHECK(c != NULL);
    lev_counter_inc(c, NULL); /* harmless: nobody serves it */
    lev_counter_inc(NULL, NULL);
    lev_worker_destroy(w);
}

static int header_has(const char *headers, const char *line)
{
    return headers && strstr(headers, line) != NULL;
}

static void endpoint_refuses_bad_requests_and_answers_probes(void)
{
    lev_error_t err = {0};
    lev_worker_t *w = worker_with_endpoint("127.0.0.1:0", &err);
    REQUIRE(w);
    int port = lev_worker_http_port(w);
    char *body = NULL, *headers = NULL;
    CHECK_INT(lev_test_http("GET", port, "/nope", 5000, NULL, NULL), ==, 404);
    CHECK_INT(lev_test_http("GET", port, "/", 5000, NULL, NULL), ==, 404);
    CHECK_INT(lev_test_http("GET", port, "/metrics/x", 5000, NULL, NULL), ==, 404);
    CHECK_INT(lev_test_http("POST", port, "/metrics", 5000, NULL, &headers), ==, 405);
    CHECK(header_has(headers, "\nAllow: GET, HEAD"));
    free(headers);
    CHECK_INT(lev_test_http("DELETE", port, "/readyz", 5000, NULL, NULL), ==, 405);
    CHECK_INT(lev_test_http("PUT", port, "/healthz", 5000, NULL, NULL), ==, 405);
    CHECK_INT(lev_test_http("GET", port, "/metrics?x=1", 5000, NULL, &headers), ==, 200);
    CHECK(header_has(headers, "\nContent-Type: text/plain; version=0.0.4; charset=utf-8"));
    free(headers);
    CHECK_INT(lev_test_http("HEAD", port, "/metrics", 5000, &body, NULL), ==, 200);
    CHECK(body && body[0] == '\0');
    free(body);
    /* made, not run: alive, and not ready */
    CHECK_INT(lev_test_http("GET", port, "/healthz", 5000, &body, NULL), ==, 200);
    CHECK(body && strstr(body, "\"status\":\"ok\"") && strstr(body, "\"worker\":\"starting\""));
    free(body);
    CHECK_INT(lev_test_http("GET", port, "/readyz", 5000, &body, NULL), ==, 503);
    CHECK(body && strstr(body, "\"reason\":\"the worker is starting\""));
    free(body);
    /* a request that is not HTTP at all */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        const char junk[] = "\x01\x02 garbage \r\n\r\n";
        CHECK(send(fd, junk, sizeof junk - 1, MSG_NOSIGNAL) > 0);
        char buf[256];
        CHECK(recv(fd, buf, sizeof buf, 0) >= 0);
    }
    close(fd);
    CHECK_INT(lev_test_http("GET", port, "/healthz", 5000, NULL, NULL), ==, 200);
    lev_worker_destroy(w);
    /* gone with its worker */
    CHECK_INT(lev_test_http("GET", port, "/healthz", 2000, NULL, NULL), ==, -1);
}

static void a_host_name_is_resolved(void)
{
    lev_error_t err = {0};
    lev_worker_t *w = worker_with_endpoint("localhost:0", &err);
    REQUIRE(w);
    CHECK_INT(lev_test_http("GET", lev_worker_http_port(w), "/healthz", 5000, NULL, NULL), ==, 200);
    lev_worker_destroy(w);
}

static void a_taken_address_fails_naming_the_variable(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    lev_error_t err = {0};
    lev_worker_t *w = worker_with_endpoint(addr, &err);
    CHECK(w == NULL);
    CHECK_INT(err.code, ==, LEV_ERR_IO);
    CHECK_STR(err.where, "LEV_HTTP_ADDR");
    fprintf(stderr, "  (said: %s)\n", err.text);
    lev_worker_destroy(w);
    close(fd);
}

CHECK_MAIN(CASE(exposition_of_counters_gauges_and_histograms),
           CASE(label_values_and_help_are_escaped), CASE(names_and_labels_are_checked),
           CASE(series_beyond_the_bound_are_dropped_and_counted),
           CASE(application_counters_count_from_any_thread),
           CASE(counters_count_without_the_endpoint),
           CASE(endpoint_refuses_bad_requests_and_answers_probes), CASE(a_host_name_is_resolved),
           CASE(a_taken_address_fails_naming_the_variable))
