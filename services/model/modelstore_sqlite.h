/*  modelstore_sqlite.h: the model's embedded store, model.db in SQLite.

    The default backend of modelstore.h: entities as packed ep.Entity rows
    with the columns queries need (name, and the hosted table indexing which
    routers host which service), the change log, the store's metadata and
    the saved replies, in one ep_store_t. Everything completes inline.
    Snapshot views are read-only connections holding one read transaction:
    WAL gives each a fixed view while writes go on.
*/
#ifndef MODELSTORE_SQLITE_H_INCLUDED
#define MODELSTORE_SQLITE_H_INCLUDED

#include "ep_prelude.h"
#include "ep_store.h"
#include "modelstore.h"

//  The schema, for ep_store_new.
extern const char *const modelstore_sqlite_migrations [];
extern const size_t modelstore_sqlite_migrations_count;

//  Opens (creating, migrating) the database at path. Returns NULL on
//  failure (logged with why).
modelstore_t *
    modelstore_sqlite_open (const char *path);

//  A model store over store, which stays the caller's (to close after
//  modelstore_destroy): for tests that prepare the database themselves.
modelstore_t *
    modelstore_sqlite_new (ep_store_t *store);

#endif
