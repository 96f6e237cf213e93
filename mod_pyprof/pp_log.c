/* pp_log.c: formats core log messages and hands them to the glue's callback.
 * Owns nothing else; never touches Python or httpd.
 */
#include <stdarg.h>
#include <stdio.h>

#include "pp_log.h"

static pp_log_cb *pp_log_callback;

void pp_log_set_callback(pp_log_cb *cb)
{
    pp_log_callback = cb;
}

void pp_log(pp_log_level_t level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    if (!pp_log_callback) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    pp_log_callback(level, buf);
}
