/*
 * Where the installed library's data (schemas/) is, found at run time
 * relative to the file that holds this code, so that an installed tree still
 * works after it was moved to another prefix (cmake --install --prefix, a
 * package unpacked elsewhere, a container image laid out differently):
 *   - in the shared library <libdir>/libevents.so.N: <libdir>/<rel>;
 *   - linked statically into a program <bindir>/program: <bindir>/<rel>;
 * where <rel> is the path from libdir (or bindir) to
 * <datadir>/libevents at build time ("../share/libevents"). When that
 * directory does not exist (a build tree, a program installed elsewhere),
 * the absolute path chosen at build time.
 */
#define _GNU_SOURCE /* dladdr1, RTLD_DL_LINKMAP */
#include "internal.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char data_dir[PATH_MAX];
static pthread_once_t data_dir_once = PTHREAD_ONCE_INIT;

/* An object of this file: dladdr tells which loaded file holds it. */
static const char anchor = 0;

/* Sets data_dir to <directory of file>/<rel> when that is a directory. */
static int try_next_to(const char *file, const char *rel)
{
    char real[PATH_MAX], joined[PATH_MAX], dir[PATH_MAX];
    if (!realpath(file, real))
        return -1;
    char *slash = strrchr(real, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    int n = snprintf(joined, sizeof joined, "%s/%s", real, rel);
    struct stat st;
    if (n < 0 || (size_t)n >= sizeof joined || !realpath(joined, dir) || stat(dir, &st) != 0 ||
        !S_ISDIR(st.st_mode))
        return -1;
    snprintf(data_dir, sizeof data_dir, "%s", dir);
    return 0;
}

static void find_data_dir(void)
{
    Dl_info info;
    struct link_map *map = NULL;
    /* the main program's link map has an empty name; a shared library's
     * is the path it was loaded from */
    if (dladdr1(&anchor, &info, (void **)&map, RTLD_DL_LINKMAP) != 0 && map && map->l_name &&
        map->l_name[0]) {
        if (try_next_to(map->l_name, LEV_DATADIR_FROM_LIBDIR) == 0)
            return;
    } else if (try_next_to("/proc/self/exe", LEV_DATADIR_FROM_BINDIR) == 0) {
        return;
    }
    snprintf(data_dir, sizeof data_dir, "%s", LEV_INSTALL_DATADIR);
}

const char *lev_install_data_dir(void)
{
    pthread_once(&data_dir_once, find_data_dir);
    return data_dir;
}
