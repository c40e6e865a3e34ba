/* Scope-bound cleanup helpers (GCC/Clang `cleanup` attribute).
 *
 * Declare a variable with one of these and it is released when it goes out of
 * scope.  To hand ownership to someone else, use hp_steal_ptr()/hp_steal_fd(),
 * which return the value and reset the variable so that the cleanup is a no-op.
 */
#ifndef HP_UTIL_CLEANUP_H
#define HP_UTIL_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>

static inline void hp_freep(void *p)
{
    free(*(void **)p);
}
static inline void hp_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
static inline void hp_fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}
static inline void hp_closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

#define _cleanup_free_     __attribute__((cleanup(hp_freep)))
#define _cleanup_close_    __attribute__((cleanup(hp_closep)))
#define _cleanup_fclose_   __attribute__((cleanup(hp_fclosep)))
#define _cleanup_closedir_ __attribute__((cleanup(hp_closedirp)))

static inline void *hp_steal_ptr_impl(void **p)
{
    void *v = *p;
    *p = NULL;
    return v;
}
#define hp_steal_ptr(pp) hp_steal_ptr_impl((void **)(pp))

static inline int hp_steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

#endif
