/*  test_model.c: the real edgeplane-model process over CURVE.

    Compare-and-swap under concurrency, durability across kill -9 (with a
    SQLite VFS that drops every write not yet synced, so a reply sent before
    its fsync would show up as a lost entity), ten thousand writes across a
    crash, malformed and oversized input, and roles. The model publishes to
    an ipc endpoint where no bus listens: publishing connects lazily and
    drops, and nothing here depends on the stream.
*/
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_codec.h"
#include "ep_keys.h"
#include "ep_rpc_client.h"
#include "model.pb-c.h"
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#define CALL_MS     5000        //  reply deadline for a call that must be answered

static char *s_dir;             //  this test's directory
static char *s_data;            //  EDGEPLANE_DATA_DIR (model.db, keys/)
static char *s_keys;            //  its keys dir
static char *s_server_key;      //  the model's public key
static char *s_env_data;        //  "EDGEPLANE_DATA_DIR=..."
static char *s_env_bus;         //  "EDGEPLANE_BUS_PUB=ipc://..." (nothing listens)
static char *s_stats;           //  the crash VFS's stats file
static char *s_env_stats;       //  "EDGEPLANE_CRASHVFS_STATS=..."
static char *s_env_asan;        //  "ASAN_OPTIONS=...": lets an ASan build take the preload
static char *s_env_sync_us = "EDGEPLANE_CRASHVFS_SYNC_US=2000";    //  a disk's flush time

static void
s_setup (void)
{
    //  czmq's first-use initialisation is not thread-safe: do it here,
    //  before any test starts threads that open sockets.
    zsys_init ();
    s_dir = ep_tmpdir_new ("model-it");
    s_data = zsys_sprintf ("%s/data", s_dir);
    s_keys = zsys_sprintf ("%s/keys", s_data);
    char err [256];
    cr_assert_eq (ep_keys_init (s_keys, false, err, sizeof err), 0, "%s", err);
    s_server_key = ep_keys_public_txt (s_keys, "model");
    cr_assert_not_null (s_server_key);
    s_env_data = zsys_sprintf ("EDGEPLANE_DATA_DIR=%s", s_data);
    s_env_bus = zsys_sprintf ("EDGEPLANE_BUS_PUB=ipc://%s/no-bus", s_dir);
    s_stats = zsys_sprintf ("%s/crashvfs.stats", s_dir);
    s_env_stats = zsys_sprintf ("EDGEPLANE_CRASHVFS_STATS=%s", s_stats);
    //  ASan insists on coming first in the library list; a preloaded
    //  library comes before it. Harmless without ASan.
    const char *asan = getenv ("ASAN_OPTIONS");
    s_env_asan = zsys_sprintf ("ASAN_OPTIONS=%s%sverify_asan_link_order=0",
                               asan? asan: "", asan && *asan? ":": "");
}

static void
s_teardown (void)
{
    zstr_free (&s_env_asan);
    zstr_free (&s_env_stats);
    zstr_free (&s_stats);
    zstr_free (&s_env_bus);
    zstr_free (&s_env_data);
    zstr_free (&s_server_key);
    zstr_free (&s_keys);
    zstr_free (&s_data);
    ep_tmpdir_remove (&s_dir);
}

//  Starts edgeplane-model on kernel-chosen ports over s_data; with
//  crashvfs, under the power-loss VFS.
static ep_proc_t *
s_model (bool crashvfs)
{
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0", NULL };
    const char *env [8];
    size_t n = 0;
    env [n++] = s_env_data;
    env [n++] = s_env_bus;
    if (crashvfs) {
        env [n++] = "LD_PRELOAD=" EP_CRASHVFS_PATH;
        env [n++] = s_env_stats;
        env [n++] = s_env_asan;
        env [n++] = s_env_sync_us;
    }
    env [n] = NULL;
    ep_proc_t *model = ep_proc_start ("edgeplane-model", args, env, 20000);
    cr_assert_not_null (model, "edgeplane-model did not start");
    return model;
}

//  SIGKILLs the model and reaps it.
static void
s_kill (ep_proc_t *model)
{
    cr_assert_eq (ep_proc_signal (model, SIGKILL), 0);
    int status = ep_proc_wait_exit (model, 10000);
    cr_assert (status != -1 && WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL,
               "the model did not die of SIGKILL (status %d)", status);
}

//  ---------------------------------------------------------------------
//  Requests, built in caller-owned storage so threads can each have one.

typedef struct {
    Ep__ModelRequest request;   //  the request
    Ep__ModelWrite write;       //  its write
    Ep__Entity entity;          //  the written entity
    Ep__Router router;          //  as a router
    Ep__ModelGet get;           //  or a get
    Ep__ListFilter list;        //  or a list
    Ep__SnapshotRequest snapshot;   //  or a snapshot page
    Ep__StatusRequest status;   //  or a status
    Ep__ChangesRequest changes; //  or changes since
    Ep__BackupRequest backup;   //  or a backup
    char request_id [33];       //  fresh per request
} s_req_t;

static Ep__ModelRequest *
s_req_init (s_req_t *r)
{
    memset (r, 0, sizeof *r);
    ep__model_request__init (&r->request);
    ep_rpc_new_id (r->request_id);
    r->request.request_id = r->request_id;
    return &r->request;
}

//  A write of router id (name optional); expected_version 0 = unconditional.
static Ep__ModelRequest *
s_router_write (s_req_t *r, Ep__ModelWrite__Op op, const char *id, const char *name,
                uint64_t expected_version)
{
    s_req_init (r);
    ep__router__init (&r->router);
    r->router.id = (char *) id;
    r->router.name = (char *) name;
    ep__entity__init (&r->entity);
    r->entity.kind_case = EP__ENTITY__KIND_ROUTER;
    r->entity.router = &r->router;
    ep__model_write__init (&r->write);
    r->write.has_op = true;
    r->write.op = op;
    if (op == EP__MODEL_WRITE__OP__DELETE) {
        r->write.has_type = true;
        r->write.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
        r->write.id = (char *) id;
    }
    else
        r->write.entity = &r->entity;
    if (expected_version) {
        r->write.has_expected_version = true;
        r->write.expected_version = expected_version;
    }
    r->request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    r->request.write = &r->write;
    return &r->request;
}

static Ep__ModelRequest *
s_status_req (s_req_t *r)
{
    s_req_init (r);
    ep__status_request__init (&r->status);
    r->request.op_case = EP__MODEL_REQUEST__OP_STATUS;
    r->request.status = &r->status;
    return &r->request;
}

static Ep__ModelRequest *
s_get_req (s_req_t *r, const char *id)
{
    s_req_init (r);
    ep__model_get__init (&r->get);
    r->get.has_type = true;
    r->get.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
    r->get.id = (char *) id;
    r->request.op_case = EP__MODEL_REQUEST__OP_GET;
    r->request.get = &r->get;
    return &r->request;
}

static Ep__ModelRequest *
s_list_req (s_req_t *r, const char *page_token)
{
    s_req_init (r);
    ep__list_filter__init (&r->list);
    r->list.has_type = true;
    r->list.type = EP__ENTITY_TYPE__ENTITY_ROUTER;
    r->list.has_page_size = true;
    r->list.page_size = 1000;
    r->list.page_token = (char *) page_token;
    r->request.op_case = EP__MODEL_REQUEST__OP_LIST;
    r->request.list = &r->list;
    return &r->request;
}

static Ep__ModelRequest *
s_snapshot_req (s_req_t *r, const char *page_token)
{
    s_req_init (r);
    ep__snapshot_request__init (&r->snapshot);
    r->snapshot.has_page_size = true;
    r->snapshot.page_size = 1000;
    r->snapshot.page_token = (char *) page_token;
    r->request.op_case = EP__MODEL_REQUEST__OP_SNAPSHOT;
    r->request.snapshot = &r->snapshot;
    return &r->request;
}

static Ep__Status__Code
s_code (const Ep__ModelReply *reply)
{
    return reply->status && reply->status->has_code? reply->status->code: EP__STATUS__CODE__OK;
}

static const char *
s_message (const Ep__ModelReply *reply)
{
    return reply->status && reply->status->message? reply->status->message: "";
}

//  A call that must be answered with code; returns the reply (caller frees).
static Ep__ModelReply *
s_expect (ep_rpc_client_t *client, Ep__ModelRequest *request, Ep__Status__Code code)
{
    Ep__ModelReply *reply = ep_rpc_call (client, request, &ep__model_reply__descriptor, CALL_MS, 1, NULL, 0);
    cr_assert_not_null (reply, "no reply");
    cr_assert_eq (s_code (reply), code, "expected code %d, got %d: %s", code, s_code (reply),
                  s_message (reply));
    cr_assert_str_eq (reply->request_id, request->request_id);
    return reply;
}

static ep_rpc_client_t *
s_client (ep_proc_t *model, zcert_t *cert)
{
    ep_rpc_client_t *client = ep_rpc_client_new (ep_proc_connect_endpoint (model, "api"),
                                                 cert, s_server_key);
    cr_assert_not_null (client);
    return client;
}

static uint64_t
s_revision (ep_rpc_client_t *client)
{
    s_req_t r;
    Ep__ModelReply *reply = s_expect (client, s_status_req (&r), EP__STATUS__CODE__OK);
    uint64_t revision = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    return revision;
}

//  Every router, by listing all pages: id -> version (a uint64 in the
//  pointer). Caller destroys.
static zhashx_t *
s_routers (ep_rpc_client_t *client, bool by_snapshot)
{
    zhashx_t *routers = zhashx_new ();
    char *token = NULL;
    uint64_t pinned = 0;
    do {
        s_req_t r;
        Ep__ModelRequest *request = by_snapshot? s_snapshot_req (&r, token): s_list_req (&r, token);
        Ep__ModelReply *reply = s_expect (client, request, EP__STATUS__CODE__OK);
        if (by_snapshot) {
            if (!pinned)
                pinned = reply->revision;
            cr_assert_eq (reply->revision, pinned, "snapshot pages must share one revision");
        }
        for (size_t i = 0; i < reply->n_entities; i++) {
            Ep__Router *router = reply->entities [i]->router;
            cr_assert_not_null (router);
            cr_assert (zhashx_insert (routers, router->id,
                                      (void *) (uintptr_t) router->meta->version) == 0,
                       "router %s listed twice", router->id);
        }
        zstr_free (&token);
        if (reply->next_page_token && *reply->next_page_token)
            token = strdup (reply->next_page_token);
        ep__model_reply__free_unpacked (reply, NULL);
    } while (token);
    return routers;
}

//  ---------------------------------------------------------------------
//  Raw DEALER sockets: many requests in flight, hand-made frames.

static zsock_t *
s_dealer (ep_proc_t *model, zcert_t *cert)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_linger (dealer, 0);
    zcert_apply (cert, dealer);
    zsock_set_curve_serverkey (dealer, s_server_key);
    cr_assert_eq (zsock_connect (dealer, "%s", ep_proc_connect_endpoint (model, "api")), 0);
    return dealer;
}

static void
s_send (zsock_t *dealer, Ep__ModelRequest *request)
{
    char err [256];
    zframe_t *frame = ep_codec_pack (&request->base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
    cr_assert_not_null (frame, "%s", err);
    cr_assert_eq (zframe_send (&frame, dealer, 0), 0);
}

static void
s_send_bytes (zsock_t *dealer, const void *data, size_t size)
{
    zframe_t *frame = zframe_new (data, size);
    cr_assert_eq (zframe_send (&frame, dealer, 0), 0);
}

//  The next reply on dealer within timeout_ms, or NULL.
static Ep__ModelReply *
s_recv (zsock_t *dealer, int timeout_ms)
{
    zpoller_t *poller = zpoller_new (dealer, NULL);
    Ep__ModelReply *reply = NULL;
    if (zpoller_wait (poller, timeout_ms)) {
        zframe_t *frame = zframe_recv (dealer);
        char err [256];
        reply = (Ep__ModelReply *) ep_codec_unpack_frame (&ep__model_reply__descriptor, frame,
                                                          EP_CODEC_DEFAULT_CAP, "model", err, sizeof err);
        cr_assert_not_null (reply, "%s", err);
        zframe_destroy (&frame);
    }
    zpoller_destroy (&poller);
    return reply;
}

//  Sends a status request on dealer and waits for its OK: the CURVE
//  handshake is done and the model serves this connection.
static void
s_served (zsock_t *dealer)
{
    s_req_t r;
    Ep__ModelRequest *request = s_status_req (&r);
    s_send (dealer, request);
    Ep__ModelReply *reply = s_recv (dealer, CALL_MS);
    cr_assert_not_null (reply, "the model did not answer a well-formed request");
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "%s", s_message (reply));
    cr_assert_str_eq (reply->request_id, request->request_id);
    ep__model_reply__free_unpacked (reply, NULL);
}

//  ---------------------------------------------------------------------

Test (model_it, concurrent_updates_with_one_expected_version_exactly_one_wins,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *model = s_model (false);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *client = s_client (model, cert);
    s_req_t r;
    Ep__ModelReply *reply = s_expect (client, s_router_write (&r, EP__MODEL_WRITE__OP__CREATE,
                                      "contested", NULL, 0), EP__STATUS__CODE__OK);
    uint64_t version = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);

    enum { WRITERS = 16, ROUNDS = 3 };
    zsock_t *dealers [WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        dealers [i] = s_dealer (model, cert);
        s_served (dealers [i]);
    }
    for (int round = 0; round < ROUNDS; round++) {
        //  Every writer read `version`; all send at once.
        static s_req_t requests [WRITERS];
        char names [WRITERS][32];
        for (int i = 0; i < WRITERS; i++) {
            snprintf (names [i], sizeof names [i], "round%d-writer%d", round, i);
            s_router_write (&requests [i], EP__MODEL_WRITE__OP__UPDATE, "contested", names [i], version);
        }
        for (int i = 0; i < WRITERS; i++)
            s_send (dealers [i], &requests [i].request);
        Ep__ModelReply *replies [WRITERS];
        int winner = -1, conflicts = 0;
        for (int i = 0; i < WRITERS; i++) {
            replies [i] = s_recv (dealers [i], CALL_MS);
            cr_assert_not_null (replies [i], "writer %d got no reply", i);
            cr_assert_str_eq (replies [i]->request_id, requests [i].request_id);
            if (s_code (replies [i]) == EP__STATUS__CODE__OK) {
                cr_assert_eq (winner, -1, "writers %d and %d both won round %d", winner, i, round);
                winner = i;
            }
            else {
                cr_assert_eq (s_code (replies [i]), EP__STATUS__CODE__CONFLICT, "writer %d: %s",
                              i, s_message (replies [i]));
                conflicts++;
            }
        }
        cr_assert_neq (winner, -1, "nobody won round %d", round);
        cr_assert_eq (conflicts, WRITERS - 1);
        uint64_t won = replies [winner]->revision;
        cr_assert_gt (won, version);
        for (int i = 0; i < WRITERS; i++) {
            if (i != winner) {
                cr_assert (replies [i]->has_current_version, "a CONFLICT carries current_version");
                cr_assert_eq (replies [i]->current_version, won,
                              "the conflict should name the winner's version");
            }
            ep__model_reply__free_unpacked (replies [i], NULL);
        }
        //  The stored router is the winner's, at the winner's revision.
        reply = s_expect (client, s_get_req (&r, "contested"), EP__STATUS__CODE__OK);
        cr_assert_str_eq (reply->entities [0]->router->name, names [winner]);
        cr_assert_eq (reply->entities [0]->router->meta->version, won);
        ep__model_reply__free_unpacked (reply, NULL);
        //  Losers consumed no revision.
        cr_assert_eq (s_revision (client), won);
        cr_assert_eq (won, version + 1);
        version = won;
    }
    for (int i = 0; i < WRITERS; i++)
        zsock_destroy (&dealers [i]);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
}

//  ---------------------------------------------------------------------
//  Durability across a simulated power loss

Test (model_it, crashvfs_loses_unsynced_writes_on_kill,
      .init = s_setup, .fini = s_teardown, .timeout = 30)
{
    //  The negative control: without it the durability test could pass
    //  with a VFS that loses nothing. A child loads the VFS, commits one
    //  row with a sync and one without, and kills itself.
    char *path = zsys_sprintf ("%s/control.db", s_dir);
    int pipe_fds [2];
    cr_assert_eq (pipe (pipe_fds), 0);
    pid_t pid = fork ();
    cr_assert_geq (pid, 0);
    if (pid == 0) {
        close (pipe_fds [0]);
        if (!dlopen (EP_CRASHVFS_PATH, RTLD_NOW)
        ||  strcmp (sqlite3_vfs_find (NULL)->zName, "crashvfs") != 0)
            _exit (2);
        sqlite3 *db = NULL;
        sqlite3_stmt *stmt = NULL;
        if (sqlite3_open (path, &db) != SQLITE_OK
        ||  sqlite3_exec (db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                              "CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('synced');"
                              "PRAGMA synchronous=OFF; INSERT INTO t VALUES ('unsynced');",
                          NULL, NULL, NULL) != SQLITE_OK
        ||  sqlite3_prepare_v2 (db, "SELECT count(*) FROM t", -1, &stmt, NULL) != SQLITE_OK
        ||  sqlite3_step (stmt) != SQLITE_ROW)
            _exit (3);
        //  The process itself sees both rows (reads overlay the pending
        //  writes); then the power goes.
        char seen = (char) ('0' + sqlite3_column_int (stmt, 0));
        if (write (pipe_fds [1], &seen, 1) != 1)
            _exit (4);
        kill (getpid (), SIGKILL);
        _exit (5);
    }
    close (pipe_fds [1]);
    char seen = 0;
    cr_assert_eq (read (pipe_fds [0], &seen, 1), 1, "the child failed before committing");
    close (pipe_fds [0]);
    int status;
    cr_assert_eq (waitpid (pid, &status, 0), pid);
    cr_assert (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL, "child status %d", status);
    cr_assert_eq (seen, '2', "before the crash the writer sees both rows");

    //  Reopened without the VFS (WAL recovery runs): only the synced row.
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    cr_assert_eq (sqlite3_open (path, &db), SQLITE_OK);
    cr_assert_eq (sqlite3_prepare_v2 (db, "SELECT x FROM t ORDER BY rowid", -1, &stmt, NULL), SQLITE_OK,
                  "%s", sqlite3_errmsg (db));
    cr_assert_eq (sqlite3_step (stmt), SQLITE_ROW);
    cr_assert_str_eq ((const char *) sqlite3_column_text (stmt, 0), "synced");
    cr_assert_eq (sqlite3_step (stmt), SQLITE_DONE, "the unsynced row survived: the VFS drops nothing");
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    free (path);
}

#define DURABLE_WRITERS 32

typedef struct {
    const char *endpoint;       //  the model's API
    zcert_t *cert;              //  this writer's certificate
    int index;                  //  writer number
    char (*ids) [24];           //  acknowledged ids
    uint64_t *revisions;        //  and their revisions
    size_t acked;               //  how many
    size_t capacity;            //  allocated
    size_t unanswered;          //  calls that got no reply
    char error [256];           //  a reply that should not have come, if any
} s_writer_t;

static atomic_bool s_stop;              //  writers stop at their next call
static atomic_size_t s_acked_total;     //  acknowledged writes, all writers
static size_t s_kill_at;                //  the acknowledgement that cuts the power
static pid_t s_model_pid;               //  the model to kill

static void *
s_writer_run (void *arg)
{
    s_writer_t *self = (s_writer_t *) arg;
    ep_rpc_client_t *client = ep_rpc_client_new (self->endpoint, self->cert, s_server_key);
    for (size_t n = 0; client && !atomic_load (&s_stop); n++) {
        char id [24];
        snprintf (id, sizeof id, "w%02d-%06zu", self->index, n);
        s_req_t r;
        Ep__ModelReply *reply = ep_rpc_call (client, s_router_write (&r, EP__MODEL_WRITE__OP__CREATE, id, NULL, 0),
                                             &ep__model_reply__descriptor, 1000, 1, NULL, 0);
        if (!reply) {
            self->unanswered++;
            continue;
        }
        if (s_code (reply) == EP__STATUS__CODE__OK) {
            if (self->acked == self->capacity) {
                self->capacity = self->capacity? self->capacity * 2: 256;
                self->ids = realloc (self->ids, self->capacity * sizeof *self->ids);
                self->revisions = (uint64_t *) realloc (self->revisions, self->capacity * sizeof (uint64_t));
            }
            memcpy (self->ids [self->acked], id, sizeof id);
            self->revisions [self->acked++] = reply->revision;
            //  The power goes the moment this reply is in: if the model
            //  answered before its commit was synced, that commit is still
            //  in flight now and is lost.
            if (atomic_fetch_add (&s_acked_total, 1) + 1 == s_kill_at)
                kill (s_model_pid, SIGKILL);
        }
        else
        if (!self->error [0])
            snprintf (self->error, sizeof self->error, "%s: code %d: %s", id, s_code (reply),
                      s_message (reply));
        ep__model_reply__free_unpacked (reply, NULL);
    }
    ep_rpc_client_destroy (&client);
    return NULL;
}

static bool
s_enough_acked (void *arg)
{
    (void) arg;
    return atomic_load (&s_acked_total) >= s_kill_at;
}

//  "syncs N writes N" from the crash VFS.
static void
s_read_stats (unsigned long long *syncs, unsigned long long *writes)
{
    FILE *file = fopen (s_stats, "r");
    cr_assert_not_null (file, "no %s: was the VFS loaded?", s_stats);
    cr_assert_eq (fscanf (file, "syncs %llu writes %llu", syncs, writes), 2);
    fclose (file);
}

Test (model_it, every_acknowledged_write_survives_power_loss_with_group_commit,
      .init = s_setup, .fini = s_teardown, .timeout = 90)
{
    ep_proc_t *model = s_model (true);
    unsigned seed = (unsigned) ep_wall_ms ();
    srand (seed);
    s_kill_at = 400 + (size_t) (rand () % 1600);
    fprintf (stderr, "durability: seed %u, power loss after %zu acknowledged writes\n", seed, s_kill_at);

    const char *endpoint = ep_proc_connect_endpoint (model, "api");
    s_model_pid = ep_proc_pid (model);
    static s_writer_t writers [DURABLE_WRITERS];
    pthread_t threads [DURABLE_WRITERS];
    atomic_store (&s_stop, false);
    atomic_store (&s_acked_total, 0);
    for (int i = 0; i < DURABLE_WRITERS; i++) {
        writers [i] = (s_writer_t) { .endpoint = endpoint, .index = i,
                                     .cert = ep_keys_load (s_keys, "operator") };
        cr_assert_eq (pthread_create (&threads [i], NULL, s_writer_run, &writers [i]), 0);
    }
    //  A writer kills the model at the chosen acknowledgement, while the
    //  other writers have requests in flight.
    bool reached = ep_wait_until (s_enough_acked, NULL, 30000);
    if (!reached)
        ep_proc_signal (model, SIGKILL);
    int status = ep_proc_wait_exit (model, 10000);
    atomic_store (&s_stop, true);
    for (int i = 0; i < DURABLE_WRITERS; i++)
        pthread_join (threads [i], NULL);
    cr_assert (reached, "only %zu writes acknowledged in 30 s", atomic_load (&s_acked_total));
    cr_assert (status != -1 && WIFSIGNALED (status), "the model did not die of the kill");

    size_t acked = 0, unanswered = 0;
    uint64_t highest = 0;
    for (int i = 0; i < DURABLE_WRITERS; i++) {
        cr_assert_eq (writers [i].error [0], 0, "writer %d: %s", i, writers [i].error);
        acked += writers [i].acked;
        unanswered += writers [i].unanswered;
        for (size_t k = 0; k < writers [i].acked; k++)
            if (writers [i].revisions [k] > highest)
                highest = writers [i].revisions [k];
    }
    cr_assert_gt (unanswered, 0, "no write was in flight at the crash: the test did not test");
    unsigned long long syncs, vfs_writes;
    s_read_stats (&syncs, &vfs_writes);
    fprintf (stderr, "durability: %zu writes acknowledged, %zu in flight at the crash, %llu syncs "
             "(%.3f syncs per acknowledged write), %llu file writes\n",
             acked, unanswered, syncs, (double) syncs / (double) acked, vfs_writes);
    cr_assert_gt (syncs, 0, "the VFS saw no sync: it was not in use");
    //  Group commit: with 32 writers, one fsync serves many of them.
    cr_assert_lt (syncs * 4, acked, "%llu syncs for %zu writes: no group commit", syncs, acked);

    //  The crash left a WAL behind (the model ran in WAL mode through the
    //  VFS). Restart on the same data, without the VFS: SQLite recovers
    //  from what reached the WAL file and rebuilds the -shm index.
    char *wal = zsys_sprintf ("%s/model.db-wal", s_data);
    struct stat wal_stat;
    cr_assert_eq (stat (wal, &wal_stat), 0, "no %s: not in WAL mode?", wal);
    cr_assert_gt (wal_stat.st_size, 0);
    free (wal);
    ep_proc_destroy (&model);
    model = s_model (false);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *client = s_client (model, cert);
    zhashx_t *routers = s_routers (client, false);
    for (int i = 0; i < DURABLE_WRITERS; i++)
        for (size_t k = 0; k < writers [i].acked; k++) {
            void *version = zhashx_lookup (routers, writers [i].ids [k]);
            cr_assert_not_null (version, "acknowledged router %s (revision %llu) was lost",
                                writers [i].ids [k], (unsigned long long) writers [i].revisions [k]);
            cr_assert_eq ((uint64_t) (uintptr_t) version, writers [i].revisions [k],
                          "router %s has the wrong version", writers [i].ids [k]);
        }
    uint64_t revision = s_revision (client);
    cr_assert_geq (revision, highest);
    //  Every revision recovered is one create, visible: nothing half-done.
    cr_assert_eq (revision, zhashx_size (routers), "revision %llu but %zu routers",
                  (unsigned long long) revision, zhashx_size (routers));
    //  And the model goes on from there.
    s_req_t r;
    Ep__ModelReply *reply = s_expect (client, s_router_write (&r, EP__MODEL_WRITE__OP__CREATE,
                                      "after-crash", NULL, 0), EP__STATUS__CODE__OK);
    cr_assert_eq (reply->revision, revision + 1);
    ep__model_reply__free_unpacked (reply, NULL);

    zhashx_destroy (&routers);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    for (int i = 0; i < DURABLE_WRITERS; i++) {
        free (writers [i].ids);
        free (writers [i].revisions);
        zcert_destroy (&writers [i].cert);
    }
    ep_proc_destroy (&model);
}

Test (model_it, ten_thousand_writes_survive_kill_and_revisions_continue,
      .init = s_setup, .fini = s_teardown, .timeout = 120)
{
    enum { WRITES = 10000, SOCKETS = 4, WINDOW = 64 };
    ep_proc_t *model = s_model (false);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    zsock_t *dealers [SOCKETS];
    zpoller_t *poller = zpoller_new (NULL);
    for (int i = 0; i < SOCKETS; i++) {
        dealers [i] = s_dealer (model, cert);
        zpoller_add (poller, dealers [i]);
    }
    //  Pipelined: each socket keeps WINDOW creates in flight.
    static bool revision_seen [WRITES + 1];
    size_t sent = 0, acked = 0, in_flight [SOCKETS] = { 0 };
    while (acked < WRITES) {
        for (int i = 0; i < SOCKETS; i++)
            for (; in_flight [i] < WINDOW && sent < WRITES; in_flight [i]++, sent++) {
                char id [24];
                snprintf (id, sizeof id, "bulk-%05zu", sent);
                s_req_t r;
                s_send (dealers [i], s_router_write (&r, EP__MODEL_WRITE__OP__CREATE, id, NULL, 0));
            }
        zsock_t *which = (zsock_t *) zpoller_wait (poller, CALL_MS);
        cr_assert_not_null (which, "stalled after %zu of %d writes", acked, WRITES);
        int i = 0;
        while (dealers [i] != which)
            i++;
        Ep__ModelReply *reply = s_recv (which, 0);
        cr_assert_not_null (reply);
        cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "%s", s_message (reply));
        cr_assert (reply->revision >= 1 && reply->revision <= WRITES);
        cr_assert_not (revision_seen [reply->revision], "revision %llu given twice",
                       (unsigned long long) reply->revision);
        revision_seen [reply->revision] = true;
        ep__model_reply__free_unpacked (reply, NULL);
        in_flight [i]--;
        acked++;
    }
    zpoller_destroy (&poller);
    for (int i = 0; i < SOCKETS; i++)
        zsock_destroy (&dealers [i]);

    s_kill (model);
    ep_proc_destroy (&model);
    model = s_model (false);
    ep_rpc_client_t *client = s_client (model, cert);
    cr_assert_eq (s_revision (client), WRITES);
    zhashx_t *routers = s_routers (client, true);
    cr_assert_eq (zhashx_size (routers), WRITES);
    for (size_t n = 0; n < WRITES; n++) {
        char id [24];
        snprintf (id, sizeof id, "bulk-%05zu", n);
        cr_assert_not_null (zhashx_lookup (routers, id), "%s lost", id);
    }
    zhashx_destroy (&routers);
    s_req_t r;
    Ep__ModelReply *reply = s_expect (client, s_router_write (&r, EP__MODEL_WRITE__OP__CREATE,
                                      "one-more", NULL, 0), EP__STATUS__CODE__OK);
    cr_assert_eq (reply->revision, WRITES + 1);
    ep__model_reply__free_unpacked (reply, NULL);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
}

//  ---------------------------------------------------------------------
//  Retries across a restart

//  Sends request on dealer and returns the bytes of its reply, which must
//  come within CALL_MS.
static zframe_t *
s_roundtrip (zsock_t *dealer, Ep__ModelRequest *request)
{
    s_send (dealer, request);
    zpoller_t *poller = zpoller_new (dealer, NULL);
    zframe_t *frame = zpoller_wait (poller, CALL_MS)? zframe_recv (dealer): NULL;
    zpoller_destroy (&poller);
    cr_assert_not_null (frame, "no reply to %s", request->request_id);
    return frame;
}

static Ep__ModelReply *
s_decode (zframe_t *frame)
{
    char err [256];
    Ep__ModelReply *reply = (Ep__ModelReply *) ep_codec_unpack_frame (
        &ep__model_reply__descriptor, frame, EP_CODEC_DEFAULT_CAP, "model", err, sizeof err);
    cr_assert_not_null (reply, "%s", err);
    return reply;
}

//  Sends request on dealer; it must be refused for reusing its id.
static void
s_expect_mismatch (zsock_t *dealer, Ep__ModelRequest *request)
{
    zframe_t *frame = s_roundtrip (dealer, request);
    Ep__ModelReply *reply = s_decode (frame);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__INVALID_ARGUMENT, "%s", s_message (reply));
    cr_assert (strstr (s_message (reply), "already used for a different request"), "%s",
               s_message (reply));
    ep__model_reply__free_unpacked (reply, NULL);
    zframe_destroy (&frame);
}

//  The model's revision, asked on dealer.
static uint64_t
s_dealer_revision (zsock_t *dealer)
{
    s_req_t r;
    zframe_t *frame = s_roundtrip (dealer, s_status_req (&r));
    Ep__ModelReply *reply = s_decode (frame);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "%s", s_message (reply));
    uint64_t revision = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);
    zframe_destroy (&frame);
    return revision;
}

Test (model_it, a_write_retried_after_kill_gets_its_first_reply_and_is_not_applied_again,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *model = s_model (false);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    zsock_t *dealer = s_dealer (model, cert);
    //  A create and an update under request ids the test chooses, and a
    //  different request reusing the create's id.
    s_req_t create, update, other;
    s_router_write (&create, EP__MODEL_WRITE__OP__CREATE, "retried", "first", 0);
    snprintf (create.request_id, sizeof create.request_id, "create-retried");
    s_router_write (&update, EP__MODEL_WRITE__OP__UPDATE, "retried", "second", 0);
    snprintf (update.request_id, sizeof update.request_id, "update-retried");
    s_router_write (&other, EP__MODEL_WRITE__OP__CREATE, "retried", "other", 0);
    snprintf (other.request_id, sizeof other.request_id, "create-retried");

    zframe_t *created = s_roundtrip (dealer, &create.request);
    Ep__ModelReply *reply = s_decode (created);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "%s", s_message (reply));
    cr_assert_eq (reply->revision, 1);
    ep__model_reply__free_unpacked (reply, NULL);
    zframe_t *updated = s_roundtrip (dealer, &update.request);
    reply = s_decode (updated);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "%s", s_message (reply));
    cr_assert_eq (reply->revision, 2);
    ep__model_reply__free_unpacked (reply, NULL);
    s_expect_mismatch (dealer, &other.request);
    zsock_destroy (&dealer);

    //  The replies were sent; the model dies and comes back on its data.
    s_kill (model);
    ep_proc_destroy (&model);
    model = s_model (false);
    dealer = s_dealer (model, cert);
    cr_assert_eq (s_dealer_revision (dealer), 2);

    //  The retries get the first replies, byte for byte: the same
    //  revisions, not ALREADY_EXISTS and not a third revision.
    zframe_t *frame = s_roundtrip (dealer, &create.request);
    reply = s_decode (frame);
    cr_assert (zframe_eq (frame, created), "the retried create was answered %d at revision %llu: %s",
               s_code (reply), (unsigned long long) reply->revision, s_message (reply));
    ep__model_reply__free_unpacked (reply, NULL);
    zframe_destroy (&frame);
    frame = s_roundtrip (dealer, &update.request);
    reply = s_decode (frame);
    cr_assert (zframe_eq (frame, updated), "the retried update was answered %d at revision %llu: %s",
               s_code (reply), (unsigned long long) reply->revision, s_message (reply));
    ep__model_reply__free_unpacked (reply, NULL);
    zframe_destroy (&frame);
    cr_assert_eq (s_dealer_revision (dealer), 2, "a retry was applied again");
    s_req_t get;
    frame = s_roundtrip (dealer, s_get_req (&get, "retried"));
    reply = s_decode (frame);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "%s", s_message (reply));
    cr_assert_eq (reply->entities [0]->router->meta->version, 2);
    cr_assert_str_eq (reply->entities [0]->router->name, "second");
    ep__model_reply__free_unpacked (reply, NULL);
    zframe_destroy (&frame);
    //  Other bytes under a used id are still refused.
    s_expect_mismatch (dealer, &other.request);
    cr_assert_eq (s_dealer_revision (dealer), 2);

    zframe_destroy (&created);
    zframe_destroy (&updated);
    zsock_destroy (&dealer);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
}

//  ---------------------------------------------------------------------
//  Hostile input

//  Sends bytes on dealer and expects INVALID_ARGUMENT echoing request_id.
static void
s_expect_invalid (zsock_t *dealer, const void *data, size_t size, const char *request_id)
{
    s_send_bytes (dealer, data, size);
    Ep__ModelReply *reply = s_recv (dealer, CALL_MS);
    cr_assert_not_null (reply, "no reply to a malformed request");
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__INVALID_ARGUMENT, "%s", s_message (reply));
    cr_assert_str_eq (reply->request_id? reply->request_id: "", request_id);
    cr_assert_neq (s_message (reply) [0], 0, "an error says what is wrong");
    ep__model_reply__free_unpacked (reply, NULL);
}

Test (model_it, malformed_and_oversized_requests_are_refused_and_service_goes_on,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *model = s_model (false);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    zsock_t *dealer = s_dealer (model, cert);
    s_served (dealer);

    //  Garbage: not protobuf at all.
    const char garbage [] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01 this is not a request";
    s_expect_invalid (dealer, garbage, sizeof garbage - 1, "");
    //  A truncated field.
    s_expect_invalid (dealer, "\x0a\x20" "abc", 5, "");
    //  No request id.
    s_expect_invalid (dealer, "", 0, "");
    //  A valid header, then field 2 (write, a message) sent as a varint.
    s_expect_invalid (dealer, "\x0a\x02" "r1" "\x10\x01", 6, "r1");
    //  A request without an operation.
    s_expect_invalid (dealer, "\x0a\x02" "r2", 4, "r2");
    //  Two frames where one is expected.
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "one");
    zmsg_addstr (msg, "two");
    cr_assert_eq (zmsg_send (&msg, dealer), 0);
    Ep__ModelReply *reply = s_recv (dealer, CALL_MS);
    cr_assert_not_null (reply);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__INVALID_ARGUMENT);
    ep__model_reply__free_unpacked (reply, NULL);
    //  Well-formed protobuf, invalid content: CREATE without an entity, an
    //  UPDATE without an id, a router id with a space.
    s_req_t r;
    Ep__ModelRequest *request = s_router_write (&r, EP__MODEL_WRITE__OP__CREATE, "x", NULL, 0);
    r.write.entity = NULL;
    s_send (dealer, request);
    reply = s_recv (dealer, CALL_MS);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__INVALID_ARGUMENT, "%s", s_message (reply));
    ep__model_reply__free_unpacked (reply, NULL);
    s_send (dealer, s_router_write (&r, EP__MODEL_WRITE__OP__UPDATE, "", NULL, 0));
    reply = s_recv (dealer, CALL_MS);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__INVALID_ARGUMENT, "%s", s_message (reply));
    ep__model_reply__free_unpacked (reply, NULL);
    s_send (dealer, s_router_write (&r, EP__MODEL_WRITE__OP__CREATE, "bad id", NULL, 0));
    reply = s_recv (dealer, CALL_MS);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__INVALID_ARGUMENT, "%s", s_message (reply));
    cr_assert (strstr (s_message (reply), "router.id"), "%s", s_message (reply));
    ep__model_reply__free_unpacked (reply, NULL);

    //  Just over the request cap (libzmq lets it through, the codec does
    //  not): refused with a reply.
    size_t size = EP_CODEC_DEFAULT_CAP + 16;
    uint8_t *big = (uint8_t *) malloc (size);
    memset (big, 0x5a, size);
    big [0] = 0x0a;             //  field 1 ...
    big [1] = 0x02;             //  ... of 2 bytes: a header that would parse
    big [2] = 'b';
    big [3] = 'g';
    s_expect_invalid (dealer, big, size, "");
    s_served (dealer);
    free (big);

    //  Far over it: libzmq drops the connection before buffering it.
    zsock_t *hog = s_dealer (model, cert);
    s_served (hog);
    size = 2 * EP_CODEC_DEFAULT_CAP;
    big = (uint8_t *) calloc (1, size);
    s_send_bytes (hog, big, size);
    free (big);
    reply = s_recv (hog, 1000);
    cr_assert_null (reply, "an oversized frame got an answer");
    zsock_destroy (&hog);

    //  Nothing broke: the old connection, a fresh one, and a write.
    s_served (dealer);
    zsock_t *fresh = s_dealer (model, cert);
    s_served (fresh);
    s_send (fresh, s_router_write (&r, EP__MODEL_WRITE__OP__CREATE, "still-serving", NULL, 0));
    reply = s_recv (fresh, CALL_MS);
    cr_assert_not_null (reply);
    cr_assert_eq (s_code (reply), EP__STATUS__CODE__OK, "%s", s_message (reply));
    cr_assert_eq (reply->revision, 1, "the refused requests consumed revisions");
    ep__model_reply__free_unpacked (reply, NULL);
    cr_assert_eq (ep_proc_wait_exit (model, 0), -1, "the model exited");
    zsock_destroy (&fresh);
    zsock_destroy (&dealer);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
}

Test (model_it, subscriber_reads_but_cannot_write_service_role_can,
      .init = s_setup, .fini = s_teardown, .timeout = 60)
{
    ep_proc_t *model = s_model (false);
    zcert_t *operator_cert = ep_keys_load (s_keys, "operator");
    zcert_t *subscriber_cert = ep_keys_load (s_keys, "subscriber");
    zcert_t *service_cert = ep_keys_load (s_keys, "terminators");
    ep_rpc_client_t *operator = s_client (model, operator_cert);
    ep_rpc_client_t *subscriber = s_client (model, subscriber_cert);
    ep_rpc_client_t *service = s_client (model, service_cert);
    s_req_t r;
    Ep__ModelReply *reply = s_expect (operator, s_router_write (&r, EP__MODEL_WRITE__OP__CREATE,
                                      "r1", NULL, 0), EP__STATUS__CODE__OK);
    uint64_t version = reply->revision;
    ep__model_reply__free_unpacked (reply, NULL);

    //  Every kind of write is refused to a subscriber.
    Ep__ModelRequest *writes [3] = { NULL };
    static s_req_t requests [3];
    writes [0] = s_router_write (&requests [0], EP__MODEL_WRITE__OP__CREATE, "r2", NULL, 0);
    writes [1] = s_router_write (&requests [1], EP__MODEL_WRITE__OP__UPDATE, "r1", "renamed", version);
    writes [2] = s_router_write (&requests [2], EP__MODEL_WRITE__OP__DELETE, "r1", NULL, 0);
    for (int i = 0; i < 3; i++) {
        reply = s_expect (subscriber, writes [i], EP__STATUS__CODE__PERMISSION_DENIED);
        cr_assert (strstr (s_message (reply), "subscriber"), "%s", s_message (reply));
        ep__model_reply__free_unpacked (reply, NULL);
    }
    Ep__ModelTxn txn = EP__MODEL_TXN__INIT;
    Ep__ModelWrite *txn_writes [1] = { &requests [0].write };
    txn.n_writes = 1;
    txn.writes = txn_writes;
    Ep__ModelRequest *request = s_req_init (&r);
    request->op_case = EP__MODEL_REQUEST__OP_TXN;
    request->txn = &txn;
    ep__model_reply__free_unpacked (s_expect (subscriber, request,
                                              EP__STATUS__CODE__PERMISSION_DENIED), NULL);
    request = s_req_init (&r);
    ep__backup_request__init (&r.backup);
    char *backup = zsys_sprintf ("%s/backup.db", s_dir);
    r.backup.path = backup;
    request->op_case = EP__MODEL_REQUEST__OP_BACKUP;
    request->backup = &r.backup;
    ep__model_reply__free_unpacked (s_expect (subscriber, request,
                                              EP__STATUS__CODE__PERMISSION_DENIED), NULL);
    cr_assert_neq (access (backup, F_OK), 0, "a refused backup wrote a file");
    free (backup);
    //  A lease is a writer's; the embedded model has none (docs/decisions.md).
    Ep__LeaseRequest lease = EP__LEASE_REQUEST__INIT;
    lease.has_ttl_s = true;
    lease.ttl_s = 10;
    request = s_req_init (&r);
    request->op_case = EP__MODEL_REQUEST__OP_LEASE;
    request->lease = &lease;
    ep__model_reply__free_unpacked (s_expect (subscriber, request,
                                              EP__STATUS__CODE__PERMISSION_DENIED), NULL);
    request = s_req_init (&r);
    request->op_case = EP__MODEL_REQUEST__OP_LEASE;
    request->lease = &lease;
    reply = s_expect (operator, request, EP__STATUS__CODE__FAILED_PRECONDITION);
    cr_assert (strstr (s_message (reply), "etcd"), "%s", s_message (reply));
    ep__model_reply__free_unpacked (reply, NULL);

    //  Nothing changed.
    cr_assert_eq (s_revision (operator), version);
    reply = s_expect (subscriber, s_get_req (&r, "r1"), EP__STATUS__CODE__OK);
    cr_assert_str_eq (reply->entities [0]->router->name, "r1");
    ep__model_reply__free_unpacked (reply, NULL);
    ep__model_reply__free_unpacked (s_expect (subscriber, s_get_req (&r, "r2"),
                                              EP__STATUS__CODE__NOT_FOUND), NULL);

    //  But every read is served.
    reply = s_expect (subscriber, s_list_req (&r, NULL), EP__STATUS__CODE__OK);
    cr_assert_eq (reply->n_entities, 1);
    ep__model_reply__free_unpacked (reply, NULL);
    reply = s_expect (subscriber, s_snapshot_req (&r, NULL), EP__STATUS__CODE__OK);
    cr_assert_eq (reply->n_entities, 1);
    cr_assert_eq (reply->revision, version);
    ep__model_reply__free_unpacked (reply, NULL);
    request = s_req_init (&r);
    ep__changes_request__init (&r.changes);
    request->op_case = EP__MODEL_REQUEST__OP_CHANGES;
    request->changes = &r.changes;
    reply = s_expect (subscriber, request, EP__STATUS__CODE__OK);
    cr_assert_eq (reply->n_changes, 1);
    cr_assert_eq (reply->changes [0]->revision, version);
    ep__model_reply__free_unpacked (reply, NULL);
    cr_assert_eq (s_revision (subscriber), version);

    //  A service may write.
    reply = s_expect (service, s_router_write (&r, EP__MODEL_WRITE__OP__UPDATE, "r1", "by-service",
                                               version), EP__STATUS__CODE__OK);
    cr_assert_eq (reply->revision, version + 1);
    cr_assert_str_eq (reply->entities [0]->router->meta->updated_by->role, EP_ROLE_SERVICE);
    ep__model_reply__free_unpacked (reply, NULL);

    ep_rpc_client_destroy (&service);
    ep_rpc_client_destroy (&subscriber);
    ep_rpc_client_destroy (&operator);
    zcert_destroy (&service_cert);
    zcert_destroy (&subscriber_cert);
    zcert_destroy (&operator_cert);
    ep_proc_destroy (&model);
}

//  ---------------------------------------------------------------------
//  A full disk is a state, not a crash (issue 21): the model's database
//  on a small tmpfs this test mounts and fills.

static bool
s_is_ready (void *arg)
{
    char *body = ep_readyz (ep_proc_endpoint ((ep_proc_t *) arg, "http"));
    bool ready = streq (body, "ready\n");
    free (body);
    return ready;
}

//  The edgeplane_store_degraded sample of reason on process's /metrics.
static double
s_degraded (ep_proc_t *process, const char *reason)
{
    char *page = ep_http_get (ep_proc_endpoint (process, "http"), "/metrics");
    cr_assert_not_null (page);
    char series [96];
    snprintf (series, sizeof series, "edgeplane_store_degraded{reason=\"%s\"}", reason);
    double value = ep_metric_value (page, series);
    free (page);
    return value;
}

//  Creates router id; returns its reply's code (the message into message).
static Ep__Status__Code
s_create (ep_rpc_client_t *client, const char *id, uint64_t *revision, char *message, size_t size)
{
    s_req_t r;
    Ep__ModelRequest *request = s_router_write (&r, EP__MODEL_WRITE__OP__CREATE, id, NULL, 0);
    Ep__ModelReply *reply = ep_rpc_call (client, request, &ep__model_reply__descriptor, CALL_MS, 1, NULL, 0);
    cr_assert_not_null (reply, "no reply to the create of %s", id);
    Ep__Status__Code code = s_code (reply);
    *revision = reply->revision;
    snprintf (message, size, "%s", s_message (reply));
    ep__model_reply__free_unpacked (reply, NULL);
    return code;
}

Test (model_it, a_full_disk_refuses_writes_serves_reads_and_recovers_by_itself,
      .init = s_setup, .fini = s_teardown, .timeout = 120)
{
    char why [256];
    char *disk = ep_small_disk_new (s_dir, "disk", "4m", why, sizeof why);
    if (!disk)
        cr_skip_test ("%s", why);
    char *db = zsys_sprintf ("%s/model.db", disk);
    char *filler = zsys_sprintf ("%s/filler", disk);
    const char *args [] = { "--listen", "tcp://127.0.0.1:*", "--http-listen", "127.0.0.1:0",
                            "--db", db, NULL };
    const char *env [] = { s_env_data, s_env_bus, NULL };
    ep_proc_t *model = ep_proc_start ("edgeplane-model", args, env, 20000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (model, "edgeplane-model did not start");
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    ep_rpc_client_t *client = s_client (model, cert);
    cr_assert_eq (s_degraded (model, "disk_full"), 0, "the gauge exists at 0 from the start");

    enum { BEFORE = 20, AFTER = 20 };
    uint64_t revision;
    char message [1024], id [32];
    for (int i = 0; i < BEFORE; i++) {
        snprintf (id, sizeof id, "before-%02d", i);
        cr_assert_eq (s_create (client, id, &revision, message, sizeof message), EP__STATUS__CODE__OK, "%s", message);
        cr_assert_eq (revision, (uint64_t) i + 1, "revision %llu for write %d", (unsigned long long) revision, i + 1);
    }

    //  Full: writes refused with the reason and the place, many times over,
    //  and no revision is used up by them.
    cr_assert_eq (ep_small_disk_fill (filler), 0, "filling %s: %s", filler, strerror (errno));
    for (int i = 0; i < 5; i++) {
        snprintf (id, sizeof id, "refused-%d", i);
        cr_assert_eq (s_create (client, id, &revision, message, sizeof message), EP__STATUS__CODE__UNAVAILABLE,
                      "a write on a full disk: %s", message);
        cr_assert (strstr (message, "disk is full") && strstr (message, disk),
                   "the message must say the disk is full and where: %s", message);
    }
    char *body = ep_readyz (ep_proc_endpoint (model, "http"));
    cr_assert (strstr (body, "not ready") && strstr (body, "disk_full") && strstr (body, disk),
               "/readyz must say why: %s", body);
    free (body);
    cr_assert_eq (s_degraded (model, "disk_full"), 1);
    //  Reads are served meanwhile.
    s_req_t r;
    Ep__ModelReply *reply = s_expect (client, s_get_req (&r, "before-07"), EP__STATUS__CODE__OK);
    ep__model_reply__free_unpacked (reply, NULL);
    cr_assert_eq (s_revision (client), BEFORE);

    //  Space comes back: no restart, no write needed to notice.
    cr_assert_eq (unlink (filler), 0);
    cr_assert (ep_wait_until (s_is_ready, model, 10000 * EP_TEST_SLOWDOWN),
               "/readyz did not turn ready after space was freed");
    cr_assert_eq (s_degraded (model, "disk_full"), 0);
    for (int i = 0; i < AFTER; i++) {
        snprintf (id, sizeof id, "after-%02d", i);
        cr_assert_eq (s_create (client, id, &revision, message, sizeof message), EP__STATUS__CODE__OK, "%s", message);
        cr_assert_eq (revision, (uint64_t) BEFORE + i + 1, "revision %llu: skipped or reused",
                      (unsigned long long) revision);
    }
    zhashx_t *routers = s_routers (client, false);
    cr_assert_eq (zhashx_size (routers), BEFORE + AFTER, "every acknowledged write, none refused");
    for (int i = 0; i < BEFORE; i++) {
        snprintf (id, sizeof id, "before-%02d", i);
        cr_assert_not_null (zhashx_lookup (routers, id), "%s lost", id);
    }
    zhashx_destroy (&routers);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);

    //  And they survive a restart from that disk.
    ep_proc_destroy (&model);
    model = ep_proc_start ("edgeplane-model", args, env, 20000 * EP_TEST_SLOWDOWN);
    cr_assert_not_null (model);
    cert = ep_keys_load (s_keys, "operator");
    client = s_client (model, cert);
    cr_assert_eq (s_revision (client), BEFORE + AFTER);
    ep_rpc_client_destroy (&client);
    zcert_destroy (&cert);
    ep_proc_destroy (&model);
    zstr_free (&filler);
    zstr_free (&db);
    ep_small_disk_remove (&disk);
}
