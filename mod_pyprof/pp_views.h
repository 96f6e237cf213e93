/* pp_views.h: HTML views of a stack set, shared by the request and the
 * location pages: a server-side SVG flame graph (with an optional inline
 * script for click-to-zoom and search), the call tree as nested
 * <details>, the hot-functions table, and the differential table.
 * All work without JavaScript; all names are HTML-escaped.  Pure
 * functions of a built tree (pp_tree_build of a resolved profile): they
 * never read the store.
 */
#ifndef PP_VIEWS_H
#define PP_VIEWS_H

#include "pp_profile.h"
#include "pp_sink.h"

/* The flame graph and its script (the script once per page). */
void pp_view_flamegraph(pp_sink_t *o, const pp_tree_t *t, const char *app_root);
/* The CSP source that allows the flame graph's inline script and nothing
 * else: 'sha256-BASE64' (53 bytes and NUL; cap >= 54). */
void pp_view_script_csp_hash(char *out, size_t cap);
void pp_view_tree(pp_sink_t *o, const pp_tree_t *t, const char *app_root);
void pp_view_hot(pp_sink_t *o, const pp_tree_t *t, int with_cpu,
                 const char *app_root);
/* The note a view owes when its tree left stacks out (nothing if not). */
void pp_view_truncated(pp_sink_t *o, const pp_tree_t *t);
/* Functions whose share of samples grows most in `slow` against `rest`,
 * then those that shrink most (including functions only in `rest`); each
 * side as a built tree, so a side costs one tree however it is used. */
void pp_view_diff(pp_sink_t *o, const pp_tree_t *slow, const pp_tree_t *rest,
                  const char *app_root);

/* Display forms, never used by exports: a file path relative to the app
 * root (or with the interpreter's library prefix cut), and long names
 * shortened in the middle.  Write into buf (cap bytes). */
const char *pp_view_short_file(const char *file, const char *app_root,
                               char *buf, size_t cap);
const char *pp_view_short_name(const char *name, char *buf, size_t cap);

#endif
