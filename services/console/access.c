/*  access.c: Host header, bearer token and cookie checks (access.h). */
#include "access.h"
#include "ep_addr.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <sodium.h>
#include <strings.h>

struct _access_t {
    zlistx_t *hosts;            //  names a Host header may carry (lower case)
    char *token;                //  the token, NULL when none is required
    char cookie [65];           //  hex keyed hash of the token: the cookie's value
    char *set_cookie;           //  the Set-Cookie header of a login
};

access_t *
access_new (const char *hosts, const char *token)
{
    access_t *self = (access_t *) zmalloc (sizeof (access_t));
    self->hosts = zlistx_new ();
    zlistx_set_destructor (self->hosts, (czmq_destructor *) zstr_free);
    char *list = strdup (hosts? hosts: ""), *save = NULL;
    for (char *name = strtok_r (list, ", ", &save); name; name = strtok_r (NULL, ", ", &save)) {
        for (char *c = name; *c; c++)
            *c = (char) tolower ((unsigned char) *c);
        zlistx_add_end (self->hosts, strdup (name));
    }
    free (list);
    if (token) {
        self->token = strdup (token);
        uint8_t hash [32];
        static const char context [] = "edgeplane-console-cookie-v1";
        EP_ASSERT (sodium_init () >= 0);
        crypto_generichash (hash, sizeof hash, (const uint8_t *) context, strlen (context),
                            (const uint8_t *) token, strlen (token));
        sodium_bin2hex (self->cookie, sizeof self->cookie, hash, sizeof hash);
        self->set_cookie = zsys_sprintf ("%s=%s; Path=/; HttpOnly; SameSite=Strict", ACCESS_COOKIE, self->cookie);
    }
    return self;
}

void
access_destroy (access_t **self_p)
{
    access_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->hosts);
        if (self->token)
            sodium_memzero (self->token, strlen (self->token));
        free (self->token);
        free (self->set_cookie);
        free (self);
        *self_p = NULL;
    }
}

bool
access_host_ok (access_t *self, const char *host)
{
    if (!host || !*host || strlen (host) > 300)
        return false;
    char name [301];
    snprintf (name, sizeof name, "%s", host);
    for (char *c = name; *c; c++)
        *c = (char) tolower ((unsigned char) *c);
    //  Take the port off: "name:8080", "[::1]:8080" (a bare IPv6 literal
    //  is not a valid Host).
    char *colon = strrchr (name, ':');
    if (colon && (name [0] != '[' || (colon > name && colon [-1] == ']'))) {
        for (const char *d = colon + 1; *d; d++)
            if (!isdigit ((unsigned char) *d))
                return false;
        *colon = 0;
    }
    for (const char *allowed = (const char *) zlistx_first (self->hosts); allowed;
         allowed = (const char *) zlistx_next (self->hosts))
        if (streq (allowed, name))
            return true;
    return false;
}

//  Constant-time comparison of a candidate with the expected secret.
static bool
s_equal (const char *candidate, size_t length, const char *expected)
{
    size_t want = strlen (expected);
    return length == want && sodium_memcmp (candidate, expected, want) == 0;
}

bool
access_bearer_ok (access_t *self, const char *authorization)
{
    if (!self->token || !authorization || strncasecmp (authorization, "Bearer ", 7) != 0)
        return false;
    const char *value = authorization + 7;
    while (*value == ' ')
        value++;
    size_t length = strlen (value);
    while (length && (value [length - 1] == ' ' || value [length - 1] == '\t'))
        length--;
    return length <= ACCESS_TOKEN_MAX && s_equal (value, length, self->token);
}

//  True if the Cookie header holds our cookie with the expected value.
static bool
s_cookie_ok (access_t *self, const char *cookie)
{
    if (!cookie || strlen (cookie) > 8192)
        return false;
    size_t name_length = strlen (ACCESS_COOKIE);
    const char *at = cookie;
    while (*at) {
        while (*at == ' ' || *at == ';')
            at++;
        const char *end = strchr (at, ';');
        size_t length = end? (size_t) (end - at): strlen (at);
        if (length > name_length && strncmp (at, ACCESS_COOKIE, name_length) == 0 && at [name_length] == '=') {
            const char *value = at + name_length + 1;
            size_t value_length = length - name_length - 1;
            while (value_length && value [value_length - 1] == ' ')
                value_length--;
            if (s_equal (value, value_length, self->cookie))
                return true;
        }
        at += length;
    }
    return false;
}

bool
access_allowed (access_t *self, const char *authorization, const char *cookie)
{
    return !self->token || access_bearer_ok (self, authorization) || s_cookie_ok (self, cookie);
}

const char *
access_set_cookie (access_t *self)
{
    return self->set_cookie;
}

bool
access_token_required (access_t *self)
{
    return self->token != NULL;
}

char *
access_token_read (const char *path, char *err, size_t errlen)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        ep_errorf (err, errlen, "cannot read the console token %s: %s; run `edgeplane pki init` "
                   "(it creates the token)", path, strerror (errno));
        return NULL;
    }
    char line [ACCESS_TOKEN_MAX + 2] = "";
    bool read = fgets (line, sizeof line, file) != NULL;
    fclose (file);
    line [strcspn (line, "\r\n")] = 0;
    size_t length = strlen (line);
    bool printable = read && length >= 32 && length <= ACCESS_TOKEN_MAX;
    for (size_t i = 0; printable && i < length; i++)
        printable = line [i] > ' ' && line [i] < 127;
    if (!printable) {
        ep_errorf (err, errlen, "the console token %s is not 32..%d printable characters; "
                   "delete it and run `edgeplane pki init`", path, ACCESS_TOKEN_MAX);
        return NULL;
    }
    return strdup (line);
}

bool
access_loopback (const char *listen)
{
    ep_addr_t addr;
    struct sockaddr_storage sa;
    socklen_t len;
    if (!listen || ep_addr_parse (&addr, listen, 0, NULL, 0) != 0 || addr.any
    ||  ep_addr_resolve (&addr, &sa, &len, NULL, 0) != 0)
        return false;
    if (sa.ss_family == AF_INET)
        return (ntohl (((struct sockaddr_in *) &sa)->sin_addr.s_addr) >> 24) == 127;
    return sa.ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK (&((struct sockaddr_in6 *) &sa)->sin6_addr);
}
