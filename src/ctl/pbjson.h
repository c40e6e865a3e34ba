/* Generic protobuf-c <-> JSON conversion (jansson), driven by the message
 * descriptors, so that every CRI message can be printed with `-o json` and
 * crictl-style JSON config files can be read into requests.
 *
 * Output: lowerCamelCase field names (as protojson/crictl print them), fields
 * with default values omitted, enums by name, 64-bit integers as JSON numbers,
 * bytes base64, map fields (repeated XxxEntry{key,value}) as JSON objects.
 *
 * Input: snake_case (crictl's config files) or lowerCamelCase names; enums by
 * name or number; integers as numbers or numeric strings; bytes base64; maps
 * as objects; null is skipped.  Unknown fields are errors naming their path.
 */
#ifndef HP_CTL_PBJSON_H
#define HP_CTL_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "util/err.h"

/* Returns a new JSON object (reference owned by the caller: json_decref) or
 * NULL with err (RESOURCE_EXHAUSTED). */
json_t *pbjson_from_message(const ProtobufCMessage *msg, hp_err *err);

/* Returns a new message of type `desc` built from the JSON object `json`,
 * owned by the caller (free with pbjson_free_message), or NULL with err
 * (INVALID_ARGUMENT naming the offending field path, e.g. "metadata.attempt"). */
ProtobufCMessage *pbjson_to_message(const ProtobufCMessageDescriptor *desc, const json_t *json,
                                    hp_err *err);

/* Free a message built by pbjson_to_message (and only such a message: it
 * assumes every string, array and sub-message was malloc'd). NULL is a no-op. */
void pbjson_free_message(ProtobufCMessage *msg);

/* Write the lowerCamelCase form of a snake_case name into buf. */
void pbjson_camel(const char *snake, char *buf, size_t size);

#endif
