/*  ep_etcd_cluster.c: the fixture cluster, seen from a test. */
#include "ep_etcd_cluster.h"
#include "ep_test.h"

static char *
s_read (const char *name)
{
    char path [512];
    snprintf (path, sizeof path, "%s/%s", EP_ETCD_CLUSTER_DIR, name);
    FILE *file = fopen (path, "r");
    if (!file)
        return NULL;
    static char text [4][512];
    static int slot;
    char *buf = text [slot++ % 4];
    if (!fgets (buf, sizeof text [0], file))
        buf [0] = 0;
    fclose (file);
    buf [strcspn (buf, "\r\n")] = 0;
    return buf;
}

const char *
ep_etcd_cluster_endpoints (void)
{
    return s_read ("endpoints");
}

const char *
ep_etcd_cluster_member (int n)
{
    char name [32];
    snprintf (name, sizeof name, "member%d.endpoint", n);
    return s_read (name);
}

static int
s_script (const char *cmd, int n)
{
    char line [1024];
    snprintf (line, sizeof line, "%s/tests/support/etcd-cluster %s %s %d", EP_SOURCE_DIR,
              cmd, EP_ETCD_CLUSTER_DIR, n);
    return system (line) == 0? 0: -1;
}

int
ep_etcd_cluster_kill (int n)
{
    return s_script ("kill", n);
}

int
ep_etcd_cluster_revive (int n)
{
    return s_script ("revive", n);
}

int
ep_etcd_cluster_pause (int n)
{
    return s_script ("pause", n);
}

int
ep_etcd_cluster_resume (int n)
{
    return s_script ("resume", n);
}

char *
ep_etcd_restored_start (const char *snapshot, const char **endpoint)
{
    static int counter;
    char *dir = zsys_sprintf ("/dev/shm/edgeplane-etcd-restored-%d-%d", (int) getpid (), ++counter);
    char *line = zsys_sprintf ("%s/tests/support/etcd-cluster restore %s %s", EP_SOURCE_DIR, dir, snapshot);
    int rc = system (line);
    zstr_free (&line);
    static char text [256];
    char *path = zsys_sprintf ("%s/endpoints", dir);
    FILE *file = rc == 0? fopen (path, "r"): NULL;
    zstr_free (&path);
    if (!file || !fgets (text, sizeof text, file)) {
        if (file)
            fclose (file);
        ep_etcd_restored_stop (&dir);
        return NULL;
    }
    fclose (file);
    text [strcspn (text, "\r\n")] = 0;
    *endpoint = text;
    return dir;
}

void
ep_etcd_restored_stop (char **dir_p)
{
    if (!*dir_p)
        return;
    char *line = zsys_sprintf ("%s/tests/support/etcd-cluster stop %s", EP_SOURCE_DIR, *dir_p);
    if (system (line) != 0)
        fprintf (stderr, "ep_etcd_restored_stop: %s failed\n", line);
    zstr_free (&line);
    zstr_free (dir_p);
}

char *
ep_etcd_test_prefix (const char *name)
{
    static int counter;
    char *prefix = NULL;
    if (asprintf (&prefix, "/test/%s-%d-%d/", name, (int) getpid (), ++counter) < 0)
        abort ();
    return prefix;
}

static void
s_copy (char *out, size_t size, const uint8_t *data, size_t len)
{
    snprintf (out, size, "%.*s", (int) (len < size? len: size - 1), (const char *) data);
}

void
ep_etcd_capture (void *arg, const ep_etcd_reply_t *reply, const char *error)
{
    ep_etcd_capture_t *c = arg;
    memset (c, 0, sizeof *c);
    c->done = true;
    if (!reply) {
        snprintf (c->error, sizeof c->error, "%s", error);
        return;
    }
    c->code = reply->code;
    if (reply->error)
        snprintf (c->etcd_error, sizeof c->etcd_error, "%s", reply->error);
    c->revision = reply->header.revision;
    c->succeeded = reply->succeeded;
    c->count = reply->count;
    c->more = reply->more;
    c->lease_id = reply->lease_id;
    c->ttl = reply->ttl;
    c->granted_ttl = reply->granted_ttl;
    c->nresponses = reply->nresponses;
    //  A txn's first range response stands for the reply's kvs.
    const ep_etcd_reply_t *kvs = reply;
    if (reply->nresponses && reply->responses [0].kind == EP_ETCD_RANGE)
        kvs = &reply->responses [0];
    c->nkvs = kvs->nkvs;
    for (size_t i = 0; i < kvs->nkvs && i < 64; i++) {
        s_copy (c->keys [i], sizeof c->keys [i], kvs->kvs [i].key, kvs->kvs [i].key_size);
        s_copy (c->values [i], sizeof c->values [i], kvs->kvs [i].value, kvs->kvs [i].value_size);
        c->mod_revisions [i] = kvs->kvs [i].mod_revision;
    }
}

bool
ep_etcd_await (ep_etcd_t *client, ep_etcd_capture_t *capture, int timeout_ms)
{
    int64_t deadline = zclock_mono () + (int64_t) timeout_ms * EP_TEST_SLOWDOWN;
    while (!capture->done && zclock_mono () < deadline)
        ep_etcd_wait (client, 50);
    return capture->done;
}
