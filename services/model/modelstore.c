/*  modelstore.c: the model's storage interface, dispatching to a backend.

    Nothing but the indirection: see modelstore.h for the contract and
    modelstore_sqlite.c for the first backend.
*/
#include "modelstore.h"

struct _modelstore_t {
    const modelstore_ops_t *ops;    //  the backend's operations
    void *backend;                  //  its state (owned)
};

modelstore_t *
modelstore_new (const modelstore_ops_t *ops, void *backend)
{
    EP_ASSERT (ops && backend);
    modelstore_t *self = (modelstore_t *) zmalloc (sizeof (modelstore_t));
    self->ops = ops;
    self->backend = backend;
    return self;
}

void
modelstore_destroy (modelstore_t **self_p)
{
    modelstore_t *self = *self_p;
    if (self) {
        self->ops->destroy (self->backend);
        free (self);
        *self_p = NULL;
    }
}

const char *
modelstore_error (modelstore_t *self)
{
    return self->ops->error (self->backend);
}

int
modelstore_state (modelstore_t *self, uint64_t *revision, char *generation, bool *restored)
{
    return self->ops->state (self->backend, revision, generation, restored);
}

int
modelstore_set_generation (modelstore_t *self, const char *generation)
{
    return self->ops->set_generation (self->backend, generation);
}

int
modelstore_begin (modelstore_t *self)
{
    return self->ops->begin (self->backend);
}

bool
modelstore_in_batch (modelstore_t *self)
{
    return self->ops->in_batch (self->backend);
}

int
modelstore_write_begin (modelstore_t *self)
{
    return self->ops->write_begin (self->backend);
}

void
modelstore_write_end (modelstore_t *self, bool keep)
{
    self->ops->write_end (self->backend, keep);
}

Ep__Entity *
modelstore_get (modelstore_t *self, Ep__EntityType type, const char *id)
{
    return self->ops->get (self->backend, type, id);
}

int
modelstore_hosting (modelstore_t *self, const char *service_id, zlistx_t *router_ids)
{
    return self->ops->hosting (self->backend, service_id, router_ids);
}

int
modelstore_put (modelstore_t *self, Ep__EntityType type, const char *id, const char *name,
                uint64_t version, const Ep__Entity *entity)
{
    return self->ops->put (self->backend, type, id, name, version, entity);
}

int
modelstore_remove (modelstore_t *self, Ep__EntityType type, const char *id)
{
    return self->ops->remove (self->backend, type, id);
}

int
modelstore_record (modelstore_t *self, const Ep__ModelChange *change, uint64_t forget_through)
{
    return self->ops->record (self->backend, change, forget_through);
}

int
modelstore_save_reply (modelstore_t *self, const char *caller_key, const char *request_id,
                       const void *request, size_t size, zframe_t *reply, int64_t wall_ms)
{
    return self->ops->save_reply (self->backend, caller_key, request_id, request, size,
                                  reply, wall_ms);
}

int
modelstore_prune_replies (modelstore_t *self, ep_replycache_t *cache, int64_t wall_ms,
                          size_t limit)
{
    return self->ops->prune_replies (self->backend, cache, wall_ms, limit);
}

void
modelstore_commit (modelstore_t *self, modelstore_done_fn *done, void *arg)
{
    self->ops->commit (self->backend, done, arg);
}

void
modelstore_abandon (modelstore_t *self)
{
    self->ops->abandon (self->backend);
}

void
modelstore_read (modelstore_t *self, modelstore_query_t *query,
                 modelstore_row_fn *row, modelstore_done_fn *done, void *arg)
{
    self->ops->read (self->backend, query, row, done, arg);
}

modelstore_view_t *
modelstore_view_open (modelstore_t *self, uint64_t *revision)
{
    return self->ops->view_open (self->backend, revision);
}

void
modelstore_view_close (modelstore_t *self, modelstore_view_t **view_p)
{
    if (*view_p) {
        self->ops->view_close (self->backend, *view_p);
        *view_p = NULL;
    }
}

int
modelstore_load_replies (modelstore_t *self, ep_replycache_t *cache, int64_t wall_ms,
                         int64_t now_ms)
{
    return self->ops->load_replies (self->backend, cache, wall_ms, now_ms);
}

void
modelstore_backup (modelstore_t *self, const char *path, modelstore_done_fn *done, void *arg)
{
    self->ops->backup (self->backend, path, done, arg);
}

void
modelstore_tick (modelstore_t *self)
{
    self->ops->tick (self->backend);
}

int64_t
modelstore_size (modelstore_t *self)
{
    return self->ops->size (self->backend);
}

ep_store_fault_t
modelstore_fault (modelstore_t *self)
{
    return self->ops->fault? self->ops->fault (self->backend): EP_STORE_FAULT_OTHER;
}

int
modelstore_probe (modelstore_t *self)
{
    return self->ops->probe? self->ops->probe (self->backend): 0;
}

int
modelstore_current (modelstore_t *self, uint64_t *revision, char *generation)
{
    return self->ops->current? self->ops->current (self->backend, revision, generation): 0;
}

bool
modelstore_ready (modelstore_t *self)
{
    return self->ops->ready? self->ops->ready (self->backend): true;
}

bool
modelstore_retry (modelstore_t *self)
{
    return self->ops->retry? self->ops->retry (self->backend): false;
}

bool
modelstore_too_large (modelstore_t *self)
{
    return self->ops->too_large? self->ops->too_large (self->backend): false;
}

bool
modelstore_lease_gone (modelstore_t *self)
{
    return self->ops->lease_gone? self->ops->lease_gone (self->backend): false;
}

uint8_t *
modelstore_pack (const ProtobufCMessage *msg, size_t *size)
{
    *size = protobuf_c_message_get_packed_size (msg);
    uint8_t *body = (uint8_t *) malloc (*size + 1);
    protobuf_c_message_pack (msg, body);
    return body;
}

int
modelstore_lease (modelstore_t *self, Ep__EntityType type, const char *id, uint64_t version,
                  int64_t lease_id)
{
    return self->ops->lease? self->ops->lease (self->backend, type, id, version, lease_id): 0;
}

bool
modelstore_expired (modelstore_t *self, modelstore_expired_t *expired)
{
    return self->ops->expired? self->ops->expired (self->backend, expired): false;
}
