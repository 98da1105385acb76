/* Reading fields of decoded events, with errors that name the field. */
#include "svc.h"

int svc_get_str(avro_value_t *rec, const char *name, const char **out, lev_error_t *err)
{
    size_t len;
    if (lev_value_get_string(rec, name, out, &len) != 0)
        return svc_error(err, LEV_ERR_DECODE, name, "missing or not a string");
    return LEV_OK;
}

int svc_get_long(avro_value_t *rec, const char *name, int64_t *out, lev_error_t *err)
{
    if (lev_value_get_long(rec, name, out) != 0)
        return svc_error(err, LEV_ERR_DECODE, name, "missing or not a long");
    return LEV_OK;
}

int svc_get_opt_str(avro_value_t *rec, const char *name, const char **out, lev_error_t *err)
{
    avro_value_t u, branch;
    size_t size;
    *out = NULL;
    if (avro_value_get_by_name(rec, name, &u, NULL) != 0 ||
        avro_value_get_current_branch(&u, &branch) != 0)
        return svc_error(err, LEV_ERR_DECODE, name, "missing or not a union");
    if (avro_value_get_type(&branch) == AVRO_NULL)
        return LEV_OK;
    if (avro_value_get_string(&branch, out, &size) != 0)
        return svc_error(err, LEV_ERR_DECODE, name, "not a string");
    return LEV_OK;
}
