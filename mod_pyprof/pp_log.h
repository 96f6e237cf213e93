/* pp_log.h: logging from the core (pp_*.c) without knowing httpd.
 *
 * The glue installs a callback (mod_pyprof.c maps it onto ap_log_error with
 * the module's index, so "LogLevel pyprof:debug" works); with none installed
 * the core is silent.  Never call this from the sampler while holding the
 * GIL for long or from a signal handler: the callback may allocate.
 */
#ifndef PP_LOG_H
#define PP_LOG_H

typedef enum {
    PP_LOG_ERR = 3,
    PP_LOG_WARN = 4,
    PP_LOG_NOTICE = 5,
    PP_LOG_INFO = 6,
    PP_LOG_DEBUG = 7
} pp_log_level_t;

typedef void pp_log_cb(pp_log_level_t level, const char *msg);

void pp_log_set_callback(pp_log_cb *cb);
void pp_log(pp_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
