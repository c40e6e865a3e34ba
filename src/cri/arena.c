#include "cri/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int remember(hp_arena *a, void *p)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        void **nb = realloc(a->blocks, cap * sizeof *nb);
        if (nb == NULL)
            return -1;
        a->blocks = nb;
        a->cap = cap;
    }
    a->blocks[a->n++] = p;
    return 0;
}

void *hp_arena_alloc(hp_arena *a, size_t size)
{
    void *p = calloc(1, size ? size : 1);
    if (p == NULL)
        return NULL;
    if (remember(a, p) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

char *hp_arena_strdup(hp_arena *a, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *p = hp_arena_alloc(a, n + 1);
    if (p && n)
        memcpy(p, s, n);
    return p;
}

char *hp_arena_printf(hp_arena *a, const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;
    int n;
    va_start(ap, fmt);
    n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    if (remember(a, p) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

void hp_arena_free(hp_arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->blocks[i]);
    free(a->blocks);
    a->blocks = NULL;
    a->n = a->cap = 0;
}
