/*  ep_arena.c: one reused block plus malloc'd overflow chunks. */
#include "ep_arena.h"
#include <stdalign.h>
#include <stddef.h>

#define ALIGN (alignof (max_align_t))

typedef struct _s_chunk_t s_chunk_t;
struct _s_chunk_t {
    s_chunk_t *next;            //  next overflow chunk
    alignas (max_align_t) char data [];  //  the allocation
};

struct _ep_arena_t {
    ProtobufCAllocator allocator; //  protobuf-c's view of us
    char *block;                //  the reused block
    size_t size;                //  its size
    size_t used;                //  bytes handed out from it
    size_t max_block;           //  the block grows no further
    size_t wanted;              //  bytes asked since the reset, block or not
    size_t overflow;            //  bytes in overflow chunks since the reset
    s_chunk_t *chunks;          //  overflow chunks, freed at the reset
};

static void *
s_alloc (void *data, size_t size)
{
    return ep_arena_alloc ((ep_arena_t *) data, size);
}

static void
s_free (void *data, void *pointer)
{
    (void) data;
    (void) pointer;             //  the reset frees
}

ep_arena_t *
ep_arena_new (size_t block_size, size_t max_block)
{
    EP_ASSERT (block_size > 0 && block_size <= max_block);
    ep_arena_t *self = (ep_arena_t *) zmalloc (sizeof (ep_arena_t));
    self->allocator.alloc = s_alloc;
    self->allocator.free = s_free;
    self->allocator.allocator_data = self;
    self->size = (block_size + ALIGN - 1) & ~(ALIGN - 1);
    self->block = (char *) aligned_alloc (ALIGN, self->size);
    EP_ASSERT (self->block);
    self->max_block = max_block;
    return self;
}

void
ep_arena_destroy (ep_arena_t **self_p)
{
    ep_arena_t *self = *self_p;
    if (self) {
        ep_arena_reset (self);
        free (self->block);
        free (self);
        *self_p = NULL;
    }
}

void *
ep_arena_alloc (ep_arena_t *self, size_t size)
{
    //  Zero bytes still get a distinct pointer, as malloc may give.
    size_t rounded = size? (size + ALIGN - 1) & ~(ALIGN - 1): ALIGN;
    EP_ASSERT (rounded >= size);
    self->wanted += rounded;
    if (rounded <= self->size - self->used) {
        void *pointer = self->block + self->used;
        self->used += rounded;
        return pointer;
    }
    s_chunk_t *chunk = (s_chunk_t *) malloc (sizeof (s_chunk_t) + rounded);
    EP_ASSERT (chunk);
    chunk->next = self->chunks;
    self->chunks = chunk;
    self->overflow += rounded;
    return chunk->data;
}

void
ep_arena_reset (ep_arena_t *self)
{
    while (self->chunks) {
        s_chunk_t *next = self->chunks->next;
        free (self->chunks);
        self->chunks = next;
    }
    //  Grow the block to what this round needed, so the next event of that
    //  size fits in it; an event beyond max_block keeps using chunks.
    if (self->overflow && self->wanted > self->size && self->wanted <= self->max_block) {
        free (self->block);
        self->size = (self->wanted + ALIGN - 1) & ~(ALIGN - 1);
        self->block = (char *) aligned_alloc (ALIGN, self->size);
        EP_ASSERT (self->block);
    }
    self->used = 0;
    self->wanted = 0;
    self->overflow = 0;
}

ProtobufCAllocator *
ep_arena_allocator (ep_arena_t *self)
{
    return &self->allocator;
}

size_t
ep_arena_block_size (ep_arena_t *self)
{
    return self->size;
}

size_t
ep_arena_overflow (ep_arena_t *self)
{
    return self->overflow;
}
