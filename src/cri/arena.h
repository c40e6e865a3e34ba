/* A tiny allocation arena for building protobuf-c response graphs: every
 * block comes from calloc and is remembered, and hp_arena_free() releases
 * them all at once after the response is packed. */
#ifndef HP_CRI_ARENA_H
#define HP_CRI_ARENA_H

#include <stddef.h>

typedef struct hp_arena {
    void **blocks; /* owned */
    size_t n, cap;
} hp_arena;

/* Zeroed block of `size` bytes owned by the arena; NULL on ENOMEM. */
void *hp_arena_alloc(hp_arena *a, size_t size);
/* Copy of s owned by the arena (NULL stays NULL... returns "" copy); NULL on ENOMEM. */
char *hp_arena_strdup(hp_arena *a, const char *s);
/* printf into an arena string; NULL on ENOMEM. */
char *hp_arena_printf(hp_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Free every block and the arena's own array. */
void hp_arena_free(hp_arena *a);

static inline void hp_arena_freep(hp_arena *a)
{
    hp_arena_free(a);
}
#define _cleanup_arena_ __attribute__((cleanup(hp_arena_freep)))

#define HP_ARENA_NEW(a, T)      ((T *)hp_arena_alloc((a), sizeof(T)))
#define HP_ARENA_ARRAY(a, T, n) ((T *)hp_arena_alloc((a), sizeof(T) * ((n) ? (n) : 1)))

#endif
