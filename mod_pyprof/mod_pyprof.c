/* mod_pyprof.c: the module record and the request-cycle hooks.
 *
 * Owns the life cycle: the shared store is made in the parent's
 * post_config (before mod_wsgi's, so its daemons inherit it) and retained
 * across graceful restarts; each child starts its sampler after mod_wsgi's
 * child_init and stops it from a pchild pre-cleanup, before mod_wsgi's
 * cleanup finalises Python.  Requests are tagged in post_read_request and
 * finished in log_transaction, with per-request state in
 * r->request_config (never thread-locals: the event MPM may log on another
 * thread).  Never calls the Python C-API nor includes the Python layer:
 * the sampler (pp_sampler.h) does, and tells child_init whether there is
 * an interpreter to sample (pp_sampler_can_start).
 */
#include "apr_strings.h"
#include "apr_lib.h"
#include "ap_mpm.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include "mpm_common.h"

#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mod_pyprof.h"
#include "pp_alloc.h"
#include "pp_api_impl.h"
#include "pp_log.h"
#include "pp_parse.h"
#include "pp_py_alloc.h"
#include "pp_sampler.h"

static void pyprof_register_hooks(apr_pool_t *p);

AP_DECLARE_MODULE(pyprof) = {
    STANDARD20_MODULE_STUFF,
    pyprof_create_dir_conf,    /* create per-dir config */
    pyprof_merge_dir_conf,     /* merge per-dir config */
    pyprof_create_server_conf, /* create per-server config */
    pyprof_merge_server_conf,  /* merge per-server config */
    pyprof_cmds,               /* directives */
    pyprof_register_hooks      /* hooks */
};


#define RETAINED_KEY "mod_pyprof-retained"

typedef struct pyprof_retained {
    pp_store_t *store;
} pyprof_retained_t;

/* In the parent, set by post_config; children inherit it through fork. */
static pp_store_t *pyprof_store;
static server_rec *pyprof_main_server;

typedef struct pyprof_req_state {
    pp_store_t *store;
    int slot;
    uint64_t serial;
    int registered;
    int done;
    int forced;       /* triggered or captured: always kept */
    int headers_sent; /* X-PyProf-Id went out */
    pthread_t thread;
    int64_t cpu_start_ns;
} pyprof_req_state_t;

static const char PYPROF_FILTER[] = "PYPROF_HEADERS";

/* Request slots of the store: one per worker of every possible process
 * (AP_MPMQ_HARD_LIMIT_DAEMONS times AP_MPMQ_MAX_THREADS), within these
 * bounds; the process count assumed when the MPM does not say. */
#define SLOTS_MIN 64
#define SLOTS_MAX 8192
#define SLOTS_DEFAULT_DAEMONS 16

/* How long a stopping child waits for its sampler before it says so in
 * the log (it waits on regardless: see pp_sampler_stop) */
#define SAMPLER_STOP_WARN_MS 5000

/* make_request_id: 6 bytes of microseconds, 3 of pid, 3 of counter,
 * base64url: 16 characters */
#define REQUEST_ID_RAW 12
#define REQUEST_ID_LEN (REQUEST_ID_RAW / 3 * 4)

pp_store_t *pyprof_shared_store(void)
{
    return pyprof_store;
}

/* What pyext finds with dlsym() (see pp_api.h). */
PYPROF_EXPORT const pp_api_t *pyprof_api(void)
{
    return pp_api_table();
}

static void log_to_httpd(pp_log_level_t level, const char *msg)
{
    ap_log_error(APLOG_MARK, (int)level, 0, pyprof_main_server,
                 PYPROF_LOGNO(00001) "%s", msg);
}

/* ---- start-up ---- */

static uint32_t slots_for_mpm(void)
{
    int daemons = 0, threads = 0;
    uint64_t n;

    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &daemons) != APR_SUCCESS ||
        daemons <= 0) {
        daemons = SLOTS_DEFAULT_DAEMONS;
    }
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS ||
        threads <= 0) {
        threads = 1;
    }
    /* every worker of every possible process, old generation included
     * (ServerLimit bounds both); capped to keep the store reasonable */
    n = (uint64_t)daemons * (uint64_t)threads;
    if (n < SLOTS_MIN) {
        n = SLOTS_MIN;
    }
    if (n > SLOTS_MAX) {
        n = SLOTS_MAX;
    }
    return (uint32_t)n;
}

static int any_location(server_rec *s)
{
    for (; s; s = s->next) {
        pyprof_server_conf_t *c =
            ap_get_module_config(s->module_config, &pyprof_module);
        if (c && c->locations->nelts) {
            return 1;
        }
    }
    return 0;
}

static int pyprof_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                               apr_pool_t *ptemp, server_rec *s)
{
    pyprof_server_conf_t *c =
        ap_get_module_config(s->module_config, &pyprof_module);
    uint64_t need;
    (void)pconf;
    (void)plog;
    (void)ptemp;

    if (!any_location(s)) {
        return OK;
    }
    need = pp_store_min_size(slots_for_mpm(), (uint32_t)pyprof_conf_keep(c));
    if (pyprof_conf_memory(c) < need) {
        ap_log_error(
            APLOG_MARK, APLOG_EMERG, 0, s,
            PYPROF_LOGNO(
                00002) "PyProfMemory: %" APR_UINT64_T_FMT "K "
                       "is too small to hold the store for %u request slots "
                       "and PyProfKeep %ld traces; it needs at least "
                       "%" APR_UINT64_T_FMT "K",
            (apr_uint64_t)(pyprof_conf_memory(c) / 1024), slots_for_mpm(),
            pyprof_conf_keep(c), (apr_uint64_t)((need + 1023) / 1024));
        return !OK;
    }
    return OK;
}

/* Every deploy of new code adds frames that are never freed, and every
 * prefix ever configured keeps a location row: after enough graceful
 * restarts the store would name no new function and sample no new
 * location.  When it fills, a graceful restart renews it (pp_store_renew):
 * what is still referred to moves over, the rest is reclaimed.  Children
 * of the old generation finish their requests in the old mapping. */
static void renew_if_full(pyprof_retained_t *ret, server_rec *s,
                          apr_pool_t *ptemp, uint64_t size, uint32_t nslots,
                          uint32_t keep)
{
    apr_array_header_t *prefixes =
        apr_array_make(ptemp, 8, sizeof(const char *));
    const char *why = NULL, *err = NULL;
    pp_store_t *fresh;
    server_rec *vs;
    int dropped;

    for (vs = s; vs; vs = vs->next) {
        pyprof_server_conf_t *c =
            ap_get_module_config(vs->module_config, &pyprof_module);
        int i;
        for (i = 0; c && i < c->locations->nelts; i++) {
            APR_ARRAY_PUSH(prefixes, const char *) =
                APR_ARRAY_IDX(c->locations, i, pyprof_location_t).prefix;
        }
    }
    if (!pp_store_wants_renewal(ret->store, (const char *const *)prefixes->elts,
                                prefixes->nelts, &why)) {
        return;
    }
    fresh = pp_store_create(size, nslots, keep, &err);
    if (!fresh) {
        ap_log_error(
            APLOG_MARK, APLOG_WARNING, errno, s,
            PYPROF_LOGNO(00401) "%s, but a new store of %" APR_UINT64_T_FMT
                                " bytes cannot be made (%s): keeping "
                                "the full one",
            why, (apr_uint64_t)size, err);
        return;
    }
    dropped =
        pp_store_renew(fresh, ret->store, (const char *const *)prefixes->elts,
                       prefixes->nelts);
    if (dropped < 0) {
        pp_store_destroy(fresh);
        return;
    }
    ap_log_error(
        APLOG_MARK, APLOG_NOTICE, 0, s,
        PYPROF_LOGNO(
            00402) "%s: renewing the store (renewal %" APR_UINT64_T_FMT
                   "); kept traces, histograms and counters "
                   "carried over; frames of code no kept trace shows, the "
                   "profiles since start and %d location row(s) no longer "
                   "configured reclaimed",
        why, (apr_uint64_t)atomic_load(&fresh->c.renewals), dropped);
    pp_store_destroy(ret->store);
    ret->store = fresh;
}

static int pyprof_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *s)
{
    pyprof_server_conf_t *mc =
        ap_get_module_config(s->module_config, &pyprof_module);
    pyprof_retained_t *ret;
    uint64_t size = pyprof_conf_memory(mc);
    uint32_t nslots = slots_for_mpm();
    uint32_t keep = (uint32_t)pyprof_conf_keep(mc);
    server_rec *vs;
    const char *err = NULL;
    (void)plog;
    (void)ptemp;

    pyprof_main_server = s;
    pp_log_set_callback(log_to_httpd);
    /* httpd runs the configuration twice at start-up; map memory only on
     * the pass that will actually serve */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    ret = ap_retained_data_get(RETAINED_KEY);
    if (!ret) {
        ret = ap_retained_data_create(RETAINED_KEY, sizeof(*ret));
        ret->store = NULL;
    }
    if (!any_location(s)) {
        /* inert: no thread, no shared memory.  Children of the previous
         * generation keep their own mapping until they exit. */
        if (ret->store) {
            pp_store_destroy(ret->store);
            ret->store = NULL;
        }
        pyprof_store = NULL;
        pp_api_set_store(NULL);
        return OK;
    }
    if (ret->store && !pp_store_compatible(ret->store, size, nslots, keep)) {
        ap_log_error(
            APLOG_MARK, APLOG_NOTICE, 0, s,
            PYPROF_LOGNO(00003) "store layout changed "
                                "(PyProfMemory, PyProfKeep or the MPM limits): "
                                "starting a new, empty store");
        pp_store_destroy(ret->store);
        ret->store = NULL;
    }
    if (ret->store) {
        renew_if_full(ret, s, ptemp, size, nslots, keep);
    }
    if (!ret->store) {
        ret->store = pp_store_create(size, nslots, keep, &err);
        if (!ret->store) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                         PYPROF_LOGNO(00004) "cannot create the shared "
                                             "store of %" APR_UINT64_T_FMT
                                             " bytes: %s",
                         (apr_uint64_t)size, err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    else {
        atomic_fetch_add(&ret->store->generation, 1);
    }
    pyprof_store = ret->store;
    pyprof_store->sampler_mode = pyprof_conf_sampler_mode(mc);
    pyprof_store->alloc_mean = pyprof_conf_alloc_mean(mc);
    pp_api_set_store(pyprof_store);
    /* a row counts as configured when its config_gen is the store's
     * generation (bumped above for a kept store): register every prefix
     * of this configuration, old rows left unregistered are no longer
     * configured */
    for (vs = s; vs; vs = vs->next) {
        pyprof_server_conf_t *c =
            ap_get_module_config(vs->module_config, &pyprof_module);
        int i;
        for (i = 0; i < c->locations->nelts; i++) {
            pyprof_location_t *loc =
                &APR_ARRAY_IDX(c->locations, i, pyprof_location_t);
            loc->store_idx = pp_store_location_register(
                pyprof_store, loc->prefix, loc->interval_us);
            if (loc->store_idx < 0) {
                ap_log_error(
                    APLOG_MARK, APLOG_WARNING, 0, vs,
                    PYPROF_LOGNO(00005) "PyProfSample %s: more "
                                        "than %d locations; not sampled",
                    loc->prefix, PP_MAX_LOCATIONS);
            }
        }
    }
    ap_log_error(
        APLOG_MARK, APLOG_DEBUG, 0, s,
        PYPROF_LOGNO(00006) "store ready: %" APR_UINT64_T_FMT " bytes, "
                            "%u slots, %u kept traces, %u frames, %u nodes "
                            "(generation %" APR_UINT64_T_FMT ")",
        (apr_uint64_t)size, nslots, keep, pyprof_store->nframes,
        pyprof_store->nnodes,
        (apr_uint64_t)atomic_load(&pyprof_store->generation));
    (void)pconf;
    return OK;
}

static apr_status_t pyprof_child_stop(void *data)
{
    server_rec *s = data;

    pp_py_alloc_disable(); /* PyProfAllocations: pass-through from now on */
    if (!pp_sampler_running()) {
        return APR_SUCCESS;
    }
    /* logged before the stop too: a child that dies after this line died
     * in the stop or after it; one that never logged it, while running */
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 PYPROF_LOGNO(00014) "stopping the sampler in pid %d "
                                     "(child exit)",
                 (int)getpid());
    if (pp_sampler_stop(SAMPLER_STOP_WARN_MS) == 0) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     PYPROF_LOGNO(00007) "sampler stopped in pid %d before "
                                         "Python finalisation",
                     (int)getpid());
    }
    else {
        ap_log_error(
            APLOG_MARK, APLOG_WARNING, 0, s,
            PYPROF_LOGNO(
                00008) "sampler in pid %d took more "
                       "than %ds to stop (it waited for the GIL); it stopped "
                       "before Python finalisation",
            (int)getpid(), SAMPLER_STOP_WARN_MS / 1000);
    }
    return APR_SUCCESS;
}

static void pyprof_child_init(apr_pool_t *pchild, server_rec *s)
{
    uint32_t reaped;

    if (!pyprof_store) {
        return;
    }
    /* a child is often started because another one died (SIGKILL, the
     * OOM killer, a crash): free the slots the dead left in flight now,
     * not when someone happens to open the overview */
    reaped = pp_store_reap_dead(pyprof_store);
    if (reaped) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     PYPROF_LOGNO(00301) "pid %d freed %u request slot(s) "
                                         "of processes that died",
                     (int)getpid(), reaped);
    }
    /* mod_wsgi's child_init (our predecessor) has initialised Python if
     * this process will run any; otherwise there is nothing to sample
     * and requests are only timed */
    if (!pp_sampler_can_start()) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                     PYPROF_LOGNO(00009) "no Python interpreter in pid %d: "
                                         "requests are timed, not sampled",
                     (int)getpid());
        return;
    }
    if (pp_sampler_start(pyprof_store) != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     PYPROF_LOGNO(00010) "cannot start the sampler thread "
                                         "in pid %d",
                     (int)getpid());
        return;
    }
    /* a pre-cleanup runs before every ordinary cleanup of pchild, so also
     * before the one mod_wsgi registers to finalise Python */
    apr_pool_pre_cleanup_register(pchild, s, pyprof_child_stop);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 PYPROF_LOGNO(00011) "sampler started in pid %d",
                 (int)getpid());
    if (pyprof_store->alloc_mean) {
        const char *why;
        if (pp_py_alloc_install_ensure(pyprof_store, pyprof_store->alloc_mean,
                                       &why) != 0) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         PYPROF_LOGNO(00501) "PyProfAllocations: cannot "
                                             "hook the allocators in pid "
                                             "%d: %s",
                         (int)getpid(), why);
        }
    }
}

/* ---- requests ---- */

static const pyprof_location_t *match_location(pyprof_server_conf_t *c,
                                               const char *uri)
{
    const pyprof_location_t *best = NULL;
    int i, best_len = -1;

    for (i = 0; i < c->locations->nelts; i++) {
        const pyprof_location_t *loc =
            &APR_ARRAY_IDX(c->locations, i, pyprof_location_t);
        int n = pp_prefix_match(loc->prefix, uri);
        if (n > best_len && loc->store_idx >= 0) {
            best = loc;
            best_len = n;
        }
    }
    return best;
}

/* A URL-safe id, unique per store: microseconds, pid and a per-process
 * counter, base64url without padding. */
static const char *make_request_id(request_rec *r)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    static _Atomic uint32_t counter;
    unsigned char raw[REQUEST_ID_RAW];
    uint64_t t = (uint64_t)r->request_time;
    uint32_t pid = (uint32_t)getpid();
    uint32_t n = atomic_fetch_add(&counter, 1);
    char *out = apr_palloc(r->pool, REQUEST_ID_LEN + 1);
    int i, j = 0;

    for (i = 0; i < 6; i++) {
        raw[i] = (unsigned char)(t >> (8 * (5 - i)));
    }
    raw[6] = (unsigned char)(pid >> 16);
    raw[7] = (unsigned char)(pid >> 8);
    raw[8] = (unsigned char)pid;
    raw[9] = (unsigned char)(n >> 16);
    raw[10] = (unsigned char)(n >> 8);
    raw[11] = (unsigned char)n;
    for (i = 0; i < REQUEST_ID_RAW; i += 3) {
        uint32_t v =
            ((uint32_t)raw[i] << 16) | ((uint32_t)raw[i + 1] << 8) | raw[i + 2];
        out[j++] = b64[(v >> 18) & 63];
        out[j++] = b64[(v >> 12) & 63];
        out[j++] = b64[(v >> 6) & 63];
        out[j++] = b64[v & 63];
    }
    out[j] = '\0';
    return out;
}

/* Any id another module set (mod_unique_id) is kept, with the characters
 * that cannot travel in a URL path segment replaced. */
static const char *request_id(request_rec *r)
{
    char *id, *p;

    if (!r->log_id) {
        /* mod_unique_id (when loaded, its hook runs before ours) sets
         * UNIQUE_ID but leaves log_id alone until something logs */
        const char *uid = apr_table_get(r->subprocess_env, "UNIQUE_ID");
        r->log_id = uid && *uid ? uid : make_request_id(r);
        if (!uid || !*uid) {
            return r->log_id;
        }
    }
    id = apr_pstrndup(r->pool, r->log_id, PP_ID_MAX - 1);
    for (p = id; *p; p++) {
        if (!apr_isalnum(*p) && *p != '-' && *p != '_' && *p != '@' &&
            *p != '.' && *p != '~') {
            *p = '_';
        }
    }
    /* one id everywhere: logs (%L), mod_wsgi's daemons and our pages */
    r->log_id = id;
    return id;
}

/* PyProfRedactPath rules match the path as <Location> sees it (decoded,
 * without dot segments), so "/res%65t/TOKEN" is caught like "/reset/TOKEN";
 * a redacted path is re-encoded like the raw one. */
static const char *redacted_path(request_rec *r, pyprof_server_conf_t *c,
                                 const char *raw)
{
    char *decoded;
    const char *out;

    if (!c->redact || !c->redact->nelts) {
        return raw;
    }
    decoded = apr_pstrdup(r->pool, raw);
    if (ap_unescape_url_keep2f(decoded, 0) != OK) {
        decoded = apr_pstrdup(r->pool, raw);
    }
    ap_getparents(decoded);
    out = pyprof_redact_path(r->pool, c, decoded);
    return out ? ap_escape_uri(r->pool, out) : raw;
}

static const char *recorded_uri(request_rec *r, pyprof_server_conf_t *c)
{
    const char *path =
        redacted_path(r, c, r->parsed_uri.path ? r->parsed_uri.path : r->uri);

    if (!r->args) {
        return path;
    }
    if (pyprof_conf_record_query(c)) {
        return apr_pstrcat(r->pool, path, "?", r->args, NULL);
    }
    /* the query string often carries tokens and personal data */
    return apr_pstrcat(r->pool, path, "?...", NULL);
}

/* Only the secret's SHA-256 is kept: hash what was given and compare the
 * hashes in constant time (the time depends on the given length only). */
static int secret_equal(const char *given, const pyprof_server_conf_t *c)
{
    unsigned char h[PP_SHA256_LEN];

    pp_sha256(given, strlen(given), h);
    return pp_hash_equal(h, c->trigger_hash, sizeof(h));
}

static int all_lower_hex(const char *s, size_t n)
{
    size_t i;
    int nonzero = 0;

    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
        nonzero |= s[i] != '0';
    }
    return nonzero; /* all-zero ids are invalid */
}

/* W3C traceparent "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>";
 * a later version may append fields after another '-'.  Anything else is
 * ignored, as the spec asks. */
static int parse_traceparent(request_rec *r, const char *v, char **trace,
                             char **parent)
{
    size_t n;

    if (!v) {
        return 0;
    }
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    n = strlen(v);
    if (n < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' ||
        !apr_isxdigit(v[0]) || !apr_isxdigit(v[1]) ||
        (v[0] == 'f' && v[1] == 'f') || !apr_isxdigit(v[53]) ||
        !apr_isxdigit(v[54]) ||
        (n > 55 && (v[0] == '0' && v[1] == '0' ? 1 : v[55] != '-')) ||
        !all_lower_hex(v + 3, 32) || !all_lower_hex(v + 36, 16)) {
        return 0;
    }
    *trace = apr_pstrndup(r->pool, v + 3, 32);
    *parent = apr_pstrndup(r->pool, v + 36, 16);
    return 1;
}

static apr_status_t request_cleanup(void *data)
{
    pyprof_req_state_t *rs = data;

    /* log_transaction never ran (aborted request): free the slot */
    if (!rs->done) {
        if (rs->registered) {
            pp_sampler_unregister(rs->slot);
        }
        pp_store_abandon(rs->store, rs->slot);
        rs->done = 1;
    }
    return APR_SUCCESS;
}

static int pyprof_post_read_request(request_rec *r)
{
    pyprof_server_conf_t *c;
    const pyprof_location_t *loc;
    pyprof_req_state_t *rs;
    pp_req_info_t info;
    pp_slot_t *slot;
    pp_store_t *st = pyprof_store;

    if (r->main || r->prev) {
        return DECLINED; /* their headers_in come from r, already done */
    }
    c = ap_get_module_config(r->server->module_config, &pyprof_module);
    if (!c) {
        return DECLINED;
    }
    memset(&info, 0, sizeof(info));
    if (c->trigger_header) {
        const char *given = apr_table_get(r->headers_in, c->trigger_header);
        if (given) {
            /* the app never sees it, whatever it held, wherever it went
             * and whether or not anything is sampled in this server */
            apr_table_unset(r->headers_in, c->trigger_header);
            if (secret_equal(given, c)) {
                info.flags |= PP_REQ_TRIGGERED;
            }
            else {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                              PYPROF_LOGNO(00012) "%s header with a wrong "
                                                  "secret: ignored",
                              c->trigger_header);
            }
        }
    }
    if (!st || !r->uri || !c->locations->nelts ||
        !(loc = match_location(c, r->uri))) {
        return DECLINED;
    }
    info.interval_us = (info.flags & PP_REQ_TRIGGERED) ? c->trigger_interval_us
                                                       : loc->interval_us;
    if (!(info.flags & PP_REQ_TRIGGERED) &&
        (info.capture = pp_store_capture_take(st, loc->store_idx))) {
        info.flags |= PP_REQ_CAPTURED;
        info.interval_us = c->trigger_interval_us
                               ? c->trigger_interval_us
                               : PYPROF_DEFAULT_TRIGGER_INTERVAL_US;
    }
    {
        char *trace = NULL, *parent = NULL;
        if (parse_traceparent(r, apr_table_get(r->headers_in, "traceparent"),
                              &trace, &parent)) {
            info.trace_id = trace;
            info.parent_id = parent;
        }
    }
    info.id = request_id(r);
    info.method = r->method;
    info.uri = recorded_uri(r, c);
    info.vhost = apr_psprintf(
        r->pool, "%s:%u",
        r->server->server_hostname ? r->server->server_hostname : "",
        (unsigned)ap_get_server_port(r));
    info.pid = (int32_t)getpid();
    info.tid = (int32_t)syscall(SYS_gettid);
    info.location = loc->store_idx;
    info.max_depth = (uint32_t)pyprof_conf_max_depth(c);
    info.start_us = (int64_t)r->request_time;

    rs = apr_pcalloc(r->pool, sizeof(*rs));
    rs->store = st;
    rs->forced = (info.flags & (PP_REQ_TRIGGERED | PP_REQ_CAPTURED)) != 0;
    rs->slot = pp_store_claim(st, &info, info.tid);
    if (rs->slot < 0) {
        return DECLINED;
    }
    slot = pp_store_slot(st, rs->slot);
    rs->serial = slot->rec.req.serial;
    rs->thread = pthread_self();
    rs->cpu_start_ns = pp_thread_cpu_ns(rs->thread);
    rs->registered = pp_sampler_register(rs->slot, rs->serial, info.interval_us,
                                         info.max_depth) == 0;
    pp_alloc_begin(rs->slot, rs->serial);
    ap_set_module_config(r->request_config, &pyprof_module, rs);
    apr_pool_cleanup_register(r->pool, rs, request_cleanup,
                              apr_pool_cleanup_null);
    return DECLINED;
}

static int pyprof_log_transaction(request_rec *r)
{
    pyprof_req_state_t *rs =
        ap_get_module_config(r->request_config, &pyprof_module);
    pyprof_server_conf_t *c;
    request_rec *last = r;
    int64_t duration, cpu = 0, cpu_now;

    if (!rs || rs->done) {
        return DECLINED;
    }
    if (rs->registered) {
        pp_sampler_unregister(rs->slot);
        rs->registered = 0;
    }
    /* the status the client got, after internal redirects */
    while (last->next) {
        last = last->next;
    }
    duration = (int64_t)(apr_time_now() - r->request_time);
    /* only this thread's clock: if logging runs on another thread, the
     * request's thread may have exited and its descriptor be gone (CPU is
     * then unknown rather than read through a stale pthread_t) */
    cpu_now = pthread_equal(rs->thread, pthread_self())
                  ? pp_thread_cpu_ns(rs->thread)
                  : -1;
    if (cpu_now >= 0 && rs->cpu_start_ns >= 0 && cpu_now >= rs->cpu_start_ns) {
        cpu = (cpu_now - rs->cpu_start_ns) / 1000;
    }
    c = ap_get_module_config(r->server->module_config, &pyprof_module);
    /* mod_wsgi maps the request to its script: paths under the script's
     * directory read better relative to it */
    if (last->filename && last->filename[0] == '/' && last->handler &&
        strcmp(last->handler, "wsgi-script") == 0) {
        pp_slot_t *slot = pp_store_slot(rs->store, rs->slot);
        char *dir = apr_pstrdup(r->pool, last->filename);
        char *cut = strrchr(dir, '/');
        if (cut && cut != dir && slot) {
            *cut = '\0';
            pp_store_location_set_root(rs->store, slot->rec.req.location, dir);
        }
    }
    {
        const char *uid = apr_table_get(r->subprocess_env, "UNIQUE_ID");
        if (uid) {
            pp_store_note_unique_id(rs->store, rs->slot, uid);
        }
    }
    pp_alloc_end(rs->store, rs->slot, rs->serial);
    pp_store_finish(rs->store, rs->slot, last->status, duration, cpu,
                    rs->forced || duration >= pyprof_conf_slow_us(c)
                        ? PP_KEEP_SLOW
                        : (rs->headers_sent ? PP_KEEP_FAST : PP_KEEP_NONE));
    rs->done = 1;
    return DECLINED;
}

/* The state of the request a (possibly redirected or error) request_rec
 * belongs to: it lives on the first request of the chain. */
static pyprof_req_state_t *state_of(request_rec *r)
{
    pyprof_req_state_t *rs;

    if (r->main) {
        return NULL; /* subrequests are part of their parent's time */
    }
    while (r->prev) {
        r = r->prev;
    }
    rs = ap_get_module_config(r->request_config, &pyprof_module);
    return rs && !rs->done ? rs : NULL;
}

/* Runs first among handlers and declines: when the app starts. */
static int pyprof_note_handler(request_rec *r)
{
    pyprof_req_state_t *rs = state_of(r);

    if (rs && r->handler && strcmp(r->handler, PYPROF_HANDLER) != 0) {
        pp_store_note_handler_start(rs->store, rs->slot, pp_wall_us());
    }
    return DECLINED;
}

static void pyprof_insert_filter(request_rec *r)
{
    if (state_of(r)) {
        ap_add_output_filter(PYPROF_FILTER, NULL, r, r->connection);
    }
}

/* The mod_headers way: headers on the first call, before the HTTP header
 * filter runs; then only watch for the end of the response. */
static apr_status_t pyprof_out_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    pyprof_req_state_t *rs = state_of(r);
    apr_bucket *b;

    if (!rs) {
        ap_remove_output_filter(f);
        return ap_pass_brigade(f->next, bb);
    }
    if (!f->ctx) {
        pyprof_dir_conf_t *d =
            ap_get_module_config(r->per_dir_config, &pyprof_module);
        f->ctx = f;
        /* one filter per internal redirect and error response: headers
         * once per request */
        if (d && d->headers > 0 && !rs->headers_sent) {
            pp_slot_t *slot = pp_store_slot(rs->store, rs->slot);
            pp_req_t q;
            uint32_t samples = 0;
            const char *id = NULL;
            if (slot && pp_store_read_req(&slot->rec, &q) &&
                q.serial == rs->serial) {
                samples = q.samples;
                id = apr_pstrdup(r->pool, q.id);
            }
            if (id) {
                /* err_headers_out: kept on error responses too */
                apr_table_setn(r->err_headers_out, "X-PyProf-Id", id);
                apr_table_addn(
                    r->err_headers_out, "Server-Timing",
                    apr_psprintf(r->pool, "pyprof;dur=%.1f;desc=\"%u samples\"",
                                 (double)(apr_time_now() - r->request_time) /
                                     1000.0,
                                 samples));
                rs->headers_sent = 1;
            }
        }
    }
    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
         b = APR_BUCKET_NEXT(b)) {
        if (APR_BUCKET_IS_EOS(b)) {
            pp_store_note_app_end(rs->store, rs->slot, pp_wall_us());
            break;
        }
    }
    return ap_pass_brigade(f->next, bb);
}

static void pyprof_register_hooks(apr_pool_t *p)
{
    static const char *const wsgi[] = {"mod_wsgi.c", NULL};
    static const char *const unique_id[] = {"mod_unique_id.c", NULL};
    (void)p;

    ap_hook_check_config(pyprof_check_config, NULL, NULL, APR_HOOK_REALLY_LAST);
    ap_hook_post_config(pyprof_post_config, NULL, wsgi, APR_HOOK_MIDDLE);
    ap_hook_child_init(pyprof_child_init, wsgi, NULL, APR_HOOK_MIDDLE);
    /* after mod_unique_id: its UNIQUE_ID becomes the request's id */
    ap_hook_post_read_request(pyprof_post_read_request, unique_id, NULL,
                              APR_HOOK_MIDDLE);
    ap_hook_log_transaction(pyprof_log_transaction, NULL, NULL,
                            APR_HOOK_MIDDLE);
    ap_hook_handler(pyprof_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(pyprof_note_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_insert_filter(pyprof_insert_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(pyprof_insert_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
    ap_register_output_filter(PYPROF_FILTER, pyprof_out_filter, NULL,
                              AP_FTYPE_CONTENT_SET);
}
