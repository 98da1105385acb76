/* A program outside the tree that uses an installed libevents. */
#include <libevents.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    /* the library it runs with is the one whose headers it was built with */
    printf("version %s\n", lev_version());
    if (strcmp(lev_version(), LEV_VERSION_STR) != 0 || lev_version_number() != LEV_VERSION_NUMBER) {
        fprintf(stderr, "runtime version %s, headers %s\n", lev_version(), LEV_VERSION_STR);
        return 1;
    }
    /* the CRC-64-AVRO fingerprint of the schema "null" (Avro specification) */
    const char *canon = "\"null\"";
    uint64_t fp = lev_avro_fingerprint64(canon, strlen(canon));
    char id[LEV_UUID_STR_LEN];
    lev_uuid4(id);
    printf("%016llx %s\n", (unsigned long long)fp, id);
    return fp == 0x63dd24e7cc258f8aULL && strlen(id) == 36 ? 0 : 1;
}
