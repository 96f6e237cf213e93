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

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mod_pyprof.h"
#include "pp_alloc.h"
#include "pp_parse.h"

/* The directives' ranges; their error messages are built from these. */
#define PYPROF_MAX_SLOW_US (3600LL * 1000000) /* PyProfSlowThreshold: 1h */
#define PYPROF_MAX_KEEP 10000                 /* PyProfKeep: 1 to this */
#define PYPROF_MAX_MEMORY (64ULL << 30)       /* PyProfMemory: 64G */
#define PYPROF_MAX_MEMORY_TEXT "64G"
/* PyProfMemory's floor: the store of this many request slots keeping one
 * trace (what a minimal server needs), and the example the error gives */
#define PYPROF_MIN_MEMORY_SLOTS 16
#define PYPROF_MEMORY_EXAMPLE "16M"
#define PYPROF_SECRET_MIN_LEN 8 /* PyProfTrigger's secret, in bytes */
#define PYPROF_SECRET_FILE_PREFIX "file:"
#define PYPROF_SECRET_FILE_PREFIX_LEN (sizeof(PYPROF_SECRET_FILE_PREFIX) - 1)

void *pyprof_create_server_conf(apr_pool_t *p, server_rec *s)
{
    pyprof_server_conf_t *c = apr_pcalloc(p, sizeof(*c));
    (void)s;
    c->locations = apr_array_make(p, 4, sizeof(pyprof_location_t));
    c->slow_us = PYPROF_UNSET;
    c->keep = PYPROF_UNSET;
    c->max_depth = PYPROF_UNSET;
    c->memory = PYPROF_UNSET;
    c->record_query = PYPROF_UNSET;
    c->sampler_mode = PYPROF_UNSET;
    c->alloc_mean = PYPROF_UNSET;
    c->redact = apr_array_make(p, 2, sizeof(pyprof_redact_t));
    return c;
}

void *pyprof_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    pyprof_server_conf_t *base = basev, *add = addv;
    pyprof_server_conf_t *c = apr_pcalloc(p, sizeof(*c));

    /* a vhost samples its own prefixes and inherits the main server's;
     * longest prefix wins at match time, whichever list it came from */
    c->locations = apr_array_append(p, add->locations, base->locations);
    c->slow_us = PYPROF_MERGE(base, add, slow_us);
    c->keep = PYPROF_MERGE(base, add, keep);
    c->max_depth = PYPROF_MERGE(base, add, max_depth);
    c->memory = PYPROF_MERGE(base, add, memory);
    c->record_query = PYPROF_MERGE(base, add, record_query);
    c->sampler_mode = PYPROF_MERGE(base, add, sampler_mode);
    c->alloc_mean = PYPROF_MERGE(base, add, alloc_mean);
    if (add->trigger_header) {
        c->trigger_header = add->trigger_header;
        memcpy(c->trigger_hash, add->trigger_hash, sizeof(c->trigger_hash));
        c->trigger_interval_us = add->trigger_interval_us;
    }
    else {
        c->trigger_header = base->trigger_header;
        memcpy(c->trigger_hash, base->trigger_hash, sizeof(c->trigger_hash));
        c->trigger_interval_us = base->trigger_interval_us;
    }
    /* like the prefixes: the vhost's own rules first, then the main
     * server's */
    c->redact = apr_array_append(p, add->redact, base->redact);
    return c;
}

void *pyprof_create_dir_conf(apr_pool_t *p, char *dir)
{
    pyprof_dir_conf_t *d = apr_pcalloc(p, sizeof(*d));
    (void)dir;
    d->headers = PYPROF_UNSET;
    return d;
}

void *pyprof_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    pyprof_dir_conf_t *base = basev, *add = addv;
    pyprof_dir_conf_t *d = apr_pcalloc(p, sizeof(*d));
    d->headers = PYPROF_MERGE(base, add, headers);
    /* a section without PyProfAccess (a vhost's <Location />) keeps what
     * the enclosing one said: only a PyProfAccess line opens the pages */
    d->access = add->access ? add->access : base->access;
    return d;
}

int64_t pyprof_conf_slow_us(const pyprof_server_conf_t *c)
{
    return c->slow_us == PYPROF_UNSET ? PYPROF_DEFAULT_SLOW_US : c->slow_us;
}

long pyprof_conf_keep(const pyprof_server_conf_t *c)
{
    return c->keep == PYPROF_UNSET ? PYPROF_DEFAULT_KEEP : c->keep;
}

long pyprof_conf_max_depth(const pyprof_server_conf_t *c)
{
    return c->max_depth == PYPROF_UNSET ? PYPROF_DEFAULT_MAX_DEPTH
                                        : c->max_depth;
}

uint64_t pyprof_conf_memory(const pyprof_server_conf_t *c)
{
    return c->memory == PYPROF_UNSET ? PYPROF_DEFAULT_MEMORY
                                     : (uint64_t)c->memory;
}

int pyprof_conf_record_query(const pyprof_server_conf_t *c)
{
    return c->record_query == 1;
}

uint32_t pyprof_conf_sampler_mode(const pyprof_server_conf_t *c)
{
    return c->sampler_mode == PYPROF_UNSET ? PP_SAMPLER_NOGIL
                                           : (uint32_t)c->sampler_mode;
}

uint32_t pyprof_conf_alloc_mean(const pyprof_server_conf_t *c)
{
    return c->alloc_mean == PYPROF_UNSET ? 0 : (uint32_t)c->alloc_mean;
}

static pyprof_server_conf_t *conf_of(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &pyprof_module);
}

static const char *fail(cmd_parms *cmd, const char *value, const char *why)
{
    return apr_psprintf(cmd->pool, "%s: invalid value '%s': %s", cmd->cmd->name,
                        value, why);
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
                            "must lie between " PYPROF_INTERVAL_RANGE,
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
    if ((err = pp_parse_duration(v, 1, PYPROF_MAX_SLOW_US, &us))) {
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

    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if ((err = pp_parse_int(v, 1, PYPROF_MAX_KEEP, &n))) {
        return fail(cmd, v,
                    apr_psprintf(cmd->pool, "%s (a count from 1 to %d)", err,
                                 PYPROF_MAX_KEEP));
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
    uint64_t floor = pp_store_min_size(PYPROF_MIN_MEMORY_SLOTS, 1);
    (void)dummy;

    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if ((err = pp_parse_size(v, 1, PYPROF_MAX_MEMORY, &n))) {
        return fail(cmd, v,
                    apr_pstrcat(cmd->pool, err,
                                " (at most " PYPROF_MAX_MEMORY_TEXT ")", NULL));
    }
    if (n < floor) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is too small to hold the store; it "
                            "needs at least %" APR_UINT64_T_FMT
                            "K (e.g. " PYPROF_MEMORY_EXAMPLE ")",
                            cmd->cmd->name, v,
                            (apr_uint64_t)((floor + 1023) / 1024));
    }
    conf_of(cmd)->memory = (int64_t)n;
    return NULL;
}

static const char *set_query(cmd_parms *cmd, void *dummy, int on)
{
    (void)dummy;
    conf_of(cmd)->record_query = on ? 1 : 0;
    return NULL;
}

/* PyProfSampler nogil [guarded|syscall] | gil: the second word says how
 * the GIL-free sampler copies memory, guarded memcpy() (the default) or
 * process_vm_readv() always (the operator's way out should the guard's
 * SIGSEGV handler ever be in the way). */
static const char *set_sampler(cmd_parms *cmd, void *dummy, const char *v,
                               const char *copy)
{
    const char *err;
    (void)dummy;

    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (strcasecmp(v, "nogil") == 0) {
        if (!copy || strcasecmp(copy, "guarded") == 0) {
            conf_of(cmd)->sampler_mode = PP_SAMPLER_NOGIL;
        }
        else if (strcasecmp(copy, "syscall") == 0) {
            conf_of(cmd)->sampler_mode = PP_SAMPLER_NOGIL_SYSCALL;
        }
        else {
            return fail(cmd, copy,
                        "after nogil, expected guarded (copy memory "
                        "directly, a fault on a page freed meanwhile "
                        "caught; the default) or syscall (copy with "
                        "process_vm_readv)");
        }
    }
    else if (strcasecmp(v, "gil") == 0 && !copy) {
        conf_of(cmd)->sampler_mode = PP_SAMPLER_GIL;
    }
    else {
        return fail(cmd, copy && strcasecmp(v, "gil") == 0 ? copy : v,
                    "expected nogil (read stacks without the GIL, "
                    "the default), optionally followed by guarded or "
                    "syscall, or gil (take the GIL for each sample)");
    }
    return NULL;
}

/* PyProfAllocations SIZE | Off: sample allocations every SIZE bytes on
 * average (pp_alloc.h); the process-wide hooks make it main server only */
static const char *set_allocations(cmd_parms *cmd, void *dummy, const char *v)
{
    const char *err;
    uint64_t mean;
    (void)dummy;

    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if ((err = pp_alloc_parse(v, &mean))) {
        return fail(cmd, v, err);
    }
    conf_of(cmd)->alloc_mean = (int64_t)mean;
    return NULL;
}

static const char *set_headers(cmd_parms *cmd, void *dconf, int on)
{
    (void)cmd;
    ((pyprof_dir_conf_t *)dconf)->headers = on ? 1 : 0;
    return NULL;
}

/* Wipes a secret's bytes; the compiler may not drop the stores as dead. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--) {
        *v++ = 0;
    }
}

/* "file:PATH": the secret is the file's one line.  It is read here, by
 * the user httpd starts as (root), so it must be readable by that user
 * only: a file the children's user (or anyone else) could read would
 * hand the secret to every application the server runs.  Fills out[] and
 * returns NULL, or returns what was wrong and what is accepted. */
static const char *read_secret_file(cmd_parms *cmd, const char *name,
                                    unsigned char out[PP_SHA256_LEN])
{
    const char *path = ap_server_root_relative(cmd->temp_pool, name);
    char buf[PYPROF_SECRET_FILE_MAX + 1];
    const char *err = NULL;
    struct stat st;
    ssize_t n = 0, got;
    int fd;

    if (!path || !*name) {
        return apr_psprintf(cmd->pool,
                            "%s: invalid secret file '%s': "
                            "expected file:PATH, e.g. "
                            "file:/etc/apache2/pyprof.secret",
                            cmd->cmd->name, name);
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return apr_psprintf(cmd->pool,
                            "%s: cannot open the secret file "
                            "%s: %s",
                            cmd->cmd->name, path, strerror(errno));
    }
    /* the file opened, not the name: no race with a rename */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err = "it is not a regular file";
    }
    else if (st.st_uid != geteuid()) {
        err = apr_psprintf(cmd->temp_pool,
                           "it must be owned by the user httpd starts as "
                           "(uid %ld), not uid %ld: chown root and chmod "
                           "600 it",
                           (long)geteuid(), (long)st.st_uid);
    }
    else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        err = apr_psprintf(cmd->temp_pool,
                           "its mode %04o gives access to group or others; "
                           "it must be readable by its owner only (chmod "
                           "600 or 400)",
                           (unsigned)(st.st_mode & 07777));
    }
    else if (st.st_size > PYPROF_SECRET_FILE_MAX) {
        err = apr_psprintf(cmd->temp_pool,
                           "it holds %ld bytes; a secret file holds one line "
                           "of at most %d bytes",
                           (long)st.st_size, PYPROF_SECRET_FILE_MAX);
    }
    while (!err && n < PYPROF_SECRET_FILE_MAX + 1 &&
           (got = read(fd, buf + n, sizeof(buf) - (size_t)n)) != 0) {
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            err = apr_psprintf(cmd->temp_pool, "cannot read it: %s",
                               strerror(errno));
            break;
        }
        n += got;
    }
    close(fd);
    if (!err && n > PYPROF_SECRET_FILE_MAX) {
        err = apr_psprintf(cmd->temp_pool,
                           "a secret file holds one line of "
                           "at most %d bytes",
                           PYPROF_SECRET_FILE_MAX);
    }
    if (!err) {
        /* the newline an editor adds, and trailing blanks, are not part
         * of the secret */
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                         buf[n - 1] == ' ' || buf[n - 1] == '\t')) {
            n--;
        }
        if (memchr(buf, '\n', (size_t)n) || memchr(buf, '\r', (size_t)n) ||
            memchr(buf, '\0', (size_t)n)) {
            err = "it must hold the secret on one line (no NUL)";
        }
        else if (n < PYPROF_SECRET_MIN_LEN) {
            err = apr_psprintf(cmd->temp_pool,
                               "the secret in it must be at "
                               "least %d characters long",
                               PYPROF_SECRET_MIN_LEN);
        }
        else {
            pp_sha256(buf, (size_t)n, out);
        }
    }
    wipe(buf, sizeof(buf));
    if (err) {
        return apr_psprintf(cmd->pool, "%s: secret file %s refused: %s",
                            cmd->cmd->name, path, err);
    }
    return NULL;
}

static const char *set_trigger(cmd_parms *cmd, void *dummy, const char *args)
{
    pyprof_server_conf_t *c = conf_of(cmd);
    const char *all = args;
    const char *header = ap_getword_conf(cmd->pool, &args);
    char *secret = ap_getword_conf(cmd->pool, &args);
    const char *interval = ap_getword_conf(cmd->pool, &args);
    const char *err, *p;
    unsigned char hash[PP_SHA256_LEN];
    int64_t us = PYPROF_DEFAULT_TRIGGER_INTERVAL_US;
    int from_file = strncmp(secret, PYPROF_SECRET_FILE_PREFIX,
                            PYPROF_SECRET_FILE_PREFIX_LEN) == 0;
    (void)dummy;

    if (!*header || !*secret || *ap_getword_conf(cmd->pool, &args)) {
        err = apr_psprintf(cmd->pool,
                           "%s: expected HEADER SECRET "
                           "[INTERVAL] or HEADER file:PATH [INTERVAL], e.g. "
                           "X-PyProf-Trigger file:/etc/apache2/pyprof.secret "
                           "1ms",
                           cmd->cmd->name);
        goto out;
    }
    err = NULL;
    for (p = header; *p; p++) {
        /* an HTTP token (RFC 9110) */
        if (!apr_isalnum(*p) && !strchr("!#$%&'*+-.^_`|~", *p)) {
            err = fail(cmd, header,
                       "the header name must be an HTTP "
                       "token (letters, digits, '-')");
            goto out;
        }
    }
    if (*interval && (err = pp_parse_duration(interval, PYPROF_MIN_INTERVAL_US,
                                              PYPROF_MAX_INTERVAL_US, &us))) {
        err = apr_psprintf(cmd->pool,
                           "%s: invalid interval '%s': %s; the "
                           "interval must lie between " PYPROF_INTERVAL_RANGE,
                           cmd->cmd->name, interval, err);
        goto out;
    }
    if (from_file) {
        if ((err = read_secret_file(cmd, secret + PYPROF_SECRET_FILE_PREFIX_LEN,
                                    hash))) {
            goto out;
        }
    }
    else if (strlen(secret) < PYPROF_SECRET_MIN_LEN) {
        err = fail(cmd, "(secret)",
                   apr_psprintf(cmd->pool,
                                "the secret must be at least %d "
                                "characters long",
                                PYPROF_SECRET_MIN_LEN));
        goto out;
    }
    else {
        pp_sha256(secret, strlen(secret), hash);
    }
    c->trigger_header = header;
    memcpy(c->trigger_hash, hash, sizeof(hash));
    c->trigger_interval_us = (uint32_t)us;
out:
    wipe(hash, sizeof(hash));
    if (!from_file) {
        wipe(secret, strlen(secret));
        /* mod_info (/server-info, -DDUMP_CONFIG) prints each directive's
         * arguments from the configuration tree: show it there without
         * the secret.  The tree's strings are the parser's own copies
         * (apr_pstrdup), so they can be wiped in place. */
        if (cmd->directive && cmd->directive->args == all) {
            ap_directive_t *d = (ap_directive_t *)cmd->directive;
            d->args = apr_pstrcat(cmd->pool, header, " (secret hidden)",
                                  *interval ? " " : "", interval, NULL);
            wipe((char *)all, strlen(all));
        }
    }
    return err;
}

/* Appends n bytes to out (used of PP_URI_MAX - 1): what does not fit is
 * dropped, as the store would drop it. */
static void redact_append(char *out, size_t *used, const char *s, size_t n)
{
    if (n > PP_URI_MAX - 1 - *used) {
        n = PP_URI_MAX - 1 - *used;
    }
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
}

/* The path after every rule, each applied to the previous one's result;
 * every match of a rule's expression is replaced (like sed's s///g).  The
 * result is built in one buffer of the store's URI size: however many
 * matches a long path has, the work is linear and the memory fixed. */
const char *pyprof_redact_path(apr_pool_t *pool, const pyprof_server_conf_t *c,
                               const char *path)
{
    int i, matched = 0;

    for (i = 0; c->redact && i < c->redact->nelts; i++) {
        const pyprof_redact_t *rule =
            &APR_ARRAY_IDX(c->redact, i, pyprof_redact_t);
        ap_regmatch_t m[AP_MAX_REG_MATCH];
        char *out = apr_palloc(pool, PP_URI_MAX);
        const char *s = path;
        size_t used = 0;
        int eflags = 0, hit = 0;

        out[0] = '\0';
        while (used < PP_URI_MAX - 1 &&
               ap_regexec(rule->re, s, AP_MAX_REG_MATCH, m, eflags) == 0) {
            char *rep = NULL;
            if (ap_pregsub_ex(pool, &rep, rule->replacement, s,
                              AP_MAX_REG_MATCH, m, PP_URI_MAX) != APR_SUCCESS) {
                /* longer than any recorded path: never the raw one */
                return "/(redacted)";
            }
            redact_append(out, &used, s, (size_t)m[0].rm_so);
            redact_append(out, &used, rep, strlen(rep));
            hit = 1;
            s += m[0].rm_eo;
            if (m[0].rm_eo == m[0].rm_so) {
                /* an empty match: step over one character */
                if (!*s) {
                    break;
                }
                redact_append(out, &used, s, 1);
                s++;
            }
            if (!*s) {
                break;
            }
            eflags = AP_REG_NOTBOL;
        }
        if (hit) {
            /* a cut result drops the rest: unmatched text is never kept
             * past a point the rule did not look at */
            if (used < PP_URI_MAX - 1) {
                redact_append(out, &used, s, strlen(s));
            }
            path = out;
            matched = 1;
        }
    }
    return matched ? path : NULL;
}

static const char *set_redact(cmd_parms *cmd, void *dummy, const char *regex,
                              const char *replacement)
{
    pyprof_server_conf_t *c = conf_of(cmd);
    pyprof_redact_t *rule;
    ap_regex_t *re;
    const char *p;
    (void)dummy;

    if (c->redact->nelts >= PYPROF_MAX_REDACT) {
        return apr_psprintf(cmd->pool, "%s: at most %d rules per server",
                            cmd->cmd->name, PYPROF_MAX_REDACT);
    }
    if (!*regex || !(re = ap_pregcomp(cmd->pool, regex, AP_REG_EXTENDED))) {
        return fail(cmd, regex,
                    "not a regular expression (PCRE, as in "
                    "<LocationMatch>), e.g. \"^/reset/[^/]+\"");
    }
    for (p = replacement; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
        }
        else if (*p == '$' && apr_isdigit(p[1]) && p[1] - '0' > re->re_nsub) {
            return apr_psprintf(cmd->pool,
                                "%s: the replacement '%s' uses $%c but "
                                "'%s' has %d group(s); use $0 to $%d",
                                cmd->cmd->name, replacement, p[1], regex,
                                (int)re->re_nsub, (int)re->re_nsub);
        }
    }
    rule = apr_array_push(c->redact);
    rule->re = re;
    rule->replacement = apr_pstrdup(cmd->pool, replacement);
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
                  "URL prefix every INTERVAL (" PYPROF_INTERVAL_SPAN ", units "
                  "us, ms, s)"),
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
    AP_INIT_TAKE12("PyProfSampler", set_sampler, NULL, RSRC_CONF,
                   "nogil [guarded|syscall] (default: read stacks without "
                   "taking the GIL, copying memory directly) or gil (main "
                   "server only)"),
    AP_INIT_TAKE1("PyProfAllocations", set_allocations, NULL, RSRC_CONF,
                  "Off (the default) or SIZE: sample Python allocations "
                  "every SIZE bytes on average, e.g. 256K (main server "
                  "only)"),
    AP_INIT_FLAG("PyProfHeaders", set_headers, NULL, RSRC_CONF | ACCESS_CONF,
                 "On to add X-PyProf-Id and Server-Timing to sampled "
                 "responses (default Off)"),
    AP_INIT_ITERATE("PyProfAccess", set_access, NULL, RSRC_CONF | ACCESS_CONF,
                    "who the profile pages serve, on top of Require: local "
                    "(loopback clients, the default), authenticated, any, "
                    "or IP addresses and networks (192.0.2.0/24)"),
    AP_INIT_RAW_ARGS("PyProfTrigger", set_trigger, NULL, RSRC_CONF,
                     "PyProfTrigger HEADER SECRET|file:PATH [INTERVAL]: a "
                     "request carrying HEADER: SECRET is sampled every "
                     "INTERVAL (default 1ms) and always kept"),
    AP_INIT_TAKE2("PyProfRedactPath", set_redact, NULL, RSRC_CONF,
                  "PyProfRedactPath REGEX REPLACEMENT: recorded paths have "
                  "every match of REGEX replaced ($0-$9 refer to groups)"),
    {NULL}};
