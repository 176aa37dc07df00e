/*  bus.h: the event broker's decisions, free of sockets.

    The bus forwards [topic][Event] from publishers (XSUB side) to
    subscribers (XPUB side). Per message it decides: forward, or drop
    because the sender may not publish (only the service role may) or the
    message is not two frames with a "<namespace>.<type>" topic. It counts
    per stream in and out. main.c does the socket work around it.
*/
#ifndef BUS_H_INCLUDED
#define BUS_H_INCLUDED

#include "ep_prelude.h"

typedef enum {
    BUS_FORWARD = 0,            //  pass it on
    BUS_DROP_ROLE,              //  sender's certificate role may not publish
    BUS_DROP_MALFORMED          //  not [topic][body] with a namespaced topic
} bus_verdict_t;

//  Decides what to do with a message of parts frames whose first frame is
//  topic (topic_len bytes), sent by a peer whose certificate role is role
//  (NULL when the socket is not authenticated and anyone may publish).
//  On BUS_FORWARD writes the stream (namespace) into stream.
bus_verdict_t
    bus_classify (const char *role, bool authenticated, const void *topic, size_t topic_len,
                  int parts, char *stream, size_t stream_size);

//  Label for metrics: "role", "malformed".
const char *
    bus_verdict_name (bus_verdict_t verdict);

#endif
