/*  ep_keys.c: CURVE certificates and the keys directory.

    Files are written beside their final place and renamed, so zauth (which
    rereads authorized/ on every handshake) never sees half a certificate and
    a crash never leaves one behind. Secret files are created 0600 before a
    byte is written, whatever the umask.
*/
#include "ep_keys.h"
#include "ep_fdlimit.h"
#include "ep_file.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const ep_keys_services [] = {
    "bus", "model", "terminators", "reaper", "watchdog", NULL
};


//  True if cert carries a secret key (a public-only load leaves it zero).
static bool
s_has_secret (zcert_t *cert)
{
    static const byte zero [32] = { 0 };
    return cert && memcmp (zcert_secret_key (cert), zero, sizeof zero) != 0;
}

//  Writes cert (its secret part if secret, else its public part) to path,
//  through a temporary file in tmp_dir (same filesystem, not watched by zauth).
static int
s_write_cert (zcert_t *cert, bool secret, const char *tmp_dir, const char *path,
              char *err, size_t errlen)
{
    char hex [17];
    ep_random_hex (hex, 8);
    char tmp [PATH_MAX];
    ep_file_path (tmp, "%s/.tmp-%s", tmp_dir, hex);
    mode_t mode = secret? 0600: 0644;
    int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        ep_errorf (err, errlen, "cannot write in %s: %s", tmp_dir, strerror (errno));
        return -1;
    }
    //  zcert rewrites the file with fopen "w", which keeps this mode.
    int rc = fchmod (fd, mode);
    close (fd);
    if (rc == 0) {
        errno = 0;                      //  zcert does not always set it
        rc = secret? zcert_save_secret (cert, tmp): zcert_save_public (cert, tmp);
    }
    if (rc == 0)
        rc = rename (tmp, path);
    if (rc != 0) {
        ep_errorf (err, errlen, "cannot write %s: %s", path, errno? strerror (errno): "write failed");
        unlink (tmp);
        return -1;
    }
    return 0;
}

static zcert_t *
s_cert_new (const char *role, const char *name)
{
    zcert_t *cert = zcert_new ();
    EP_ASSERT (cert);
    zcert_set_meta (cert, "role", "%s", role);
    zcert_set_meta (cert, "name", "%s", name);
    return cert;
}

//  Makes sure certificate name exists with its three files; creates it if
//  missing (or if force), else completes whatever public file is missing.
static int
s_ensure (const char *keys_dir, const char *name, const char *role, bool force,
          char *err, size_t errlen)
{
    char curve [PATH_MAX], secret [PATH_MAX], public [PATH_MAX], authorized [PATH_MAX];
    ep_file_path (curve, "%s/curve", keys_dir);
    ep_file_path (secret, "%s/%s.cert_secret", curve, name);
    ep_file_path (public, "%s/%s.cert", curve, name);
    ep_file_path (authorized, "%s/authorized/%s.cert", keys_dir, name);

    zcert_t *cert = NULL;
    bool fresh = force || !ep_file_exists (secret);
    if (fresh)
        cert = s_cert_new (role, name);
    else {
        cert = zcert_load (secret);
        if (!s_has_secret (cert)) {
            ep_errorf (err, errlen, "%s is not a valid CURVE secret certificate: move it away, "
                       "or recreate all keys with `edgeplane pki init --force`", secret);
            zcert_destroy (&cert);
            return -1;
        }
        if (chmod (secret, 0600) != 0) {
            ep_errorf (err, errlen, "cannot make %s private: %s", secret, strerror (errno));
            zcert_destroy (&cert);
            return -1;
        }
    }
    int rc = 0;
    if (fresh)
        rc = s_write_cert (cert, true, curve, secret, err, errlen);
    if (rc == 0 && (fresh || !ep_file_exists (public)))
        rc = s_write_cert (cert, false, curve, public, err, errlen);
    if (rc == 0 && (fresh || !ep_file_exists (authorized)))
        rc = s_write_cert (cert, false, curve, authorized, err, errlen);
    zcert_destroy (&cert);
    return rc;
}

//  The console's access token: 32 random bytes as 64 hex characters, in a
//  file only we can read. Kept unless force.
static int
s_console_token (const char *keys_dir, bool force, char *err, size_t errlen)
{
    char path [PATH_MAX];
    ep_file_path (path, "%s/console.token", keys_dir);
    if (!force && ep_file_exists (path))
        return chmod (path, 0600) == 0? 0:
               ep_errorf (err, errlen, "cannot make %s private: %s", path, strerror (errno));
    uint8_t bytes [32];
    char hex [66];               //  64 hex digits, the newline, the NUL
    randombytes_buf (bytes, sizeof bytes);
    sodium_bin2hex (hex, sizeof hex, bytes, sizeof bytes);
    unlink (path);
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return ep_errorf (err, errlen, "cannot create %s: %s", path, strerror (errno));
    strcat (hex, "\n");
    bool written = write (fd, hex, strlen (hex)) == (ssize_t) strlen (hex);
    if (close (fd) != 0 || !written)
        return ep_errorf (err, errlen, "cannot write %s: %s", path, strerror (errno));
    return 0;
}

int
ep_keys_init (const char *keys_dir, bool force, char *err, size_t errlen)
{
    if (!keys_dir || !*keys_dir || strlen (keys_dir) > EP_FILE_DIR_MAX) {
        ep_errorf (err, errlen, "invalid keys directory: give a path shorter than %d characters",
                   EP_FILE_DIR_MAX);
        return -1;
    }
    char curve [PATH_MAX], authorized [PATH_MAX];
    ep_file_path (curve, "%s/curve", keys_dir);
    ep_file_path (authorized, "%s/authorized", keys_dir);
    if (ep_file_mkdirs (keys_dir, 0700, err, errlen)
    ||  ep_file_mkdirs (curve, 0700, err, errlen)
    ||  ep_file_mkdirs (authorized, 0755, err, errlen))
        return -1;
    //  Secrets live here: whatever made the directory, it is ours alone.
    if (chmod (curve, 0700) != 0) {
        ep_errorf (err, errlen, "cannot make %s private: %s", curve, strerror (errno));
        return -1;
    }
    for (size_t i = 0; ep_keys_services [i]; i++)
        if (s_ensure (keys_dir, ep_keys_services [i], EP_ROLE_SERVICE, force, err, errlen))
            return -1;
    if (s_ensure (keys_dir, "operator", EP_ROLE_OPERATOR, force, err, errlen)
    ||  s_ensure (keys_dir, "subscriber", EP_ROLE_SUBSCRIBER, force, err, errlen)
    ||  s_ensure (keys_dir, "console", EP_ROLE_VIEWER, force, err, errlen))
        return -1;
    return s_console_token (keys_dir, force, err, errlen);
}

int
ep_keys_issue (const char *keys_dir, const char *name, const char *role,
               const char *out_dir, char *err, size_t errlen)
{
    if (!ep_id_valid (name)) {
        ep_errorf (err, errlen, "invalid certificate name '%s': use 1 to 64 of A-Z a-z 0-9 _ -",
                   name? name: "");
        return -1;
    }
    if (!role || !(streq (role, EP_ROLE_SERVICE) || streq (role, EP_ROLE_OPERATOR)
                || streq (role, EP_ROLE_SUBSCRIBER) || streq (role, EP_ROLE_VIEWER))) {
        ep_errorf (err, errlen, "invalid role '%s': use service, operator, subscriber or viewer",
                   role? role: "");
        return -1;
    }
    if (!keys_dir || !out_dir || strlen (keys_dir) > EP_FILE_DIR_MAX || strlen (out_dir) > EP_FILE_DIR_MAX) {
        ep_errorf (err, errlen, "invalid keys or output directory");
        return -1;
    }
    char curve [PATH_MAX], authorized [PATH_MAX], own [PATH_MAX];
    ep_file_path (curve, "%s/curve", keys_dir);
    ep_file_path (authorized, "%s/authorized/%s.cert", keys_dir, name);
    ep_file_path (own, "%s/%s.cert", curve, name);
    char dir [PATH_MAX];
    ep_file_path (dir, "%s/authorized", keys_dir);
    if (!ep_file_exists (dir) || !ep_file_exists (curve)) {
        ep_errorf (err, errlen, "no keys in %s: run `edgeplane pki init` first", keys_dir);
        return -1;
    }
    if (ep_file_exists (authorized) || ep_file_exists (own)) {
        ep_errorf (err, errlen, "a certificate named '%s' already exists in %s: choose another name",
                   name, keys_dir);
        return -1;
    }
    if (ep_file_mkdirs (out_dir, 0700, err, errlen))
        return -1;

    char out_secret [PATH_MAX], out_public [PATH_MAX];
    ep_file_path (out_secret, "%s/%s.cert_secret", out_dir, name);
    ep_file_path (out_public, "%s/%s.cert", out_dir, name);
    zcert_t *cert = s_cert_new (role, name);
    //  Authorize last: a key nobody holds the secret of must not get in.
    int rc = s_write_cert (cert, true, out_dir, out_secret, err, errlen);
    if (rc == 0)
        rc = s_write_cert (cert, false, out_dir, out_public, err, errlen);
    if (rc == 0)
        rc = s_write_cert (cert, false, curve, authorized, err, errlen);
    if (rc != 0) {
        unlink (out_secret);
        unlink (out_public);
    }
    zcert_destroy (&cert);
    return rc;
}

//  The path of certificate name's file (suffix) in keys_dir/curve, into
//  path (PATH_MAX bytes). Returns 0, or -1 (logged) for a bad directory or
//  name.
static int
s_curve_path (char *path, const char *keys_dir, const char *name, const char *suffix)
{
    if (!keys_dir || !ep_id_valid (name) || strlen (keys_dir) > EP_FILE_DIR_MAX) {
        zsys_error ("keys: invalid keys directory or certificate name");
        return -1;
    }
    ep_file_path (path, "%s/curve/%s%s", keys_dir, name, suffix);
    return 0;
}

zcert_t *
ep_keys_load (const char *keys_dir, const char *name)
{
    char path [PATH_MAX];
    if (s_curve_path (path, keys_dir, name, ".cert_secret"))
        return NULL;
    struct stat st;
    if (stat (path, &st) != 0) {
        zsys_error ("keys: cannot read CURVE certificate %s (%s): run `edgeplane pki init` "
                    "to create the control plane's keys", path, strerror (errno));
        return NULL;
    }
    ep_file_warn_readable ("keys", path);
    zcert_t *cert = zcert_load (path);
    if (!s_has_secret (cert)) {
        zsys_error ("keys: %s is not a valid CURVE secret certificate: recreate the keys "
                    "with `edgeplane pki init --force`", path);
        zcert_destroy (&cert);
    }
    return cert;
}

char *
ep_keys_public_txt (const char *keys_dir, const char *name)
{
    char path [PATH_MAX];
    if (s_curve_path (path, keys_dir, name, ".cert"))
        return NULL;
    zcert_t *cert = zcert_load (path);
    if (!cert) {
        zsys_error ("keys: cannot read CURVE certificate %s: run `edgeplane pki init` "
                    "to create the control plane's keys", path);
        return NULL;
    }
    char *txt = strdup (zcert_public_txt (cert));
    zcert_destroy (&cert);
    return txt;
}

int
ep_curve_server (zsock_t *sock, zcert_t *cert)
{
    if (!sock || !s_has_secret (cert))
        return -1;
    //  Any domain will do: setting one is what makes libzmq ask zauth.
    zsock_set_zap_domain (sock, "global");
    zcert_apply (cert, sock);
    zsock_set_curve_server (sock, 1);
    return 0;
}

int
ep_curve_client (zsock_t *sock, zcert_t *cert, const char *server_public_txt)
{
    //  Decode here: czmq asserts on a key libzmq rejects.
    uint8_t server_key [32];
    if (!sock || !s_has_secret (cert) || !server_public_txt
    ||  strlen (server_public_txt) != 40
    ||  !zmq_z85_decode (server_key, server_public_txt))
        return -1;
    zcert_apply (cert, sock);
    zsock_set_curve_serverkey_bin (sock, server_key);
    return 0;
}

zsock_t *
ep_curve_client_socket (int type, zcert_t *cert, const char *server_key)
{
    //  NULL near the descriptor limit: the caller refuses the work that
    //  needed the socket, and the service goes on (czmq asserts when
    //  libzmq cannot make one, so we look first). errno says why.
    if (ep_fdlimit_reached ()) {
        int error = errno;
        ep_fdlimit_refused (EP_FDLIMIT_SOCKET);
        errno = error;
        return NULL;
    }
    zsock_t *sock = zsock_new (type);
    if (!sock)
        return NULL;
    zsock_set_heartbeat_ivl (sock, 1000);
    zsock_set_heartbeat_timeout (sock, 3000);
    if (cert) {
        zcert_apply (cert, sock);
        zsock_set_curve_serverkey (sock, server_key);
    }
    return sock;
}
