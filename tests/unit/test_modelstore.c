/*  test_modelstore.c: the model's store contract (modelstore_cases.inc)
    on the SQLite backend. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "modelstore_sqlite.h"

static char *s_dir;
static modelstore_t *s_store;

#define MODELSTORE_INLINE true

static modelstore_t *
s_open_again (void)
{
    char *path = zsys_sprintf ("%s/model.db", s_dir);
    modelstore_t *store = modelstore_sqlite_open (path);
    free (path);
    return store;
}

static modelstore_t *
s_restore (const char *backup)
{
    return modelstore_sqlite_open (backup);
}

static char *
s_backup_path (void)
{
    return zsys_sprintf ("%s/backup.db", s_dir);
}

static void
s_poll (void)
{
}

static void
s_setup (void)
{
    s_dir = ep_tmpdir_new ("modelstore");
    s_store = s_open_again ();
    cr_assert_not_null (s_store);
}

static void
s_teardown (void)
{
    modelstore_destroy (&s_store);
    ep_tmpdir_remove (&s_dir);
}

TestSuite (modelstore, .init = s_setup, .fini = s_teardown);

#include "modelstore_cases.inc"
