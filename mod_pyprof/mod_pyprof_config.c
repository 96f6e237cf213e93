/* mod_pyprof_config.c: the PyProf* directives and per-server merging.
 *
 * Parses with the core's pp_parse_* and turns their messages into errors
 * that name the directive, so "apachectl configtest" says what was wrong
 * and what is accepted.  Never touches the store or Python.
 */
#include "apr_lib.h"
#include "apr_network_io.h"
#include "apr_strings.h"
#include "httpd.h"
#include "http_config.h"

#include "mod_pyprof.h"
#include "pp_parse.h"

void *pyprof_create_server_conf(apr_pool_t *p, server_rec *s)
{
    pyprof_server_conf_t *c = apr_pcalloc(p, sizeof(*c));
    (void)s;
    c->locations = apr_array_make(p, 4, sizeof(pyprof_location_t));
    c->slow_us = -1;
    c->keep = -1;
    c->max_depth = -1;
    c->memory = 0;
    c->record_query = -1;
    c->sampler_mode = -1;
    return c;
}

void *pyprof_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    pyprof_server_conf_t *base = basev, *add = addv;
    pyprof_server_conf_t *c = apr_pcalloc(p, sizeof(*c));

    /* a vhost samples its own prefixes and inherits the main server's;
     * longest prefix wins at match time, whichever list it came from */
    c->locations = apr_array_append(p, add->locations, base->locations);
    c->slow_us = add->slow_us >= 0 ? add->slow_us : base->slow_us;
    c->keep = add->keep >= 0 ? add->keep : base->keep;
    c->max_depth = add->max_depth >= 0 ? add->max_depth : base->max_depth;
    c->memory = add->memory ? add->memory : base->memory;
    c->record_query =
        add->record_query >= 0 ? add->record_query : base->record_query;
    c->sampler_mode =
        add->sampler_mode >= 0 ? add->sampler_mode : base->sampler_mode;
    if (add->trigger_header) {
        c->trigger_header = add->trigger_header;
        c->trigger_secret = add->trigger_secret;
        c->trigger_interval_us = add->trigger_interval_us;
    }
    else {
        c->trigger_header = base->trigger_header;
        c->trigger_secret = base->trigger_secret;
        c->trigger_interval_us = base->trigger_interval_us;
    }
    return c;
}

void *pyprof_create_dir_conf(apr_pool_t *p, char *dir)
{
    pyprof_dir_conf_t *d = apr_pcalloc(p, sizeof(*d));
    (void)dir;
    d->headers = -1;
    return d;
}

void *pyprof_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    pyprof_dir_conf_t *base = basev, *add = addv;
    pyprof_dir_conf_t *d = apr_pcalloc(p, sizeof(*d));
    d->headers = add->headers >= 0 ? add->headers : base->headers;
    /* a section without PyProfAccess (a vhost's <Location />) keeps what
     * the enclosing one said: only a PyProfAccess line opens the pages */
    d->access = add->access ? add->access : base->access;
    return d;
}

int64_t pyprof_conf_slow_us(const pyprof_server_conf_t *c)
{
    return c->slow_us >= 0 ? c->slow_us : PYPROF_DEFAULT_SLOW_US;
}

long pyprof_conf_keep(const pyprof_server_conf_t *c)
{
    return c->keep >= 0 ? c->keep : PYPROF_DEFAULT_KEEP;
}

long pyprof_conf_max_depth(const pyprof_server_conf_t *c)
{
    return c->max_depth >= 0 ? c->max_depth : PYPROF_DEFAULT_MAX_DEPTH;
}

uint64_t pyprof_conf_memory(const pyprof_server_conf_t *c)
{
    return c->memory ? c->memory : PYPROF_DEFAULT_MEMORY;
}

int pyprof_conf_record_query(const pyprof_server_conf_t *c)
{
    return c->record_query > 0;
}

static pyprof_server_conf_t *conf_of(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &pyprof_module);
}

static const char *fail(cmd_parms *cmd, const char *value, const char *why)
{
    return apr_psprintf(cmd->pool, "%s: invalid value '%s': %s",
                        cmd->cmd->name, value, why);
}

static const char *set_sample(cmd_parms *cmd, void *dummy, const char *prefix,
                              const char *interval)
{
    pyprof_server_conf_t *c = conf_of(cmd);
    pyprof_location_t *loc;
    const char *err;
    int64_t us;
    int i;
    (void)dummy;

    if ((err = pp_parse_prefix(prefix))) {
        return fail(cmd, prefix, err);
    }
    if ((err = pp_parse_duration(interval, PYPROF_MIN_INTERVAL_US,
                                 PYPROF_MAX_INTERVAL_US, &us))) {
        return apr_psprintf(cmd->pool,
                            "%s %s: invalid interval '%s': %s; the interval "
                            "must lie between 1ms and 10s",
                            cmd->cmd->name, prefix, interval, err);
    }
    for (i = 0; i < c->locations->nelts; i++) {
        loc = &APR_ARRAY_IDX(c->locations, i, pyprof_location_t);
        if (strcmp(loc->prefix, prefix) == 0) {
            return apr_psprintf(cmd->pool,
                                "%s: prefix '%s' is already sampled in this "
                                "server",
                                cmd->cmd->name, prefix);
        }
    }
    loc = apr_array_push(c->locations);
    loc->prefix = apr_pstrdup(cmd->pool, prefix);
    loc->interval_us = (uint32_t)us;
    loc->store_idx = -1;
    return NULL;
}

static const char *set_slow(cmd_parms *cmd, void *dummy, const char *v)
{
    const char *err;
    int64_t us;
    (void)dummy;

    /* 1 us .. 1 hour: "0" is refused by the parser (needs a unit) */
    if ((err = pp_parse_duration(v, 1, 3600LL * 1000000, &us))) {
        return fail(cmd, v, err);
    }
    conf_of(cmd)->slow_us = us;
    return NULL;
}

static const char *set_keep(cmd_parms *cmd, void *dummy, const char *v)
{
    const char *err;
    long n;
    (void)dummy;

    if ((err = pp_parse_int(v, 1, 10000, &n))) {
        return fail(cmd, v, apr_pstrcat(cmd->pool, err,
                                        " (a count from 1 to 10000)", NULL));
    }
    conf_of(cmd)->keep = n;
    return NULL;
}

static const char *set_depth(cmd_parms *cmd, void *dummy, const char *v)
{
    const char *err;
    long n;
    (void)dummy;

    if ((err = pp_parse_int(v, 1, PP_DEPTH_LIMIT, &n))) {
        return fail(cmd, v,
                    apr_psprintf(cmd->pool, "%s (frames, from 1 to %d)", err,
                                 PP_DEPTH_LIMIT));
    }
    conf_of(cmd)->max_depth = n;
    return NULL;
}

static const char *set_memory(cmd_parms *cmd, void *dummy, const char *v)
{
    const char *err;
    uint64_t n;
    uint64_t floor = pp_store_min_size(16, 1);
    (void)dummy;

    if ((err = pp_parse_size(v, 1, 64ULL << 30, &n))) {
        return fail(cmd, v, apr_pstrcat(cmd->pool, err,
                                        " (at most 64G)", NULL));
    }
    if (n < floor) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is too small to hold the store; it "
                            "needs at least %" APR_UINT64_T_FMT "K (e.g. "
                            "16M)",
                            cmd->cmd->name, v,
                            (apr_uint64_t)((floor + 1023) / 1024));
    }
    conf_of(cmd)->memory = n;
    return NULL;
}

static const char *set_query(cmd_parms *cmd, void *dummy, int on)
{
    (void)dummy;
    conf_of(cmd)->record_query = on ? 1 : 0;
    return NULL;
}

static const char *set_sampler(cmd_parms *cmd, void *dummy, const char *v)
{
    (void)dummy;
    if (strcasecmp(v, "nogil") == 0) {
        conf_of(cmd)->sampler_mode = PP_SAMPLER_NOGIL;
    }
    else if (strcasecmp(v, "gil") == 0) {
        conf_of(cmd)->sampler_mode = PP_SAMPLER_GIL;
    }
    else {
        return fail(cmd, v, "expected nogil (read stacks without the GIL, "
                            "the default) or gil (take the GIL for each "
                            "sample)");
    }
    return NULL;
}

static const char *set_headers(cmd_parms *cmd, void *dconf, int on)
{
    (void)cmd;
    ((pyprof_dir_conf_t *)dconf)->headers = on ? 1 : 0;
    return NULL;
}

static const char *set_trigger(cmd_parms *cmd, void *dummy, const char *args)
{
    pyprof_server_conf_t *c = conf_of(cmd);
    const char *header = ap_getword_conf(cmd->pool, &args);
    const char *secret = ap_getword_conf(cmd->pool, &args);
    const char *interval = ap_getword_conf(cmd->pool, &args);
    const char *err, *p;
    int64_t us = PYPROF_DEFAULT_TRIGGER_INTERVAL_US;
    (void)dummy;

    if (!*header || !*secret || *ap_getword_conf(cmd->pool, &args)) {
        return apr_psprintf(cmd->pool, "%s: expected HEADER SECRET "
                            "[INTERVAL], e.g. X-PyProf-Trigger "
                            "s3cr3t-token 1ms", cmd->cmd->name);
    }
    for (p = header; *p; p++) {
        /* an HTTP token (RFC 9110) */
        if (!apr_isalnum(*p) && !strchr("!#$%&'*+-.^_`|~", *p)) {
            return fail(cmd, header, "the header name must be an HTTP "
                                     "token (letters, digits, '-')");
        }
    }
    if (strlen(secret) < 8) {
        return fail(cmd, "(secret)", "the secret must be at least 8 "
                                     "characters long");
    }
    if (*interval && (err = pp_parse_duration(interval, PYPROF_MIN_INTERVAL_US,
                                              PYPROF_MAX_INTERVAL_US, &us))) {
        return apr_psprintf(cmd->pool, "%s: invalid interval '%s': %s; the "
                            "interval must lie between 1ms and 10s",
                            cmd->cmd->name, interval, err);
    }
    c->trigger_header = header;
    c->trigger_secret = secret;
    c->trigger_interval_us = (uint32_t)us;
    return NULL;
}

/* PyProfAccess local | any | authenticated | ADDRESS[/BITS] ...: the
 * items of one section add up, like Require lines in a <RequireAny>; a
 * nested section that has its own PyProfAccess replaces them. */
static const char *set_access(cmd_parms *cmd, void *dconf, const char *arg)
{
    pyprof_dir_conf_t *d = dconf;
    pyprof_access_t *a = d->access;
    char *addr, *bits;
    apr_ipsubnet_t *net;
    apr_status_t rv;

    if (!a) {
        a = d->access = apr_pcalloc(cmd->pool, sizeof(*a));
        a->networks = apr_array_make(cmd->pool, 2, sizeof(apr_ipsubnet_t *));
    }
    if (strcasecmp(arg, "local") == 0) {
        a->local = 1;
    }
    else if (strcasecmp(arg, "any") == 0) {
        a->any = 1;
    }
    else if (strcasecmp(arg, "authenticated") == 0) {
        a->authenticated = 1;
    }
    else {
        /* the syntax of Require ip: 10.1, 10.1.0.0/16, 10.1.0.0/255.255.0.0,
         * 2001:db8::/32; never a host name (no DNS at request time) */
        addr = apr_pstrdup(cmd->temp_pool, arg);
        if ((bits = strchr(addr, '/'))) {
            *bits++ = '\0';
        }
        rv = apr_ipsubnet_create(&net, addr, bits, cmd->pool);
        if (rv != APR_SUCCESS) {
            return fail(cmd, arg,
                        "expected local (loopback clients, the default), "
                        "authenticated (a user logged in through Apache's "
                        "authentication), any (every client), or an IP "
                        "address or network such as 192.0.2.0/24 or "
                        "2001:db8::/32");
        }
        APR_ARRAY_PUSH(a->networks, apr_ipsubnet_t *) = net;
    }
    if (a->any && (a->local || a->authenticated || a->networks->nelts)) {
        return apr_psprintf(cmd->pool,
                            "%s: 'any' opens the pages to every client, so "
                            "it cannot be combined with other items in the "
                            "same section",
                            cmd->cmd->name);
    }
    return NULL;
}

const command_rec pyprof_cmds[] = {
    AP_INIT_TAKE2("PyProfSample", set_sample, NULL, RSRC_CONF,
                  "PyProfSample PREFIX INTERVAL: sample requests under the "
                  "URL prefix every INTERVAL (1ms..10s, units us, ms, s)"),
    AP_INIT_TAKE1("PyProfSlowThreshold", set_slow, NULL, RSRC_CONF,
                  "keep the trace of requests at least this slow (e.g. "
                  "500ms)"),
    AP_INIT_TAKE1("PyProfKeep", set_keep, NULL, RSRC_CONF,
                  "number of slow-request traces kept, newest win "
                  "(main server only)"),
    AP_INIT_TAKE1("PyProfMaxDepth", set_depth, NULL, RSRC_CONF,
                  "frames kept per stack, the deepest ones"),
    AP_INIT_TAKE1("PyProfMemory", set_memory, NULL, RSRC_CONF,
                  "shared memory budget, e.g. 32M (main server only)"),
    AP_INIT_FLAG("PyProfRecordQuery", set_query, NULL, RSRC_CONF,
                 "On to keep query strings in recorded URIs (default Off)"),
    AP_INIT_TAKE1("PyProfSampler", set_sampler, NULL, RSRC_CONF,
                  "nogil (default: read stacks without taking the GIL) or "
                  "gil (main server only)"),
    AP_INIT_FLAG("PyProfHeaders", set_headers, NULL, RSRC_CONF | ACCESS_CONF,
                 "On to add X-PyProf-Id and Server-Timing to sampled "
                 "responses (default Off)"),
    AP_INIT_ITERATE("PyProfAccess", set_access, NULL,
                    RSRC_CONF | ACCESS_CONF,
                    "who the profile pages serve, on top of Require: local "
                    "(loopback clients, the default), authenticated, any, "
                    "or IP addresses and networks (192.0.2.0/24)"),
    AP_INIT_RAW_ARGS("PyProfTrigger", set_trigger, NULL, RSRC_CONF,
                     "PyProfTrigger HEADER SECRET [INTERVAL]: a request "
                     "carrying HEADER: SECRET is sampled every INTERVAL "
                     "(default 1ms) and always kept"),
    {NULL}};
