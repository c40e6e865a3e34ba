/* hpcri error idiom.
 *
 * A function that can fail takes `hp_err *err` as its last argument, fills it
 * on failure and returns -1 (or NULL for pointer-returning functions).  The
 * caller either handles the error or passes it up unchanged.  `code` is a gRPC
 * status code so that the CRI layer can answer the client directly; `msg` is a
 * human-readable sentence without a trailing newline.  No allocation: the
 * struct is a fixed-size value that lives on the caller's stack.
 */
#ifndef HP_UTIL_ERR_H
#define HP_UTIL_ERR_H

#include <stdarg.h>

/* gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
enum hp_status {
    HP_OK = 0,
    HP_CANCELLED = 1,
    HP_UNKNOWN = 2,
    HP_INVALID_ARGUMENT = 3,
    HP_DEADLINE_EXCEEDED = 4,
    HP_NOT_FOUND = 5,
    HP_ALREADY_EXISTS = 6,
    HP_PERMISSION_DENIED = 7,
    HP_RESOURCE_EXHAUSTED = 8,
    HP_FAILED_PRECONDITION = 9,
    HP_ABORTED = 10,
    HP_OUT_OF_RANGE = 11,
    HP_UNIMPLEMENTED = 12,
    HP_INTERNAL = 13,
    HP_UNAVAILABLE = 14,
    HP_DATA_LOSS = 15,
    HP_UNAUTHENTICATED = 16,
};

#define HP_ERR_MSG_MAX 1024

typedef struct hp_err {
    int code;      /* enum hp_status; HP_OK when no error */
    int sys_errno; /* errno captured by hp_err_sys, else 0 */
    char msg[HP_ERR_MSG_MAX];
} hp_err;

#define HP_ERR_INIT                                                                                \
    {                                                                                              \
        0, 0,                                                                                      \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* Fill err with code and a printf-style message. Always returns -1. */
int hp_err_set(hp_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Like hp_err_set, appending ": strerror(errno)" (errno read on entry). Returns -1. */
int hp_err_sys(hp_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with "context: " keeping the code. Returns -1. */
int hp_err_wrap(hp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reset to no error. */
void hp_err_clear(hp_err *err);

/* Name of a gRPC status code ("INVALID_ARGUMENT"), static storage. */
const char *hp_status_name(int code);

#endif
