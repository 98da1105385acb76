/*
 * Field helpers over avro-c generic values: dotted paths through nested
 * records ("customer.address.city"), entering unions on the way.
 *
 * Getters enter a union holding a non-null branch; a union holding null
 * (or nothing yet) is LEV_ERR_NOT_FOUND. Setters select the union branch of
 * the type they set; on the way to a nested field, a union holding null is
 * switched to its record branch. Type rules: get_long also reads int
 * fields, set_int also writes long fields; anything else of another type is
 * LEV_ERR_ARG.
 */
#include "codec_internal.h"

#include <string.h>

#define SEGMENT_MAX 256

static avro_schema_t skip_links(avro_schema_t s)
{
    while (is_avro_link(s))
        s = avro_schema_link_target(s);
    return s;
}

/* The index of the first branch of union value `u` of type `type`, or -1. */
static int branch_of_type(avro_value_t *u, avro_type_t type)
{
    avro_schema_t s = avro_value_get_schema(u);
    size_t n = avro_schema_union_size(s);
    for (size_t i = 0; i < n; i++)
        if (avro_typeof(skip_links(avro_schema_union_branch(s, (int)i))) == type)
            return (int)i;
    return -1;
}

/* If *v is a union, replaces it with its branch. For getters a null or
 * empty union is LEV_ERR_NOT_FOUND; for setters (want != AVRO_NULL) the
 * branch of type `want` is selected when the current one is not of it. */
static int enter_union(avro_value_t *v, int for_set, avro_type_t want)
{
    if (avro_value_get_type(v) != AVRO_UNION)
        return 0;
    int d = -1;
    avro_value_t b;
    avro_value_get_discriminant(v, &d);
    if (d >= 0 && avro_value_get_current_branch(v, &b) == 0 &&
        (!for_set || avro_value_get_type(&b) == want)) {
        if (avro_value_get_type(&b) == AVRO_NULL)
            return LEV_ERR_NOT_FOUND;
        *v = b;
        return 0;
    }
    if (!for_set)
        return LEV_ERR_NOT_FOUND;
    int i = branch_of_type(v, want);
    if (i < 0)
        return LEV_ERR_ARG;
    if (avro_value_set_branch(v, i, &b) != 0)
        return LEV_ERR_ARG;
    *v = b;
    return 0;
}

/* Follows `path` from `rec` to the named field (a union there is not
 * entered). */
static int follow(const avro_value_t *rec, const char *path, int for_set, avro_value_t *out)
{
    if (!rec || !rec->iface || !path || !*path || !out)
        return LEV_ERR_ARG;
    avro_value_t cur = *rec;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= SEGMENT_MAX)
            return LEV_ERR_ARG;
        char name[SEGMENT_MAX];
        memcpy(name, p, n);
        name[n] = '\0';
        int rc = enter_union(&cur, for_set, AVRO_RECORD);
        if (rc)
            return rc;
        if (avro_value_get_type(&cur) != AVRO_RECORD)
            return LEV_ERR_ARG;
        avro_value_t child;
        if (avro_value_get_by_name(&cur, name, &child, NULL) != 0)
            return LEV_ERR_NOT_FOUND;
        cur = child;
        if (!dot)
            break;
        p = dot + 1;
    }
    *out = cur;
    return 0;
}

/* Follows the path and enters a final union (getters). */
static int get_leaf(const avro_value_t *rec, const char *path, avro_value_t *out)
{
    int rc = follow(rec, path, 0, out);
    if (rc)
        return rc;
    return enter_union(out, 0, AVRO_NULL);
}

/* Follows the path and selects the final union's branch of `type`. */
static int set_leaf(avro_value_t *rec, const char *path, avro_type_t type, avro_value_t *out)
{
    int rc = follow(rec, path, 1, out);
    if (rc)
        return rc;
    return enter_union(out, 1, type);
}

int lev_value_get_field(const avro_value_t *rec, const char *path, avro_value_t *out)
{
    return get_leaf(rec, path, out);
}

int lev_value_get_string(const avro_value_t *rec, const char *path, const char **out, size_t *len)
{
    avro_value_t v;
    int rc = get_leaf(rec, path, &v);
    if (rc)
        return rc;
    if (avro_value_get_type(&v) != AVRO_STRING)
        return LEV_ERR_ARG;
    const char *s = NULL;
    size_t size = 0;
    if (avro_value_get_string(&v, &s, &size) != 0)
        return LEV_ERR_ARG;
    if (out)
        *out = s ? s : "";
    if (len)
        *len = size ? size - 1 : 0;
    return 0;
}

int lev_value_get_long(const avro_value_t *rec, const char *path, int64_t *out)
{
    avro_value_t v;
    int rc = get_leaf(rec, path, &v);
    if (rc)
        return rc;
    if (avro_value_get_type(&v) == AVRO_INT32) {
        int32_t i = 0;
        avro_value_get_int(&v, &i);
        if (out)
            *out = i;
        return 0;
    }
    if (avro_value_get_type(&v) != AVRO_INT64)
        return LEV_ERR_ARG;
    int64_t l = 0;
    avro_value_get_long(&v, &l);
    if (out)
        *out = l;
    return 0;
}

int lev_value_get_int(const avro_value_t *rec, const char *path, int32_t *out)
{
    avro_value_t v;
    int rc = get_leaf(rec, path, &v);
    if (rc)
        return rc;
    if (avro_value_get_type(&v) != AVRO_INT32)
        return LEV_ERR_ARG;
    int32_t i = 0;
    avro_value_get_int(&v, &i);
    if (out)
        *out = i;
    return 0;
}

int lev_value_get_bool(const avro_value_t *rec, const char *path, int *out)
{
    avro_value_t v;
    int rc = get_leaf(rec, path, &v);
    if (rc)
        return rc;
    if (avro_value_get_type(&v) != AVRO_BOOLEAN)
        return LEV_ERR_ARG;
    int b = 0;
    avro_value_get_boolean(&v, &b);
    if (out)
        *out = b;
    return 0;
}

int lev_value_set_string(avro_value_t *rec, const char *path, const char *s)
{
    if (!s)
        return LEV_ERR_ARG;
    avro_value_t v;
    int rc = set_leaf(rec, path, AVRO_STRING, &v);
    if (rc)
        return rc;
    if (avro_value_get_type(&v) != AVRO_STRING)
        return LEV_ERR_ARG;
    return avro_value_set_string(&v, s) == 0 ? 0 : LEV_ERR_NOMEM;
}

int lev_value_set_long(avro_value_t *rec, const char *path, int64_t val)
{
    avro_value_t v;
    int rc = set_leaf(rec, path, AVRO_INT64, &v);
    if (rc)
        return rc;
    if (avro_value_get_type(&v) != AVRO_INT64)
        return LEV_ERR_ARG;
    return avro_value_set_long(&v, val) == 0 ? 0 : LEV_ERR_ARG;
}

int lev_value_set_int(avro_value_t *rec, const char *path, int32_t val)
{
    avro_value_t v;
    int rc = follow(rec, path, 1, &v);
    if (rc)
        return rc;
    /* An int goes into an int, or a long, field (or union branch). */
    avro_value_t leaf = v;
    if (enter_union(&leaf, 1, AVRO_INT32) != 0) {
        leaf = v;
        if (enter_union(&leaf, 1, AVRO_INT64) != 0)
            return LEV_ERR_ARG;
    }
    if (avro_value_get_type(&leaf) == AVRO_INT32)
        return avro_value_set_int(&leaf, val) == 0 ? 0 : LEV_ERR_ARG;
    if (avro_value_get_type(&leaf) == AVRO_INT64)
        return avro_value_set_long(&leaf, val) == 0 ? 0 : LEV_ERR_ARG;
    return LEV_ERR_ARG;
}

int lev_value_set_enum(avro_value_t *rec, const char *path, const char *symbol)
{
    if (!symbol)
        return LEV_ERR_ARG;
    avro_value_t v;
    int rc = set_leaf(rec, path, AVRO_ENUM, &v);
    if (rc)
        return rc;
    if (avro_value_get_type(&v) != AVRO_ENUM)
        return LEV_ERR_ARG;
    int i = avro_schema_enum_get_by_name(avro_value_get_schema(&v), symbol);
    if (i < 0)
        return LEV_ERR_ARG;
    return avro_value_set_enum(&v, i) == 0 ? 0 : LEV_ERR_ARG;
}

int lev_value_set_null(avro_value_t *rec, const char *path)
{
    avro_value_t v;
    int rc = follow(rec, path, 1, &v);
    if (rc)
        return rc;
    if (avro_value_get_type(&v) == AVRO_NULL)
        return 0;
    if (avro_value_get_type(&v) != AVRO_UNION)
        return LEV_ERR_ARG;
    int i = branch_of_type(&v, AVRO_NULL);
    avro_value_t b;
    if (i < 0 || avro_value_set_branch(&v, i, &b) != 0)
        return LEV_ERR_ARG;
    return 0;
}
