/*  cmdage.c: the command-age check (see cmdage.h). */
#include "cmdage.h"
#include "ep_shard.h"

struct _cmdage_t {
    zhashx_t *services;         //  shard_service -> ep_shard_seen_t
};

static void
s_seen_destroy (void **item)
{
    ep_shard_seen_destroy ((ep_shard_seen_t **) item);
}

cmdage_t *
cmdage_new (void)
{
    cmdage_t *self = (cmdage_t *) zmalloc (sizeof (cmdage_t));
    self->services = zhashx_new ();
    zhashx_set_destructor (self->services, s_seen_destroy);
    return self;
}

void
cmdage_destroy (cmdage_t **self_p)
{
    if (*self_p) {
        zhashx_destroy (&(*self_p)->services);
        free (*self_p);
        *self_p = NULL;
    }
}

//  The table of service, made on its first command; NULL past the bound.
static ep_shard_seen_t *
s_seen (cmdage_t *self, const char *service)
{
    ep_shard_seen_t *seen = (ep_shard_seen_t *) zhashx_lookup (self->services, service);
    if (!seen && zhashx_size (self->services) < CMDAGE_MAX_SERVICES) {
        seen = ep_shard_seen_new (EP_SHARD_MAX_COUNT);
        zhashx_insert (self->services, service, seen);
    }
    return seen;
}

cmdage_result_t
cmdage_check (cmdage_t *self, const Ep__Command *command)
{
    cmdage_result_t result = { CMDAGE_UNSHARDED, 0, "" };
    bool service = command->shard_service != NULL;
    if (!service && !command->has_shard && !command->has_owner_revision)
        return result;
    result.verdict = CMDAGE_BAD;
    if (!service || !command->has_shard || !command->has_owner_revision) {
        snprintf (result.why, sizeof result.why,
                  "a shard fence needs shard_service, shard and owner_revision together");
        return result;
    }
    //  A label value of edgeplane_commands_stale_total: an id, not any text.
    if (!ep_id_valid (command->shard_service)) {
        snprintf (result.why, sizeof result.why, "invalid shard_service '%.40s': use 1 to 64 of "
                  "A-Z a-z 0-9 _ -", command->shard_service);
        return result;
    }
    if (command->shard >= EP_SHARD_MAX_COUNT || command->owner_revision <= 0) {
        snprintf (result.why, sizeof result.why, "shard %u or owner_revision %lld out of range",
                  command->shard, (long long) command->owner_revision);
        return result;
    }
    ep_shard_seen_t *seen = s_seen (self, command->shard_service);
    if (!seen) {
        snprintf (result.why, sizeof result.why, "shard_service %s: already %d sharded services",
                  command->shard_service, CMDAGE_MAX_SERVICES);
        return result;
    }
    int shard = (int) command->shard;
    switch (ep_shard_seen_check (seen, shard, command->owner_revision)) {
        case EP_SHARD_COMMAND_OK:
            result.verdict = CMDAGE_DELIVER;
            break;
        case EP_SHARD_COMMAND_STALE:
            result.verdict = CMDAGE_STALE;
            result.newest = ep_shard_seen_newest (seen, shard);
            break;
        case EP_SHARD_COMMAND_BAD:
            EP_ASSERT (false);  //  its range was checked above
    }
    return result;
}

void
cmdage_owner (cmdage_t *self, const char *service, uint32_t shard, int64_t revision)
{
    if (!service || !ep_id_valid (service) || shard >= EP_SHARD_MAX_COUNT || revision <= 0)
        return;
    ep_shard_seen_t *seen = s_seen (self, service);
    if (seen)
        //  Remembered when newer; an older beacon (a deposed owner's,
        //  late) changes nothing.
        ep_shard_seen_check (seen, (int) shard, revision);
}

int64_t
cmdage_newest (cmdage_t *self, const char *service, uint32_t shard)
{
    ep_shard_seen_t *seen = (ep_shard_seen_t *) zhashx_lookup (self->services, service);
    return seen && shard < EP_SHARD_MAX_COUNT? ep_shard_seen_newest (seen, (int) shard): 0;
}
