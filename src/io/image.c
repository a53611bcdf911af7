/* io/image.c — PNG writing and reading with libpng (io/image.h). */
#include "io/image.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* libpng reports errors through longjmp; the message is kept here for the sl_err. */
typedef struct png_errctx {
    char msg[256];
} png_errctx;

static void on_error(png_structp png, png_const_charp msg) {
    png_errctx *c = png_get_error_ptr(png);
    if (c) snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

sl_status sl_mkdirs_for(const char *path, sl_err *err) {
    size_t n = strlen(path);
    char *buf = malloc(n + 1);
    if (!buf) return sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory");
    memcpy(buf, path, n + 1);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) {
        free(buf);
        return SL_OK;
    }
    *slash = 0;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                sl_status st = sl_err_set(err, SL_ERR_IO, "cannot create directory '%s': %s", buf,
                                          strerror(errno));
                free(buf);
                return st;
            }
            *p = c;
            if (!c) break;
        }
    }
    free(buf);
    return SL_OK;
}

sl_status sl_png_write(const char *path, const uint8_t *rgb, int w, int h,
                       const sl_image_text *text, int n_text, sl_err *err) {
    if (w <= 0 || h <= 0 || !rgb)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "png: empty image %dx%d for '%s'", w, h, path);
    for (int i = 0; i < n_text; i++) {
        size_t kl = strlen(text[i].key);
        if (kl < 1 || kl > 79)
            return sl_err_set(err, SL_ERR_INVALID_ARG, "png: text keyword of %zu bytes", kl);
    }
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 9);
    png_textp chunks = calloc((size_t)(n_text > 0 ? n_text : 1), sizeof *chunks);
    if (!tmp || !chunks) {
        free(tmp);
        free(chunks);
        return sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory");
    }
    snprintf(tmp, pl + 9, "%s.partial", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        sl_status st = sl_err_set(err, SL_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
        free(tmp);
        free(chunks);
        return st;
    }
    png_errctx ec = {""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ec, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    sl_status st = SL_OK;
    if (!png || !info) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "png: out of memory");
        goto done;
    }
    if (setjmp(png_jmpbuf(png))) {
        st = sl_err_set(err, SL_ERR_IO, "png: writing '%s': %s", path, ec.msg);
        goto done;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int i = 0; i < n_text; i++) {
        chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
        chunks[i].key = (png_charp)text[i].key;
        chunks[i].text = (png_charp)text[i].value;
        chunks[i].text_length = strlen(text[i].value);
    }
    if (n_text > 0) png_set_text(png, info, chunks, n_text);
    png_write_info(png, info); /* IHDR, then the text chunks, before any IDAT */
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)w * 3));
    png_write_end(png, NULL);
done:
    if (png) png_destroy_write_struct(&png, info ? &info : NULL);
    if (fclose(f) != 0 && st == SL_OK)
        st = sl_err_set(err, SL_ERR_IO, "writing '%s': %s", tmp, strerror(errno));
    if (st == SL_OK && rename(tmp, path) != 0)
        st = sl_err_set(err, SL_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path,
                        strerror(errno));
    if (st != SL_OK) remove(tmp);
    free(tmp);
    free(chunks);
    return st;
}

/* Read the whole file; the text chunk `key` (may be NULL) goes to *value. */
static sl_status png_read_all(const char *path, uint8_t **rgb, int *w, int *h, const char *key,
                              char **value, sl_err *err) {
    if (rgb) *rgb = NULL;
    if (value) *value = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sl_err_set(err, SL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
        fclose(f);
        return sl_err_set(err, SL_ERR_FORMAT, "'%s' is not a PNG file", path);
    }
    png_errctx ec = {""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ec, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_infop end = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile pix = NULL;
    png_bytep *volatile rows = NULL;
    sl_status st = SL_OK;
    if (!png || !info || !end) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "png: out of memory");
        goto done;
    }
    if (setjmp(png_jmpbuf(png))) {
        st = sl_err_set(err, SL_ERR_FORMAT, "png: reading '%s': %s", path, ec.msg);
        goto done;
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_set_user_limits(png, 1 << 16, 1 << 16);
    png_read_info(png, info);
    png_uint_32 W = png_get_image_width(png, info), H = png_get_image_height(png, info);
    int ct = png_get_color_type(png, info), bd = png_get_bit_depth(png, info);
    if (bd == 16) png_set_strip_16(png);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && bd < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (ct & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)W * 3) {
        st = sl_err_set(err, SL_ERR_UNSUPPORTED, "png: '%s' does not convert to 8-bit RGB", path);
        goto done;
    }
    pix = malloc((size_t)W * H * 3);
    rows = malloc(sizeof(png_bytep) * H);
    if (!pix || !rows) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "png: out of host memory for %ux%u", W, H);
        goto done;
    }
    for (png_uint_32 y = 0; y < H; y++)
        rows[y] = pix + (size_t)y * W * 3;
    png_read_image(png, rows);
    png_read_end(png, end);
    if (key) {
        png_infop sources[2] = {info, end};
        for (int s = 0; s < 2 && !*value; s++) {
            png_textp t = NULL;
            int n = png_get_text(png, sources[s], &t, NULL);
            for (int i = 0; i < n; i++)
                if (!strcmp(t[i].key, key)) {
                    size_t len = t[i].itxt_length ? t[i].itxt_length : t[i].text_length;
                    *value = malloc(len + 1);
                    if (!*value) break;
                    memcpy(*value, t[i].text, len);
                    (*value)[len] = 0;
                    break;
                }
        }
        if (!*value)
            st = sl_err_set(err, SL_ERR_NOT_FOUND, "'%s' has no '%s' text chunk", path, key);
    }
    if (st == SL_OK && rgb) {
        *rgb = pix;
        pix = NULL;
        *w = (int)W;
        *h = (int)H;
    }
done:
    if (png) png_destroy_read_struct(&png, info ? &info : NULL, end ? &end : NULL);
    free(pix);
    free(rows);
    fclose(f);
    return st;
}

sl_status sl_png_read(const char *path, uint8_t **rgb, int *w, int *h, sl_err *err) {
    return png_read_all(path, rgb, w, h, NULL, NULL, err);
}

sl_status sl_png_read_text(const char *path, const char *key, char **value, sl_err *err) {
    return png_read_all(path, NULL, NULL, NULL, key, value, err);
}
