/*  identity.c: this instance's ctrl identity and revocation list (see
    identity.h). */
#include "identity.h"
#include "ep_log.h"
#include "ep_pki.h"
#include "ep_pki_tls.h"
#include "renewal.h"
#include <sys/stat.h>
#include <unistd.h>

struct _identity_t {
    ep_service_t *service;      //  our service (borrowed)
    const char *keys_dir;       //  where tls/ lives
    SSL_CTX *ssl_ctx;           //  TLS server context
    SSL_CTX *client_ctx;        //  our ctrl certificate, to dial peers
    struct stat crl_stat;       //  ca.crl as last loaded (inode, mtime)
    char *ctrl_id;              //  our ctrl identity; NULL: none
    int64_t ctrl_lifetime_ms;   //  validity of a certificate issued here
    bool ctrl_renewable;        //  we issued ours (CA key): renewed here; else a bundle
    const char *ctrl_source;    //  where ours came from, for logs (a bundle's path)
    int64_t ctrl_start_ms;      //  when ours was issued (wall; a bundle: its notBefore)
    int64_t ctrl_end_ms;        //  its notAfter (wall)
    int64_t ctrl_check_ms;      //  when to ask renewal_check again (wall)
    ep_series_t *ctrl_expiry;   //  edgeplane_ctrl_cert_expiry_timestamp_seconds
    ep_series_t *ctrl_renewals; //  edgeplane_ctrl_cert_renewals_total
};

//  Wall-clock ms as UTC ISO 8601 (seconds) into buf.
static char *
s_time_text (int64_t wall_ms, char *buf, size_t size)
{
    time_t seconds = (time_t) (wall_ms / 1000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    strftime (buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

//  Takes cert/key (borrowed) as our ctrl identity: both contexts present
//  them from now on (the first time, the contexts are made), and its
//  validity drives renewal. Returns 0, or -1 with the reason in err.
static int
s_use (identity_t *self, X509 *cert, EVP_PKEY *key, char *err, size_t errlen)
{
    int64_t not_before, not_after;
    if (ep_pki_cert_validity (cert, &not_before, &not_after)) {
        return ep_errorf (err, errlen, "cannot read the validity of the ctrl certificate: give one "
                          "from `edgeplane pki issue ctrl ID`");
    }
    if (!self->ssl_ctx) {
        char ca [1024];
        snprintf (ca, sizeof ca, "%s/tls/ca.crt", self->keys_dir);
        self->ssl_ctx = ep_pki_server_ctx_with (self->keys_dir, cert, key, err, errlen);
        if (self->ssl_ctx)
            self->client_ctx = ep_pki_client_ctx_with (cert, key, ca, err, errlen);
        if (!self->client_ctx)
            return -1;
    }
    else
    if (ep_pki_ctx_use (self->ssl_ctx, cert, key, err, errlen)
    ||  ep_pki_ctx_use (self->client_ctx, cert, key, err, errlen))
        return -1;
    //  Ours is timed from now, not from its notBefore (an hour early for
    //  clock skew); a bundle's from its notBefore (when it was issued is
    //  not known here).
    self->ctrl_start_ms = self->ctrl_renewable? ep_wall_ms (): not_before * 1000;
    self->ctrl_end_ms = not_after * 1000;
    self->ctrl_check_ms = 0;
    ep_series_set (self->ctrl_expiry, (double) not_after);
    return 0;
}

//  The bundle given: read, and checked to be a ctrl one for ctrl_id (if
//  given) into *cert, *key and id. Returns 0, or -1 with the reason in err.
static int
s_bundle (identity_t *self, const char *ctrl_id, const char *cert_path, const char *key_path,
          X509 **cert, EVP_PKEY **key, char *id, size_t idlen, char *err, size_t errlen)
{
    char role [16] = "";
    if (!cert_path || !key_path) {
        return ep_errorf (err, errlen, "give both --ctrl-cert and --ctrl-key (the .crt and .key of "
                          "a ctrl bundle from `edgeplane pki issue ctrl ID`), or neither");
    }
    char why [400];
    if (ep_pki_read_pair (cert_path, key_path, cert, key, why, sizeof why)) {
        return ep_errorf (err, errlen, "ctrl bundle (--ctrl-cert %s, --ctrl-key %s): %s", cert_path,
                          key_path, why);
    }
    if (ep_pki_cert_identity (*cert, role, sizeof role, id, idlen) || !streq (role, "ctrl")) {
        ep_pki_pair_free (cert, key);
        if (*role)
            return ep_errorf (err, errlen, "--ctrl-cert %s is a %s certificate (%s/%s), not a ctrl "
                              "one: issue a ctrl bundle with `edgeplane pki issue ctrl ID` and give "
                              "its .crt and .key", cert_path, role, role, id);
        return ep_errorf (err, errlen, "--ctrl-cert %s carries no edgeplane://<role>/<id> name: "
                          "issue a ctrl bundle with `edgeplane pki issue ctrl ID` and give its .crt "
                          "and .key", cert_path);
    }
    if (ctrl_id && !streq (ctrl_id, id)) {
        ep_pki_pair_free (cert, key);
        return ep_errorf (err, errlen, "--ctrl-id %s differs from the id in %s (%s): drop --ctrl-id",
                          ctrl_id, cert_path, id);
    }
    self->ctrl_source = cert_path;
    if (self->ctrl_lifetime_ms != IDENTITY_LIFETIME_MS)
        ep_log_warn ("--ctrl-cert-lifetime applies to certificates issued here, not to %s: "
                     "ignored (the bundle's own end counts)", cert_path);
    return 0;
}

//  A certificate for id issued here with the CA key, into *cert and *key;
//  without a readable CA key, none (*cert NULL) and the listener's context
//  from tls/watchdog.crt. Returns 0, or -1 with the reason in err.
static int
s_issue (identity_t *self, const char *id, X509 **cert, EVP_PKEY **key, char *err, size_t errlen)
{
    if (!ep_id_valid (id))
        return ep_errorf (err, errlen, "ctrl id \"%s\" is not valid (1 to 64 of A-Z a-z 0-9 _ -): "
                          "give --ctrl-id or a shorter --instance-id", id);
    char ca_key [1024];
    snprintf (ca_key, sizeof ca_key, "%s/tls/ca.key", self->keys_dir);
    if (access (ca_key, R_OK) != 0) {
        ep_log_warn ("no ctrl identity of this instance's own: %s is not readable here and no "
                     "--ctrl-cert was given; listening as ctrl/%s, not registering as a "
                     "controller, not dialing peer instances. To make it a peer controller, "
                     "give it a bundle: `edgeplane pki issue ctrl ID` where the CA key is, then "
                     "--ctrl-cert ID.crt --ctrl-key ID.key (EDGEPLANE_CTRL_CERT, "
                     "EDGEPLANE_CTRL_KEY), or make %s readable to it",
                     ca_key, EP_PKI_SERVER_ID, ca_key);
        self->ssl_ctx = ep_pki_server_ctx (self->keys_dir, err, errlen);
        return self->ssl_ctx? 0: -1;
    }
    self->ctrl_renewable = true;
    self->ctrl_source = "issued here with the CA key";
    return ep_pki_issue_memory (self->keys_dir, "ctrl", id, self->ctrl_lifetime_ms / 1000, cert, key,
                                err, errlen);
}

//  Our ctrl identity (see identity.h). Sets ctrl_id and the contexts.
static int
s_identity (identity_t *self, const char *ctrl_id, const char *cert_path, const char *key_path,
            char *err, size_t errlen)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    char id [65] = "";
    if (cert_path || key_path) {
        if (s_bundle (self, ctrl_id, cert_path, key_path, &cert, &key, id, sizeof id, err, errlen))
            return -1;
    }
    else {
        const char *wanted = ctrl_id? ctrl_id: ep_service_source_id (self->service);
        snprintf (id, sizeof id, "%.64s", wanted);
        if (s_issue (self, wanted, &cert, &key, err, errlen))
            return -1;
        if (!cert)
            return 0;           //  no ctrl identity of our own
    }
    int rc = s_use (self, cert, key, err, errlen);
    ep_pki_pair_free (&cert, &key);
    if (rc)
        return -1;
    self->ctrl_id = strdup (id);
    char until [40];
    ep_log_info ("ctrl identity %s (%s), valid until %s", id, self->ctrl_source,
                 s_time_text (self->ctrl_end_ms, until, sizeof until));
    return 0;
}

identity_t *
identity_new (ep_service_t *service, const char *ctrl_id, const char *cert_path,
              const char *key_path, int64_t lifetime_ms, char *err, size_t errlen)
{
    identity_t *self = (identity_t *) zmalloc (sizeof (identity_t));
    self->service = service;
    self->keys_dir = ep_service_opts (service)->keys_dir;
    self->ctrl_lifetime_ms = lifetime_ms;
    ep_metrics_t *metrics = ep_service_metrics (service);
    self->ctrl_expiry = ep_gauge_series (ep_metrics_gauge (metrics, "edgeplane_ctrl_cert_expiry_timestamp_seconds",
        "When this instance's ctrl certificate ends (Unix time).", 0, NULL), NULL);
    self->ctrl_renewals = ep_counter_series (ep_metrics_counter (metrics, "edgeplane_ctrl_cert_renewals_total",
        "Times this instance renewed the ctrl certificate it issued itself.", 0, NULL), NULL);
    char *crl = zsys_sprintf ("%s/tls/ca.crl", self->keys_dir);
    stat (crl, &self->crl_stat);        //  what the context is about to load
    free (crl);
    if (s_identity (self, ctrl_id, cert_path, key_path, err, errlen) != 0)
        identity_destroy (&self);
    return self;
}

void
identity_destroy (identity_t **self_p)
{
    identity_t *self = *self_p;
    if (self) {
        ep_pki_ctx_free (&self->ssl_ctx);
        ep_pki_ctx_free (&self->client_ctx);
        free (self->ctrl_id);
        free (self);
        *self_p = NULL;
    }
}

const char *
identity_ctrl_id (identity_t *self)
{
    return self->ctrl_id;
}

SSL_CTX *
identity_server_ctx (identity_t *self)
{
    return self->ssl_ctx;
}

SSL_CTX *
identity_client_ctx (identity_t *self)
{
    return self->client_ctx;
}

int64_t
identity_deadline (identity_t *self)
{
    return self->ctrl_id? self->ctrl_check_ms: INT64_MAX;
}

//  Issues and takes a new certificate for our ctrl id; until is when the
//  old one ends (for the logs).
static void
s_renew (identity_t *self, const char *until)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    char err [512];
    int64_t retry = self->ctrl_check_ms;
    if (ep_pki_issue_memory (self->keys_dir, "ctrl", self->ctrl_id,
                             self->ctrl_lifetime_ms / 1000, &cert, &key, err, sizeof err) == 0
    &&  s_use (self, cert, key, err, sizeof err) == 0) {
        ep_series_add (self->ctrl_renewals, 1);
        char next [40];
        ep_log_info ("ctrl certificate of %s renewed (the old one ends %s): valid until %s",
                     self->ctrl_id, until, s_time_text (self->ctrl_end_ms, next, sizeof next));
    }
    else {
        self->ctrl_check_ms = retry;
        ep_log_error ("cannot renew the ctrl certificate of %s, which ends %s: %s; make "
                      "%s/tls/ca.key readable here (retrying), or restart with a bundle "
                      "(--ctrl-cert, --ctrl-key)", self->ctrl_id, until, err, self->keys_dir);
    }
    ep_pki_pair_free (&cert, &key);
}

void
identity_check (identity_t *self)
{
    int64_t now = ep_wall_ms ();
    if (!self->ctrl_id || now < self->ctrl_check_ms)
        return;
    char until [40];
    s_time_text (self->ctrl_end_ms, until, sizeof until);
    renewal_action_t action = renewal_check (self->ctrl_start_ms, self->ctrl_end_ms,
                                             self->ctrl_renewable, now, &self->ctrl_check_ms);
    if (action == RENEWAL_RENEW)
        s_renew (self, until);
    else
    if (action == RENEWAL_WARN)
        ep_log_warn ("ctrl certificate %s ends %s and is not renewed here: issue a new bundle "
                     "with `edgeplane pki issue ctrl %s` and restart with it before then (peer "
                     "controllers refuse it after)", self->ctrl_source, until, self->ctrl_id);
    else
    if (action == RENEWAL_EXPIRED)
        ep_log_error ("ctrl certificate %s ended %s: peer controllers refuse it; issue a new bundle "
                      "with `edgeplane pki issue ctrl %s` and restart with it", self->ctrl_source,
                      until, self->ctrl_id);
}

void
identity_check_crl (identity_t *self, channel_t *channel)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/tls/ca.crl", self->keys_dir);
    struct stat st;
    //  pki revoke replaces the file (a new inode); compare to the nanosecond.
    if (stat (path, &st) != 0
    ||  (st.st_ino == self->crl_stat.st_ino && st.st_mtim.tv_sec == self->crl_stat.st_mtim.tv_sec
         && st.st_mtim.tv_nsec == self->crl_stat.st_mtim.tv_nsec))
        return;
    char err [512];
    if (ep_pki_reload_crl (self->ssl_ctx, self->keys_dir, err, sizeof err) == 0) {
        self->crl_stat = st;
        //  New handshakes check the new list; connections made before it
        //  are checked here.
        size_t closed = channel_close_revoked (channel);
        ep_log_info ("revocation list %s reloaded; %zu connection(s) closed as revoked", path, closed);
    }
    else
        ep_log_error ("%s", err);
}
