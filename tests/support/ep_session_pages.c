/*  ep_session_pages.c: paging through the reaper's session list in tests
    (ep_session_pages.h).
*/
#include "ep_session_pages.h"

#define PAGE_SIZE 1000

struct _ep_session_pages_t {
    Ep__SessionFilter filter;   //  the list filter; page_token points at token
    Ep__SessionRequest request; //  the list request; list points at filter
    char *token;                //  the last reply's next_page_token, NULL before the first
    bool done;                  //  the last page was taken
    size_t count;               //  sessions in the pages taken
};

ep_session_pages_t *
ep_session_pages_new (const char *router, Ep__SessionState state)
{
    ep_session_pages_t *self = (ep_session_pages_t *) zmalloc (sizeof (ep_session_pages_t));
    ep__session_filter__init (&self->filter);
    self->filter.router_id = (char *) router;
    self->filter.has_state = state != 0;
    self->filter.state = state;
    self->filter.has_page_size = true;
    self->filter.page_size = PAGE_SIZE;
    ep__session_request__init (&self->request);
    self->request.op_case = EP__SESSION_REQUEST__OP_LIST;
    self->request.list = &self->filter;
    return self;
}

void
ep_session_pages_destroy (ep_session_pages_t **self_p)
{
    ep_session_pages_t *self = *self_p;
    if (!self)
        return;
    free (self->token);
    free (self);
    *self_p = NULL;
}

Ep__SessionRequest *
ep_session_pages_next (ep_session_pages_t *self)
{
    if (self->done)
        return NULL;
    self->filter.page_token = self->token && *self->token? self->token: NULL;
    self->request.request_id = NULL;
    return &self->request;
}

void
ep_session_pages_took (ep_session_pages_t *self, const Ep__SessionReply *reply)
{
    self->count += reply->n_sessions;
    free (self->token);
    self->token = reply->next_page_token? strdup (reply->next_page_token): NULL;
    self->done = reply->next_page_token == NULL;
}

size_t
ep_session_pages_count (ep_session_pages_t *self)
{
    return self->count;
}
