/*  termreply.h: the terminator service's replies, built into a result.

    A reply points into strings, arrays and messages made for it; each is
    registered with the result's ep_owned, so terminators_result_clear
    releases them all. Terminators are copied into the reply as they are
    at the time (a later change in the batch must not show in an earlier
    reply).
*/
#ifndef TERMREPLY_H_INCLUDED
#define TERMREPLY_H_INCLUDED

#include "terminators.h"
#include "termstore.h"

//  Sets the result's status (code, printf-style message) and retriable.
void
    termreply_fail (terminators_result_t *result, Ep__Status__Code code, bool retriable,
                    const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

//  Adds record, as it is now, to the reply's terminators; online is its
//  router's presence.
void
    termreply_terminator (terminators_result_t *result, const termrec_t *record, bool online);

//  Adds a terminator the router must create (id NULL: the router picks
//  one) to to_create: only what the router needs, none of our state.
void
    termreply_to_create (terminators_result_t *result, const char *router_id, const char *id,
                         const char *service_id, const termrec_t *record,
                         const Ep__HostedService *hosting);

//  Adds id to to_delete.
void
    termreply_to_delete (terminators_result_t *result, const char *id);

#endif
