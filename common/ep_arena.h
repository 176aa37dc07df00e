/*  ep_arena.h: a bump allocator for decoding, freed all at once.

    protobuf-c allocates every sub-message and every string of a decoded
    message on its own, and frees them one by one. A subscriber decodes one
    event at a time and is done with it before the next: it decodes into an
    arena instead, and resets the arena before the next event. Allocation is
    a pointer bump in one reused block; freeing is the reset.

    The block grows (up to a limit) to fit the largest event seen, so the
    steady state makes no system allocation at all; what does not fit goes
    to malloc'd chunks freed at the reset.
*/
#ifndef EP_ARENA_H_INCLUDED
#define EP_ARENA_H_INCLUDED

#include "ep_prelude.h"
#include <protobuf-c/protobuf-c.h>

typedef struct _ep_arena_t ep_arena_t;

//  An arena whose block starts at block_size bytes and may grow to
//  max_block bytes.
ep_arena_t *
    ep_arena_new (size_t block_size, size_t max_block);

void
    ep_arena_destroy (ep_arena_t **self_p);

//  size bytes aligned for any type, valid until the next reset. Never NULL.
void *
    ep_arena_alloc (ep_arena_t *self, size_t size);

//  Frees everything allocated since the last reset.
void
    ep_arena_reset (ep_arena_t *self);

//  A protobuf-c allocator drawing from the arena; its free does nothing
//  (the reset frees). Pass it to protobuf_c_message_unpack, and never
//  free what it decoded with protobuf_c_message_free_unpacked.
ProtobufCAllocator *
    ep_arena_allocator (ep_arena_t *self);

//  Bytes the block holds (for tests: it grows to fit the largest use).
size_t
    ep_arena_block_size (ep_arena_t *self);

//  Bytes allocated outside the block since the last reset.
size_t
    ep_arena_overflow (ep_arena_t *self);

#endif
