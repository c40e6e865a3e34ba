#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void vfill(hp_err *err, const char *fmt, va_list ap)
{
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int hp_err_set(hp_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return -1;
    err->code = code;
    err->sys_errno = 0;
    va_start(ap, fmt);
    vfill(err, fmt, ap);
    va_end(ap);
    return -1;
}

int hp_err_sys(hp_err *err, int code, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    size_t n;
    if (err == NULL)
        return -1;
    err->code = code;
    err->sys_errno = saved;
    va_start(ap, fmt);
    vfill(err, fmt, ap);
    va_end(ap);
    n = strlen(err->msg);
    snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(saved));
    errno = saved;
    return -1;
}

int hp_err_wrap(hp_err *err, const char *fmt, ...)
{
    char prefix[HP_ERR_MSG_MAX];
    va_list ap;
    size_t plen, mlen;
    if (err == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    plen = strlen(prefix);
    if (plen > sizeof err->msg - 3)
        plen = sizeof err->msg - 3;
    mlen = strnlen(err->msg, sizeof err->msg - 1);
    if (plen + 2 + mlen > sizeof err->msg - 1)
        mlen = sizeof err->msg - 1 - plen - 2;
    memmove(err->msg + plen + 2, err->msg, mlen);
    memcpy(err->msg, prefix, plen);
    err->msg[plen] = ':';
    err->msg[plen + 1] = ' ';
    err->msg[plen + 2 + mlen] = '\0';
    if (err->code == HP_OK)
        err->code = HP_INTERNAL;
    return -1;
}

void hp_err_clear(hp_err *err)
{
    err->code = HP_OK;
    err->sys_errno = 0;
    err->msg[0] = '\0';
}

const char *hp_status_name(int code)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0]))
        return "UNKNOWN";
    return names[code];
}
