/* io/mapfile.h — read-only memory mappings of whole files. */
#ifndef SL_IO_MAPFILE_H
#define SL_IO_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct sl_mapfile {
    char *path;          /* owned copy */
    const uint8_t *data; /* NULL for an empty file */
    size_t size;
    int fd;              /* kept open for pread-based readers (residency); -1 when closed */
} sl_mapfile;

/* Map path read-only. Errors name the path and the OS error. */
sl_status sl_mapfile_open(sl_mapfile *m, const char *path, sl_err *err);
void sl_mapfile_close(sl_mapfile *m); /* safe on a zeroed or closed struct */

#endif
