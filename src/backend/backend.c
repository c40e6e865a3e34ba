/* Backend factory: the one place that maps a handler type to an
 * implementation. */
#include "backend/backend.h"

#include "backend/oci/oci.h"
#include "backend/remote/remote.h"
#include "backend/slurm/slurm.h"
#include "config/config.h"

hp_backend *hp_backend_new(const struct hp_handler_config *h, const hp_backend_env *env,
                           hp_err *err)
{
    switch (h->type) {
    case HP_BACKEND_OCI:
    case HP_BACKEND_CHARLIECLOUD:
        return hp_oci_backend_new(h, env, err);
    case HP_BACKEND_SLURM:
        return hp_slurm_backend_new(h, env, err);
    case HP_BACKEND_REMOTE:
        return hp_remote_backend_new(h, env, err);
    default:
        hp_err_set(err, HP_UNIMPLEMENTED,
                   "runtime handler \"%s\" uses the %s backend, which this hpcri cannot run "
                   "pods with yet",
                   h->name, hp_backend_type_name(h->type));
        return NULL;
    }
}
