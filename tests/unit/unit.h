/* unit.h: what every cmocka test of the core (pp_*.c) shares.
 *
 * cmocka's required includes in the order it wants them, a memory sink for
 * the renderers, a store and a request claimed in it, a UTF-8 validity check,
 * and a strict JSON check that runs the system Python's json module on the
 * output.  Test helpers only: never included by the module.
 */
#ifndef PP_UNIT_H
#define PP_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pp_profile.h"
#include "pp_render.h"
#include "pp_store.h"
#include "pp_store_testing.h"

#define UNIT_PYTHON "/usr/bin/python3"

/* ---- memory sink ---- */

typedef struct unit_buf {
    char *p;
    size_t n, cap;
} unit_buf_t;

static inline void unit_buf_write(void *ctx, const char *s, size_t n)
{
    unit_buf_t *b = ctx;

    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap) {
            cap *= 2;
        }
        b->p = realloc(b->p, cap);
        if (!b->p) {
            abort();
        }
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static inline pp_sink_t unit_sink(unit_buf_t *b)
{
    pp_sink_t o = {unit_buf_write, b};
    return o;
}

/* The text written so far, NUL-terminated (empty string if none). */
static inline const char *unit_buf_str(unit_buf_t *b)
{
    if (!b->p) {
        unit_buf_write(b, "", 0);
    }
    return b->p;
}

static inline void unit_buf_reset(unit_buf_t *b)
{
    b->n = 0;
    if (b->p) {
        b->p[0] = '\0';
    }
}

static inline void unit_buf_free(unit_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- a store and its requests ---- */

/* A fresh store; fails the test (with pp_store_create()'s reason) if there
 * is none. */
static inline pp_store_t *unit_make_store(uint64_t size, uint32_t nslots,
                                          uint32_t keep)
{
    const char *err = NULL;
    pp_store_t *st = pp_store_create(size, nslots, keep, &err);

    if (!st) {
        fail_msg("pp_store_create(%llu, %u, %u): %s", (unsigned long long)size,
                 nslots, keep, err ? err : "(no message)");
    }
    return st;
}

/* Claims a slot for "GET `uri`" on www.example.org at location `loc` (10 ms
 * interval, depth 128) by thread `tid` of process `pid`, started at
 * `start_us`; pp_store_claim()'s answer. */
static inline int unit_claim(pp_store_t *st, int loc, const char *id,
                             const char *uri, int32_t pid, int32_t tid,
                             int64_t start_us, int hint)
{
    pp_req_info_t info;

    pp_testing_req_info(&info, id, uri, "www.example.org", loc, 10000, 128,
                        start_us);
    info.pid = pid;
    info.tid = tid;
    return pp_store_claim(st, &info, hint);
}

/* ---- hand-made profiles and hostile names ---- */

/* Names a renderer must escape, and how HTML shows them. */
#define EVIL_PATH "/a\"<b>&c"
#define EVIL_PATH_ESC "/a&quot;&lt;b&gt;&amp;c"
#define EVIL_URI "/x?<img src=y>&z=\"1\""
#define EVIL_URI_ESC "/x?&lt;img src=y&gt;&amp;z=&quot;1&quot;"
#define EVIL_FN "<script>f()</script>"
#define EVIL_FN_ESC "&lt;script&gt;f()&lt;/script&gt;"

/* A resolved stack of the profile's frames[0 .. depth) (root first),
 * added with its counts; its leaf node. */
static inline uint32_t unit_add_stack(pp_profile_t *p, const uint32_t *frames,
                                      size_t depth, uint64_t count,
                                      uint64_t weight_us, uint64_t cpu_us)
{
    uint32_t node = 0;
    size_t d;

    for (d = 0; d < depth; d++) {
        node = pp_profile_new_node(p, node, frames[d]);
        assert_true(node != 0);
    }
    assert_int_equal(pp_profile_add_resolved(p, node, count, weight_us, cpu_us),
                     0);
    return node;
}

/* ---- render options ---- */

/* Options as the handler sets them for an unfiltered overview: no
 * location, status or duration filter, slowest first. */
static inline void unit_default_opts(pp_render_opts_t *opt, int64_t now_us)
{
    memset(opt, 0, sizeof(*opt));
    opt->base = "/server-profile";
    opt->now_us = now_us;
    opt->sort = PP_SORT_DURATION;
    opt->filter_location = -1;
    opt->min_us = -1;
    opt->max_us = -1;
}

/* A page test's fixture: the file's own output buffer `buf`, its sink
 * `out` and options `opt` (the defaults at now_us), made empty by
 * setup() and freed by teardown(), the cmocka fixture of each test. */
#define UNIT_PAGE_FIXTURE(now_us)          \
    static unit_buf_t buf;                 \
    static pp_sink_t out;                  \
    static pp_render_opts_t opt;           \
                                           \
    static int setup(void **state)         \
    {                                      \
        (void)state;                       \
        memset(&buf, 0, sizeof(buf));      \
        out = unit_sink(&buf);             \
        unit_default_opts(&opt, (now_us)); \
        return 0;                          \
    }                                      \
                                           \
    static int teardown(void **state)      \
    {                                      \
        (void)state;                       \
        unit_buf_free(&buf);               \
        return 0;                          \
    }

/* ---- text checks ---- */

/* Is s[0..n) well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF)? */
static inline int unit_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned char c = p[i];
        size_t len, k;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        }
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        }
        else {
            return 0;
        }
        if (i + len > n) {
            return 0;
        }
        for (k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
        i += len;
    }
    return 1;
}

static inline size_t unit_count(const char *hay, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    const char *p = hay;

    while (k && (p = strstr(p, needle)) != NULL) {
        n++;
        p += k;
    }
    return n;
}

/* ---- strict JSON through the system Python ---- */

static const char unit_json_script[] =
    "import json, sys\n"
    "def bad(c):\n"
    "    raise ValueError('non-standard JSON constant ' + c)\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "try:\n"
    "    d = json.loads(raw.decode('utf-8', 'strict'), parse_constant=bad)\n"
    "except Exception as e:\n"
    "    print('invalid JSON: %s\\n%r' % (e, raw[:2000]), file=sys.stderr)\n"
    "    sys.exit(2)\n"
    "for e in sys.argv[2:]:\n"
    "    try:\n"
    "        ok = eval(e)\n"
    "    except Exception as x:\n"
    "        ok = False\n"
    "        print('error in %s: %r' % (e, x), file=sys.stderr)\n"
    "    if not ok:\n"
    "        print('JSON check failed: %s\\n%r' % (e, raw[:2000]),\n"
    "              file=sys.stderr)\n"
    "        sys.exit(1)\n";

/* Parse `json` strictly (UTF-8, no NaN/Infinity) with Python's json module,
 * bind it to `d`, and evaluate each NULL-terminated Python expression on it.
 * 0 when all hold; the failing check is printed on stderr. */
static inline int unit_json_check_v(const char *json, size_t n,
                                    const char *const *exprs)
{
    char path[] = "/tmp/pp_unit_json_XXXXXX";
    const char *argv[64];
    int fd, st = 0, k = 0;
    pid_t pid;

    fd = mkstemp(path);
    if (fd < 0) {
        return -1;
    }
    if (write(fd, json, n) != (ssize_t)n) {
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    argv[k++] = "python3";
    argv[k++] = "-c";
    argv[k++] = unit_json_script;
    argv[k++] = path;
    while (exprs && *exprs && k < 63) {
        argv[k++] = *exprs++;
    }
    argv[k] = NULL;
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        execv(UNIT_PYTHON, (char *const *)argv);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &st, 0) != pid) {
        unlink(path);
        return -1;
    }
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define unit_assert_json(json, ...)                                       \
    do {                                                                  \
        const char *const unit_exprs_[] = {__VA_ARGS__, NULL};            \
        const char *unit_j_ = (json);                                     \
        assert_int_equal(                                                 \
            unit_json_check_v(unit_j_, strlen(unit_j_), unit_exprs_), 0); \
    } while (0)

#endif
