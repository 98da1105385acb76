/* The library's runtime version is the version of its headers, which CMake
 * generates from the project's version. */
#include "check.h"

#include <libevents.h>

static void runtime_version_equals_the_header_macros(void)
{
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", LEV_VERSION_MAJOR, LEV_VERSION_MINOR,
             LEV_VERSION_PATCH);
    CHECK_STR(lev_version(), expect);
    CHECK_STR(lev_version(), LEV_VERSION_STR);
    CHECK_STR(lev_version(), LEV_TEST_PROJECT_VERSION);
    CHECK_INT(lev_version_number(), ==, LEV_VERSION_NUMBER);
    CHECK_INT(lev_version_number(), ==,
              LEV_VERSION_MAJOR * 65536 + LEV_VERSION_MINOR * 256 + LEV_VERSION_PATCH);
}

static void version_numbers_compare_in_version_order(void)
{
    /* each part fits its byte, so 0.9.0 < 0.10.0 < 1.0.0 numerically */
    CHECK(LEV_VERSION_MINOR >= 0 && LEV_VERSION_MINOR < 256);
    CHECK(LEV_VERSION_PATCH >= 0 && LEV_VERSION_PATCH < 256);
    CHECK_INT(lev_version_number() >> 16, ==, LEV_VERSION_MAJOR);
    CHECK_INT((lev_version_number() >> 8) & 0xff, ==, LEV_VERSION_MINOR);
    CHECK_INT(lev_version_number() & 0xff, ==, LEV_VERSION_PATCH);
}

CHECK_MAIN(CASE(runtime_version_equals_the_header_macros),
           CASE(version_numbers_compare_in_version_order))
