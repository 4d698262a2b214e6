/* Shared between the files of link/ only. */
#ifndef RILL_CORE_LINK_INTERNAL_H
#define RILL_CORE_LINK_INTERNAL_H

#include "link/link.h"

void rill__link_release(rill__link_t *k);
void rill__link_hup_cancel(rill__links_t *ls, rill__link_t *k);
void rill__link_move_to_reroute(rill__links_t *ls, rill__link_t *k);

#endif
