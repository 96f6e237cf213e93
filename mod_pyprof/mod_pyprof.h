/* mod_pyprof.h: what the httpd glue files (mod_pyprof*.c) share: the
 * module record, per-server configuration and the process' view of the
 * shared store.  Only glue includes this; the core (pp_*.c) never does.
 */
#ifndef MOD_PYPROF_H
#define MOD_PYPROF_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include "ap_regex.h"

#include "pp_hash.h"
#include "pp_store.h"

#define PYPROF_VERSION "0.1.0"
#define PYPROF_HANDLER "server-profile"
/* module-specific log tags, like httpd's APLOGNO */
#define PYPROF_LOGNO(n) "PYPROF" #n ": "

#define PYPROF_DEFAULT_SLOW_US 500000
#define PYPROF_DEFAULT_KEEP 200
#define PYPROF_DEFAULT_MAX_DEPTH 128
#define PYPROF_DEFAULT_MEMORY (32ULL * 1024 * 1024)
/* PyProfSample's and PyProfTrigger's interval: from 1 ms to 10 s; the
 * text is what the directives' errors say, so it must name these two */
#define PYPROF_MIN_INTERVAL_US 1000
#define PYPROF_MAX_INTERVAL_US 10000000
#define PYPROF_INTERVAL_RANGE "1ms and 10s"
#define PYPROF_INTERVAL_SPAN "1ms..10s"

/* Per-server and per-directory values not set by a directive hold this
 * sentinel (h2_config.c's DEF_VAL); merging takes the child's value when
 * it is set, else the parent's (h2_config.c's H2_CONFIG_GET). */
#define PYPROF_UNSET (-1)
#define PYPROF_MERGE(base, add, field) \
    ((((add)->field == PYPROF_UNSET) ? (base) : (add))->field)

/* built with -fvisibility=hidden: only these two symbols leave the DSO,
 * pyprof_module and pyprof_api (what pyext finds with dlsym) */
#define PYPROF_EXPORT __attribute__((visibility("default")))

extern module AP_MODULE_DECLARE_DATA pyprof_module PYPROF_EXPORT;

typedef struct pyprof_location {
    const char *prefix;
    uint32_t interval_us;
    int store_idx; /* row in the store, set by post_config; -1 unset */
} pyprof_location_t;

typedef struct pyprof_server_conf {
    apr_array_header_t *locations; /* pyprof_location_t */
    /* PYPROF_UNSET until a directive sets them */
    int64_t slow_us;
    long keep; /* main server only */
    long max_depth;
    int64_t memory;     /* bytes; main server only */
    int record_query;   /* 0 or 1 */
    int sampler_mode;   /* PP_SAMPLER_*; main server only */
    int64_t alloc_mean; /* PyProfAllocations bytes, 0 Off; main server only */
    const char *trigger_header; /* NULL = no trigger */
    /* only the secret's SHA-256: the plaintext is kept nowhere */
    unsigned char trigger_hash[PP_SHA256_LEN];
    uint32_t trigger_interval_us;
    apr_array_header_t *redact; /* pyprof_redact_t, in order */
} pyprof_server_conf_t;

/* PyProfRedactPath REGEX REPLACEMENT */
typedef struct pyprof_redact {
    ap_regex_t *re;
    const char *replacement;
} pyprof_redact_t;

#define PYPROF_MAX_REDACT 32        /* rules per server */
#define PYPROF_SECRET_FILE_MAX 1024 /* longest PyProfTrigger secret file */

/* Who the handler serves (PyProfAccess), on top of Apache's Require: a
 * request is served if any item matches.  Unset means loopback only. */
typedef struct pyprof_access {
    int local;                    /* 127.0.0.0/8 and ::1 */
    int any;                      /* every client */
    int authenticated;            /* r->user set by Apache's auth */
    apr_array_header_t *networks; /* apr_ipsubnet_t *, from ADDR[/BITS] */
} pyprof_access_t;

typedef struct pyprof_dir_conf {
    int headers;             /* 0, 1 or PYPROF_UNSET */
    pyprof_access_t *access; /* NULL = unset: loopback clients only */
} pyprof_dir_conf_t;

#define PYPROF_DEFAULT_TRIGGER_INTERVAL_US 1000

/* A merged server's values, its default where no directive set one */
int64_t pyprof_conf_slow_us(const pyprof_server_conf_t *c);
long pyprof_conf_keep(const pyprof_server_conf_t *c);
long pyprof_conf_max_depth(const pyprof_server_conf_t *c);
uint64_t pyprof_conf_memory(const pyprof_server_conf_t *c);
int pyprof_conf_record_query(const pyprof_server_conf_t *c);
uint32_t pyprof_conf_sampler_mode(const pyprof_server_conf_t *c);
uint32_t pyprof_conf_alloc_mean(const pyprof_server_conf_t *c);

/* The path as kept in the store after c's PyProfRedactPath rules, or
 * NULL when no rule matched. */
const char *pyprof_redact_path(apr_pool_t *p, const pyprof_server_conf_t *c,
                               const char *path);

extern const command_rec pyprof_cmds[];
void *pyprof_create_server_conf(apr_pool_t *p, server_rec *s);
void *pyprof_merge_server_conf(apr_pool_t *p, void *base, void *add);
void *pyprof_create_dir_conf(apr_pool_t *p, char *dir);
void *pyprof_merge_dir_conf(apr_pool_t *p, void *base, void *add);

/* The store this process sees (inherited from the parent), or NULL when
 * no PyProfSample is configured. */
pp_store_t *pyprof_shared_store(void);

int pyprof_handler(request_rec *r);

/* mod_pyprof_access.c: who may see the pages, on top of Require. */
/* The headers every response of the handler carries (CSP, no framing,
 * no sniffing, no Referer, no caching), in err_headers_out. */
void pyprof_set_security_headers(request_rec *r);
/* If this client may not see the pages (PyProfAccess, or a Host that does
 * not name this server), answer 403 saying why (logged) and return 1;
 * else 0. */
int pyprof_refuse_client(request_rec *r);
/* Why the capture form's POST is not from this server's own pages
 * (Sec-Fetch-Site, Origin; logged), or NULL.  The nonce is checked by the
 * handler, against the store. */
const char *pyprof_post_refusal(request_rec *r);

#endif
