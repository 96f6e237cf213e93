/* mod_pyprof_access.c: who may see the profile pages, and from where.
 *
 * The handler's checks on top of Apache's Require: whatever a virtual
 * host's <Location /> grants, the pages serve loopback clients only
 * unless PyProfAccess opens them, and only to a Host that names this
 * server (DNS rebinding); the capture form's POST must come from this
 * server's own pages (Sec-Fetch-Site, Origin; the handler then checks
 * the form's nonce).  Also the security headers every page carries.
 * Reads the request and the per-directory configuration only: never the
 * store.
 */
#include "apr_network_io.h"
#include "apr_strings.h"
#include "http_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "mod_pyprof.h"
#include "pp_views.h"

APLOG_USE_MODULE(pyprof);

/* On every response of the handler, errors and redirects included (so in
 * err_headers_out, which ap_die keeps).  The pages' one script (the flame
 * graph's zoom and search) is allowed by its hash and no other; style is
 * inline only (<style> and style= for bar widths); the one form posts to
 * the page itself, and no page may be framed (the capture form is a
 * clickjacking target).  Request ids and location paths are in the
 * URLs: no Referer leaves the pages. */
void pyprof_set_security_headers(request_rec *r)
{
    apr_table_t *h = r->err_headers_out;
    char script[64];

    pp_view_script_csp_hash(script, sizeof(script));
    apr_table_setn(h, "Content-Security-Policy",
                   apr_pstrcat(r->pool, "default-src 'none'; script-src ",
                               script,
                               "; style-src 'unsafe-inline'; "
                               "img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
                               NULL));
    apr_table_setn(h, "X-Frame-Options", "DENY");
    apr_table_setn(h, "X-Content-Type-Options", "nosniff");
    apr_table_setn(h, "Referrer-Policy", "no-referrer");
    apr_table_setn(h, "Cache-Control", "no-store");
}

static int is_loopback(const apr_sockaddr_t *sa)
{
    if (sa->family == AF_INET) {
        const unsigned char *a = (const unsigned char *)&sa->sa.sin.sin_addr;
        return a[0] == 127;
    }
#if APR_HAVE_IPV6
    if (sa->family == AF_INET6) {
        const struct in6_addr *a = &sa->sa.sin6.sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
#endif
    return 0;
}

static int is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    char v6[64];
    size_t n = strlen(host);

    if (inet_pton(AF_INET, host, buf) == 1) {
        return 1;
    }
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(v6)) {
        memcpy(v6, host + 1, n - 2);
        v6[n - 2] = '\0';
        host = v6;
    }
    return inet_pton(AF_INET6, host, buf) == 1;
}

/* A browser page that rebinds its own name (evil.example) to 127.0.0.1
 * reaches a loopback-only page with Host: evil.example.  Serve only a Host
 * that names this server: an IP address, localhost, or the ServerName or a
 * ServerAlias of the virtual host.  No Host at all (HTTP/1.0) is no
 * browser. */
static int host_names_this_server(request_rec *r)
{
    const server_rec *s = r->server;
    const char *h = r->hostname;
    int i;

    if (!h || !*h || is_ip_literal(h) || strcasecmp(h, "localhost") == 0 ||
        (s->server_hostname && strcasecmp(h, s->server_hostname) == 0)) {
        return 1;
    }
    for (i = 0; s->names && i < s->names->nelts; i++) {
        if (strcasecmp(h, APR_ARRAY_IDX(s->names, i, const char *)) == 0) {
            return 1;
        }
    }
    for (i = 0; s->wild_names && i < s->wild_names->nelts; i++) {
        if (ap_strcasecmp_match(
                h, APR_ARRAY_IDX(s->wild_names, i, const char *)) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Why this client may not see the pages, or NULL.  The client address is
 * r->useragent_addr: the peer, or the address mod_remoteip took from a
 * trusted proxy's header when the operator configured it. */
static const char *access_refusal(request_rec *r)
{
    const pyprof_dir_conf_t *d =
        ap_get_module_config(r->per_dir_config, &pyprof_module);
    const pyprof_access_t *a = d ? d->access : NULL;
    const apr_sockaddr_t *sa = r->useragent_addr;
    int by_address = 0, i;

    if (a && a->any) {
        return NULL;
    }
    if (a && a->authenticated && r->user) {
        return NULL;
    }
    if (sa && (!a || a->local) && is_loopback(sa)) {
        by_address = 1;
    }
    for (i = 0; sa && !by_address && a && i < a->networks->nelts; i++) {
        if (apr_ipsubnet_test(APR_ARRAY_IDX(a->networks, i, apr_ipsubnet_t *),
                              (apr_sockaddr_t *)sa)) {
            by_address = 1;
        }
    }
    if (!by_address) {
        if (!a) {
            return "The profile pages are served to loopback clients only "
                   "(127.0.0.0/8, ::1). The server's administrator can "
                   "open them to other clients with PyProfAccess.";
        }
        return "This client is not among those PyProfAccess allows to see "
               "the profile pages.";
    }
    if (!host_names_this_server(r)) {
        return "The Host header names neither this server (its ServerName "
               "or a ServerAlias) nor an IP address or localhost; such "
               "requests are refused as DNS rebinding.";
    }
    return NULL;
}

int pyprof_refuse_client(request_rec *r)
{
    const char *why = access_refusal(r);

    if (!why) {
        return 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  PYPROF_LOGNO(00201) "%s refused to %s (Host: %s): %s",
                  ap_escape_logitem(r->pool, r->uri), r->useragent_ip,
                  ap_escape_logitem(r->pool, r->hostname), why);
    r->status = HTTP_FORBIDDEN;
    ap_set_content_type(r, "text/plain; charset=utf-8");
    if (!r->header_only) {
        ap_rvputs(r, "403 Forbidden: ", why, "\n", NULL);
    }
    return 1;
}

/* Origin "scheme://host[:port]" names the server the request was sent to
 * (its Host header): the authorities are compared, a default port of the
 * origin's scheme dropped from both.  The scheme itself is not compared
 * with this server's: behind a TLS-terminating proxy the page is https
 * for the browser and http here. */
static int origin_is_this_server(request_rec *r, const char *origin)
{
    const char *host = apr_table_get(r->headers_in, "Host");
    const char *auth, *dflt;
    size_t al, hl, dl;

    if (strncasecmp(origin, "https://", 8) == 0) {
        auth = origin + 8;
        dflt = ":443";
    }
    else if (strncasecmp(origin, "http://", 7) == 0) {
        auth = origin + 7;
        dflt = ":80";
    }
    else {
        return 0; /* "null" (sandboxed frames, file:), other schemes */
    }
    if (!host || !*auth || strpbrk(auth, "/?#@ ")) {
        return 0;
    }
    al = strlen(auth);
    hl = strlen(host);
    dl = strlen(dflt);
    if (al > dl && strcasecmp(auth + al - dl, dflt) == 0) {
        al -= dl;
    }
    if (hl > dl && strcasecmp(host + hl - dl, dflt) == 0) {
        hl -= dl;
    }
    return al == hl && strncasecmp(auth, host, al) == 0;
}

/* Why a POST is not from this server's own page, or NULL.  Browsers send
 * Origin with every POST and Sec-Fetch-Site with every request; a client
 * that sends neither (curl, a script) is no browser a third-party page
 * could drive, and still needs the nonce.  same-site is refused as well
 * as cross-site: another host of the same site (a user-content subdomain)
 * has no business posting this form either. */
static const char *cross_site_refusal(request_rec *r)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *origin = apr_table_get(r->headers_in, "Origin");

    if (site && strcasecmp(site, "same-origin") != 0 &&
        strcasecmp(site, "none") != 0) {
        return "The capture form must be posted from this server's own "
               "page: Sec-Fetch-Site says the request came from another "
               "site.";
    }
    if (origin && !origin_is_this_server(r, origin)) {
        return "The capture form must be posted from this server's own "
               "page: the request's Origin is not the server it was sent "
               "to (behind a reverse proxy, pass the Host header on: "
               "ProxyPreserveHost On).";
    }
    return NULL;
}

const char *pyprof_post_refusal(request_rec *r)
{
    const char *why = cross_site_refusal(r);

    if (why) {
        ap_log_rerror(
            APLOG_MARK, APLOG_INFO, 0, r,
            PYPROF_LOGNO(00202) "capture form refused: %s "
                                "(Origin: %s, Sec-Fetch-Site: %s)",
            why,
            ap_escape_logitem(r->pool, apr_table_get(r->headers_in, "Origin")),
            ap_escape_logitem(r->pool,
                              apr_table_get(r->headers_in, "Sec-Fetch-Site")));
    }
    return why;
}
