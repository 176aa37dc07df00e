/*  test_heap.c: the binary min-heap against sorting, by value and by
    pointer with positions kept in the entries (remove and re-key by index). */
#include <criterion/criterion.h>
#include "ep_heap.h"

typedef struct {
    int64_t key;                //  the order (leading int64_t)
    uint32_t tag;               //  which push this was
} s_timer_t;

static int
s_cmp_int64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y? -1: x > y;
}

Test (heap, empty_heap_has_no_top_and_pops_nothing)
{
    ep_heap_t *heap = ep_heap_new (sizeof (s_timer_t), NULL, NULL);
    cr_assert_eq (ep_heap_size (heap), 0);
    cr_assert_null (ep_heap_top (heap));
    s_timer_t out;
    cr_assert_eq (ep_heap_pop (heap, &out), -1);
    ep_heap_destroy (&heap);
    cr_assert_null (heap);
    ep_heap_destroy (&heap);
}

Test (heap, pops_in_sorted_order_like_qsort)
{
    srand (15);
    for (int round = 0; round < 50; round++) {
        ep_heap_t *heap = ep_heap_new (sizeof (s_timer_t), NULL, NULL);
        size_t count = 1 + (size_t) (rand () % 2000);
        int64_t *keys = (int64_t *) malloc (count * sizeof (int64_t));
        size_t sorted = 0;
        int64_t *expect = (int64_t *) malloc (count * sizeof (int64_t));
        size_t popped = 0;
        //  Interleave pushes and pops: a pop takes the smallest pushed so far.
        for (size_t i = 0; i < count; i++) {
            keys [i] = rand () % 500 - 250;     //  many ties
            s_timer_t timer = { keys [i], (uint32_t) i };
            ep_heap_push (heap, &timer);
            expect [sorted++] = keys [i];
            if (rand () % 3 == 0) {
                qsort (expect, sorted, sizeof (int64_t), s_cmp_int64);
                s_timer_t out;
                cr_assert_eq (ep_heap_pop (heap, &out), 0);
                cr_assert_eq (out.key, expect [0]);
                cr_assert_eq (out.key, keys [out.tag], "the item comes out whole");
                memmove (expect, expect + 1, --sorted * sizeof (int64_t));
                popped++;
            }
        }
        cr_assert_eq (ep_heap_size (heap), count - popped);
        qsort (expect, sorted, sizeof (int64_t), s_cmp_int64);
        for (size_t i = 0; i < sorted; i++) {
            s_timer_t *top = (s_timer_t *) ep_heap_top (heap);
            cr_assert_not_null (top);
            cr_assert_eq (top->key, expect [i]);
            cr_assert_eq (ep_heap_pop (heap, NULL), 0);
        }
        cr_assert_eq (ep_heap_size (heap), 0);
        free (keys);
        free (expect);
        ep_heap_destroy (&heap);
    }
}

Test (heap, clear_keeps_the_heap_usable)
{
    ep_heap_t *heap = ep_heap_new (sizeof (s_timer_t), NULL, NULL);
    for (int i = 0; i < 100; i++) {
        s_timer_t timer = { 100 - i, 0 };
        ep_heap_push (heap, &timer);
    }
    ep_heap_clear (heap);
    cr_assert_eq (ep_heap_size (heap), 0);
    s_timer_t timer = { 7, 1 };
    ep_heap_push (heap, &timer);
    cr_assert_eq (((s_timer_t *) ep_heap_top (heap))->key, 7);
    ep_heap_destroy (&heap);
}

//  Intrusive use: the heap holds pointers to entries that know their index.
typedef struct {
    double priority;            //  higher first (a custom order)
    size_t index;               //  heap position + 1, 0 if in none
    int id;                     //  which entry
} s_entry_t;

static bool
s_higher (const void *a, const void *b)
{
    return (*(s_entry_t * const *) a)->priority > (*(s_entry_t * const *) b)->priority;
}

static void
s_moved (void *item, size_t index)
{
    (*(s_entry_t **) item)->index = index + 1;
}

//  Every entry in the heap is where it says, and the heap property holds.
static void
s_check (ep_heap_t *heap)
{
    size_t size = ep_heap_size (heap);
    for (size_t i = 0; i < size; i++) {
        s_entry_t *entry = *(s_entry_t **) ep_heap_at (heap, i);
        cr_assert_eq (entry->index, i + 1, "entry %d at %zu says %zu", entry->id, i, entry->index);
        if (i > 0) {
            s_entry_t *parent = *(s_entry_t **) ep_heap_at (heap, (i - 1) / 2);
            cr_assert_geq (parent->priority, entry->priority);
        }
    }
}

static int
s_cmp_desc (const void *a, const void *b)
{
    double x = (*(s_entry_t * const *) a)->priority, y = (*(s_entry_t * const *) b)->priority;
    return x > y? -1: x < y;
}

Test (heap, removes_and_rekeys_by_index_with_positions_kept)
{
    srand (21);
    enum { COUNT = 1000 };
    s_entry_t entries [COUNT];
    ep_heap_t *heap = ep_heap_new (sizeof (s_entry_t *), s_higher, s_moved);
    for (int i = 0; i < COUNT; i++) {
        entries [i] = (s_entry_t) { (double) (rand () % 300), 0, i };
        s_entry_t *entry = &entries [i];
        ep_heap_push (heap, &entry);
    }
    s_check (heap);
    //  Remove a third by their own index, re-key another third either way.
    for (int i = 0; i < COUNT; i++) {
        s_entry_t *entry = &entries [i];
        if (i % 3 == 0) {
            s_entry_t *out = NULL;
            ep_heap_remove (heap, entry->index - 1, &out);
            cr_assert_eq (out, entry, "remove hands back the entry at that index");
            entry->index = 0;
        }
        else
        if (i % 3 == 1) {
            entry->priority = (double) (rand () % 300);
            size_t at = ep_heap_update (heap, entry->index - 1);
            cr_assert_eq (entry->index, at + 1);
        }
        if (i % 50 == 0)
            s_check (heap);
    }
    s_check (heap);
    //  What is left comes out in the order sorting gives.
    s_entry_t *left [COUNT];
    size_t count = 0;
    for (int i = 0; i < COUNT; i++)
        if (entries [i].index)
            left [count++] = &entries [i];
    cr_assert_eq (count, ep_heap_size (heap));
    qsort (left, count, sizeof (s_entry_t *), s_cmp_desc);
    for (size_t i = 0; i < count; i++) {
        s_entry_t *out = NULL;
        cr_assert_eq (ep_heap_pop (heap, &out), 0);
        cr_assert_eq (out->priority, left [i]->priority);
        s_check (heap);
    }
    ep_heap_destroy (&heap);
}

Test (heap, removing_the_last_slot_moves_nothing)
{
    s_entry_t entries [3] = { { 3, 0, 0 }, { 2, 0, 1 }, { 1, 0, 2 } };
    ep_heap_t *heap = ep_heap_new (sizeof (s_entry_t *), s_higher, s_moved);
    for (int i = 0; i < 3; i++) {
        s_entry_t *entry = &entries [i];
        ep_heap_push (heap, &entry);
    }
    ep_heap_remove (heap, 2, NULL);
    cr_assert_eq (ep_heap_size (heap), 2);
    s_check (heap);
    ep_heap_remove (heap, 0, NULL);
    cr_assert_eq ((*(s_entry_t **) ep_heap_top (heap))->id, 1);
    s_check (heap);
    ep_heap_destroy (&heap);
}
