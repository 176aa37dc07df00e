/*  fuzz_etcd.c: etcd gateway responses are bytes from the network. The
    first byte picks the kind of response (range, txn, watch line...), the
    rest is the body; ep_etcd_decode must return a reply or NULL with a
    reason, never crash, and a reply must be safe to walk and free.
    Seeds in corpus/etcd/ are responses recorded from etcd 3.4.23. */
#include "ep_etcd_codec.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static size_t
s_walk (const ep_etcd_reply_t *reply)
{
    size_t sum = 0;
    for (size_t i = 0; i < reply->nkvs; i++)
        sum += reply->kvs [i].key [reply->kvs [i].key_size]
             + reply->kvs [i].value [reply->kvs [i].value_size];
    for (size_t i = 0; i < reply->nevents; i++)
        sum += reply->events [i].kv.key_size + reply->events [i].prev_kv.value_size;
    for (size_t i = 0; i < reply->nresponses; i++)
        sum += s_walk (&reply->responses [i]);
    for (size_t i = 0; i < reply->nalarms; i++)
        sum += strlen (reply->alarms [i]);
    return sum;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ep_etcd_kind_t kind = (ep_etcd_kind_t) (data [0] % EP_ETCD_KINDS);
    char err [256];
    ep_etcd_reply_t *reply = ep_etcd_decode (kind, (const char *) data + 1, size - 1,
                                             err, sizeof err);
    if (reply) {
        volatile size_t sum = s_walk (reply);
        (void) sum;
        ep_etcd_reply_destroy (&reply);
    }
    else
        assert (err [0]);
    return 0;
}
