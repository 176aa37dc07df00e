/*  ep_outbox.c: the outbox file (ep_outbox.h) and its records in memory,
    oldest first: [0, sent) handed out, [sent, synced) ready, the rest
    appended but not synced yet. */
#include "ep_outbox.h"
#include "ep_log.h"
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC           "EPOBOX1\n"     //  the header's first 8 bytes
#define REWRITE_MIN     (64 * 1024)     //  delivered bytes worth rewriting the file for

typedef struct {
    ep_outbox_record_t record;  //  what is handed out (points into bytes)
    size_t length;              //  bytes of its record in the file
    bool delivered;             //  acknowledged (dropped once all before it are)
    uint8_t bytes [];           //  the record as in the file
} s_record_t;

struct _ep_outbox_t {
    char *path;                 //  the file
    int fd;                     //  open for writing (records at file_size), flock held
    size_t max_events;          //  records held at most
    size_t max_bytes;           //  bytes of records held at most
    uint64_t base;              //  the header's first seq
    uint64_t next_seq;          //  seq of the next append
    s_record_t **records;       //  held, oldest first, from records [head]
    size_t head;                //  first used slot
    size_t count;               //  records held
    size_t capacity;            //  slots allocated
    size_t sent;                //  of them, handed out
    size_t synced;              //  of them, durable (handed out only then)
    size_t bytes;               //  file bytes of the held records
    size_t file_size;           //  bytes in the file
    size_t torn;                //  bytes cut off at open
};

static uint32_t
s_crc32 (uint32_t crc, const uint8_t *data, size_t size)
{
    crc = ~crc;
    for (size_t i = 0; i < size; i++) {
        crc ^= data [i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void
s_put32 (uint8_t *out, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        out [i] = (uint8_t) (value >> (8 * i));
}

static void
s_put64 (uint8_t *out, uint64_t value)
{
    for (int i = 0; i < 8; i++)
        out [i] = (uint8_t) (value >> (8 * i));
}

static uint64_t
s_get (const uint8_t *in, int bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value |= (uint64_t) in [i] << (8 * i);
    return value;
}

size_t
ep_outbox_encode (uint8_t *out, uint64_t seq, const char *topic, const void *body, size_t size)
{
    size_t topic_size = strlen (topic) + 1;
    size_t payload = topic_size + size;
    s_put32 (out, (uint32_t) payload);
    s_put64 (out + 8, seq);
    memcpy (out + 16, topic, topic_size);
    if (size)
        memcpy (out + 16 + topic_size, body, size);
    s_put32 (out + 4, s_crc32 (0, out + 8, 8 + payload));
    return EP_OUTBOX_OVERHEAD + payload;
}

size_t
ep_outbox_scan (const uint8_t *data, size_t size, ep_outbox_scan_fn *fn, void *arg)
{
    size_t at = 0;
    uint64_t last = 0;
    while (size - at >= EP_OUTBOX_OVERHEAD) {
        const uint8_t *record = data + at;
        uint64_t payload = s_get (record, 4);
        if (payload > size - at - EP_OUTBOX_OVERHEAD)
            break;              //  short: the tail was torn
        if (s_get (record + 4, 4) != s_crc32 (0, record + 8, 8 + (size_t) payload))
            break;
        uint64_t seq = s_get (record + 8, 8);
        const char *topic = (const char *) record + 16;
        size_t topic_size = strnlen (topic, (size_t) payload) + 1;
        //  Every append has a topic; an empty one is damage whose CRC
        //  happens to match (cheap to forge, as the fuzzer showed).
        if (topic_size > payload || topic_size == 1 || seq <= last)
            break;
        ep_outbox_record_t found = {
            .seq = seq, .topic = topic, .body = record + 16 + topic_size,
            .size = (size_t) payload - topic_size
        };
        fn (arg, &found);
        last = seq;
        at += EP_OUTBOX_OVERHEAD + (size_t) payload;
    }
    return at;
}

//  Keeps a copy of the record whose file bytes are bytes [0, length).
static void
s_hold (ep_outbox_t *self, const uint8_t *bytes, size_t length)
{
    if (self->head + self->count == self->capacity) {
        if (self->head > 0) {
            memmove (self->records, self->records + self->head, self->count * sizeof (s_record_t *));
            self->head = 0;
        }
        else {
            self->capacity = self->capacity? 2 * self->capacity: 64;
            self->records = (s_record_t **) realloc (self->records,
                                                     self->capacity * sizeof (s_record_t *));
            EP_ASSERT (self->records);
        }
    }
    s_record_t *held = (s_record_t *) malloc (sizeof (s_record_t) + length);
    EP_ASSERT (held);
    memcpy (held->bytes, bytes, length);
    held->length = length;
    held->delivered = false;
    size_t topic_size = strlen ((const char *) held->bytes + 16) + 1;
    held->record.seq = s_get (held->bytes + 8, 8);
    held->record.topic = (const char *) held->bytes + 16;
    held->record.body = held->bytes + 16 + topic_size;
    held->record.size = length - EP_OUTBOX_OVERHEAD - topic_size;
    self->records [self->head + self->count++] = held;
    self->bytes += length;
}

typedef struct {
    ep_outbox_t *outbox;        //  what is being loaded
    const uint8_t *data;        //  the file's bytes
} s_load_t;

static void
s_load_one (void *arg, const ep_outbox_record_t *record)
{
    s_load_t *load = (s_load_t *) arg;
    ep_outbox_t *self = load->outbox;
    //  Below the header's base: delivered before a crash cut the file.
    if (record->seq < self->base)
        return;
    const uint8_t *start = (const uint8_t *) record->topic - 16;
    s_hold (self, start, (size_t) (record->body + record->size - start));
    self->next_seq = record->seq + 1;
}

//  Replaces the file by the header and the held records (synced), and
//  keeps the new file open for appending. The new file is locked before
//  it is renamed over the old one: the path never names an unlocked
//  outbox of ours, so no one adopts it (ep_outbox_adopt) while we live.
static int
s_rewrite (ep_outbox_t *self, char *err, size_t errlen)
{
    size_t size = EP_OUTBOX_HEADER + self->bytes;
    uint8_t *data = (uint8_t *) malloc (size);
    EP_ASSERT (data);
    memcpy (data, MAGIC, 8);
    self->base = self->count? self->records [self->head]->record.seq: self->next_seq;
    s_put64 (data + 8, self->base);
    size_t at = EP_OUTBOX_HEADER;
    for (size_t i = 0; i < self->count; i++) {
        s_record_t *held = self->records [self->head + i];
        memcpy (data + at, held->bytes, held->length);
        at += held->length;
    }
    char hex [17], tmp [PATH_MAX];
    ep_random_hex (hex, 8);
    int n = snprintf (tmp, sizeof tmp, "%s.tmp-%s", self->path, hex);
    EP_ASSERT (n > 0 && n < (int) sizeof tmp);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = fd < 0? -1: flock (fd, LOCK_EX | LOCK_NB);
    for (size_t done = 0; rc == 0 && done < size; ) {
        ssize_t wrote = write (fd, data + done, size - done);
        if (wrote < 0 && errno != EINTR)
            rc = -1;
        else
        if (wrote > 0)
            done += (size_t) wrote;
    }
    free (data);
    if (rc == 0)
        rc = fdatasync (fd);
    if (rc == 0)
        rc = rename (tmp, self->path);
    if (rc != 0) {
        snprintf (err, err? errlen: 0, "cannot write the outbox %s: %s; check the disk",
                  self->path, strerror (errno));
        if (fd >= 0) {
            unlink (tmp);
            close (fd);
        }
        return -1;
    }
    //  The old file's lock goes with its descriptor: it is no longer at
    //  the path.
    if (self->fd >= 0)
        close (self->fd);
    self->fd = fd;
    self->file_size = size;
    self->synced = self->count;
    return 0;
}

//  Opens path (creating it if create) and locks it without waiting. The
//  inode locked must still be the one at path: an owner's rewrite or an
//  adopter's remove may have replaced or removed it in between. Returns
//  the descriptor, or -1 with errno (EWOULDBLOCK: someone holds it;
//  ENOENT: no such outbox, when !create) and the reason in err.
static int
s_open_locked (const char *path, bool create, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        int fd = open (path, O_RDWR | O_CLOEXEC | (create? O_CREAT: 0), 0600);
        if (fd < 0) {
            int error = errno;
            snprintf (err, err? errlen: 0, "cannot open the outbox %s: %s; check the data directory's "
                      "permissions", path, strerror (error));
            errno = error;
            return -1;
        }
        if (flock (fd, LOCK_EX | LOCK_NB) != 0) {
            int error = errno;
            close (fd);
            if (error == EWOULDBLOCK)
                snprintf (err, err? errlen: 0, "the outbox %s is in use by another process (a watchdog "
                          "with the same instance id, or one replaying it after its owner died); "
                          "stop the other or use another --instance-id", path);
            else
                snprintf (err, err? errlen: 0, "cannot lock the outbox %s: %s", path, strerror (error));
            errno = error;
            return -1;
        }
        struct stat locked, named;
        if (fstat (fd, &locked) == 0 && stat (path, &named) == 0
        &&  locked.st_dev == named.st_dev && locked.st_ino == named.st_ino)
            return fd;
        close (fd);
    }
    snprintf (err, err? errlen: 0, "cannot lock the outbox %s: it keeps being replaced", path);
    errno = EAGAIN;
    return -1;
}

//  Reads fd whole into *data_p (NULL and size 0 when it is empty: just
//  created).
static int
s_read_file (int fd, const char *path, uint8_t **data_p, size_t *size_p, char *err, size_t errlen)
{
    *data_p = NULL;
    *size_p = 0;
    size_t capacity = 0, size = 0;
    uint8_t *data = NULL;
    while (true) {
        if (size == capacity) {
            capacity = capacity? 2 * capacity: 65536;
            data = (uint8_t *) realloc (data, capacity);
            EP_ASSERT (data);
        }
        ssize_t got = pread (fd, data + size, capacity - size, (off_t) size);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free (data);
            snprintf (err, err? errlen: 0, "cannot read the outbox %s: %s", path, strerror (errno));
            return -1;
        }
        if (got == 0)
            break;
        size += (size_t) got;
    }
    if (size == 0)
        free (data);
    else
        *data_p = data;
    *size_p = size;
    return 0;
}

static ep_outbox_t *
s_open (const char *path, bool create, size_t max_events, size_t max_bytes, char *err, size_t errlen)
{
    int fd = s_open_locked (path, create, err, errlen);
    if (fd < 0)
        return NULL;
    uint8_t *data;
    size_t size;
    if (s_read_file (fd, path, &data, &size, err, errlen) != 0) {
        close (fd);
        return NULL;
    }
    if (data && (size < EP_OUTBOX_HEADER || memcmp (data, MAGIC, 8) != 0)) {
        free (data);
        close (fd);
        snprintf (err, err? errlen: 0, "%s is not an event outbox; move it away (its events are lost) "
                  "or point the data directory elsewhere", path);
        errno = EINVAL;
        return NULL;
    }
    ep_outbox_t *self = (ep_outbox_t *) zmalloc (sizeof (ep_outbox_t));
    self->path = strdup (path);
    self->fd = fd;
    self->max_events = max_events;
    self->max_bytes = max_bytes;
    self->base = self->next_seq = data? s_get (data + 8, 8): 1;
    if (self->base == 0)
        self->base = self->next_seq = 1;
    if (data) {
        s_load_t load = { self, data };
        size_t used = ep_outbox_scan (data + EP_OUTBOX_HEADER, size - EP_OUTBOX_HEADER, s_load_one, &load);
        self->torn = size - EP_OUTBOX_HEADER - used;
    }
    free (data);
    //  Rewritten at open: the torn tail goes, and appends start on a
    //  record boundary.
    if (s_rewrite (self, err, errlen) != 0) {
        ep_outbox_destroy (&self);
        errno = EIO;
    }
    return self;
}

ep_outbox_t *
ep_outbox_open (const char *path, size_t max_events, size_t max_bytes, char *err, size_t errlen)
{
    return s_open (path, true, max_events, max_bytes, err, errlen);
}

ep_outbox_t *
ep_outbox_adopt (const char *path, char *err, size_t errlen)
{
    return s_open (path, false, SIZE_MAX, SIZE_MAX, err, errlen);
}

int
ep_outbox_remove (ep_outbox_t **self_p, char *err, size_t errlen)
{
    ep_outbox_t *self = *self_p;
    //  Unlinked while still locked: whoever locks the old inode next sees
    //  it is no longer at the path (s_open_locked).
    int rc = unlink (self->path);
    if (rc != 0)
        snprintf (err, err? errlen: 0, "cannot remove the outbox %s: %s", self->path, strerror (errno));
    ep_outbox_destroy (self_p);
    return rc;
}

const char *
ep_outbox_path (ep_outbox_t *self)
{
    return self->path;
}

void
ep_outbox_destroy (ep_outbox_t **self_p)
{
    ep_outbox_t *self = *self_p;
    if (self) {
        if (self->fd >= 0)
            close (self->fd);
        for (size_t i = 0; i < self->count; i++)
            free (self->records [self->head + i]);
        free (self->records);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

bool
ep_outbox_full (ep_outbox_t *self, size_t size)
{
    return self->count >= self->max_events
        || self->bytes + EP_OUTBOX_OVERHEAD + size > self->max_bytes;
}

int64_t
ep_outbox_append (ep_outbox_t *self, const char *topic, const void *body, size_t size,
                  char *err, size_t errlen)
{
    EP_ASSERT (topic && *topic);
    size_t length = EP_OUTBOX_OVERHEAD + strlen (topic) + 1 + size;
    if (ep_outbox_full (self, length - EP_OUTBOX_OVERHEAD))
        return 0;
    uint8_t *bytes = (uint8_t *) malloc (length);
    EP_ASSERT (bytes);
    uint64_t seq = self->next_seq;
    ep_outbox_encode (bytes, seq, topic, body, size);
    ssize_t wrote = pwrite (self->fd, bytes, length, (off_t) self->file_size);
    if (wrote != (ssize_t) length) {
        snprintf (err, err? errlen: 0, "cannot append to the outbox %s: %s; check the disk",
                  self->path, wrote < 0? strerror (errno): "short write");
        free (bytes);
        //  A partial record is overwritten by the next append (at
        //  file_size); cut it anyway, so a restart finds no torn tail.
        if (wrote > 0 && ftruncate (self->fd, (off_t) self->file_size) != 0)
            ep_log_error ("cannot cut a partial record off %s: %s", self->path, strerror (errno));
        return -1;
    }
    s_hold (self, bytes, length);
    free (bytes);
    self->file_size += length;
    self->next_seq++;
    return (int64_t) seq;
}

int
ep_outbox_sync (ep_outbox_t *self, char *err, size_t errlen)
{
    if (self->synced == self->count)
        return 0;
    if (fdatasync (self->fd) != 0) {
        snprintf (err, err? errlen: 0, "cannot sync the outbox %s: %s; check the disk",
                  self->path, strerror (errno));
        return -1;
    }
    self->synced = self->count;
    return 0;
}

bool
ep_outbox_next (ep_outbox_t *self, ep_outbox_record_t *record)
{
    while (self->sent < self->synced) {
        s_record_t *held = self->records [self->head + self->sent++];
        if (!held->delivered) {
            *record = held->record;
            return true;
        }
    }
    return false;
}

void
ep_outbox_rewind (ep_outbox_t *self)
{
    self->sent = 0;
}

int
ep_outbox_ack (ep_outbox_t *self, uint64_t seq, char *err, size_t errlen)
{
    //  Records are in seq order: find seq's among those handed out.
    size_t low = 0, high = self->sent;
    while (low < high) {
        size_t mid = (low + high) / 2;
        if (self->records [self->head + mid]->record.seq < seq)
            low = mid + 1;
        else
            high = mid;
    }
    if (low < self->sent && self->records [self->head + low]->record.seq == seq)
        self->records [self->head + low]->delivered = true;
    size_t delivered = 0;
    while (self->sent && self->records [self->head]->delivered) {
        s_record_t *held = self->records [self->head++];
        self->count--;
        self->sent--;
        self->synced--;
        self->bytes -= held->length;
        delivered += held->length;
        free (held);
    }
    if (!delivered)
        return 0;
    if (self->count == 0)
        self->head = 0;
    //  Emptied, or mostly delivered: cut the file down. Else only the
    //  header's base moves (not synced: losing it costs a resend, never
    //  an event), so a steady trickle costs one rewrite per REWRITE_MIN.
    size_t dead = self->file_size - EP_OUTBOX_HEADER - self->bytes;
    if (self->count == 0 || (dead >= REWRITE_MIN && dead > self->bytes))
        return s_rewrite (self, err, errlen);
    self->base = self->records [self->head]->record.seq;
    uint8_t base [8];
    s_put64 (base, self->base);
    if (pwrite (self->fd, base, sizeof base, 8) != (ssize_t) sizeof base) {
        snprintf (err, err? errlen: 0, "cannot update the outbox %s: %s; check the disk",
                  self->path, strerror (errno));
        return -1;
    }
    return 0;
}

size_t
ep_outbox_count (ep_outbox_t *self)
{
    return self->count;
}

size_t
ep_outbox_bytes (ep_outbox_t *self)
{
    return self->bytes;
}

size_t
ep_outbox_in_flight (ep_outbox_t *self)
{
    return self->sent;
}

size_t
ep_outbox_torn (ep_outbox_t *self)
{
    return self->torn;
}
