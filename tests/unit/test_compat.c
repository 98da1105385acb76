/*
 * Schema compatibility (lev_schema_check_resolvable): every resolution rule
 * in both directions, with the field path and the reason of each problem;
 * and, for each verdict, what the codec does with a value of the pair (a
 * pair the check accepts decodes, one it refuses is LEV_ERR_RESOLVE, never a
 * crash inside avro-c).
 */
#include "check.h"

#include "codec_internal.h"

#include <libevents.h>
#include <stdarg.h>

/* ---- helpers ---------------------------------------------------------- */

/* JSON text with ' for " (schemas stay readable here). The result lives in
 * a ring of buffers: valid for the next 31 calls. */
static const char *J(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *J(const char *fmt, ...)
{
    static char ring[32][4096];
    static unsigned next;
    char *b = ring[next++ % 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof ring[0], fmt, ap);
    va_end(ap);
    for (char *p = b; *p; p++)
        if (*p == '\'')
            *p = '"';
    return b;
}

/* A record t.R with one field f of the given type. */
static const char *R1(const char *type)
{
    return J("{'type':'record','name':'R','namespace':'t','fields':[{'name':'f','type':%s}]}",
             type);
}

/* A writer and a reader version in one set (both writer-only, so that two
 * versions of one name can be loaded). */
typedef struct duo_s {
    lev_schemas_t *set;
    const lev_schema_t *w, *r;
} duo_t;

static int duo_load(duo_t *d, const char *writer, const char *reader)
{
    lev_error_t err;
    d->set = lev_schemas_new();
    d->w = d->r = NULL;
    if (lev_schemas_add(d->set, writer, strlen(writer), "writer", LEV_SCHEMA_WRITER_ONLY, &d->w,
                        &err) != 0 ||
        lev_schemas_add(d->set, reader, strlen(reader), "reader", LEV_SCHEMA_WRITER_ONLY, &d->r,
                        &err) != 0) {
        fprintf(stderr, "bad test schema: %s: %s\n", err.where, err.text);
        return -1;
    }
    return 0;
}

/* Checks writer -> reader: 0 expected when `where` is NULL, else
 * LEV_ERR_RESOLVE with that path and `text` in the reason. Returns 1 when
 * the verdict is as expected. */
static int verdict(const char *writer, const char *reader, const char *where, const char *text)
{
    duo_t d;
    lev_error_t err;
    int ok = 0;
    if (duo_load(&d, writer, reader) == 0) {
        lev_error_clear(&err);
        int rc = lev_schema_check_resolvable(d.w, d.r, &err);
        if (!where)
            ok = rc == 0;
        else
            ok = rc == LEV_ERR_RESOLVE && strcmp(err.where, where) == 0 &&
                 (!text || strstr(err.text, text) != NULL);
        if (!ok)
            fprintf(stderr, "  writer %s\n  reader %s\n  expected %s%s%s%s, got %d \"%s\" \"%s\"\n",
                    writer, reader, where ? "\"" : "compatible", where ? where : "",
                    where ? "\": " : "", text ? text : "", rc, err.where, err.text);
    }
    lev_schemas_destroy(d.set);
    return ok;
}

#define COMPATIBLE(w, r) CHECK(verdict((w), (r), NULL, NULL))
#define INCOMPATIBLE(w, r, where, text) CHECK(verdict((w), (r), (where), (text)))

/* Encodes `value` (JSON) with the writer, decodes it with the reader:
 * returns the decoded JSON text (malloc'd) or NULL with *rc and *err. */
static char *write_then_read(const char *writer, const char *reader, const char *value, int *rc,
                             lev_error_t *err)
{
    duo_t d;
    char *out = NULL;
    *rc = -100;
    lev_error_clear(err);
    if (duo_load(&d, writer, reader) != 0) {
        lev_schemas_destroy(d.set);
        return NULL;
    }
    lev_codec_t *codec = lev_codec_new(d.set, NULL);
    json_error_t jerr;
    json_t *j = json_loads(value, JSON_DECODE_ANY, &jerr);
    avro_value_t v;
    void *buf = NULL;
    size_t len = 0;
    if (!j || lev_codec_from_json(codec, d.w, j, &v, err) != 0) {
        fprintf(stderr, "bad test value %s: %s %s\n", value, err->where, err->text);
    } else {
        if (lev_codec_encode(codec, d.w, &v, &buf, &len, err) != 0)
            fprintf(stderr, "encode: %s\n", err->text);
        avro_value_decref(&v);
    }
    json_decref(j);
    for (int pass = 0; buf && pass < 2; pass++) { /* the second through the cached pair */
        avro_value_t got;
        free(out);
        out = NULL;
        *rc = lev_codec_decode(codec, buf, len, d.r, &got, NULL, err);
        if (*rc == 0) {
            json_t *gj = lev_codec_to_json(&got, err);
            out = gj ? json_dumps(gj, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            json_decref(gj);
            avro_value_decref(&got);
        }
    }
    free(buf);
    lev_codec_destroy(codec);
    lev_schemas_destroy(d.set);
    return out;
}

/* Decodes and expects the JSON `want` (NULL: LEV_ERR_RESOLVE at `where`). */
static int decodes(const char *writer, const char *reader, const char *value, const char *want,
                   const char *where)
{
    int rc;
    lev_error_t err;
    char *out = write_then_read(writer, reader, value, &rc, &err);
    int ok = want ? rc == 0 && out && strcmp(out, want) == 0
                  : rc == LEV_ERR_RESOLVE && strcmp(err.where, where) == 0;
    if (!ok)
        fprintf(stderr, "  value %s\n  expected %s%s, got %d %s (%s: %s)\n", value,
                want ? want : "LEV_ERR_RESOLVE at ", want ? "" : where, rc, out ? out : "-",
                err.where, err.text);
    free(out);
    return ok;
}

#define DECODES(w, r, value, want) CHECK(decodes((w), (r), (value), (want), NULL))
#define REFUSED(w, r, value, where) CHECK(decodes((w), (r), (value), NULL, (where)))

/* ---- primitives and promotions ------------------------------------------ */

static const char *const prims[] = {"null",  "boolean", "int",   "long",
                                    "float", "double",  "bytes", "string"};
static const char *const samples[] = {"null", "true", "7", "7", "1.5", "1.5", "\"ab\"", "\"ab\""};

static int promotes(const char *w, const char *r)
{
    static const char *const ok[][2] = {{"int", "long"},   {"int", "float"},   {"int", "double"},
                                        {"long", "float"}, {"long", "double"}, {"float", "double"}};
    if (strcmp(w, r) == 0)
        return 1;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(w, ok[i][0]) == 0 && strcmp(r, ok[i][1]) == 0)
            return 1;
    return 0;
}

static void every_primitive_pair_follows_the_promotion_rules_both_ways(void)
{
    for (size_t i = 0; i < 8; i++) {
        for (size_t k = 0; k < 8; k++) {
            char w[16], r[16], why[64];
            snprintf(w, sizeof w, "'%s'", prims[i]);
            snprintf(r, sizeof r, "'%s'", prims[k]);
            snprintf(why, sizeof why, "%s cannot be read as %s", prims[i], prims[k]);
            if (promotes(prims[i], prims[k])) {
                COMPATIBLE(R1(w), R1(r));
            } else {
                INCOMPATIBLE(R1(w), R1(r), "f", why);
            }
        }
    }
}

static void decode_agrees_with_the_check_for_every_primitive_pair(void)
{
    for (size_t i = 0; i < 8; i++) {
        for (size_t k = 0; k < 8; k++) {
            char w[16], r[16], value[32];
            snprintf(w, sizeof w, "'%s'", prims[i]);
            snprintf(r, sizeof r, "'%s'", prims[k]);
            snprintf(value, sizeof value, "{\"f\":%s}", samples[i]);
            int rc;
            lev_error_t err;
            char *out = write_then_read(R1(w), R1(r), value, &rc, &err);
            if (promotes(prims[i], prims[k])) {
                CHECK_INT(rc, ==, 0);
                CHECK(out != NULL);
            } else {
                CHECK_INT(rc, ==, LEV_ERR_RESOLVE);
                CHECK_STR(err.where, "f");
            }
            free(out);
        }
    }
    DECODES(R1("'int'"), R1("'long'"), "{\"f\":2147483647}", "{\"f\":2147483647}");
    DECODES(R1("'int'"), R1("'double'"), "{\"f\":-3}", "{\"f\":-3.0}");
    DECODES(R1("'float'"), R1("'double'"), "{\"f\":0.5}", "{\"f\":0.5}");
}

static void string_and_bytes_are_not_promoted_to_each_other(void)
{
    INCOMPATIBLE(R1("'string'"), R1("'bytes'"), "f", "string cannot be read as bytes");
    INCOMPATIBLE(R1("'bytes'"), R1("'string'"), "f", "bytes cannot be read as string");
    REFUSED(R1("'string'"), R1("'bytes'"), "{\"f\":\"x\"}", "f");
}

/* ---- record fields -------------------------------------------------------- */

static const char v1[] = "{'type':'record','name':'R','namespace':'t','fields':["
                         "{'name':'a','type':'int'}]}";

static void added_field_with_a_default_reads_old_values(void)
{
    const char *v2 = J("{'type':'record','name':'R','namespace':'t','fields':["
                       "{'name':'a','type':'int'},{'name':'b','type':'string','default':'x'}]}");
    COMPATIBLE(J(v1), v2);
    COMPATIBLE(v2, J(v1)); /* and old readers skip it */
    DECODES(J(v1), v2, "{\"a\":1}", "{\"a\":1,\"b\":\"x\"}");
    DECODES(v2, J(v1), "{\"a\":1,\"b\":\"y\"}", "{\"a\":1}");
}

static void added_field_without_a_default_cannot_read_old_values(void)
{
    const char *v2 = J("{'type':'record','name':'R','namespace':'t','fields':["
                       "{'name':'a','type':'int'},{'name':'b','type':'string'}]}");
    INCOMPATIBLE(J(v1), v2, "b", "field b is missing in the writer and has no default");
    COMPATIBLE(v2, J(v1));
    REFUSED(J(v1), v2, "{\"a\":1}", "b");
}

static void removed_field_needs_a_default_in_the_old_reader(void)
{
    const char *with_default =
        J("{'type':'record','name':'R','namespace':'t','fields':["
          "{'name':'a','type':'int'},{'name':'b','type':'long','default':0}]}");
    const char *without = J("{'type':'record','name':'R','namespace':'t','fields':["
                            "{'name':'a','type':'int'},{'name':'b','type':'long'}]}");
    /* the new version (v1) lacks b: new readers skip it, old readers need
     * its default */
    COMPATIBLE(with_default, J(v1));
    COMPATIBLE(J(v1), with_default);
    COMPATIBLE(without, J(v1));
    INCOMPATIBLE(J(v1), without, "b", "field b is missing in the writer and has no default");
}

static void renamed_field_is_a_removed_and_an_added_field_aliases_are_not_used(void)
{
    const char *renamed = J("{'type':'record','name':'R','namespace':'t','fields':["
                            "{'name':'c','type':'int','aliases':['a']}]}");
    INCOMPATIBLE(J(v1), renamed, "c", "field c is missing in the writer and has no default");
    INCOMPATIBLE(renamed, J(v1), "a", "field a is missing in the writer and has no default");
}

static void record_names_must_match_unqualified(void)
{
    INCOMPATIBLE(J("{'type':'record','name':'A','namespace':'t','fields':[]}"),
                 J("{'type':'record','name':'B','namespace':'t','fields':[]}"), "",
                 "record t.A cannot be read as record t.B: the names differ");
    /* another namespace, the same unqualified name: readable (avro-c and
     * the specification match records by unqualified name) */
    const char *other = J("{'type':'record','name':'R','namespace':'u','fields':["
                          "{'name':'a','type':'long'}]}");
    COMPATIBLE(J(v1), other);
    DECODES(J(v1), other, "{\"a\":5}", "{\"a\":5}");
    INCOMPATIBLE(R1("{'type':'record','name':'X','fields':[]}"),
                 R1("{'type':'record','name':'Y','fields':[]}"), "f",
                 "record t.X cannot be read as record t.Y: the names differ");
}

/* ---- enums ------------------------------------------------------------------ */

static const char *E(const char *symbols, const char *dflt)
{
    char d[64] = "";
    if (dflt)
        snprintf(d, sizeof d, ",'default':'%s'", dflt);
    return R1(J("{'type':'enum','name':'E','symbols':[%s]%s}", symbols, d));
}

static void enum_symbol_appended_reads_old_values_but_not_new_ones_without_a_default(void)
{
    const char *old = E("'A','B'", NULL), *appended = E("'A','B','C'", NULL);
    COMPATIBLE(old, appended);
    INCOMPATIBLE(appended, old, "f", "enum symbol C of the writer is unknown to reader enum t.E");
    DECODES(old, appended, "{\"f\":\"B\"}", "{\"f\":\"B\"}");
    /* decode refuses only the values that carry the new symbol */
    DECODES(appended, old, "{\"f\":\"A\"}", "{\"f\":\"A\"}");
    REFUSED(appended, old, "{\"f\":\"C\"}", "f");
}

static void enum_symbol_unknown_to_the_reader_takes_its_default(void)
{
    const char *old = E("'UNKNOWN','A'", "UNKNOWN"), *appended = E("'UNKNOWN','A','C'", NULL);
    COMPATIBLE(appended, old);
    DECODES(appended, old, "{\"f\":\"C\"}", "{\"f\":\"UNKNOWN\"}");
}

static void enum_symbol_removed_needs_a_default_in_the_new_reader(void)
{
    INCOMPATIBLE(E("'A','B','C'", NULL), E("'A','C'", NULL), "f",
                 "enum symbol B of the writer is unknown to reader enum t.E, which has no default");
    COMPATIBLE(E("'A','C'", NULL), E("'A','B','C'", NULL));
    COMPATIBLE(E("'A','B','C'", NULL), E("'A','C'", "A"));
    DECODES(E("'A','B','C'", NULL), E("'A','C'", "A"), "{\"f\":\"B\"}", "{\"f\":\"A\"}");
}

static void enum_symbols_reordered_map_by_name(void)
{
    COMPATIBLE(E("'A','B','C'", NULL), E("'C','A','B'", NULL));
    DECODES(E("'A','B','C'", NULL), E("'C','A','B'", NULL), "{\"f\":\"B\"}", "{\"f\":\"B\"}");
}

static void enum_names_must_match(void)
{
    INCOMPATIBLE(E("'A'", NULL), R1("{'type':'enum','name':'F','symbols':['A']}"), "f",
                 "enum t.E cannot be read as enum t.F: the names differ");
}

static void codec_check_leaves_enum_symbols_to_each_value_and_projects_them(void)
{
    duo_t d;
    REQUIRE(duo_load(&d, E("'A','B','C'", NULL), E("'C','A'", NULL)) == 0);
    lev_error_t err;
    json_t *proj = NULL;
    CHECK_INT(lev_compat_check(d.w, d.r, 0, NULL, NULL, &proj, &err), ==, LEV_ERR_RESOLVE);
    CHECK(proj == NULL);
    CHECK_INT(lev_compat_check(d.w, d.r, LEV_COMPAT_ENUM_PER_VALUE, NULL, NULL, &proj, &err), ==,
              0);
    REQUIRE(proj != NULL);
    /* avro-c reads the writer's ordinals into the writer's symbols */
    const json_t *e = json_object_get(json_array_get(json_object_get(proj, "fields"), 0), "type");
    char *syms = json_dumps(json_object_get(e, "symbols"), JSON_COMPACT);
    CHECK_STR(syms, "[\"A\",\"B\",\"C\"]");
    free(syms);
    json_decref(proj);
    lev_schemas_destroy(d.set);
    /* identical schemas need no projection */
    REQUIRE(duo_load(&d, J(v1), J(v1)) == 0);
    CHECK_INT(lev_compat_check(d.w, d.r, 0, NULL, NULL, &proj, &err), ==, 0);
    CHECK(proj == NULL);
    lev_schemas_destroy(d.set);
}

/* ---- fixed ------------------------------------------------------------------ */

static void fixed_needs_the_same_full_name_and_size(void)
{
    const char *f16 = R1("{'type':'fixed','name':'F','size':16}");
    COMPATIBLE(f16, f16);
    INCOMPATIBLE(f16, R1("{'type':'fixed','name':'F','size':8}"), "f",
                 "fixed t.F has size 16 in the writer and 8 in the reader");
    INCOMPATIBLE(f16, R1("{'type':'fixed','name':'G','size':16}"), "f",
                 "fixed t.F cannot be read as fixed t.G: the full names differ");
    INCOMPATIBLE(f16, R1("{'type':'fixed','name':'F','namespace':'u','size':16}"), "f",
                 "the full names differ");
    INCOMPATIBLE(f16, R1("['null',{'type':'fixed','name':'F','size':8}]"), "f",
                 "fixed t.F matches no branch of the reader's union [null, t.F]");
    INCOMPATIBLE(f16, R1("'bytes'"), "f", "fixed t.F cannot be read as bytes");
}

/* ---- unions ------------------------------------------------------------------- */

static void a_type_is_read_into_the_first_reader_branch_that_matches(void)
{
    COMPATIBLE(R1("'string'"), R1("['null','string']"));
    DECODES(R1("'string'"), R1("['null','string']"), "{\"f\":\"x\"}", "{\"f\":{\"string\":\"x\"}}");
    /* a promotion is a match: the first branch that takes it */
    DECODES(R1("'int'"), R1("['null','double','long']"), "{\"f\":2}", "{\"f\":{\"double\":2.0}}");
    INCOMPATIBLE(R1("'int'"), R1("['null','string']"), "f",
                 "int matches no branch of the reader's union [null, string]");
    /* the first array branch is the one that must resolve, as in avro-c */
    const char *arrays = R1("['null',{'type':'array','items':'int'},"
                            "{'type':'map','values':'long'}]");
    INCOMPATIBLE(R1("{'type':'array','items':'long'}"), arrays, "f[]",
                 "long cannot be read as int");
    REFUSED(R1("{'type':'array','items':'long'}"), arrays, "{\"f\":[1]}", "f[]");
}

static void every_writer_union_branch_must_be_readable(void)
{
    INCOMPATIBLE(R1("['null','string']"), R1("'string'"), "f",
                 "the writer's union branch null cannot be read as string");
    INCOMPATIBLE(R1("['null','string','int']"), R1("['null','string']"), "f",
                 "the writer's union branch int matches no branch of the reader's union "
                 "[null, string]");
    /* refused for every value, even one whose branch could be read */
    REFUSED(R1("['null','string']"), R1("'string'"), "{\"f\":{\"string\":\"x\"}}", "f");
    COMPATIBLE(R1("['int','long']"), R1("'long'"));
    DECODES(R1("['int','long']"), R1("'long'"), "{\"f\":{\"int\":3}}", "{\"f\":3}");
    COMPATIBLE(R1("['null','string']"), R1("['string','null','long']"));
    DECODES(R1("['null','int']"), R1("['null','long']"), "{\"f\":{\"int\":-7}}",
            "{\"f\":{\"long\":-7}}");
}

static void records_inside_unions_evolve_like_records(void)
{
    const char *w =
        R1("['null',{'type':'record','name':'I','fields':[{'name':'q','type':'int'}]}]");
    const char *r = R1("['null',{'type':'record','name':'I','fields':[{'name':'q','type':'int'},"
                       "{'name':'n','type':'string','default':''}]}]");
    COMPATIBLE(w, r);
    DECODES(w, r, "{\"f\":{\"t.I\":{\"q\":1}}}", "{\"f\":{\"t.I\":{\"q\":1,\"n\":\"\"}}}");
    const char *bad = R1("['null',{'type':'record','name':'I','fields':[{'name':'q','type':'int'},"
                         "{'name':'n','type':'string'}]}]");
    INCOMPATIBLE(w, bad, "f.n", "field n is missing in the writer and has no default");
    REFUSED(w, bad, "{\"f\":null}", "f.n");
}

/* ---- arrays and maps: where avro-c 1.11.1 crashes on a failed resolution ---- */

static const char *items_q(const char *type)
{
    return J("{'type':'record','name':'R','namespace':'t','fields':[{'name':'items','type':"
             "{'type':'array','items':{'type':'record','name':'I','fields':["
             "{'name':'q','type':'%s'}]}}}]}",
             type);
}

static void array_items_resolve_with_their_path(void)
{
    COMPATIBLE(items_q("int"), items_q("long"));
    INCOMPATIBLE(items_q("long"), items_q("int"), "items[].q", "long cannot be read as int");
    DECODES(items_q("int"), items_q("long"), "{\"items\":[{\"q\":1},{\"q\":2}]}",
            "{\"items\":[{\"q\":1},{\"q\":2}]}");
    REFUSED(items_q("long"), items_q("int"), "{\"items\":[{\"q\":1}]}", "items[].q");
    REFUSED(items_q("long"), items_q("int"), "{\"items\":[]}", "items[].q");
    INCOMPATIBLE(R1("{'type':'array','items':'long'}"), R1("{'type':'array','items':'int'}"), "f[]",
                 "long cannot be read as int");
    REFUSED(R1("{'type':'array','items':'long'}"), R1("{'type':'array','items':'int'}"),
            "{\"f\":[1,2]}", "f[]");
}

static void map_values_and_nested_containers_resolve_with_their_path(void)
{
    const char *wm =
        R1("{'type':'map','values':{'type':'record','name':'V','fields':[{'name':'q','type':"
           "'long'}]}}");
    const char *rm =
        R1("{'type':'map','values':{'type':'record','name':'V','fields':[{'name':'q','type':"
           "'int'}]}}");
    INCOMPATIBLE(wm, rm, "f{}.q", "long cannot be read as int");
    COMPATIBLE(rm, wm);
    REFUSED(wm, rm, "{\"f\":{\"k\":{\"q\":1}}}", "f{}.q");
    DECODES(rm, wm, "{\"f\":{\"k\":{\"q\":1}}}", "{\"f\":{\"k\":{\"q\":1}}}");
    const char *wn = R1("{'type':'array','items':{'type':'map','values':{'type':'record','name':"
                        "'V','fields':[{'name':'q','type':'string'}]}}}");
    const char *rn = R1("{'type':'array','items':{'type':'map','values':{'type':'record','name':"
                        "'V','fields':[{'name':'q','type':'string'},{'name':'z','type':'int',"
                        "'default':4}]}}}");
    COMPATIBLE(wn, rn);
    DECODES(wn, rn, "{\"f\":[{\"k\":{\"q\":\"x\"}}]}", "{\"f\":[{\"k\":{\"q\":\"x\",\"z\":4}}]}");
    const char *rbad = R1("{'type':'array','items':{'type':'map','values':{'type':'record','name':"
                          "'V','fields':[{'name':'q','type':'bytes'}]}}}");
    INCOMPATIBLE(wn, rbad, "f[]{}.q", "string cannot be read as bytes");
    REFUSED(wn, rbad, "{\"f\":[]}", "f[]{}.q");
    INCOMPATIBLE(R1("{'type':'array','items':'int'}"), R1("{'type':'map','values':'int'}"), "f",
                 "array cannot be read as map");
}

/* ---- recursive schemas ------------------------------------------------------------- */

static const char *node(const char *value_type, const char *extra)
{
    return J("{'type':'record','name':'Node','namespace':'t','fields':[{'name':'v','type':'%s'},"
             "%s{'name':'next','type':['null','Node']}]}",
             value_type, extra);
}

static void recursive_schemas_terminate_and_resolve(void)
{
    COMPATIBLE(node("int", ""), node("long", ""));
    DECODES(node("int", ""), node("long", ""),
            "{\"v\":1,\"next\":{\"t.Node\":{\"v\":2,\"next\":null}}}",
            "{\"v\":1,\"next\":{\"t.Node\":{\"v\":2,\"next\":null}}}");
    INCOMPATIBLE(node("long", ""), node("int", ""), "v", "long cannot be read as int");
    REFUSED(node("long", ""), node("int", ""), "{\"v\":1,\"next\":null}", "v");
    /* a field added with a default, read at every level */
    const char *grown = node("int", "{'name':'tag','type':'string','default':'-'},");
    COMPATIBLE(node("int", ""), grown);
    DECODES(node("int", ""), grown, "{\"v\":1,\"next\":{\"t.Node\":{\"v\":2,\"next\":null}}}",
            "{\"v\":1,\"tag\":\"-\",\"next\":{\"t.Node\":{\"v\":2,\"tag\":\"-\",\"next\":null}}}");
    /* mutual recursion */
    static const char mutual[] =
        "{'type':'record','name':'A','namespace':'t','fields':[{'name':'b','type':['null',"
        "{'type':'record','name':'B','fields':[{'name':'a','type':['null','A']},"
        "{'name':'n','type':'%s'}]}]}]}";
    COMPATIBLE(J(mutual, "int"), J(mutual, "long"));
    INCOMPATIBLE(J(mutual, "long"), J(mutual, "int"), "b.n", "long cannot be read as int");
}

/* ---- what the codec needs besides the rules ---------------------------------- */

static void a_reader_type_read_from_two_different_writer_types_is_refused(void)
{
    /* one reader record X, read from a.X at x and from b.X at y: the
     * projection avro-c reads into would need two versions of X */
    const char *w = J("{'type':'record','name':'R','namespace':'t','fields':["
                      "{'name':'x','type':{'type':'record','name':'X','namespace':'a','fields':["
                      "{'name':'p','type':'int'}]}},"
                      "{'name':'y','type':{'type':'record','name':'X','namespace':'b','fields':["
                      "{'name':'p','type':'int'},{'name':'q','type':'int'}]}}]}");
    const char *r = J("{'type':'record','name':'R','namespace':'t','fields':["
                      "{'name':'x','type':{'type':'record','name':'X','fields':["
                      "{'name':'p','type':'int'},{'name':'q','type':'int','default':0}]}},"
                      "{'name':'y','type':'X'}]}");
    INCOMPATIBLE(w, r, "y", "reader type t.X is read from two writer types that differ");
    REFUSED(w, r, "{\"x\":{\"p\":1},\"y\":{\"p\":2,\"q\":3}}", "y");
}

static void a_type_defined_in_a_dropped_field_stays_defined_for_avro_c(void)
{
    /* the reader's new field `extra` defines D, which `d` refers to: the
     * projection without `extra` must still define D */
    const char *w = J("{'type':'record','name':'R','namespace':'t','fields':["
                      "{'name':'d','type':{'type':'record','name':'D','fields':["
                      "{'name':'p','type':'int'}]}}]}");
    const char *r = J("{'type':'record','name':'R','namespace':'t','fields':["
                      "{'name':'extra','type':{'type':'record','name':'D','fields':["
                      "{'name':'p','type':'int'}]},'default':{'p':9}},"
                      "{'name':'d','type':'D'}]}");
    COMPATIBLE(w, r);
    DECODES(w, r, "{\"d\":{\"p\":1}}", "{\"extra\":{\"p\":9},\"d\":{\"p\":1}}");
}

static int problem_count;

static void count_problem(void *opaque, const char *where, const char *text)
{
    (void)opaque;
    fprintf(stderr, "  problem: %s: %s\n", where, text);
    problem_count++;
}

static void check_all_reports_every_problem_and_the_first_in_err(void)
{
    const char *old = J("{'type':'record','name':'R','namespace':'t','fields':["
                        "{'name':'a','type':'int'},{'name':'s','type':{'type':'enum','name':'S',"
                        "'symbols':['X']}},{'name':'items','type':{'type':'array','items':"
                        "{'type':'record','name':'I','fields':[{'name':'q','type':'int'}]}}}]}");
    const char *new = J("{'type':'record','name':'R','namespace':'t','fields':["
                        "{'name':'a','type':'long'},{'name':'s','type':{'type':'enum','name':'S',"
                        "'symbols':['X','Y']}},{'name':'items','type':{'type':'array','items':"
                        "{'type':'record','name':'I','fields':[{'name':'q','type':'long'}]}}},"
                        "{'name':'b','type':'string'}]}");
    duo_t d;
    lev_error_t err;
    REQUIRE(duo_load(&d, new, old) == 0);
    problem_count = 0;
    CHECK_INT(lev_schema_check_resolvable_all(d.w, d.r, count_problem, NULL, &err), ==,
              LEV_ERR_RESOLVE);
    CHECK_INT(problem_count, ==, 3); /* a, s, items[].q (b is skipped) */
    CHECK_STR(err.where, "a");
    CHECK(strstr(err.text, "long cannot be read as int") != NULL);
    lev_schemas_destroy(d.set);
    REQUIRE(duo_load(&d, old, new) == 0);
    problem_count = 0;
    CHECK_INT(lev_schema_check_resolvable_all(d.w, d.r, count_problem, NULL, &err), ==,
              LEV_ERR_RESOLVE);
    CHECK_INT(problem_count, ==, 1); /* b */
    CHECK_STR(err.where, "b");
    CHECK_INT(lev_schema_check_resolvable(NULL, d.r, &err), ==, LEV_ERR_ARG);
    lev_schemas_destroy(d.set);
}

/* Every schema of the project reads itself, and every evolution fixture
 * pair gets the verdict its decode test expects. */
static void the_project_schemas_and_evolution_fixtures_get_the_expected_verdicts(void)
{
    const char *dirs = getenv("LEV_SCHEMA_DIRS");
    lev_schemas_t *set = lev_schemas_new();
    lev_error_t err;
    int rc = lev_schemas_load_path(set, dirs ? dirs : "schemas", &err);
    CHECK_INT(rc, ==, 0);
    for (size_t i = 0; i < lev_schemas_count(set); i++) {
        const lev_schema_t *s = lev_schemas_at(set, i);
        CHECK_INT(lev_schema_check_resolvable(s, s, &err), ==, 0);
    }
    lev_schemas_destroy(set);
    static const struct {
        const char *dir;
        int backward, forward; /* old -> new, new -> old */
    } fx[] = {
        {"added_field", 1, 1},  {"added_field_no_default", 0, 1}, {"enum_added_symbol", 1, 0},
        {"enum_default", 1, 1}, {"enum_reordered", 1, 1},         {"incompatible_type", 0, 0},
        {"promotion", 1, 0},    {"removed_field", 1, 0},
    };
    const char *data = getenv("LEV_TEST_DATA");
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) {
        char po[512], pn[512];
        const lev_schema_t *o = NULL, *n = NULL;
        snprintf(po, sizeof po, "%s/avro/evolution/%s/old.avsc", data ? data : "tests/data",
                 fx[i].dir);
        snprintf(pn, sizeof pn, "%s/avro/evolution/%s/new.avsc", data ? data : "tests/data",
                 fx[i].dir);
        lev_schemas_t *os = lev_schemas_new(), *ns = lev_schemas_new();
        CHECK_INT(lev_schemas_load_file(os, po, 0, &err), ==, 0);
        CHECK_INT(lev_schemas_load_file(ns, pn, 0, &err), ==, 0);
        o = lev_schemas_at(os, 0);
        n = lev_schemas_at(ns, 0);
        if (!o || !n) {
            lev_schemas_destroy(os);
            lev_schemas_destroy(ns);
            continue;
        }
        int b = lev_schema_check_resolvable(o, n, &err) == 0;
        int f = lev_schema_check_resolvable(n, o, &err) == 0;
        if (b != fx[i].backward || f != fx[i].forward)
            fprintf(stderr, "  %s: backward %d forward %d\n", fx[i].dir, b, f);
        CHECK_INT(b, ==, fx[i].backward);
        CHECK_INT(f, ==, fx[i].forward);
        lev_schemas_destroy(os);
        lev_schemas_destroy(ns);
    }
}

CHECK_MAIN(CASE(every_primitive_pair_follows_the_promotion_rules_both_ways),
           CASE(decode_agrees_with_the_check_for_every_primitive_pair),
           CASE(string_and_bytes_are_not_promoted_to_each_other),
           CASE(added_field_with_a_default_reads_old_values),
           CASE(added_field_without_a_default_cannot_read_old_values),
           CASE(removed_field_needs_a_default_in_the_old_reader),
           CASE(renamed_field_is_a_removed_and_an_added_field_aliases_are_not_used),
           CASE(record_names_must_match_unqualified),
           CASE(enum_symbol_appended_reads_old_values_but_not_new_ones_without_a_default),
           CASE(enum_symbol_unknown_to_the_reader_takes_its_default),
           CASE(enum_symbol_removed_needs_a_default_in_the_new_reader),
           CASE(enum_symbols_reordered_map_by_name), CASE(enum_names_must_match),
           CASE(codec_check_leaves_enum_symbols_to_each_value_and_projects_them),
           CASE(fixed_needs_the_same_full_name_and_size),
           CASE(a_type_is_read_into_the_first_reader_branch_that_matches),
           CASE(every_writer_union_branch_must_be_readable),
           CASE(records_inside_unions_evolve_like_records),
           CASE(array_items_resolve_with_their_path),
           CASE(map_values_and_nested_containers_resolve_with_their_path),
           CASE(recursive_schemas_terminate_and_resolve),
           CASE(a_reader_type_read_from_two_different_writer_types_is_refused),
           CASE(a_type_defined_in_a_dropped_field_stays_defined_for_avro_c),
           CASE(check_all_reports_every_problem_and_the_first_in_err),
           CASE(the_project_schemas_and_evolution_fixtures_get_the_expected_verdicts))
