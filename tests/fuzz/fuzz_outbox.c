/*  fuzz_outbox.c: the outbox file's codec and its open, fed arbitrary
    bytes (a file damaged by a crash, a full disk or a stray write). The
    scan must stay inside the bytes it is given, hand out only records
    that encode back to exactly the bytes they came from, in increasing
    seq, and say how far they reach; open must keep what the scan keeps
    and never crash. */
#include "ep_outbox.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

typedef struct {
    const uint8_t *data;        //  the input
    size_t at;                  //  where the next record must start
    uint64_t last;              //  the last record's seq
    size_t count;               //  records scanned
} s_scan_t;

static void
s_check (void *arg, const ep_outbox_record_t *record)
{
    s_scan_t *scan = (s_scan_t *) arg;
    EP_ASSERT (record->seq > scan->last);
    EP_ASSERT (*record->topic);
    size_t topic_size = strlen (record->topic) + 1;
    uint8_t *copy = (uint8_t *) malloc (EP_OUTBOX_OVERHEAD + topic_size + record->size);
    size_t length = ep_outbox_encode (copy, record->seq, record->topic, record->body, record->size);
    //  Re-encoding gives back the very bytes scanned: nothing was read
    //  from outside the record, and the CRC covered all of it.
    EP_ASSERT (memcmp (copy, scan->data + scan->at, length) == 0);
    free (copy);
    scan->at += length;
    scan->last = record->seq;
    scan->count++;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_scan_t scan = { data, 0, 0, 0 };
    size_t reach = ep_outbox_scan (data, size, s_check, &scan);
    EP_ASSERT (reach == scan.at && reach <= size);
    //  The same bytes behind a valid header, as a file left by a crash:
    //  open keeps at most what the scan kept, and cuts off the rest.
    static char path [64];
    if (!*path)
        snprintf (path, sizeof path, "/dev/shm/fuzz-outbox-%d", (int) getpid ());
    FILE *file = fopen (path, "wb");
    if (!file)
        return 0;
    uint8_t header [EP_OUTBOX_HEADER] = { 'E', 'P', 'O', 'B', 'O', 'X', '1', '\n', 1 };
    fwrite (header, 1, sizeof header, file);
    fwrite (data, 1, size, file);
    fclose (file);
    char err [256];
    ep_outbox_t *outbox = ep_outbox_open (path, 1u << 20, 1u << 30, err, sizeof err);
    if (outbox) {
        EP_ASSERT (ep_outbox_count (outbox) <= scan.count);
        ep_outbox_destroy (&outbox);
    }
    unlink (path);
    return 0;
}
