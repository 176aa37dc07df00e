/*  test_arena.c: the decoding arena: aligned bumps, overflow, growth, and
    protobuf-c decoding into it (under ASan, a leak or an overrun shows). */
#include <criterion/criterion.h>
#include "ep_arena.h"
#include "ep_codec.h"
#include "events.pb-c.h"
#include <stdalign.h>
#include <stddef.h>

Test (arena, allocations_are_aligned_distinct_and_writable)
{
    ep_arena_t *arena = ep_arena_new (256, 4096);
    char *previous = NULL;
    for (size_t size = 0; size < 40; size++) {
        char *p = (char *) ep_arena_alloc (arena, size);
        cr_assert_not_null (p);
        cr_assert_eq ((uintptr_t) p % alignof (max_align_t), 0);
        cr_assert_neq (p, previous, "a zero-byte allocation must still be distinct");
        memset (p, 0xab, size);
        previous = p;
    }
    ep_arena_destroy (&arena);
    cr_assert_null (arena);
}

Test (arena, what_does_not_fit_overflows_then_the_block_grows_to_fit)
{
    ep_arena_t *arena = ep_arena_new (64, 4096);
    cr_assert_eq (ep_arena_block_size (arena), 64);
    char *a = (char *) ep_arena_alloc (arena, 48);
    char *b = (char *) ep_arena_alloc (arena, 1000);
    memset (a, 1, 48);
    memset (b, 2, 1000);
    cr_assert_eq (ep_arena_overflow (arena), 1008);
    ep_arena_reset (arena);
    //  The block now holds what the round needed: no overflow next time.
    cr_assert_geq (ep_arena_block_size (arena), 48 + 1000);
    cr_assert_eq (ep_arena_overflow (arena), 0);
    ep_arena_alloc (arena, 48);
    ep_arena_alloc (arena, 1000);
    cr_assert_eq (ep_arena_overflow (arena), 0);
    ep_arena_destroy (&arena);
}

Test (arena, the_block_grows_no_further_than_its_limit)
{
    ep_arena_t *arena = ep_arena_new (64, 1024);
    char *big = (char *) ep_arena_alloc (arena, 100000);
    memset (big, 3, 100000);
    ep_arena_reset (arena);
    cr_assert_eq (ep_arena_block_size (arena), 64);
    ep_arena_destroy (&arena);
}

//  A packed event with a meta and a body, as a publisher sends it.
static size_t
s_packed_event (uint8_t *buffer, size_t size)
{
    Ep__StreamMeta meta = EP__STREAM_META__INIT;
    meta.source_id = "model-a";
    meta.stream = "channel";
    meta.has_seq = true;
    meta.seq = 42;
    Ep__ChannelEvent channel = EP__CHANNEL_EVENT__INIT;
    channel.reason = "closed";
    channel.remote_addr = "127.0.0.1:40000";
    channel.id = "r1";
    Ep__Event event = EP__EVENT__INIT;
    event.meta = &meta;
    event.body_case = EP__EVENT__BODY_CHANNEL;
    event.channel = &channel;
    size_t packed = ep__event__get_packed_size (&event);
    cr_assert_leq (packed, size);
    return ep__event__pack (&event, buffer);
}

Test (arena, events_decode_into_it_and_copies_outlive_the_reset)
{
    uint8_t packed [256];
    size_t size = s_packed_event (packed, sizeof packed);
    ep_arena_t *arena = ep_arena_new (4096, 65536);
    char err [256];
    Ep__Event *copy = NULL;
    for (int round = 0; round < 100; round++) {
        Ep__Event *event = (Ep__Event *) ep_codec_unpack_in (&ep__event__descriptor, packed, size,
                                                             1024, ep_arena_allocator (arena),
                                                             "test", err, sizeof err);
        cr_assert_not_null (event, "%s", err);
        cr_assert_str_eq (event->meta->source_id, "model-a");
        cr_assert_eq (event->meta->seq, 42);
        cr_assert_str_eq (event->channel->remote_addr, "127.0.0.1:40000");
        //  Everything fit in the block: no system allocation per event.
        cr_assert_eq (ep_arena_overflow (arena), 0);
        if (round == 0)
            copy = (Ep__Event *) ep_codec_copy (&event->base);
        ep_arena_reset (arena);
    }
    //  The copy is the caller's, on the heap.
    cr_assert_str_eq (copy->channel->reason, "closed");
    cr_assert_str_eq (copy->meta->stream, "channel");
    ep__event__free_unpacked (copy, NULL);
    //  Truncated input fails cleanly, its partial allocations go at the reset.
    for (size_t cut = 1; cut < size; cut++) {
        Ep__Event *event = (Ep__Event *) ep_codec_unpack_in (&ep__event__descriptor, packed, cut,
                                                             1024, ep_arena_allocator (arena),
                                                             "test", err, sizeof err);
        (void) event;           //  a valid prefix may decode; either is fine
        ep_arena_reset (arena);
    }
    ep_arena_destroy (&arena);
}
