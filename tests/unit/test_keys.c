/*  test_keys.c: keys directory layout, idempotence, modes, issuing, loading. */
#include <criterion/criterion.h>
#include "ep_test.h"
#include "ep_keys.h"
#include <sys/stat.h>

static const char *s_personas [] = { "operator", "subscriber" };

static char *s_tmp;
static char s_keys [512];

static void
s_setup (void)
{
    s_tmp = ep_tmpdir_new ("keys");
    //  A directory that does not exist yet, two levels down.
    snprintf (s_keys, sizeof s_keys, "%s/etc/keys", s_tmp);
}

static void
s_teardown (void)
{
    ep_tmpdir_remove (&s_tmp);
}

static mode_t
s_mode (const char *format, const char *a, const char *b)
{
    char path [1024];
    snprintf (path, sizeof path, format, a, b);
    struct stat st;
    cr_assert_eq (stat (path, &st), 0, "missing %s", path);
    return st.st_mode & 0777;
}

//  The public key in a certificate file; caller frees.
static char *
s_key_of (const char *format, const char *a, const char *b)
{
    char path [1024];
    snprintf (path, sizeof path, format, a, b);
    zcert_t *cert = zcert_load (path);
    cr_assert (cert, "cannot load %s", path);
    char *key = strdup (zcert_public_txt (cert));
    zcert_destroy (&cert);
    return key;
}

static void
s_init (bool force)
{
    char err [512] = "";
    cr_assert_eq (ep_keys_init (s_keys, force, err, sizeof err), 0, "init: %s", err);
}

//  Runs f (name, role) on every certificate init creates.
static void
s_each (void (*f) (const char *name, const char *role))
{
    for (size_t i = 0; ep_keys_services [i]; i++)
        f (ep_keys_services [i], EP_ROLE_SERVICE);
    for (size_t i = 0; i < EP_COUNT (s_personas); i++)
        f (s_personas [i], s_personas [i]);
}

static void
s_check_layout (const char *name, const char *role)
{
    cr_assert_eq (s_mode ("%s/curve/%s.cert_secret", s_keys, name), 0600, "%s", name);
    cr_assert_eq (s_mode ("%s/curve/%s.cert", s_keys, name), 0644, "%s", name);
    cr_assert_eq (s_mode ("%s/authorized/%s.cert", s_keys, name), 0644, "%s", name);

    char path [1024];
    snprintf (path, sizeof path, "%s/authorized/%s.cert", s_keys, name);
    zcert_t *authorized = zcert_load (path);
    cr_assert (authorized);
    cr_assert_str_eq (zcert_meta (authorized, "role"), role);
    cr_assert_str_eq (zcert_meta (authorized, "name"), name);

    zcert_t *cert = ep_keys_load (s_keys, name);
    cr_assert (cert, "cannot load %s", name);
    cr_assert_str_eq (zcert_public_txt (cert), zcert_public_txt (authorized));
    cr_assert_str_eq (zcert_meta (cert, "role"), role);
    cr_assert_str_neq (zcert_secret_txt (cert), "0000000000000000000000000000000000000000");
    char *txt = ep_keys_public_txt (s_keys, name);
    cr_assert_str_eq (txt, zcert_public_txt (cert));
    free (txt);
    zcert_destroy (&cert);
    zcert_destroy (&authorized);
}

Test (keys, init_creates_the_layout, .init = s_setup, .fini = s_teardown)
{
    s_init (false);
    cr_assert_eq (s_mode ("%s%s", s_keys, ""), 0700);
    cr_assert_eq (s_mode ("%s/curve%s", s_keys, ""), 0700);
    cr_assert_eq (s_mode ("%s/authorized%s", s_keys, ""), 0755);
    s_each (s_check_layout);
}

Test (keys, secrets_stay_private_whatever_the_umask, .init = s_setup, .fini = s_teardown)
{
    mode_t old = umask (0);
    s_init (false);
    umask (old);
    cr_assert_eq (s_mode ("%s/curve%s", s_keys, ""), 0700);
    s_each (s_check_layout);
}

static char *s_before [16];
static size_t s_index;

static void
s_record (const char *name, const char *role)
{
    (void) role;
    s_before [s_index++] = s_key_of ("%s/curve/%s.cert", s_keys, name);
}

static void
s_same (const char *name, const char *role)
{
    (void) role;
    char *now = s_key_of ("%s/curve/%s.cert", s_keys, name);
    cr_assert_str_eq (now, s_before [s_index], "%s changed", name);
    free (now);
    free (s_before [s_index++]);
}

static void
s_different (const char *name, const char *role)
{
    (void) role;
    char *now = s_key_of ("%s/curve/%s.cert", s_keys, name);
    cr_assert_str_neq (now, s_before [s_index], "%s was kept", name);
    char *authorized = s_key_of ("%s/authorized/%s.cert", s_keys, name);
    cr_assert_str_eq (now, authorized, "%s: authorized copy not replaced", name);
    free (authorized);
    free (now);
    free (s_before [s_index++]);
}

Test (keys, init_is_idempotent, .init = s_setup, .fini = s_teardown)
{
    s_init (false);
    s_index = 0;
    s_each (s_record);

    //  A lost public file or authorized copy comes back with the same key;
    //  a secret file with a loose mode is made private again.
    char path [1024];
    snprintf (path, sizeof path, "%s/authorized/bus.cert", s_keys);
    cr_assert_eq (unlink (path), 0);
    snprintf (path, sizeof path, "%s/curve/operator.cert", s_keys);
    cr_assert_eq (unlink (path), 0);
    snprintf (path, sizeof path, "%s/curve/model.cert_secret", s_keys);
    cr_assert_eq (chmod (path, 0644), 0);

    s_init (false);
    s_index = 0;
    s_each (s_same);
    s_each (s_check_layout);
}

Test (keys, force_replaces_own_keys_and_keeps_issued_ones, .init = s_setup, .fini = s_teardown)
{
    s_init (false);
    char out [1024], err [512] = "";
    snprintf (out, sizeof out, "%s/out", s_tmp);
    cr_assert_eq (ep_keys_issue (s_keys, "alice", EP_ROLE_OPERATOR, out, err, sizeof err), 0,
                  "%s", err);
    char *alice = s_key_of ("%s/authorized/%s.cert", s_keys, "alice");
    s_index = 0;
    s_each (s_record);

    s_init (true);
    s_index = 0;
    s_each (s_different);
    s_each (s_check_layout);
    char *after = s_key_of ("%s/authorized/%s.cert", s_keys, "alice");
    cr_assert_str_eq (after, alice);
    free (after);
    free (alice);
}

Test (keys, issue_writes_the_pair_and_authorizes_it, .init = s_setup, .fini = s_teardown)
{
    s_init (false);
    char out [1024], err [512] = "";
    snprintf (out, sizeof out, "%s/bundle/carol", s_tmp);
    mode_t old = umask (0);
    int rc = ep_keys_issue (s_keys, "carol", EP_ROLE_SUBSCRIBER, out, err, sizeof err);
    umask (old);
    cr_assert_eq (rc, 0, "%s", err);

    cr_assert_eq (s_mode ("%s/carol.cert_secret%s", out, ""), 0600);
    cr_assert_eq (s_mode ("%s/carol.cert%s", out, ""), 0644);
    cr_assert_eq (s_mode ("%s%s", out, ""), 0700);

    char path [1100];
    snprintf (path, sizeof path, "%s/carol.cert_secret", out);
    zcert_t *cert = zcert_load (path);
    cr_assert (cert);
    cr_assert_str_eq (zcert_meta (cert, "role"), "subscriber");
    cr_assert_str_eq (zcert_meta (cert, "name"), "carol");
    char *authorized = s_key_of ("%s/authorized/%s.cert", s_keys, "carol");
    cr_assert_str_eq (authorized, zcert_public_txt (cert));
    free (authorized);
    zcert_destroy (&cert);

    //  The public file in authorized/ holds no secret.
    char *text = NULL;
    char cmd [1200];
    snprintf (cmd, sizeof cmd, "cat '%s/authorized/carol.cert'", s_keys);
    cr_assert_eq (ep_run (cmd, &text), 0);
    cr_assert_null (strstr (text, "secret-key"));
    free (text);
}

Test (keys, issue_refuses_what_it_should, .init = s_setup, .fini = s_teardown)
{
    char out [1024], err [512] = "";
    snprintf (out, sizeof out, "%s/out", s_tmp);

    cr_assert_eq (ep_keys_issue (s_keys, "dave", EP_ROLE_OPERATOR, out, err, sizeof err), -1);
    cr_assert (strstr (err, "pki init"), "no hint to init: %s", err);

    s_init (false);
    cr_assert_eq (ep_keys_issue (s_keys, "../evil", EP_ROLE_OPERATOR, out, err, sizeof err), -1);
    cr_assert (strstr (err, "invalid certificate name"), "%s", err);
    cr_assert_eq (ep_keys_issue (s_keys, "dave", "root", out, err, sizeof err), -1);
    cr_assert (strstr (err, "invalid role"), "%s", err);

    //  A name already in use (a service's, or one issued before) is refused
    //  and the existing certificate stays as it was.
    char *bus = s_key_of ("%s/authorized/%s.cert", s_keys, "bus");
    cr_assert_eq (ep_keys_issue (s_keys, "bus", EP_ROLE_OPERATOR, out, err, sizeof err), -1);
    cr_assert (strstr (err, "already exists"), "%s", err);
    char *still = s_key_of ("%s/authorized/%s.cert", s_keys, "bus");
    cr_assert_str_eq (bus, still);
    free (still);
    free (bus);

    cr_assert_eq (ep_keys_issue (s_keys, "dave", EP_ROLE_OPERATOR, out, err, sizeof err), 0);
    cr_assert_eq (ep_keys_issue (s_keys, "dave", EP_ROLE_SUBSCRIBER, out, err, sizeof err), -1);
}

Test (keys, load_reports_missing_keys, .init = s_setup, .fini = s_teardown)
{
    cr_assert_null (ep_keys_load (s_keys, "bus"));
    cr_assert_null (ep_keys_public_txt (s_keys, "bus"));
    s_init (false);
    cr_assert_null (ep_keys_load (s_keys, "nobody"));
    cr_assert_null (ep_keys_load (s_keys, "../curve/bus"));
}

Test (keys, curve_helpers_reject_unusable_keys, .init = s_setup, .fini = s_teardown)
{
    s_init (false);
    zcert_t *cert = ep_keys_load (s_keys, "operator");
    char path [1024];
    snprintf (path, sizeof path, "%s/authorized/bus.cert", s_keys);
    zcert_t *public_only = zcert_load (path);
    char *server = ep_keys_public_txt (s_keys, "bus");
    zsock_t *sock = zsock_new (ZMQ_DEALER);

    cr_assert_eq (ep_curve_client (sock, public_only, server), -1);
    cr_assert_eq (ep_curve_client (sock, cert, "too short"), -1);
    cr_assert_eq (ep_curve_client (sock, cert, "~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"), -1);
    cr_assert_eq (ep_curve_server (sock, public_only), -1);
    cr_assert_eq (ep_curve_client (sock, cert, server), 0);
    cr_assert_eq (zsock_mechanism (sock), ZMQ_CURVE);

    zsock_destroy (&sock);
    free (server);
    zcert_destroy (&public_only);
    zcert_destroy (&cert);
}
