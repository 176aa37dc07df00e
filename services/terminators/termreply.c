/*  termreply.c: the terminator service's replies (termreply.h). */
#include "termreply.h"
#include "ep_rpc_server.h"
#include <stdarg.h>

static void
s_release_terminator (void *ptr)
{
    ep__terminator__free_unpacked ((Ep__Terminator *) ptr, NULL);
}

void
termreply_fail (terminators_result_t *result, Ep__Status__Code code, bool retriable,
                const char *format, ...)
{
    va_list args;
    va_start (args, format);
    ep_status_set (&result->status, result->message, sizeof result->message, code, format, args);
    va_end (args);
    result->reply.has_retriable = true;
    result->reply.retriable = retriable;
}

//  A deep copy of t, owned by result (what it points to may change before
//  the reply is packed).
static Ep__Terminator *
s_copy (const Ep__Terminator *t, terminators_result_t *result)
{
    size_t size = ep__terminator__get_packed_size (t);
    uint8_t *bytes = (uint8_t *) malloc (size + 1);
    ep__terminator__pack (t, bytes);
    Ep__Terminator *copy = ep__terminator__unpack (NULL, size, bytes);
    free (bytes);
    EP_ASSERT (copy);
    return (Ep__Terminator *) ep_owned_add (result->owned, copy, s_release_terminator);
}

//  A copy of record as a message (owned by result).
static Ep__Terminator *
s_message (const termrec_t *record, bool online, terminators_result_t *result)
{
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = (char *) record->id;
    t.service_id = *record->service_id? (char *) record->service_id: NULL;
    t.router_id = (char *) record->router_id;
    t.host_id = *record->host_id? (char *) record->host_id: NULL;
    t.address = record->address;
    t.has_cost = t.has_precedence = t.has_state = t.has_generation = true;
    t.cost = record->cost;
    t.precedence = (Ep__Precedence) record->precedence;
    t.state = (Ep__TerminatorState) record->sm.state;
    t.generation = record->generation;
    t.has_created_at_ms = t.has_updated_at_ms = t.has_model_revision = true;
    t.created_at_ms = record->created_at_ms;
    t.updated_at_ms = record->updated_at_ms;
    t.last_error = record->last_error;
    t.model_revision = record->model_revision;
    t.has_router_online = t.has_attempts = true;
    t.router_online = online;
    t.attempts = record->sm.attempts;
    if (record->sm.state == TERMSM_FAILED && record->sm.due_ms) {
        t.has_next_attempt_at_ms = true;
        t.next_attempt_at_ms = record->sm.due_ms;
    }
    return s_copy (&t, result);
}

static void
s_reply_add (Ep__Terminator ***array, size_t *count, Ep__Terminator *item, terminators_result_t *result)
{
    if (*count == 0)
        ep_owned_add (result->owned, array, (void (*) (void *)) zstr_free);
    *array = (Ep__Terminator **) realloc (*array, (*count + 1) * sizeof (Ep__Terminator *));
    (*array) [(*count)++] = item;
}

void
termreply_terminator (terminators_result_t *result, const termrec_t *record, bool online)
{
    s_reply_add (&result->reply.terminators, &result->reply.n_terminators,
                 s_message (record, online, result), result);
}

void
termreply_to_create (terminators_result_t *result, const char *router_id, const char *id,
                     const char *service_id, const termrec_t *record,
                     const Ep__HostedService *hosting)
{
    Ep__Terminator t = EP__TERMINATOR__INIT;
    t.id = (char *) id;
    t.service_id = (char *) service_id;
    t.router_id = (char *) router_id;
    if (record) {
        t.host_id = *record->host_id? (char *) record->host_id: NULL;
        t.address = record->address;
    }
    if (hosting) {
        t.has_cost = t.has_precedence = true;
        t.cost = hosting->cost;
        t.precedence = hosting->precedence;
    }
    s_reply_add (&result->reply.to_create, &result->reply.n_to_create, s_copy (&t, result), result);
}

void
termreply_to_delete (terminators_result_t *result, const char *id)
{
    char **array = result->reply.to_delete;
    if (result->reply.n_to_delete == 0)
        ep_owned_add (result->owned, &result->reply.to_delete, (void (*) (void *)) zstr_free);
    array = (char **) realloc (array, (result->reply.n_to_delete + 1) * sizeof (char *));
    array [result->reply.n_to_delete++] = (char *) ep_owned_add (result->owned, strdup (id), free);
    result->reply.to_delete = array;
}
