/*  ep_auth.c: zauth over the authorized certificates, its death watch, and
    the caller identity libzmq attaches to messages.

    The death watch relies on zactor's shim: when the zauth thread ends, for
    whatever reason, it sends one signal up the pipe; nothing else ever does
    once the CURVE command has been acknowledged. That signal is left unread
    so zactor_destroy can still collect it and never waits for a reply that
    cannot come.
*/
#include "ep_auth.h"
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

struct _ep_auth_t {
    zactor_t *actor;            //  zauth, configured for CURVE
};

ep_auth_t *
ep_auth_new (const char *keys_dir)
{
    char dir [PATH_MAX];
    struct stat st;
    if (!keys_dir
    ||  snprintf (dir, sizeof dir, "%s/authorized", keys_dir) >= (int) sizeof dir
    ||  stat (dir, &st) != 0 || !S_ISDIR (st.st_mode)) {
        zsys_error ("auth: no authorized certificates in %s/authorized: run "
                    "`edgeplane pki init` to create the control plane's keys",
                    keys_dir? keys_dir: "(null)");
        return NULL;
    }
    ep_auth_t *self = (ep_auth_t *) zmalloc (sizeof (ep_auth_t));
    EP_ASSERT (self);
    self->actor = zactor_new (zauth, NULL);
    if (!self->actor
    ||  zstr_sendx (self->actor, "CURVE", dir, NULL) != 0
    ||  zsock_wait (self->actor) != 0) {
        zsys_error ("auth: cannot start the CURVE authenticator (zauth)");
        ep_auth_destroy (&self);
    }
    return self;
}

void
ep_auth_destroy (ep_auth_t **self_p)
{
    EP_ASSERT (self_p);
    if (*self_p) {
        ep_auth_t *self = *self_p;
        zactor_destroy (&self->actor);
        free (self);
        *self_p = NULL;
    }
}

zactor_t *
ep_auth_actor (ep_auth_t *self)
{
    EP_ASSERT (self);
    return self->actor;
}

bool
ep_auth_dead (ep_auth_t *self)
{
    EP_ASSERT (self);
    zmq_pollitem_t item = { zsock_resolve (self->actor), 0, ZMQ_POLLIN, 0 };
    int rc = zmq_poll (&item, 1, 0);
    return rc < 0? zmq_errno () != EINTR: (item.revents & ZMQ_POLLIN) != 0;
}

void
ep_auth_check (ep_auth_t *self)
{
    if (ep_auth_dead (self))
        ep_auth_fatal ();
}

void
ep_auth_fatal (void)
{
    zsys_error ("auth: the CURVE authenticator (zauth) died; exiting, since without "
                "it any client knowing the server key would be let in");
    fflush (stdout);
    fflush (stderr);
    //  _exit: czmq's atexit shutdown would wait on this process's sockets.
    _exit (EXIT_FAILURE);
}

//  Copies the metadata property name of frame into buf; false if it is
//  absent, empty or does not fit.
static bool
s_meta (zframe_t *frame, const char *name, char *buf, size_t size)
{
    const char *value = zframe_meta (frame, name);
    if (!value || !*value || strlen (value) >= size)
        return false;
    strcpy (buf, value);
    return true;
}

int
ep_caller_from_frame (zframe_t *frame, ep_caller_t *caller)
{
    EP_ASSERT (caller);
    memset (caller, 0, sizeof *caller);
    if (frame
    &&  s_meta (frame, "User-Id", caller->key, sizeof caller->key)
    &&  strlen (caller->key) == 40
    &&  s_meta (frame, "role", caller->role, sizeof caller->role)
    &&  s_meta (frame, "name", caller->name, sizeof caller->name))
        return 0;
    memset (caller, 0, sizeof *caller);
    return -1;
}

bool
ep_role_allowed (const char *role, const char *const *allowed)
{
    if (!role || !*role || !allowed)
        return false;
    for (size_t i = 0; allowed [i]; i++)
        if (streq (role, allowed [i]))
            return true;
    return false;
}
