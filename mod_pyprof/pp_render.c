/* pp_render.c: what the pages and formats of /server-profile share (see
 * pp_render.h and pp_render_int.h for which file renders what): number
 * and time formats, the HTML page frame, and the lookups the handler
 * makes before it renders.
 *
 * Reads the store through snapshot copies only; never writes to it.  Every
 * client or Python string goes through the escapers of pp_sink.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pp_render_int.h"

void pp_render_opts_init(pp_render_opts_t *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->base = "";
    opt->filter_location = -1;
    opt->min_us = -1;
    opt->max_us = -1;
}

/* ---- formats ---- */

void pp_iso_time(int64_t us, char *buf, size_t cap)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    char b[32];

    gmtime_r(&t, &tm);
    strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03dZ", b, (int)((us / 1000) % 1000));
}

void pp_human_ms(double ms, char *buf, size_t cap)
{
    if (ms >= 10000) {
        snprintf(buf, cap, "%.1f s", ms / 1000);
    }
    else if (ms >= 1000) {
        snprintf(buf, cap, "%.2f s", ms / 1000);
    }
    else if (ms >= 10) {
        snprintf(buf, cap, "%.0f ms", ms);
    }
    else {
        snprintf(buf, cap, "%.1f ms", ms);
    }
}

void pp_put_ms_cell(pp_sink_t *o, double ms)
{
    char b[32];
    pp_human_ms(ms, b, sizeof(b));
    pp_printf(o, "<td class=num>%s</td>", b);
}

/* How long an in-flight request has run.  The page's clock is read once,
 * before the slots: a request that arrived while they were read would
 * come out negative. */
double pp_elapsed_ms(const pp_render_opts_t *opt, int64_t start_us)
{
    return opt->now_us > start_us ? (opt->now_us - start_us) / 1e3 : 0.0;
}

int pp_render_find_location(const pp_store_t *st, const char *path)
{
    int i;

    for (i = 0; i < PP_MAX_LOCATIONS; i++) {
        const pp_location_t *loc = pp_store_location((pp_store_t *)st, i);
        if (pp_location_current(st, loc) &&
            strncmp(loc->path, path, PP_PREFIX_MAX) == 0) {
            return i;
        }
    }
    return -1;
}

int pp_render_location_profile(pp_profile_t *p, const pp_store_t *st,
                               int location, int64_t now_us, int64_t since_us,
                               int side)
{
    return pp_profile_of_location(p, st, location, now_us, since_us, side) ||
                   pp_profile_resolve(p, st)
               ? -1
               : 0;
}

void pp_page_begin(pp_sink_t *o, const char *title, const pp_render_opts_t *opt)
{
    char t[40];

    pp_puts(o, "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
               "<meta name=viewport content=\"width=device-width\">");
    if (opt->refresh > 0) {
        pp_printf(o, "<meta http-equiv=refresh content=\"%d\">", opt->refresh);
    }
    pp_puts(o, "<title>");
    pp_puts_html(o, title);
    pp_puts(o, "</title><style>");
    pp_puts(o, pp_page_css);
    pp_puts(o, "</style></head><body><header><h1><a href=\"");
    pp_puts_html(o, opt->base);
    pp_puts(o, "\">mod_pyprof</a></h1><span>");
    pp_puts_html(o, title);
    pp_iso_time(opt->now_us, t, sizeof(t));
    pp_printf(o, "</span><span class=meta>%s</span></header><main>", t);
}

void pp_page_end(pp_sink_t *o)
{
    pp_puts(o, "</main></body></html>\n");
}

void pp_render_message_html(pp_sink_t *o, const char *title, const char *msg,
                            const pp_render_opts_t *opt)
{
    pp_page_begin(o, title, opt);
    pp_puts(o, "<p>");
    pp_puts_html(o, msg);
    pp_puts(o, "</p><p><a href=\"");
    pp_puts_html(o, opt->base);
    pp_puts(o, "\">Back to the overview</a></p>");
    pp_page_end(o);
}

void pp_status_cell(pp_sink_t *o, int status)
{
    pp_printf(o, "<td class=\"num%s\">%d</td>",
              status >= 500 ? " s5" : (status >= 400 ? " s4" : ""), status);
}

void pp_req_link(pp_sink_t *o, const pp_render_opts_t *opt, const char *id,
                 const char *text)
{
    pp_puts(o, "<a href=\"");
    pp_puts_html(o, opt->base);
    pp_puts(o, "/request/");
    /* percent-encoded: needs no HTML escaping */
    pp_put_url_segment(o, id, strnlen(id, PP_ID_MAX));
    pp_puts(o, "\">");
    pp_puts_html(o, text);
    pp_puts(o, "</a>");
}

void pp_location_link(pp_sink_t *o, const pp_render_opts_t *opt,
                      const char *path)
{
    pp_puts(o, "<a href=\"");
    pp_puts_html(o, opt->base);
    pp_puts(o, "/location?path=");
    pp_put_url_segment(o, path, strlen(path));
    pp_puts(o, "\">");
    pp_puts_html(o, path);
    pp_puts(o, "</a>");
}
