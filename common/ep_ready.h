/*  ep_ready.h: the ready file (--ready-file PATH).

    Once a process is ready it writes a JSON object naming the service, its
    pid and the endpoints it actually bound (kernel-chosen ports included):
        {"service": "bus", "pid": 42, "endpoints": {"pub": "tcp://127.0.0.1:40123"}}
    The file appears atomically (written beside it, then renamed), so a reader
    never sees half of it. Tests and `edgeplane up` wait on it, never on a sleep.
*/
#ifndef EP_READY_H_INCLUDED
#define EP_READY_H_INCLUDED

#include "ep_prelude.h"
#include <jansson.h>

//  Writes the ready file at path. endpoints is a JSON object of name ->
//  endpoint string (not stolen). Returns 0, or -1 with errno set.
int
    ep_ready_write (const char *path, const char *service, json_t *endpoints);

//  Reads a ready file; returns the parsed object (caller json_decref) or
//  NULL if it does not exist yet or is not valid.
json_t *
    ep_ready_read (const char *path);

//  Returns the endpoint named name from a parsed ready file, or NULL.
const char *
    ep_ready_endpoint (json_t *ready, const char *name);

//  Turns an endpoint as bound ("tcp://0.0.0.0:7001", "tcp://*:7001",
//  "tcp://[::]:7001") into one a local client can connect to
//  ("tcp://127.0.0.1:7001", "tcp://[::1]:7001"). Caller frees.
char *
    ep_endpoint_connectable (const char *bound);

#endif
