/* Local image import: an OCI image layout directory, an OCI archive (a tar
 * of a layout, optionally gzip/zstd compressed) or a `docker save` tarball.
 *
 * Archives are untrusted: entry names are checked (absolute names and ".."
 * components reject the whole archive), links and special files in the
 * archive are ignored, nothing is extracted by name: regular files go into
 * the content store under their own sha256, small JSON documents into
 * memory.  Every blob named by digest must hash to it, every layer must
 * unpack to its config diff_id, exactly like a pull.
 */
#ifndef HP_IMAGE_IMPORT_H
#define HP_IMAGE_IMPORT_H

#include "config/config.h"
#include "image/service.h"
#include "store/store.h"
#include "util/err.h"

/* Import the image at `path` (absolute).  name (NULL or "" = the archive's
 * own: OCI "org.opencontainers.image.ref.name"/"io.containerd.image.name"
 * annotation, docker RepoTags) becomes the repo tag after normalisation.
 * platform ("os/arch[/variant]", NULL = linux/amd64) picks from an index with
 * several images.  On success *image_id (malloc'd) and *tags (normalised repo
 * tags given to the image) are owned by the caller (free(),
 * hp_strlist_clear()). */
int hp_image_import(hp_image_service *svc, const char *path, const char *name, const char *platform,
                    char **image_id, hp_strlist *tags, hp_err *err);

#endif
