/* The main function the three services share: everything but their settings
 * and handlers. */
#include "svc.h"

#include <string.h>

/* Logs err as a configuration error; returns the exit code for it. */
static int fail(const char *msg, const lev_error_t *err, int code)
{
    char buf[800];
    lev_log(LEV_LOG_ERROR, msg, "error", lev_error_format(err, buf, sizeof buf), NULL);
    return code;
}

int svc_main(int argc, char **argv, const svc_def_t *def, void *svc)
{
    lev_config_t conf;
    lev_error_t err = {0};
    lev_worker_t *w = NULL;
    int rc = SVC_EXIT_RUNTIME, have_settings = 0;

    if (argc > 1) {
        int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
        def->usage(help ? stdout : stderr);
        return help && argc == 2 ? SVC_EXIT_OK : SVC_EXIT_CONFIG;
    }
    lev_log_set_service(def->name);
    lev_log_set(lev_log_json, NULL, LEV_LOG_INFO);
    if (lev_config_from_env(&conf, def->name, &err) != 0)
        return fail("bad configuration", &err, SVC_EXIT_CONFIG);
    lev_log_set_service(conf.service);
    lev_log_set(lev_log_json, NULL, conf.log_level);

    have_settings = 1;
    if (def->settings(svc, &conf, &err) != 0) {
        rc = fail("bad configuration", &err,
                  err.code == LEV_ERR_CONFIG ? SVC_EXIT_CONFIG : SVC_EXIT_RUNTIME);
        goto done;
    }
    if (!(w = lev_worker_new(&conf, &err))) {
        rc = fail("cannot start the worker", &err, svc_exit_code_for(err.code));
        goto done;
    }
    if (def->wire(w, svc, &err) != 0) {
        rc = fail("bad configuration", &err, SVC_EXIT_CONFIG);
        goto done;
    }
    if (lev_worker_stop_on_signals(w) != 0) {
        lev_log(LEV_LOG_ERROR, "cannot install signal handlers", NULL);
        goto done;
    }
    lev_log(LEV_LOG_INFO, "starting", "group", conf.group_id, "bootstrap", conf.bootstrap, NULL);
    if (lev_worker_run(w) == 0) {
        lev_log(LEV_LOG_INFO, "stopped", NULL);
        rc = SVC_EXIT_OK;
    } else {
        lev_log(LEV_LOG_ERROR, "worker failed", NULL);
    }
done:
    /* first the service's clients: requests still running complete (as
     * not answered) and their deferred records are released when the
     * worker is destroyed */
    if (have_settings && def->cleanup)
        def->cleanup(svc);
    lev_worker_destroy(w);
    lev_config_clear(&conf);
    return rc;
}
