/* io/mapfile.c — read-only mappings of whole files (see mapfile.h). */
#include "io/mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

sl_status sl_mapfile_open(sl_mapfile *m, const char *path, sl_err *err) {
    SL_ASSERT(m && path);
    memset(m, 0, sizeof *m);
    m->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sl_err_set(err, SL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sl_err_set(err, SL_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return sl_err_set(err, SL_ERR_IO, "%s: is a directory, expected a file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sl_err_set(err, SL_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)st.st_size > (unsigned long long)SIZE_MAX) {
        close(fd);
        return sl_err_set(err, SL_ERR_IO, "%s: too large to map (%lld bytes)", path,
                          (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    const uint8_t *data = NULL;
    if (size > 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return sl_err_set(err, SL_ERR_IO, "%s: cannot map %zu bytes: %s", path, size,
                              strerror(e));
        }
        data = p;
    }
    char *copy = strdup(path);
    if (!copy) {
        if (data) munmap((void *)data, size);
        close(fd);
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", path);
    }
    m->path = copy;
    m->data = data;
    m->size = size;
    m->fd = fd;
    return SL_OK;
}

void sl_mapfile_close(sl_mapfile *m) {
    if (!m) return;
    if (m->data && m->size) munmap((void *)m->data, m->size);
    /* fd 0 of a zeroed struct is never ours: path is set exactly when we opened an fd */
    if (m->path && m->fd >= 0) close(m->fd);
    free(m->path);
    m->path = NULL;
    m->data = NULL;
    m->size = 0;
    m->fd = -1;
}
