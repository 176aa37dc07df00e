/*  ep_endpoints.c: comma-separated lists of ZeroMQ endpoints. */
#include "ep_endpoints.h"

char **
ep_endpoints_split (const char *list, size_t *count)
{
    *count = 0;
    size_t cap = 1;
    for (const char *c = list; *c; c++)
        cap += *c == ',';
    char **endpoints = (char **) zmalloc ((cap + 1) * sizeof (char *));
    char *copy = strdup (list);
    char *save = NULL;
    for (char *item = strtok_r (copy, ",", &save); item; item = strtok_r (NULL, ",", &save))
        if (*item)
            endpoints [(*count)++] = strdup (item);
    free (copy);
    if (*count == 0)
        ep_endpoints_free (&endpoints);
    return endpoints;
}

void
ep_endpoints_free (char ***endpoints_p)
{
    char **endpoints = *endpoints_p;
    if (endpoints) {
        for (char **e = endpoints; *e; e++)
            free (*e);
        free (endpoints);
        *endpoints_p = NULL;
    }
}

int
ep_endpoints_connect (zsock_t *sock, const char *list)
{
    size_t count;
    char **endpoints = ep_endpoints_split (list, &count);
    int rc = endpoints? 0: -1;
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = zsock_connect (sock, "%s", endpoints [i]) == 0? 0: -1;
    ep_endpoints_free (&endpoints);
    return rc;
}
