/* io/image.h — PNG files through libpng: 8-bit RGB images with tEXt chunks.
 *
 * Writing follows what sd.cpp's PNGs look like to readers (specs/cli-server.md §1.12): IHDR, then
 * the text chunks (uncompressed tEXt, keyword then NUL then the raw bytes of the value, UTF-8
 * allowed — PNG says Latin-1, sd.cpp and A1111 write UTF-8), then the image data. The file is
 * written to `<path>.partial` and renamed when complete, so a reader never sees half a file.
 * Reading accepts any PNG libpng decodes and converts it to 8-bit RGB (alpha dropped, palette and
 * grey expanded, 16-bit reduced); text chunks (tEXt, zTXt, iTXt) are returned by keyword. */
#ifndef SL_IO_IMAGE_H
#define SL_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct sl_image_text {
    const char *key;   /* 1–79 Latin-1 characters, no NUL */
    const char *value; /* NUL-terminated */
} sl_image_text;

/* Write rgb [h, w, 3] (row-major) as an 8-bit RGB PNG with n_text tEXt chunks. Parent
 * directories are not created. SL_ERR_IO names the path and the cause. */
sl_status sl_png_write(const char *path, const uint8_t *rgb, int w, int h,
                       const sl_image_text *text, int n_text, sl_err *err);

/* Read a PNG as 8-bit RGB. *rgb is malloc'd (w·h·3 bytes, caller frees). */
sl_status sl_png_read(const char *path, uint8_t **rgb, int *w, int *h, sl_err *err);

/* The value of text chunk `key` of a PNG (first one of that keyword), malloc'd and NUL-terminated
 * (caller frees); SL_ERR_NOT_FOUND when the file has none. */
sl_status sl_png_read_text(const char *path, const char *key, char **value, sl_err *err);

/* Create every missing parent directory of path (mkdir -p of its dirname). */
sl_status sl_mkdirs_for(const char *path, sl_err *err);

#endif
