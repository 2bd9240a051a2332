/*
 * list.h - intrusive doubly linked list with a sentinel head.
 *
 * Used for the idle LRU, the loop's ready and closed lists, listeners and the
 * loop's timers. A node that is not on any list points at itself, so
 * list_linked() is O(1) and list_remove() on an unlinked node is harmless.
 */
#ifndef ECHOD_LIST_H
#define ECHOD_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
    struct list *prev;
    struct list *next;
};

#define list_entry(ptr, type, member)                                          \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Make an empty head, or mark a node as unlinked. */
static inline void
list_init(struct list *l)
{
    l->prev = l;
    l->next = l;
}

static inline bool
list_empty(const struct list *head)
{
    return head->next == head;
}

/* True when the node is on some list (it was list_init'ed beforehand). */
static inline bool
list_linked(const struct list *node)
{
    return node->next != node;
}

static inline void
list_insert_tail(struct list *head, struct list *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

/* Unlink the node and leave it self-linked; safe on an unlinked node. */
static inline void
list_remove(struct list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    list_init(node);
}

/* Move every node of src to the tail of dst; src becomes empty. */
static inline void
list_splice_tail(struct list *dst, struct list *src)
{
    if (list_empty(src)) {
        return;
    }
    src->next->prev = dst->prev;
    dst->prev->next = src->next;
    src->prev->next = dst;
    dst->prev = src->prev;
    list_init(src);
}

static inline struct list *
list_first(const struct list *head)
{
    return list_empty(head) ? NULL : head->next;
}

#endif /* ECHOD_LIST_H */
