/* pp_resolve_int.h: the resolve step's parts a tree build uses, private to
 * the profile's files (pp_resolve.c defines them, pp_tree.c calls them
 * from pp_profile_resolve_tree, which copies stack by stack while the
 * tree has room).  Everyone else resolves through pp_profile.h
 * (pp_profile_resolve, pp_profile_resolve_tree).
 */
#ifndef PP_RESOLVE_INT_H
#define PP_RESOLVE_INT_H

#include "pp_profile.h"
#include "pp_store.h"

/* The maps from store frames and nodes to the profile's copies, made if
 * missing.  -1 on ENOMEM. */
int pp_resolve_init(pp_profile_t *p);

/* Copy one stack's frames and nodes from the store, down from the first
 * node already copied; sets s->leaf (0 if nothing resolved).  Walks at
 * most the depth limit.  -1 on ENOMEM. */
int pp_resolve_stack(pp_profile_t *p, const pp_store_t *st, pp_prof_stack_t *s);

/* Drop the copied nodes and the store node map: every stack reads as
 * unresolved again.  Frames stay, with their ids. */
void pp_resolve_drop_nodes(pp_profile_t *p);

#endif /* PP_RESOLVE_INT_H */
