/* pp_views.c: HTML views of a stack set (see pp_views.h).  Reads the
 * store through pp_profile only; output bounded by the tree's size and a
 * minimum drawn width.  Never writes to the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_hash.h"
#include "pp_views.h"

#define FLAME_W 1200.0  /* SVG user units across */
#define FLAME_ROW 18    /* px per stack level */
#define FLAME_MIN_W 0.5 /* narrower frames are not drawn */
#define FLAME_MAX_RECTS 12000
#define TREE_MIN_SHARE 0.0005 /* tree nodes under 0.05% are summarised */
#define TREE_MAX_ROWS 4000
#define FLAME_MAX_DEPTH 256
#define NAME_MAX_SHOWN 90
#define HOT_ROWS 40
#define DIFF_ROWS 30
#define DIFF_SHRINK_ROWS 8 /* of DIFF_ROWS, kept for what shrinks most */
#define DIFF_EPS 0.05      /* points of share: under it, no change */

const char *pp_view_short_name(const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name), keep;

    if (n <= NAME_MAX_SHOWN || cap < NAME_MAX_SHOWN + 8) {
        return name;
    }
    /* keep both ends: the class and the method are what people read */
    keep = (NAME_MAX_SHOWN - 3) / 2;
    /* do not cut inside a UTF-8 sequence */
    {
        size_t a = keep, b = n - keep;
        while (a > 0 && ((unsigned char)name[a] & 0xc0) == 0x80) {
            a--;
        }
        while (b < n && ((unsigned char)name[b] & 0xc0) == 0x80) {
            b++;
        }
        snprintf(buf, cap, "%.*s\xe2\x80\xa6%s", (int)a, name, name + b);
    }
    return buf;
}

const char *pp_view_short_file(const char *file, const char *app_root,
                               char *buf, size_t cap)
{
    static const char *const lib_markers[] = {"/site-packages/",
                                              "/dist-packages/"};
    const char *p;
    size_t i, n;

    if (app_root && app_root[0]) {
        n = strlen(app_root);
        if (strncmp(file, app_root, n) == 0 && file[n] == '/') {
            return file + n + 1;
        }
    }
    for (i = 0; i < sizeof(lib_markers) / sizeof(lib_markers[0]); i++) {
        if ((p = strstr(file, lib_markers[i]))) {
            return p + strlen(lib_markers[i]);
        }
    }
    /* the standard library: /usr/lib/python3.11/json/decoder.py */
    if ((p = strstr(file, "/lib/python3.")) && (p = strchr(p + 13, '/'))) {
        snprintf(buf, cap, "[stdlib] %s", p + 1);
        return buf;
    }
    return file;
}

/* ---- flame graph ---- */

static int is_library(const char *file)
{
    return file[0] == '<' || strstr(file, "/lib/python3.") ||
           strstr(file, "-packages/");
}

/* the one script of the pages; the handler's Content-Security-Policy
 * allows exactly this text by its hash (pp_view_script_csp_hash) */
static const char FLAME_JS[] =
    "(function(){"
    "var s=document.querySelector('svg.flame');if(!s)return;"
    "var W=1200,gs=[].slice.call(s.querySelectorAll('g.f'));"
    "function fit(n,w){var c=Math.floor((w-6)/7);if(c<3)return '';"
    "return n.length<=c?n:n.slice(0,c-1)+'\\u2026'}"
    "function put(e,x,w){e.style.display='';var r=e.firstElementChild"
    ".nextElementSibling,t=r.nextElementSibling;r.setAttribute('x',x);"
    "r.setAttribute('width',w);if(t){t.setAttribute('x',x+3);"
    "t.textContent=fit(e.getAttribute('data-n'),w)}}"
    "function zoom(g){var x0=+g.getAttribute('data-x'),"
    "w0=+g.getAttribute('data-w'),d0=+g.getAttribute('data-d'),e=1e-6;"
    "gs.forEach(function(f){var x=+f.getAttribute('data-x'),"
    "w=+f.getAttribute('data-w'),d=+f.getAttribute('data-d');"
    "if(d>=d0&&x>=x0-e&&x+w<=x0+w0+e)put(f,(x-x0)/w0*W,w/w0*W);"
    "else if(d<d0&&x<=x0+e&&x+w>=x0+w0-e)put(f,0,W);"
    "else f.style.display='none'})}"
    "s.addEventListener('click',function(ev){var g=ev.target.closest"
    "('g.f');if(g)zoom(g)});"
    "var b=document.getElementById('flame-reset');if(b)b.onclick="
    "function(){gs.forEach(function(f){put(f,+f.getAttribute('data-x'),"
    "+f.getAttribute('data-w'))})};"
    "var q=document.getElementById('flame-search'),m=document."
    "getElementById('flame-match');if(q)q.oninput=function(){var re;"
    "try{re=q.value?new RegExp(q.value):null}catch(x){return}"
    "var hit=0,spans=[];gs.forEach(function(f){var ok=re&&re.test(f."
    "getAttribute('data-n'));f.classList.toggle('hit',!!ok);if(ok)"
    "spans.push([+f.getAttribute('data-x'),+f.getAttribute('data-w')])});"
    "spans.sort(function(a,b){return a[0]-b[0]});var end=-1;"
    "spans.forEach(function(p){var a=Math.max(p[0],end),z=p[0]+p[1];"
    "if(z>a){hit+=z-a;end=z}});"
    "m.textContent=re?('matched '+(100*hit/W).toFixed(1)+'%'):''}"
    "})();";

void pp_view_script_csp_hash(char *out, size_t cap)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char d[PP_SHA256_LEN + 1];
    char enc[48];
    size_t i, n = 0;

    pp_sha256(FLAME_JS, sizeof(FLAME_JS) - 1, d);
    d[PP_SHA256_LEN] = 0;
    /* 32 bytes: ten 3-byte groups and one of 2 (one '=') */
    for (i = 0; i < PP_SHA256_LEN; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 |
                     (i + 2 < PP_SHA256_LEN ? d[i + 2] : 0);
        enc[n++] = b64[v >> 18 & 63];
        enc[n++] = b64[v >> 12 & 63];
        enc[n++] = b64[v >> 6 & 63];
        enc[n++] = (char)(i + 2 < PP_SHA256_LEN ? b64[v & 63] : '=');
    }
    enc[n] = '\0';
    snprintf(out, cap, "'sha256-%s'", enc);
}

void pp_view_flamegraph(pp_sink_t *o, const pp_tree_t *t, const char *app_root)
{
    uint32_t depth = 0;
    uint32_t i, drawn = 0;
    int height;

    if (!t->total) {
        return;
    }
    /* as deep as the deepest frame wide enough to draw */
    for (i = 0; i < t->n; i++) {
        if (FLAME_W * (double)t->v[i].count / (double)t->total >= FLAME_MIN_W &&
            t->v[i].depth + 1 > depth) {
            depth = t->v[i].depth + 1;
        }
    }
    if (depth > FLAME_MAX_DEPTH) {
        depth = FLAME_MAX_DEPTH;
    }
    height = (int)depth * FLAME_ROW + 2;
    pp_puts(o, "<div class=flamebox><div class=flametools>"
               "<button type=button id=flame-reset>Reset zoom</button> "
               "<input id=flame-search placeholder=\"search (regex)\" "
               "size=24> <span id=flame-match class=muted></span>"
               "<span class=muted style=\"margin-left:auto\">click a "
               "frame to zoom; width = share of samples; root at the top"
               "</span></div>");
    pp_printf(o,
              "<svg class=flame width=\"100%%\" height=%d viewBox=\"0 0 %d "
              "%d\" preserveAspectRatio=none "
              "xmlns=\"http://www.w3.org/2000/svg\">",
              height, (int)FLAME_W, height);
    for (i = 0; i < t->n && drawn < FLAME_MAX_RECTS; i++) {
        const pp_tnode_t *x = &t->v[i];
        double xx = FLAME_W * (double)x->x / (double)t->total;
        double w = FLAME_W * (double)x->count / (double)t->total;
        const pp_pframe_t *fv;
        char fbuf[PP_FRAME_TEXT_MAX + 16], nbuf[NAME_MAX_SHOWN + 16];
        const char *file, *name;
        uint32_t h;
        int lib, chars;
        double pct = 100.0 * (double)x->count / (double)t->total;

        if (w < FLAME_MIN_W || x->depth >= depth) {
            continue;
        }
        drawn++;
        fv = pp_tree_frame(t, x->frame);
        file = pp_view_short_file(fv->file, app_root, fbuf, sizeof(fbuf));
        name = pp_view_short_name(fv->function, nbuf, sizeof(nbuf));
        h = pp_fnv1a32_str(PP_FNV32_BASIS, fv->function);
        lib = is_library(fv->file);
        pp_printf(o,
                  "<g class=f data-x=\"%.3f\" data-w=\"%.3f\" data-d=%u "
                  "data-n=\"",
                  xx, w, x->depth);
        pp_puts_html(o, name);
        pp_puts(o, "\"><title>");
        pp_puts_html(o, fv->function);
        if (fv->file[0]) {
            pp_puts(o, " (");
            pp_puts_html(o, file);
            pp_printf(o, ":%u)", fv->line);
        }
        pp_printf(o, " \xe2\x80\x94 %llu sample%s, %.1f%%, %.1f ms</title>",
                  (unsigned long long)x->count, x->count == 1 ? "" : "s", pct,
                  x->weight_us / 1e3);
        /* warm for the app's code, cool for the library's: what the eye
         * should look for first */
        pp_printf(o,
                  "<rect x=\"%.3f\" y=%u width=\"%.3f\" height=%d "
                  "fill=\"hsl(%u,%u%%,%u%%)\" />",
                  xx, x->depth * FLAME_ROW, w, FLAME_ROW - 1,
                  lib ? 200 + h % 40 : 10 + h % 40, lib ? 35 : 75,
                  lib ? 72 + h % 10 : 58 + h % 12);
        chars = (int)((w - 6) / 7);
        pp_printf(o, "<text x=\"%.3f\" y=%u>", xx + 3,
                  x->depth * FLAME_ROW + 13);
        if (chars >= 3) {
            size_t n = strlen(name);
            if ((int)n <= chars) {
                pp_puts_html(o, name);
            }
            else {
                /* cut at a character boundary */
                size_t cut = (size_t)chars - 1;
                while (cut > 0 && ((unsigned char)name[cut] & 0xc0) == 0x80) {
                    cut--;
                }
                pp_put_html(o, name, cut);
                pp_puts(o, "\xe2\x80\xa6");
            }
        }
        pp_puts(o, "</text></g>");
    }
    pp_puts(o, "</svg></div>");
    pp_puts(o, "<script>");
    pp_puts(o, FLAME_JS);
    pp_puts(o, "</script>");
}

/* ---- call tree ---- */

typedef struct tree_budget {
    uint32_t rows;
    uint64_t omitted; /* samples under nodes too small or past the cap */
    uint32_t omitted_nodes;
} tree_budget_t;

/* One row's opening (everything up to its children).  Kept out of
 * tree_rows (noinline) so the recursion's frames stay small: a stack of
 * PP_DEPTH_LIMIT frames recurses that deep, and the name buffers here are
 * over 1 KB (1.35 MB of stack in all when they were in the recursive
 * frame; a ThreadStackSize of 1M would not hold it). */
__attribute__((noinline)) static void
tree_row_open(pp_sink_t *o, const pp_tree_t *t, const pp_tnode_t *x,
              uint32_t depth, const char *app_root)
{
    const pp_pframe_t *fv;
    char fbuf[PP_FRAME_TEXT_MAX + 16], nbuf[NAME_MAX_SHOWN + 16];
    double pct = t->total ? 100.0 * (double)x->count / t->total : 0;
    double cpu_share =
        x->weight_us ? (double)x->cpu_us / (double)x->weight_us : 0;
    int w = (int)(pct * 1.2 + 0.5), wc;
    int open = pct >= 5.0 && depth < 64;

    if (cpu_share > 1) {
        cpu_share = 1;
    }
    wc = (int)(w * cpu_share + 0.5);
    fv = pp_tree_frame(t, x->frame);
    pp_puts(o, x->first_child
                   ? (open ? "<details open><summary>" : "<details><summary>")
                   : "<div class=leaf>");
    pp_printf(o, "<span class=pct>%.1f%%</span>", pct);
    pp_printf(o,
              "<span class=bars><span class=\"bar cpu\" "
              "style=\"width:%dpx\"></span><span class=\"bar wait\" "
              "style=\"width:%dpx\"></span></span>",
              wc, w - wc);
    pp_puts(o, "<span class=fn title=\"");
    pp_puts_html(o, fv->function);
    pp_puts(o, "\">");
    pp_puts_html(o, pp_view_short_name(fv->function, nbuf, sizeof(nbuf)));
    pp_puts(o, "</span> ");
    if (fv->file[0]) {
        pp_puts(o, "<span class=loc title=\"");
        pp_puts_html(o, fv->file);
        pp_puts(o, "\">");
        pp_puts_html(
            o, pp_view_short_file(fv->file, app_root, fbuf, sizeof(fbuf)));
        pp_printf(o, ":%u</span>", fv->line);
    }
    pp_printf(o, "<span class=cnt>%llu sample%s, %.1f ms",
              (unsigned long long)x->count, x->count == 1 ? "" : "s",
              x->weight_us / 1e3);
    if (x->self && x->first_child) {
        pp_printf(o, ", %llu in itself", (unsigned long long)x->self);
    }
    if (x->cpu_us || x->weight_us) {
        pp_printf(o, ", %.0f%% on CPU", cpu_share * 100);
    }
    pp_puts(o, "</span>");
}

static void tree_rows(pp_sink_t *o, const pp_tree_t *t, uint32_t first,
                      uint32_t depth, const char *app_root, tree_budget_t *bud)
{
    uint32_t c;

    for (c = first; c; c = t->v[c - 1].next_sibling) {
        const pp_tnode_t *x = &t->v[c - 1];
        /* children come biggest first: once one is too small to show,
         * so are its later siblings */
        if ((double)x->count < TREE_MIN_SHARE * (double)t->total ||
            bud->rows >= TREE_MAX_ROWS) {
            uint32_t r;
            for (r = c; r; r = t->v[r - 1].next_sibling) {
                bud->omitted += t->v[r - 1].count;
                bud->omitted_nodes++;
            }
            return;
        }
        bud->rows++;
        tree_row_open(o, t, x, depth, app_root);
        if (x->first_child) {
            pp_puts(o, "</summary>");
            if (depth < PP_DEPTH_LIMIT + 2) {
                tree_rows(o, t, x->first_child, depth + 1, app_root, bud);
            }
            pp_puts(o, "</details>");
        }
        else {
            pp_puts(o, "</div>");
        }
    }
}

void pp_view_tree(pp_sink_t *o, const pp_tree_t *t, const char *app_root)
{
    tree_budget_t bud = {0, 0, 0};

    pp_puts(o, "<div class=tree>");
    tree_rows(o, t, t->roots, 0, app_root, &bud);
    pp_puts(o, "</div>");
    if (bud.omitted_nodes) {
        pp_printf(o,
                  "<p class=muted>%u smaller branches (%llu samples, "
                  "under 0.05%% each or past %d rows) are left out here; "
                  "the exports have every stack.</p>",
                  bud.omitted_nodes, (unsigned long long)bud.omitted,
                  TREE_MAX_ROWS);
    }
}

/* ---- hot functions ---- */

/* The share of wall time on CPU, in %: a thread's CPU clock can run a
 * little ahead of the samples' wall weight, never meaningfully past it. */
static double cpu_pct(uint64_t cpu_us, uint64_t weight_us)
{
    double r = weight_us ? 100.0 * (double)cpu_us / (double)weight_us : 0;
    return r > 100 ? 100 : r;
}

/* Every sample of the stack set, drawn or left out. */
static uint64_t tree_samples(const pp_tree_t *t)
{
    return t->total + t->left_out;
}

void pp_view_truncated(pp_sink_t *o, const pp_tree_t *t)
{
    if (!t->truncated) {
        return;
    }
    pp_printf(o,
              "<p class=\"muted truncated\">Truncated: the views are "
              "drawn from the commonest stacks, %llu of %llu samples; "
              "%u rarer stacks (%llu samples) are left out of them "
              "(at most %d distinct stacks and %d call-tree nodes per "
              "view). The exports have every stack.</p>",
              (unsigned long long)t->total, (unsigned long long)tree_samples(t),
              t->stacks_left_out, (unsigned long long)t->left_out,
              PP_TREE_MAX_STACKS, PP_TREE_MAX_NODES);
}

void pp_view_hot(pp_sink_t *o, const pp_tree_t *t, int with_cpu,
                 const char *app_root)
{
    size_t n, i;
    pp_hot_t *hot = pp_hot_functions(t, &n);
    uint64_t samples = tree_samples(t);

    if (!hot && t->n) {
        /* pp_hot_functions returns NULL with nodes only when it ran out of
         * memory: not "no samples" */
        pp_puts(o, "<p class=empty>Out of memory building the hot "
                   "functions.</p>");
        return;
    }
    if (!hot || !n || !samples) {
        free(hot);
        pp_puts(o, "<p class=empty>No samples.</p>");
        return;
    }
    pp_puts(o, "<table class=hot><tr><th>Function</th><th>File</th>"
               "<th class=num title=\"samples with the function as the "
               "innermost frame\">Self</th><th class=num title=\"samples "
               "with the function anywhere on the stack\">Total</th>"
               "<th class=num>Self time</th><th class=num>Total time</th>");
    if (with_cpu) {
        pp_puts(o, "<th class=num title=\"share of the function's own "
                   "time spent on CPU\">Self on CPU</th>");
    }
    pp_puts(o, "</tr>");
    for (i = 0; i < n && i < HOT_ROWS; i++) {
        const pp_pframe_t *fv;
        char fbuf[PP_FRAME_TEXT_MAX + 16], nbuf[NAME_MAX_SHOWN + 16];
        double self = 100.0 * (double)hot[i].self / (double)samples;
        double total = 100.0 * (double)hot[i].total / (double)samples;

        fv = pp_tree_frame(t, hot[i].frame);
        pp_puts(o, "<tr><td class=fn title=\"");
        pp_puts_html(o, fv->function);
        pp_puts(o, "\">");
        pp_puts_html(o, pp_view_short_name(fv->function, nbuf, sizeof(nbuf)));
        pp_puts(o, "</td><td class=loc title=\"");
        pp_puts_html(o, fv->file);
        pp_puts(o, "\">");
        pp_puts_html(
            o, pp_view_short_file(fv->file, app_root, fbuf, sizeof(fbuf)));
        if (fv->file[0]) {
            pp_printf(o, ":%u", fv->line);
        }
        pp_printf(o,
                  "</td><td class=num><span class=hbar style=\"width:%dpx\">"
                  "</span>%.1f%%</td><td class=num>%.1f%%</td>"
                  "<td class=num>%.1f ms</td><td class=num>%.1f ms</td>",
                  (int)(self * 0.6 + 0.5), self, total,
                  hot[i].self_weight_us / 1e3, hot[i].total_weight_us / 1e3);
        if (with_cpu) {
            pp_printf(o, "<td class=num>%.0f%%</td>",
                      cpu_pct(hot[i].self_cpu_us, hot[i].self_weight_us));
        }
        pp_puts(o, "</tr>");
    }
    pp_puts(o, "</table>");
    if (n > HOT_ROWS) {
        pp_printf(o, "<p class=muted>%zu more functions in the exports.</p>",
                  n - HOT_ROWS);
    }
    free(hot);
}

/* ---- differential ---- */

typedef struct diff_row {
    const pp_pframe_t *f;
    uint32_t key;
    double slow_total, rest_total, slow_self, rest_self;
    double slow_cpu, rest_cpu; /* self on CPU, %; -1: no self time */
} diff_row_t;

static double diff_delta(const diff_row_t *r)
{
    return r->slow_total - r->rest_total;
}

static int cmp_diff(const void *a, const void *b)
{
    const diff_row_t *x = a, *y = b;
    double dx = diff_delta(x), dy = diff_delta(y);
    if (dx != dy) {
        return dx < dy ? 1 : -1;
    }
    return x->key > y->key ? 1 : (x->key < y->key ? -1 : 0);
}

static int same_function(const pp_pframe_t *x, const pp_pframe_t *y)
{
    return strcmp(x->function, y->function) == 0 &&
           strcmp(x->file, y->file) == 0;
}

typedef struct hashed {
    uint64_t h;
    size_t i; /* index in the rest side's hot list */
} hashed_t;

static int cmp_hashed(const void *a, const void *b)
{
    const hashed_t *x = a, *y = b;
    if (x->h != y->h) {
        return x->h < y->h ? -1 : 1;
    }
    return x->i < y->i ? -1 : (x->i > y->i);
}

/* a function's total and self shares of one side's samples, in %, and
 * its own time's share on CPU */
static void share(const pp_hot_t *h, uint64_t samples, double *total,
                  double *self, double *cpu)
{
    *total = 100.0 * (double)h->total / (double)samples;
    *self = 100.0 * (double)h->self / (double)samples;
    *cpu = h->self_weight_us ? cpu_pct(h->self_cpu_us, h->self_weight_us) : -1;
}

static void cpu_cell(pp_sink_t *o, double pct)
{
    if (pct < 0) {
        pp_puts(o, "<td class=num>&ndash;</td>");
    }
    else {
        pp_printf(o, "<td class=num>%.0f%%</td>", pct);
    }
}

static void diff_row_html(pp_sink_t *o, const diff_row_t *r,
                          const char *app_root)
{
    const pp_pframe_t *fv = r->f;
    char fbuf[PP_FRAME_TEXT_MAX + 16], nbuf[NAME_MAX_SHOWN + 16];
    double d = diff_delta(r);

    pp_puts(o, "<tr><td class=fn>");
    pp_puts_html(o, pp_view_short_name(fv->function, nbuf, sizeof(nbuf)));
    pp_puts(o, "</td><td class=loc>");
    pp_puts_html(o, pp_view_short_file(fv->file, app_root, fbuf, sizeof(fbuf)));
    pp_printf(o,
              "</td><td class=num>%.1f%%</td><td class=num>%.1f%%</td>"
              "<td class=\"num %s\">%+.1f</td><td class=num>%.1f%%</td>"
              "<td class=num>%.1f%%</td>",
              r->slow_total, r->rest_total,
              d > DIFF_EPS ? "up" : (d < -DIFF_EPS ? "down" : ""), d,
              r->slow_self, r->rest_self);
    cpu_cell(o, r->slow_cpu);
    cpu_cell(o, r->rest_cpu);
    pp_puts(o, "</tr>");
}

void pp_view_diff(pp_sink_t *o, const pp_tree_t *slow, const pp_tree_t *rest,
                  const char *app_root)
{
    size_t ns, nr, i, nrows = 0, up = 0, down = 0, show_up, show_down, hidden;
    uint64_t slow_n = tree_samples(slow), rest_n = tree_samples(rest);
    pp_hot_t *hs = pp_hot_functions(slow, &ns);
    pp_hot_t *hr = pp_hot_functions(rest, &nr);
    diff_row_t *rows = calloc(ns + nr + 1, sizeof(*rows));
    char *matched = calloc(nr + 1, 1);
    hashed_t *by_hash = calloc(nr + 1, sizeof(*by_hash));

    if (!rows || !matched || !by_hash || (!hs && slow->n) || (!hr && rest->n)) {
        pp_puts(o, "<p class=empty>Out of memory building the diff.</p>");
        goto out;
    }
    if (!hs || !hr || !slow_n || !rest_n) { /* NULL: an empty tree */
        pp_puts(o, "<p class=empty>Not enough samples on both sides yet: "
                   "the slow side needs requests at or over the location's "
                   "p95 (counted after its first 20 requests).</p>");
        goto out;
    }
    /* match the sides by name through a sorted hash list: linear-log in
     * the functions, however many (the tree caps bound them) */
    for (i = 0; i < nr; i++) {
        /* a function's identity across the two trees (whose function
         * keys are each tree's own): its name and file, hashed */
        by_hash[i].h = pp_tree_frame(rest, hr[i].frame)->fid;
        by_hash[i].i = i;
    }
    qsort(by_hash, nr, sizeof(*by_hash), cmp_hashed);
    for (i = 0; i < ns; i++) {
        diff_row_t *r = &rows[nrows++];
        const pp_pframe_t *fs = pp_tree_frame(slow, hs[i].frame);
        uint64_t h = fs->fid;
        size_t lo = 0, hi = nr;

        r->f = fs;
        r->key = hs[i].key;
        r->rest_cpu = -1;
        share(&hs[i], slow_n, &r->slow_total, &r->slow_self, &r->slow_cpu);
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (by_hash[mid].h < h) {
                lo = mid + 1;
            }
            else {
                hi = mid;
            }
        }
        /* equal hashes: the first unmatched one of the same name */
        for (; lo < nr && by_hash[lo].h == h; lo++) {
            size_t j = by_hash[lo].i;
            if (!matched[j] &&
                same_function(fs, pp_tree_frame(rest, hr[j].frame))) {
                matched[j] = 1;
                share(&hr[j], rest_n, &r->rest_total, &r->rest_self,
                      &r->rest_cpu);
                break;
            }
        }
    }
    /* functions seen only outside the slow requests shrink to 0 there:
     * they are half of the answer, not a rounding error */
    for (i = 0; i < nr; i++) {
        if (!matched[i]) {
            diff_row_t *r = &rows[nrows++];
            r->f = pp_tree_frame(rest, hr[i].frame);
            r->key = hr[i].key;
            r->slow_cpu = -1;
            share(&hr[i], rest_n, &r->rest_total, &r->rest_self, &r->rest_cpu);
        }
    }
    qsort(rows, nrows, sizeof(*rows), cmp_diff);
    pp_printf(o,
              "<p class=muted>%llu samples from the slowest requests "
              "(at or over p95) against %llu from the rest. Positive "
              "&Delta;: the function takes a bigger share of the time "
              "in slow requests.</p>",
              (unsigned long long)slow_n, (unsigned long long)rest_n);
    if (slow->truncated || rest->truncated) {
        pp_printf(o,
                  "<p class=\"muted truncated\">Truncated: %llu rarer "
                  "samples of the slow side and %llu of the rest are "
                  "left out of this table (at most %d distinct stacks "
                  "and %d call-tree nodes per side).</p>",
                  (unsigned long long)slow->left_out,
                  (unsigned long long)rest->left_out, PP_TREE_MAX_STACKS,
                  PP_TREE_MAX_NODES);
    }
    pp_puts(o, "<table class=hot><tr><th>Function</th><th>File</th>"
               "<th class=num>Total, slow</th><th class=num>Total, rest</th>"
               "<th class=num>&Delta;</th><th class=num>Self, slow</th>"
               "<th class=num>Self, rest</th><th class=num title=\"share of "
               "the function's own time spent on CPU\">Self on CPU, slow"
               "</th><th class=num>Self on CPU, rest</th></tr>");
    /* the most growing first and the most shrinking last; the rest
     * (changes under 0.05 points, or past DIFF_ROWS) is counted, not shown */
    while (up < nrows && diff_delta(&rows[up]) > DIFF_EPS) {
        up++;
    }
    while (down < nrows - up &&
           diff_delta(&rows[nrows - 1 - down]) < -DIFF_EPS) {
        down++;
    }
    show_down = down < DIFF_SHRINK_ROWS ? down : DIFF_SHRINK_ROWS;
    show_up = up < DIFF_ROWS - show_down ? up : DIFF_ROWS - show_down;
    if (down > show_down) {
        size_t room = DIFF_ROWS - show_up - show_down;
        show_down += down - show_down < room ? down - show_down : room;
    }
    for (i = 0; i < show_up; i++) {
        diff_row_html(o, &rows[i], app_root);
    }
    hidden = nrows - show_up - show_down;
    if (hidden) {
        pp_printf(o,
                  "<tr><td class=muted colspan=9>&hellip; %zu %s with "
                  "smaller changes</td></tr>",
                  hidden, hidden == 1 ? "function" : "functions");
    }
    for (i = nrows - show_down; i < nrows; i++) {
        diff_row_html(o, &rows[i], app_root);
    }
    pp_puts(o, "</table>");
out:
    free(hs);
    free(hr);
    free(rows);
    free(matched);
    free(by_hash);
}
