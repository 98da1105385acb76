/* The version of the library itself, for programs to check at run time. */
#include "internal.h"

const char *lev_version(void)
{
    return LEV_VERSION_STR;
}

int lev_version_number(void)
{
    return LEV_VERSION_NUMBER;
}
