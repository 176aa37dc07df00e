/*  renewal.h: when this instance's ctrl certificate must be renewed, or
    its end warned about.

    The decision part, without clocks or certificates: a certificate's
    start and end (wall-clock ms) and whether we can issue the next one go
    in; what to do now, and when to look again, come out.

    - one we issued ourselves (with the CA key) is renewed once 2/3 of its
      lifetime has passed, from when it was issued (its notBefore is set an
      hour early for clock skew, which would make short lifetimes due at
      once); if renewing fails it is tried again after 1/20 of the
      lifetime (1 s to 1 h), even past its end;
    - one given as a bundle cannot be renewed here: from the later of 2/3
      of its lifetime and 30 days before its end, a warning, repeated daily
      and at its end; then an error, daily.
*/
#ifndef RENEWAL_H_INCLUDED
#define RENEWAL_H_INCLUDED

#include "ep_prelude.h"

typedef enum {
    RENEWAL_WAIT = 0,           //  nothing to do before next_ms
    RENEWAL_RENEW,              //  issue the next certificate now
    RENEWAL_WARN,               //  one we cannot renew is near its end: warn
    RENEWAL_EXPIRED             //  one we cannot renew has ended: peers refuse it
} renewal_action_t;

//  What to do about a certificate valid from start_ms (when it was issued;
//  for a bundle, its notBefore) to end_ms, at now_ms, and (into *next_ms)
//  when to call again if nothing changes. After a renewal, call with the
//  new certificate's times.
renewal_action_t
    renewal_check (int64_t start_ms, int64_t end_ms, bool renewable, int64_t now_ms,
                   int64_t *next_ms);

//  Name of an action, for logs and tests.
const char *
    renewal_action_name (renewal_action_t action);

#endif
