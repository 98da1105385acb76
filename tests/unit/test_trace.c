/* Trace context and the OpenTelemetry settings of the span exporter. No
 * collector needed: with an endpoint set, the exporter only starts. */
#include "check.h"
#include "trace_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const otel_vars[] = {
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
};

static void otel_clear(void)
{
    for (size_t i = 0; i < sizeof otel_vars / sizeof otel_vars[0]; i++)
        unsetenv(otel_vars[i]);
}

static void traceparents_parse_and_format_as_w3c_says(void)
{
    lev_trace_ctx_t c;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    CHECK_INT(lev_trace_parse(tp, strlen(tp), &c), ==, 0);
    CHECK_INT(c.sampled, ==, 1);
    CHECK_INT(c.trace_id[0], ==, 0x4b);
    CHECK_INT(c.span_id[7], ==, 0xb7);
    char out[64];
    lev_trace_format(&c, out);
    CHECK_STR(out, tp);
    /* not sampled */
    const char *off = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    CHECK_INT(lev_trace_parse(off, strlen(off), &c), ==, 0);
    CHECK_INT(c.sampled, ==, 0);
    /* a later version may carry more fields after a dash */
    const char *v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
    CHECK_INT(lev_trace_parse(v1, strlen(v1), &c), ==, 0);
    /* refused: all-zero ids, version ff, upper case, short, version 00 with more */
    const char *bad[] = {
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT(lev_trace_parse(bad[i], strlen(bad[i]), &c), ==, -1);
}

static void tracing_is_off_without_an_endpoint_or_when_disabled(void)
{
    lev_tracer_t *t = (lev_tracer_t *)1;
    lev_error_t err;
    otel_clear();
    CHECK_INT(lev_tracer_new("svc", &t, &err), ==, 0);
    CHECK(t == NULL);
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", 1);
    setenv("OTEL_SDK_DISABLED", "true", 1);
    CHECK_INT(lev_tracer_new("svc", &t, &err), ==, 0);
    CHECK(t == NULL);
    setenv("OTEL_SDK_DISABLED", "false", 1);
    CHECK_INT(lev_tracer_new("svc", &t, &err), ==, 0);
    CHECK(t != NULL);
    lev_tracer_destroy(t, 100);
    otel_clear();
}

static void bad_settings_name_their_variable(void)
{
    static const struct {
        const char *var, *value;
    } cases[] = {
        {"OTEL_SDK_DISABLED", "yes"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318"},
        {"OTEL_TRACES_SAMPLER", "sometimes"},
        {"OTEL_TRACES_SAMPLER_ARG", "1.5"},
        {"OTEL_EXPORTER_OTLP_TIMEOUT", "-1"},
        {"OTEL_BSP_MAX_QUEUE_SIZE", "lots"},
        {"OTEL_EXPORTER_OTLP_HEADERS", "novalue"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        otel_clear();
        setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", 1);
        if (strcmp(cases[i].var, "OTEL_TRACES_SAMPLER_ARG") == 0)
            setenv("OTEL_TRACES_SAMPLER", "traceidratio", 1);
        setenv(cases[i].var, cases[i].value, 1);
        lev_tracer_t *t = NULL;
        lev_error_t err;
        memset(&err, 0, sizeof err);
        CHECK_INT(lev_tracer_new("svc", &t, &err), ==, LEV_ERR_CONFIG);
        CHECK(t == NULL);
        CHECK_STR(err.where, cases[i].var);
        lev_tracer_destroy(t, 100);
    }
    otel_clear();
}

static void samplers_follow_the_parent_or_the_ratio(void)
{
    lev_trace_ctx_t on, off;
    const char *a = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const char *b = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    REQUIRE(lev_trace_parse(a, strlen(a), &on) == 0 && lev_trace_parse(b, strlen(b), &off) == 0);
    uint8_t tid[16];
    lev_error_t err;
    static const struct {
        const char *sampler, *arg;
        int root_min, root_max, with_on, with_off;
    } cases[] = {
        {NULL, NULL, 1000, 1000, 1, 0}, /* parentbased_always_on */
        {"always_on", NULL, 1000, 1000, 1, 1},
        {"always_off", NULL, 0, 0, 0, 0},
        {"parentbased_always_off", NULL, 0, 0, 1, 0},
        {"traceidratio", "0.25", 150, 350, -1, -1},
        {"parentbased_traceidratio", "0.25", 150, 350, 1, 0},
        {"traceidratio", "0", 0, 0, -1, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        otel_clear();
        setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", 1);
        if (cases[i].sampler)
            setenv("OTEL_TRACES_SAMPLER", cases[i].sampler, 1);
        if (cases[i].arg)
            setenv("OTEL_TRACES_SAMPLER_ARG", cases[i].arg, 1);
        lev_tracer_t *t = NULL;
        REQUIRE(lev_tracer_new("svc", &t, &err) == 0 && t);
        int kept = 0;
        for (int k = 0; k < 1000; k++)
            kept += lev_tracer_sample(t, NULL, tid);
        CHECK_INT(kept, >=, cases[i].root_min);
        CHECK_INT(kept, <=, cases[i].root_max);
        if (cases[i].with_on >= 0) {
            CHECK_INT(lev_tracer_sample(t, &on, tid), ==, cases[i].with_on);
            CHECK_INT(lev_tracer_sample(t, &off, tid), ==, cases[i].with_off);
        }
        lev_tracer_sample(t, &on, tid);
        CHECK(memcmp(tid, on.trace_id, 16) == 0); /* a child keeps its parent's trace */
        lev_tracer_destroy(t, 100);
    }
    otel_clear();
}

CHECK_MAIN(CASE(traceparents_parse_and_format_as_w3c_says),
           CASE(tracing_is_off_without_an_endpoint_or_when_disabled),
           CASE(bad_settings_name_their_variable), CASE(samplers_follow_the_parent_or_the_ratio))
