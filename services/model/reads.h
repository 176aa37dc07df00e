/*  reads.h: the model's read requests (get, list, snapshot, changes,
    status, backup), answered from committed state through the store's
    queries, and the snapshots being read page by page.

    A snapshot is a store view pinned to one revision: every page is read
    from the view its first page opened; a page token names the view and
    where the last page ended. At most SNAPSHOT_MAX views stay open (the
    least recently used one is ended), each for at most SNAPSHOT_IDLE_MS
    without a page read.
*/
#ifndef READS_H_INCLUDED
#define READS_H_INCLUDED

#include "ep_prelude.h"
#include "model.h"
#include "modelstore.h"

typedef struct _reads_t reads_t;

//  Reads over store (borrowed).
reads_t *
    reads_new (modelstore_t *store);

//  Ends every snapshot. Nulls the caller's pointer.
void
    reads_destroy (reads_t **self_p);

//  Answers request (a read) into result, as the model stands at revision
//  of generation (kept by the caller until done), then calls done (arg, 0).
void
    reads_serve (reads_t *self, const Ep__ModelRequest *request, uint64_t revision,
                 const char *generation, int64_t now_ms, model_result_t *result,
                 model_done_fn *done, void *arg);

//  Ends snapshots idle for longer than their lifetime.
void
    reads_expire (reads_t *self, int64_t now_ms);

//  Every entity, over a store that completes inline (see model_entities).
Ep__Entity **
    reads_entities (reads_t *self, size_t *count);

#endif
