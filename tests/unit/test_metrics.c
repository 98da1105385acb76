/* Metrics: the registry and its Prometheus text exposition. */
#include "check.h"
#include "metrics_internal.h"

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
    CHECK(strstr(text, "\nlev_metrics_series_dropped_total 3\n") != NULL);
    CHECK(strstr(text, "w_total{k=\"c\"}") == NULL);
    free(text);
    lev_mx_destroy(mx);
}

CHECK_MAIN(CASE(exposition_of_counters_gauges_and_histograms),
           CASE(label_values_and_help_are_escaped), CASE(names_and_labels_are_checked),
           CASE(series_beyond_the_bound_are_dropped_and_counted))
