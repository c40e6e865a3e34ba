/* hpcri's own administrative service (proto/hpcri.proto): calls that are not
 * part of the CRI, such as importing a local image archive. */
#include "cri/cri_internal.h"

int hp_cri_register_admin(hp_daemon *d, hp_err *err)
{
    (void)d;
    (void)err;
    return 0;
}
