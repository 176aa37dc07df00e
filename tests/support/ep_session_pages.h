/*  ep_session_pages.h: paging through the reaper's session list in tests.

    The suites that count or visit sessions page after page each built the
    same list request and followed next_page_token; they differ only in how
    a request reaches the reaper (in process, or over RPC), so this object
    makes the requests and reads the replies and the suite carries them:

        ep_session_pages_t *pages = ep_session_pages_new (router, state);
        Ep__SessionRequest *request;
        while ((request = ep_session_pages_next (pages))) {
            ...send request, assert the status is OK...
            ep_session_pages_took (pages, reply);
        }
        size_t count = ep_session_pages_count (pages);
        ep_session_pages_destroy (&pages);
*/
#ifndef EP_SESSION_PAGES_H_INCLUDED
#define EP_SESSION_PAGES_H_INCLUDED

#include "ep_prelude.h"
#include "sessions.pb-c.h"

typedef struct _ep_session_pages_t ep_session_pages_t;

//  A walk through the sessions of router (NULL: any router) in state
//  (0: any state), 1000 a page. router is borrowed.
ep_session_pages_t *
    ep_session_pages_new (const char *router, Ep__SessionState state);

void
    ep_session_pages_destroy (ep_session_pages_t **self_p);

//  The list request for the next page (no request id; valid until the next
//  call), or NULL once the last page has been taken.
Ep__SessionRequest *
    ep_session_pages_next (ep_session_pages_t *self);

//  Takes the (OK) reply to the last request: counts its sessions and keeps
//  its next_page_token for the next request.
void
    ep_session_pages_took (ep_session_pages_t *self, const Ep__SessionReply *reply);

//  Sessions in the pages taken so far.
size_t
    ep_session_pages_count (ep_session_pages_t *self);

#endif
