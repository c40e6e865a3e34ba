/* Conversions between store records and CRI protobuf messages (arena-built). */
#ifndef HP_CRI_CONVERT_H
#define HP_CRI_CONVERT_H

#include <protobuf-c/protobuf-c.h>

#include "api.pb-c.h"
#include "cri/arena.h"
#include "store/store.h"

/* Every protobuf-c map entry message has this layout. */
typedef struct hp_pb_map_entry {
    ProtobufCMessage base;
    char *key;
    char *value;
} hp_pb_map_entry;

/* Build a map-entry array for `m` (entries of type `desc`) in the arena.
 * Returns 0 with *out and *n set (NULL/0 for an empty map), -1 on ENOMEM. */
int hp_cri_map_out(hp_arena *a, const ProtobufCMessageDescriptor *desc, const hp_strmap *m,
                   void ***out, size_t *n);

/* Copy protobuf map entries into a store map. Returns 0 or -1 (ENOMEM). */
int hp_cri_map_in(hp_strmap *m, void *const *entries, size_t n, hp_err *err);

/* Store record -> CRI message, built in the arena. NULL on ENOMEM. */
Runtime__V1__PodSandbox *hp_cri_pod_out(hp_arena *a, const hp_pod_rec *p);
Runtime__V1__Container *hp_cri_ctr_out(hp_arena *a, const hp_ctr_rec *c);
Runtime__V1__Image *hp_cri_image_out(hp_arena *a, const hp_image_rec *im);

#endif
