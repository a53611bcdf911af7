/* models/qwen3/tokenizer.c — byte-level BPE tokenizer (see tokenizer.h for the contract).
 *
 * Layout of a loaded tokenizer:
 *   tokens   every id's bytes in one blob (tok_off[id] .. tok_off[id+1]); ids without a token
 *            (holes between the vocabulary and the added tokens) are empty
 *   pairs    open-addressed hash (left id, right id) → merge rank; merge_result[rank] is the id
 *            of the merged token (its bytes are left's bytes + right's bytes)
 *   added    the added tokens, longest first, for literal leftmost-longest matching
 *   re       the compiled pre-split regex */
#include "models/qwen3/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

/* Describes data/qwen3/qwen3.tokbin; included by a path relative to this file so that a
 * regenerated blob rebuilds this object (the compiler's -MMD tracks the header, not .incbin). */
#include "../../../data/qwen3/qwen3_tokbin.h"

/* The shipped vocabulary, embedded at build time. The path is relative to the repository root,
 * where make runs the compiler. */
__asm__(".pushsection .rodata\n"
        ".balign 16\n"
        ".globl sl_tok_qwen3_blob\n"
        ".hidden sl_tok_qwen3_blob\n"
        "sl_tok_qwen3_blob:\n"
        ".incbin \"data/qwen3/qwen3.tokbin\"\n"
        ".globl sl_tok_qwen3_blob_end\n"
        ".hidden sl_tok_qwen3_blob_end\n"
        "sl_tok_qwen3_blob_end:\n"
        ".byte 0\n"
        ".popsection\n");
extern const unsigned char sl_tok_qwen3_blob[];
extern const unsigned char sl_tok_qwen3_blob_end[];

typedef struct tok_added {
    int32_t id;
    bool special;
    uint32_t len;
    const uint8_t *text; /* points into sl_tok.bytes */
} tok_added;

typedef struct tok_pair {
    uint32_t left, right; /* left == UINT32_MAX: empty slot */
    uint32_t rank;
} tok_pair;

struct sl_tok {
    int32_t n_vocab;   /* regular tokens: ids 0 .. n_vocab-1 */
    int32_t n_ids;     /* max id + 1 */
    uint32_t *tok_off; /* (n_ids + 1) offsets into bytes */
    uint8_t *bytes;
    int32_t byte_id[256]; /* id of each single-byte token */

    uint32_t n_merges;
    int32_t *merge_result; /* (n_merges) */
    tok_pair *pairs;       /* (pair_mask + 1) */
    uint32_t pair_mask;

    tok_added *added; /* (n_added), longest first */
    int n_added;
    uint8_t added_first[256]; /* 1 where some added token starts with that byte */

    bool nfc;
    char *pattern; /* as given (before the \s rewrite) */
    pcre2_code *re;
};

/* ---------------------------------------------------------------------------------------------
 * Small helpers */

static uint64_t tok_fnv_init(void) {
    return 0xCBF29CE484222325ull;
}
static uint64_t tok_fnv(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

static uint32_t tok_pair_hash(uint32_t l, uint32_t r) {
    uint64_t k = ((uint64_t)l << 32 | r) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(k >> 32);
}

/* Rank of the pair (l, r), or UINT32_MAX when there is no such merge. */
static inline uint32_t tok_pair_rank(const sl_tok *t, uint32_t l, uint32_t r) {
    uint32_t i = tok_pair_hash(l, r) & t->pair_mask;
    for (;;) {
        const tok_pair *p = &t->pairs[i];
        if (p->left == UINT32_MAX) return UINT32_MAX;
        if (p->left == l && p->right == r) return p->rank;
        i = (i + 1) & t->pair_mask;
    }
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 if invalid (overlong, surrogate, > U+10FFFF,
 * truncated). */
static size_t tok_utf8_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* GPT-2's byte-level alphabet: byte b is written as code point tok_b2u(b); printable Latin-1
 * bytes map to themselves, the other 68 to U+0100.. in byte order. */
static void tok_byte_unicode_map(uint16_t b2u[256], int16_t u2b[324]) {
    int n = 0;
    for (int i = 0; i < 324; i++)
        u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        b2u[b] = keep ? (uint16_t)b : (uint16_t)(256 + n++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Building a tokenizer. The loaders fill a tok_build (token bytes per id, merges as id pairs,
 * added tokens, pattern); tok_finish turns it into an sl_tok. */

typedef struct tok_build {
    int32_t n_vocab;
    uint32_t *off; /* (n_vocab + 1) */
    uint8_t *bytes;
    size_t nbytes, cap_bytes;
    uint32_t n_merges;
    uint32_t *merges; /* (n_merges, 2) */
    int n_added;
    struct {
        int32_t id;
        bool special;
        char *text;
    } * added;
    bool nfc;
    char *pattern;
} tok_build;

static void tok_build_free(tok_build *b) {
    free(b->off);
    free(b->bytes);
    free(b->merges);
    for (int i = 0; i < b->n_added; i++)
        free(b->added[i].text);
    free(b->added);
    free(b->pattern);
    memset(b, 0, sizeof *b);
}

static bool tok_build_push_bytes(tok_build *b, const uint8_t *p, size_t n) {
    if (b->nbytes + n > b->cap_bytes) {
        size_t cap = b->cap_bytes ? b->cap_bytes * 2 : 1 << 20;
        while (cap < b->nbytes + n)
            cap *= 2;
        uint8_t *nb = realloc(b->bytes, cap);
        if (!nb) return false;
        b->bytes = nb, b->cap_bytes = cap;
    }
    if (n) memcpy(b->bytes + b->nbytes, p, n);
    b->nbytes += n;
    return true;
}

/* bytes → id map over a build's vocabulary (transient, used while loading). */
typedef struct tok_strmap {
    int32_t *slot; /* -1: empty */
    uint32_t mask;
} tok_strmap;

static sl_status tok_strmap_init(tok_strmap *m, const tok_build *b, const char *what, sl_err *err) {
    uint32_t cap = 1024;
    while (cap < (uint32_t)b->n_vocab * 2u)
        cap *= 2;
    m->slot = malloc((size_t)cap * sizeof *m->slot);
    if (!m->slot)
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory for the vocabulary map", what);
    memset(m->slot, 0xFF, (size_t)cap * sizeof *m->slot);
    m->mask = cap - 1;
    for (int32_t id = 0; id < b->n_vocab; id++) {
        const uint8_t *p = b->bytes + b->off[id];
        size_t n = b->off[id + 1] - b->off[id];
        uint32_t i = (uint32_t)tok_fnv(tok_fnv_init(), p, n) & m->mask;
        while (m->slot[i] >= 0) {
            int32_t o = m->slot[i];
            if (b->off[o + 1] - b->off[o] == n && memcmp(b->bytes + b->off[o], p, n) == 0)
                return sl_err_set(
                    err, SL_ERR_FORMAT,
                    "%s: tokens %d and %d have the same bytes; the vocabulary is corrupt", what, o,
                    id);
            i = (i + 1) & m->mask;
        }
        m->slot[i] = id;
    }
    return SL_OK;
}

/* id of the token whose bytes are a + b (either part may be empty), or -1. */
static int32_t tok_strmap_find(const tok_strmap *m, const tok_build *b, const uint8_t *pa,
                               size_t na, const uint8_t *pb, size_t nb) {
    uint32_t i = (uint32_t)tok_fnv(tok_fnv(tok_fnv_init(), pa, na), pb, nb) & m->mask;
    while (m->slot[i] >= 0) {
        int32_t o = m->slot[i];
        const uint8_t *q = b->bytes + b->off[o];
        if (b->off[o + 1] - b->off[o] == na + nb && (na == 0 || memcmp(q, pa, na) == 0) &&
            (nb == 0 || memcmp(q + na, pb, nb) == 0))
            return o;
        i = (i + 1) & m->mask;
    }
    return -1;
}

/* Rewrite \s and \S to Oniguruma's meaning (Unicode White_Space), see tokenizer.h. */
#define TOK_WS                                                                                     \
    "\\t\\n\\x0B\\f\\r "                                                                           \
    "\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

static sl_status tok_rewrite_pattern(const char *pat, char **out, const char *what, sl_err *err) {
    size_t n = strlen(pat), cap = n * (sizeof(TOK_WS) + 4) + 1;
    char *o = malloc(cap), *w = o;
    if (!o) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < n) {
            char d = pat[++i];
            if (d == 's' || d == 'S') {
                if (in_class && d == 'S') {
                    free(o);
                    return sl_err_set(
                        err, SL_ERR_UNSUPPORTED,
                        "%s: the pre-tokenizer regex uses \\S inside a character class, "
                        "which sluice cannot translate to Oniguruma's meaning",
                        what);
                }
                w += sprintf(w, in_class ? "%s" : (d == 's' ? "[%s]" : "[^%s]"), TOK_WS);
            } else {
                *w++ = '\\';
                *w++ = d;
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            *w++ = c;
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && pat[i + 1] == '^') *w++ = pat[++i];
            if (i + 1 < n && pat[i + 1] == ']') *w++ = pat[++i];
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && pat[i + 1] == ':') { /* [:alpha:] */
            const char *end = strstr(pat + i + 2, ":]");
            size_t k = end ? (size_t)(end - pat) + 2 : n;
            memcpy(w, pat + i, k - i);
            w += k - i;
            i = k - 1;
            continue;
        }
        if (in_class && c == ']') in_class = false;
        *w++ = c;
    }
    *w = 0;
    *out = o;
    return SL_OK;
}

static int tok_added_cmp(const void *a, const void *b) {
    const tok_added *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static sl_status tok_finish(tok_build *b, const char *what, sl_tok **out, sl_err *err) {
    sl_status st = SL_OK;
    tok_strmap map = {0};
    int32_t *owner = NULL;
    sl_tok *t = calloc(1, sizeof *t);
    if (!t) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
    if (b->n_vocab < 256) {
        st =
            sl_err_set(err, SL_ERR_FORMAT,
                       "%s: %d tokens; a byte-level vocabulary has at least 256", what, b->n_vocab);
        goto fail;
    }
    if ((st = tok_strmap_init(&map, b, what, err)) != SL_OK) goto fail;

    for (int c = 0; c < 256; c++) {
        uint8_t byte = (uint8_t)c;
        t->byte_id[c] = tok_strmap_find(&map, b, &byte, 1, NULL, 0);
        if (t->byte_id[c] < 0) {
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: no token for byte 0x%02x; not a byte-level BPE vocabulary", what,
                            c);
            goto fail;
        }
    }

    /* merges → pair hash and results */
    t->n_merges = b->n_merges;
    uint32_t cap = 1024;
    while (cap < b->n_merges * 2u)
        cap *= 2;
    t->pair_mask = cap - 1;
    t->pairs = malloc((size_t)cap * sizeof *t->pairs);
    t->merge_result = malloc((size_t)(b->n_merges ? b->n_merges : 1) * sizeof *t->merge_result);
    if (!t->pairs || !t->merge_result) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory for %u merges", what, b->n_merges);
        goto fail;
    }
    memset(t->pairs, 0xFF, (size_t)cap * sizeof *t->pairs);
    for (uint32_t r = 0; r < b->n_merges; r++) {
        uint32_t l = b->merges[2 * r], rr = b->merges[2 * r + 1];
        if (l >= (uint32_t)b->n_vocab || rr >= (uint32_t)b->n_vocab) {
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: merge %u names token %u, beyond the %d-token vocabulary", what, r,
                            l >= (uint32_t)b->n_vocab ? l : rr, b->n_vocab);
            goto fail;
        }
        int32_t res = tok_strmap_find(&map, b, b->bytes + b->off[l], b->off[l + 1] - b->off[l],
                                      b->bytes + b->off[rr], b->off[rr + 1] - b->off[rr]);
        if (res < 0) {
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: merge %u (%u + %u) makes a token missing from the vocabulary",
                            what, r, l, rr);
            goto fail;
        }
        t->merge_result[r] = res;
        uint32_t i = tok_pair_hash(l, rr) & t->pair_mask;
        while (t->pairs[i].left != UINT32_MAX) {
            if (t->pairs[i].left == l && t->pairs[i].right == rr)
                break; /* duplicate: first rank wins */
            i = (i + 1) & t->pair_mask;
        }
        if (t->pairs[i].left == UINT32_MAX) t->pairs[i] = (tok_pair){l, rr, r};
    }

    /* ids and bytes, added tokens appended after the vocabulary (at most 2^20 ids beyond it: a
     * sane file has a few hundred) */
    int32_t n_ids = b->n_vocab;
    for (int i = 0; i < b->n_added; i++) {
        if (b->added[i].id < 0 || b->added[i].id >= b->n_vocab + (1 << 20)) {
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: added token '%s' has id %d (vocabulary: %d tokens)", what,
                            b->added[i].text, b->added[i].id, b->n_vocab);
            goto fail;
        }
        if (!b->added[i].text[0]) {
            st =
                sl_err_set(err, SL_ERR_FORMAT, "%s: added token %d is empty", what, b->added[i].id);
            goto fail;
        }
        if (b->added[i].id >= n_ids) n_ids = b->added[i].id + 1;
    }
    t->n_vocab = b->n_vocab;
    t->n_ids = n_ids;
    size_t added_bytes = 0;
    for (int i = 0; i < b->n_added; i++)
        added_bytes += strlen(b->added[i].text);
    t->tok_off = calloc((size_t)n_ids + 1, sizeof *t->tok_off);
    t->bytes = malloc(b->nbytes + added_bytes + 1);
    t->added = calloc((size_t)(b->n_added ? b->n_added : 1), sizeof *t->added);
    owner = malloc(((size_t)(n_ids - b->n_vocab) + 1) * sizeof *owner);
    if (!t->tok_off || !t->bytes || !t->added || !owner) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
        goto fail;
    }
    if (b->nbytes + added_bytes > UINT32_MAX) {
        st = sl_err_set(err, SL_ERR_UNSUPPORTED, "%s: vocabulary text is larger than 4 GiB", what);
        goto fail;
    }
    /* which added token owns each id beyond the vocabulary (-1: none, a hole) */
    for (int32_t k = 0; k < n_ids - b->n_vocab; k++)
        owner[k] = -1;
    for (int i = 0; i < b->n_added; i++) {
        int32_t id = b->added[i].id;
        if (id < b->n_vocab) continue;
        if (owner[id - b->n_vocab] >= 0) {
            st = sl_err_set(err, SL_ERR_FORMAT, "%s: two added tokens have id %d", what, id);
            goto fail;
        }
        owner[id - b->n_vocab] = i;
    }
    memcpy(t->bytes, b->bytes, b->nbytes);
    memcpy(t->tok_off, b->off, ((size_t)b->n_vocab + 1) * sizeof *t->tok_off);
    /* Added tokens may reuse a vocabulary id (checked below to have the same bytes) or lie
     * beyond it; ids in between stay empty. */
    uint32_t pos = (uint32_t)b->nbytes;
    for (int32_t id = b->n_vocab; id < n_ids; id++) {
        t->tok_off[id] = pos;
        int32_t i = owner[id - b->n_vocab];
        if (i >= 0) {
            size_t n = strlen(b->added[i].text);
            memcpy(t->bytes + pos, b->added[i].text, n);
            pos += (uint32_t)n;
        }
    }
    t->tok_off[n_ids] = pos;
    for (int i = 0; i < b->n_added; i++) {
        int32_t id = b->added[i].id;
        size_t n = strlen(b->added[i].text);
        for (int j = 0; j < t->n_added; j++)
            if (t->added[j].len == n && memcmp(t->added[j].text, b->added[i].text, n) == 0) {
                st = sl_err_set(err, SL_ERR_FORMAT, "%s: added token '%s' appears twice", what,
                                b->added[i].text);
                goto fail;
            }
        if (id < b->n_vocab && (t->tok_off[id + 1] - t->tok_off[id] != n ||
                                memcmp(t->bytes + t->tok_off[id], b->added[i].text, n) != 0)) {
            st = sl_err_set(err, SL_ERR_UNSUPPORTED,
                            "%s: added token '%s' reuses vocabulary id %d with different text",
                            what, b->added[i].text, id);
            goto fail;
        }
        tok_added *a = &t->added[t->n_added++];
        a->id = id;
        a->special = b->added[i].special;
        a->len = (uint32_t)n;
        a->text = t->bytes + t->tok_off[id];
        t->added_first[a->text[0]] = 1;
    }
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, tok_added_cmp);

    /* the pre-split regex */
    t->nfc = b->nfc;
    t->pattern = b->pattern, b->pattern = NULL;
    if (t->pattern) {
        char *pat = NULL;
        if ((st = tok_rewrite_pattern(t->pattern, &pat, what, err)) != SL_OK) goto fail;
        int ecode;
        PCRE2_SIZE eoff;
        t->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ecode,
                              &eoff, NULL);
        free(pat);
        if (!t->re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ecode, msg, sizeof msg);
            st = sl_err_set(
                err, SL_ERR_UNSUPPORTED,
                "%s: PCRE2 cannot compile the pre-tokenizer regex /%s/: %s (near offset %zu)", what,
                t->pattern, (const char *)msg, (size_t)eoff);
            goto fail;
        }
        (void)pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    }
    free(map.slot);
    free(owner);
    *out = t;
    return SL_OK;
fail:
    free(map.slot);
    free(owner);
    sl_tok_free(t);
    return st;
}

void sl_tok_free(sl_tok *t) {
    if (!t) return;
    free(t->tok_off);
    free(t->bytes);
    free(t->merge_result);
    free(t->pairs);
    free(t->added);
    free(t->pattern);
    if (t->re) pcre2_code_free(t->re);
    free(t);
}

/* ---------------------------------------------------------------------------------------------
 * The compact form */

typedef struct tok_reader {
    const uint8_t *p;
    size_t n, pos;
} tok_reader;

static bool tok_rd(tok_reader *r, void *dst, size_t n) {
    if (r->n - r->pos < n) return false;
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return true;
}
static bool tok_rd_u32(tok_reader *r, uint32_t *v) {
    uint8_t b[4];
    if (!tok_rd(r, b, 4)) return false;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

sl_status sl_tok_load_blob(const void *data, size_t size, const char *what, sl_tok **out,
                           sl_err *err) {
    *out = NULL;
    tok_build b = {0};
    sl_status st;
    tok_reader r = {data, size, 0};
    char magic[8];
    uint32_t version, flags, n_vocab, n_merges, n_added, pat_len;
    if (!tok_rd(&r, magic, 8) || memcmp(magic, "SLTOKBPE", 8) != 0)
        return sl_err_set(err, SL_ERR_FORMAT, "%s: not a sluice tokenizer file (bad magic)", what);
    if (!tok_rd_u32(&r, &version) || !tok_rd_u32(&r, &flags) || !tok_rd_u32(&r, &n_vocab) ||
        !tok_rd_u32(&r, &n_merges) || !tok_rd_u32(&r, &n_added) || !tok_rd_u32(&r, &pat_len))
        return sl_err_set(err, SL_ERR_FORMAT, "%s: truncated header", what);
    if (version != 1)
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "%s: tokenizer format version %u (this build reads 1)", what, version);
    if (flags & ~1u)
        return sl_err_set(err, SL_ERR_UNSUPPORTED, "%s: unknown flags 0x%x", what, flags);
    /* every token takes >= 1 byte, every merge 8, every added token 6: bound the counts by size */
    if (n_vocab > size || n_vocab > (1u << 30) || n_merges > size / 8 || n_added > size / 6 ||
        pat_len > size)
        return sl_err_set(err, SL_ERR_FORMAT, "%s: counts exceed the file size (corrupt header)",
                          what);
    b.n_vocab = (int32_t)n_vocab;
    b.nfc = flags & 1;
    if (pat_len) {
        b.pattern = malloc(pat_len + 1);
        if (!b.pattern) goto oom;
        if (!tok_rd(&r, b.pattern, pat_len)) goto trunc;
        b.pattern[pat_len] = 0;
        if (strlen(b.pattern) != pat_len) {
            st = sl_err_set(err, SL_ERR_FORMAT, "%s: the regex contains a NUL byte", what);
            goto fail;
        }
    }
    b.off = malloc(((size_t)n_vocab + 1) * sizeof *b.off);
    if (!b.off) goto oom;
    for (uint32_t i = 0; i < n_vocab; i++) {
        uint8_t len;
        if (!tok_rd(&r, &len, 1) || r.n - r.pos < len) goto trunc;
        b.off[i] = (uint32_t)b.nbytes;
        if (!tok_build_push_bytes(&b, r.p + r.pos, len)) goto oom;
        r.pos += len;
    }
    b.off[n_vocab] = (uint32_t)b.nbytes;
    b.n_merges = n_merges;
    b.merges = malloc(((size_t)n_merges * 2 + 1) * sizeof *b.merges);
    if (!b.merges) goto oom;
    for (uint32_t i = 0; i < 2 * n_merges; i++)
        if (!tok_rd_u32(&r, &b.merges[i])) goto trunc;
    b.added = calloc(n_added + 1, sizeof *b.added);
    if (!b.added) goto oom;
    for (uint32_t i = 0; i < n_added; i++) {
        uint32_t id;
        uint8_t special, len;
        if (!tok_rd_u32(&r, &id) || !tok_rd(&r, &special, 1) || !tok_rd(&r, &len, 1) ||
            r.n - r.pos < len)
            goto trunc;
        b.added[i].id = id > INT32_MAX ? -1 : (int32_t)id;
        b.added[i].special = special != 0;
        b.added[i].text = malloc((size_t)len + 1);
        if (!b.added[i].text) goto oom;
        b.n_added++;
        memcpy(b.added[i].text, r.p + r.pos, len);
        b.added[i].text[len] = 0;
        r.pos += len;
        if (strlen(b.added[i].text) != len || len == 0) {
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: added token %u is empty or contains a NUL byte", what, i);
            goto fail;
        }
    }
    if (r.pos != r.n) {
        st = sl_err_set(err, SL_ERR_FORMAT, "%s: %zu unexpected bytes after the added tokens", what,
                        r.n - r.pos);
        goto fail;
    }
    st = tok_finish(&b, what, out, err);
    tok_build_free(&b);
    return st;
trunc:
    st = sl_err_set(err, SL_ERR_FORMAT, "%s: truncated at byte %zu of %zu", what, r.pos, r.n);
    goto fail;
oom:
    st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
fail:
    tok_build_free(&b);
    return st;
}

sl_status sl_tok_load_builtin(sl_tok **out, sl_err *err) {
    size_t size = (size_t)(sl_tok_qwen3_blob_end - sl_tok_qwen3_blob);
    if (size != SL_TOK_QWEN3_BLOB_SIZE)
        return sl_err_set(err, SL_ERR_INTERNAL,
                          "built-in Qwen3 vocabulary is %zu bytes, expected %llu: rebuild sluice "
                          "(data/qwen3/qwen3.tokbin and qwen3_tokbin.h disagree)",
                          size, SL_TOK_QWEN3_BLOB_SIZE);
    return sl_tok_load_blob(sl_tok_qwen3_blob, size, "built-in Qwen3 vocabulary", out, err);
}

/* ---------------------------------------------------------------------------------------------
 * tokenizer.json */

/* Byte-level string (GPT-2 alphabet) → raw bytes appended to b. false if a character is outside
 * the alphabet. */
static bool tok_push_bytelevel(tok_build *b, const int16_t u2b[324], const char *s) {
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0 || cp < 0 || cp >= 324 || u2b[cp] < 0) return false;
        uint8_t byte = (uint8_t)u2b[cp];
        if (!tok_build_push_bytes(b, &byte, 1)) return false;
        i += (size_t)k;
    }
    return true;
}

static bool tok_json_true(const cJSON *o, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static sl_status tok_json_pretok(const cJSON *pre, tok_build *b, const char *what, sl_err *err) {
    const cJSON *split = NULL, *bl = NULL;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (!cJSON_IsString(type)) goto unsupported;
    if (strcmp(type->valuestring, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
        if (cJSON_GetArraySize(list) != 2) goto unsupported;
        split = cJSON_GetArrayItem(list, 0);
        bl = cJSON_GetArrayItem(list, 1);
    } else
        goto unsupported;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(split, "type");
    const cJSON *bt = cJSON_GetObjectItemCaseSensitive(bl, "type");
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(split, "behavior");
    const cJSON *rx = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(split, "pattern"), "Regex");
    if (!cJSON_IsString(st) || strcmp(st->valuestring, "Split") != 0 || !cJSON_IsString(beh) ||
        strcmp(beh->valuestring, "Isolated") != 0 || tok_json_true(split, "invert") ||
        !cJSON_IsString(rx) || !cJSON_IsString(bt) || strcmp(bt->valuestring, "ByteLevel") != 0 ||
        tok_json_true(bl, "add_prefix_space") || tok_json_true(bl, "use_regex"))
        goto unsupported;
    b->pattern = strdup(rx->valuestring);
    if (!b->pattern) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
    return SL_OK;
unsupported:
    return sl_err_set(
        err, SL_ERR_UNSUPPORTED,
        "%s: pre_tokenizer is not Sequence[Split(Regex, Isolated), ByteLevel(add_prefix_space="
        "false, use_regex=false)] (the Qwen2/Qwen3 form); sluice supports only that one",
        what);
}

static sl_status tok_json_build(const cJSON *root, tok_build *b, const char *what, sl_err *err) {
    uint16_t b2u[256];
    int16_t u2b[324];
    tok_byte_unicode_map(b2u, u2b);
    tok_strmap map = {0};
    sl_status st = SL_OK;

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsObject(model) ||
        (mtype && (!cJSON_IsString(mtype) || strcmp(mtype->valuestring, "BPE") != 0)))
        return sl_err_set(err, SL_ERR_UNSUPPORTED, "%s: model.type is not \"BPE\"", what);
    static const char *const unsupported_true[] = {"byte_fallback", "ignore_merges", "fuse_unk"};
    for (size_t i = 0; i < SL_ARRAY_LEN(unsupported_true); i++)
        if (tok_json_true(model, unsupported_true[i]))
            return sl_err_set(err, SL_ERR_UNSUPPORTED,
                              "%s: model.%s is true; sluice's BPE does not implement it", what,
                              unsupported_true[i]);
    static const char *const must_be_null[] = {"dropout", "unk_token"};
    for (size_t i = 0; i < SL_ARRAY_LEN(must_be_null); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, must_be_null[i]);
        if (v && !cJSON_IsNull(v))
            return sl_err_set(err, SL_ERR_UNSUPPORTED,
                              "%s: model.%s is set; sluice's BPE does not implement it", what,
                              must_be_null[i]);
    }
    static const char *const must_be_empty[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (size_t i = 0; i < SL_ARRAY_LEN(must_be_empty); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, must_be_empty[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !v->valuestring[0]))
            return sl_err_set(err, SL_ERR_UNSUPPORTED,
                              "%s: model.%s is set; sluice's BPE does not implement it", what,
                              must_be_empty[i]);
    }

    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) {
        const cJSON *nt = cJSON_GetObjectItemCaseSensitive(norm, "type");
        if (!cJSON_IsString(nt) || strcmp(nt->valuestring, "NFC") != 0)
            return sl_err_set(err, SL_ERR_UNSUPPORTED,
                              "%s: normalizer is not NFC or null; sluice supports only those",
                              what);
        b->nfc = true;
    }
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (!pre || cJSON_IsNull(pre))
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "%s: no pre_tokenizer; sluice needs the byte-level one", what);
    if ((st = tok_json_pretok(pre, b, what, err)) != SL_OK) return st;

    /* vocab: {"token": id}, ids must be dense 0..n-1 */
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab))
        return sl_err_set(err, SL_ERR_FORMAT, "%s: model.vocab is not an object", what);
    int n = cJSON_GetArraySize(vocab);
    const char **by_id = calloc((size_t)n + 1, sizeof *by_id);
    b->off = malloc(((size_t)n + 1) * sizeof *b->off);
    if (!by_id || !b->off) {
        free(by_id);
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
    }
    for (const cJSON *e = vocab->child; e; e = e->next) {
        double d = e->valuedouble;
        if (!cJSON_IsNumber(e) || d < 0 || d >= n || d != (double)(int)d || by_id[(int)d]) {
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: model.vocab entry '%s' has id %g; ids must be 0..%d, each once",
                            what, e->string, d, n - 1);
            goto done;
        }
        by_id[(int)d] = e->string;
    }
    b->n_vocab = n;
    for (int id = 0; id < n; id++) {
        b->off[id] = (uint32_t)b->nbytes;
        if (!tok_push_bytelevel(b, u2b, by_id[id])) {
            st = sl_err_set(
                err, SL_ERR_FORMAT,
                "%s: vocab token %d '%s' has a character outside the byte-level alphabet", what, id,
                by_id[id]);
            goto done;
        }
    }
    b->off[n] = (uint32_t)b->nbytes;
    if ((st = tok_strmap_init(&map, b, what, err)) != SL_OK) goto done;

    /* merges: "a b" or ["a", "b"] */
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) {
        st = sl_err_set(err, SL_ERR_FORMAT, "%s: model.merges is not an array", what);
        goto done;
    }
    int nm = cJSON_GetArraySize(merges);
    b->merges = malloc(((size_t)nm * 2 + 1) * sizeof *b->merges);
    if (!b->merges) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
        goto done;
    }
    tok_build scratch = {0}; /* holds one merge side's bytes at a time */
    int r = 0;
    for (const cJSON *m = merges->child; m; m = m->next, r++) {
        char *sides[2] = {0};
        char *dup = NULL;
        if (cJSON_IsString(m)) {
            dup = strdup(m->valuestring);
            char *sp = dup ? strchr(dup, ' ') : NULL;
            if (sp && !strchr(sp + 1, ' ')) *sp = 0, sides[0] = dup, sides[1] = sp + 1;
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            sides[0] = m->child->valuestring, sides[1] = m->child->next->valuestring;
        }
        for (int s = 0; s < 2 && sides[0]; s++) {
            scratch.nbytes = 0;
            int32_t id = -1;
            if (tok_push_bytelevel(&scratch, u2b, sides[s]))
                id = tok_strmap_find(&map, b, scratch.bytes, scratch.nbytes, NULL, 0);
            if (id < 0) {
                st = sl_err_set(err, SL_ERR_FORMAT,
                                "%s: merge %d names '%s', which is not in the vocabulary", what, r,
                                sides[s]);
                break;
            }
            b->merges[2 * r + s] = (uint32_t)id;
        }
        if (!sides[0] && st == SL_OK)
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", what, r);
        free(dup);
        if (st != SL_OK) break;
    }
    free(scratch.bytes);
    if (st != SL_OK) goto done;
    b->n_merges = (uint32_t)nm;

    /* added tokens */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int na = cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
    b->added = calloc((size_t)na + 1, sizeof *b->added);
    if (!b->added) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
        goto done;
    }
    for (int i = 0; i < na; i++) {
        const cJSON *a = cJSON_GetArrayItem(added, i);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content) || id->valuedouble < 0 ||
            id->valuedouble > (1 << 30) || id->valuedouble != (double)(int)id->valuedouble) {
            st = sl_err_set(err, SL_ERR_FORMAT, "%s: added_tokens[%d] lacks a valid id or content",
                            what, i);
            goto done;
        }
        static const char *const flags[] = {"lstrip", "rstrip", "single_word", "normalized"};
        for (size_t k = 0; k < SL_ARRAY_LEN(flags); k++)
            if (tok_json_true(a, flags[k])) {
                st = sl_err_set(
                    err, SL_ERR_UNSUPPORTED,
                    "%s: added token '%s' sets %s=true, which sluice does not implement; use the "
                    "built-in vocabulary",
                    what, content->valuestring, flags[k]);
                goto done;
            }
        b->added[i].id = id->valueint;
        b->added[i].special = tok_json_true(a, "special");
        b->added[i].text = strdup(content->valuestring);
        if (!b->added[i].text) {
            st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
            goto done;
        }
        b->n_added = i + 1;
    }
done:
    free(by_id);
    free(map.slot);
    return st;
}

sl_status sl_tok_load_json(const char *path, sl_tok **out, sl_err *err) {
    *out = NULL;
    tok_build b = {0};
    cJSON *root = NULL;
    char *text = NULL;
    sl_status st;
    FILE *f = fopen(path, "rb");
    if (!f) return sl_err_set(err, SL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return sl_err_set(err, SL_ERR_IO, "%s: cannot determine the size: %s", path,
                          strerror(errno));
    }
    text = malloc((size_t)size + 1);
    if (!text) {
        fclose(f);
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory for %ld bytes", path, size);
    }
    size_t got = fread(text, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        st = sl_err_set(err, SL_ERR_IO, "%s: short read (%zu of %ld bytes)", path, got, size);
        goto fail;
    }
    text[size] = 0;
    root = cJSON_ParseWithLength(text, (size_t)size);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        st = sl_err_set(err, SL_ERR_FORMAT, "%s: invalid JSON near byte %ld", path,
                        e && e >= text && e <= text + size ? (long)(e - text) : -1L);
        goto fail;
    }
    free(text), text = NULL;
    if ((st = tok_json_build(root, &b, path, err)) != SL_OK) goto fail;
    cJSON_Delete(root), root = NULL;
    st = tok_finish(&b, path, out, err);
fail:
    tok_build_free(&b);
    cJSON_Delete(root);
    free(text);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding */

typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;

static bool tok_ids_push(tok_ids *o, int32_t id) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *nv = realloc(o->v, cap * sizeof *nv);
        if (!nv) return false;
        o->v = nv, o->cap = cap;
    }
    o->v[o->n++] = id;
    return true;
}

/* Per-call scratch for BPE over one piece of up to `cap` bytes. */
typedef struct tok_scratch {
    int32_t *id, *prev, *next; /* (cap) symbol list */
    uint64_t *heap;            /* (3 * cap) (rank << 32 | position) */
    size_t cap;
} tok_scratch;

static bool tok_scratch_reserve(tok_scratch *s, size_t n) {
    if (n <= s->cap) return true;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n)
        cap *= 2;
    free(s->id), free(s->prev), free(s->next), free(s->heap);
    s->id = malloc(cap * sizeof *s->id);
    s->prev = malloc(cap * sizeof *s->prev);
    s->next = malloc(cap * sizeof *s->next);
    s->heap = malloc(3 * cap * sizeof *s->heap);
    s->cap = (s->id && s->prev && s->next && s->heap) ? cap : 0;
    return s->cap != 0;
}

static void tok_scratch_free(tok_scratch *s) {
    free(s->id), free(s->prev), free(s->next), free(s->heap);
}

static void tok_heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t tok_heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (v <= h[c]) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

/* BPE over one piece: start from single bytes, merge the lowest-ranked adjacent pair (leftmost on
 * ties) until no pair has a merge. Stale heap entries are skipped by re-checking the pair. */
static bool tok_bpe(const sl_tok *t, const uint8_t *p, size_t n, tok_scratch *s, tok_ids *out) {
    if (n == 1) return tok_ids_push(out, t->byte_id[p[0]]);
    int32_t *id = s->id, *prev = s->prev, *next = s->next;
    uint64_t *heap = s->heap;
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        id[i] = t->byte_id[p[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t r = tok_pair_rank(t, (uint32_t)id[i], (uint32_t)id[i + 1]);
        if (r != UINT32_MAX) tok_heap_push(heap, &nh, (uint64_t)r << 32 | i);
    }
    while (nh) {
        uint64_t top = tok_heap_pop(heap, &nh);
        uint32_t r = (uint32_t)(top >> 32), i = (uint32_t)top;
        if (id[i] < 0) continue; /* merged into its left neighbour */
        int32_t j = next[i];
        if (j < 0 || tok_pair_rank(t, (uint32_t)id[i], (uint32_t)id[j]) != r) continue;
        id[i] = t->merge_result[r];
        id[j] = -1;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = (int32_t)i;
        if (prev[i] >= 0) {
            uint32_t rl = tok_pair_rank(t, (uint32_t)id[prev[i]], (uint32_t)id[i]);
            if (rl != UINT32_MAX) tok_heap_push(heap, &nh, (uint64_t)rl << 32 | (uint32_t)prev[i]);
        }
        if (next[i] >= 0) {
            uint32_t rr = tok_pair_rank(t, (uint32_t)id[i], (uint32_t)id[next[i]]);
            if (rr != UINT32_MAX) tok_heap_push(heap, &nh, (uint64_t)rr << 32 | i);
        }
    }
    for (int32_t i = 0; i >= 0; i = next[i])
        if (!tok_ids_push(out, id[i])) return false;
    return true;
}

/* True when NFC cannot change s: every code point is below U+0300 (lead bytes < 0xCC), and all
 * of those are NFC-stable and cannot combine with a neighbour below U+0300. */
static bool tok_nfc_trivial(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0xCC) return false;
    return true;
}

/* Normalise, pre-split and BPE one stretch of text that holds no added token. */
static sl_status tok_encode_segment(const sl_tok *t, const uint8_t *s, size_t n,
                                    pcre2_match_data *md, tok_scratch *sc, tok_ids *out,
                                    sl_err *err) {
    uint8_t *norm = NULL;
    sl_status st = SL_OK;
    if (t->nfc && !tok_nfc_trivial(s, n)) {
        utf8proc_ssize_t k =
            utf8proc_map(s, (utf8proc_ssize_t)n, &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (k < 0)
            return sl_err_set(err, SL_ERR_INVALID_ARG, "NFC normalisation failed: %s",
                              utf8proc_errmsg(k));
        s = norm, n = (size_t)k;
    }
    if (!tok_scratch_reserve(sc, n)) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "tokenizer: out of memory for a %zu-byte text", n);
        goto done;
    }
    size_t pos = 0;
    while (pos < n) {
        /* the next non-empty match at or after pos ([ms, me)); without a regex, or without a
         * further match, the rest of the stretch is one piece */
        size_t ms = n, me = n, from = pos;
        while (t->re) {
            int rc = pcre2_match(t->re, s, n, from, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                st = sl_err_set(err, SL_ERR_INTERNAL,
                                "tokenizer: regex match failed at byte %zu: %s", from,
                                (const char *)msg);
                goto done;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (ov[1] > ov[0]) {
                ms = ov[0], me = ov[1];
                break;
            }
            if (ov[0] >= n) break;
            from = ov[0] + tok_utf8_len(s + ov[0], n - ov[0]); /* skip an empty match */
        }
        if (!t->re) ms = pos;
        /* Isolated: the text before a match is a piece of its own */
        if (ms > pos && !tok_bpe(t, s + pos, ms - pos, sc, out)) goto oom;
        if (me > ms && !tok_bpe(t, s + ms, me - ms, sc, out)) goto oom;
        pos = me;
    }
done:
    free(norm);
    return st;
oom:
    st = sl_err_set(err, SL_ERR_OOM_HOST, "tokenizer: out of memory");
    goto done;
}

sl_status sl_tok_encode_n(const sl_tok *t, const char *utf8, size_t len, int32_t **ids, int *n,
                          sl_err *err) {
    *ids = NULL;
    *n = 0;
    const uint8_t *s = (const uint8_t *)utf8;
    for (size_t i = 0; i < len;) {
        size_t k = tok_utf8_len(s + i, len - i);
        if (!k)
            return sl_err_set(
                err, SL_ERR_INVALID_ARG,
                "text is not valid UTF-8 (bad byte 0x%02x at offset %zu); convert it to "
                "UTF-8 first",
                s[i], i);
        i += k;
    }
    if (len > (size_t)INT32_MAX / 2)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "text of %zu bytes is too long to tokenize",
                          len);
    tok_ids out = {0};
    tok_scratch sc = {0};
    pcre2_match_data *md = NULL;
    sl_status st = SL_OK;
    if (!tok_ids_push(&out, 0)) goto oom; /* allocate; a non-NULL array even for no ids */
    out.n = 0;
    if (t->re && !(md = pcre2_match_data_create_from_pattern(t->re, NULL))) goto oom;
    size_t pos = 0;
    while (pos < len) {
        /* the next added token at or after pos: leftmost, then longest (t->added is sorted so) */
        size_t at = len;
        const tok_added *hit = NULL;
        if (t->n_added) {
            for (size_t i = pos; i < len && !hit; i++) {
                if (!t->added_first[s[i]]) continue;
                for (int k = 0; k < t->n_added; k++) {
                    const tok_added *a = &t->added[k];
                    if (a->len <= len - i && memcmp(s + i, a->text, a->len) == 0) {
                        hit = a, at = i;
                        break;
                    }
                }
            }
        }
        if (at > pos &&
            (st = tok_encode_segment(t, s + pos, at - pos, md, &sc, &out, err)) != SL_OK)
            goto fail;
        if (!hit) break;
        if (!tok_ids_push(&out, hit->id)) goto oom;
        pos = at + hit->len;
    }
    if (out.n > INT32_MAX) goto oom;
    pcre2_match_data_free(md);
    tok_scratch_free(&sc);
    *ids = out.v;
    *n = (int)out.n;
    return SL_OK;
oom:
    st = sl_err_set(err, SL_ERR_OOM_HOST, "tokenizer: out of memory");
fail:
    pcre2_match_data_free(md);
    tok_scratch_free(&sc);
    free(out.v);
    return st;
}

sl_status sl_tok_encode(const sl_tok *t, const char *utf8, int32_t **ids, int *n, sl_err *err) {
    return sl_tok_encode_n(t, utf8, strlen(utf8), ids, n, err);
}

sl_status sl_tok_zimage_prompt(const sl_tok *t, const char *prompt, int max_tokens, int32_t **ids,
                               int *n, int *n_full, sl_err *err) {
    static const char head[] = "<|im_start|>user\n";
    static const char tail[] = "<|im_end|>\n<|im_start|>assistant\n";
    *ids = NULL;
    *n = 0;
    if (max_tokens <= 0) max_tokens = SL_TOK_ZIMAGE_MAX_TOKENS;
    size_t lp = strlen(prompt);
    char *text = malloc(sizeof head + lp + sizeof tail);
    if (!text) return sl_err_set(err, SL_ERR_OOM_HOST, "tokenizer: out of memory for the prompt");
    memcpy(text, head, sizeof head - 1);
    memcpy(text + sizeof head - 1, prompt, lp);
    memcpy(text + sizeof head - 1 + lp, tail, sizeof tail);
    sl_status st = sl_tok_encode(t, text, ids, n, err);
    free(text);
    if (st != SL_OK) {
        sl_err_prefix(err, "prompt: ");
        return st;
    }
    if (n_full) *n_full = *n;
    if (*n > max_tokens) *n = max_tokens;
    return SL_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding and lookups */

int sl_tok_n_ids(const sl_tok *t) {
    return t->n_ids;
}

const char *sl_tok_token_bytes(const sl_tok *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_ids || t->tok_off[id + 1] == t->tok_off[id]) return NULL;
    if (len) *len = t->tok_off[id + 1] - t->tok_off[id];
    return (const char *)t->bytes + t->tok_off[id];
}

int32_t sl_tok_added_id(const sl_tok *t, const char *text) {
    size_t n = strlen(text);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].text, text, n) == 0) return t->added[i].id;
    return -1;
}

sl_status sl_tok_decode(const sl_tok *t, const int32_t *ids, int n, char **utf8, size_t *len,
                        sl_err *err) {
    *utf8 = NULL;
    if (len) *len = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!sl_tok_token_bytes(t, ids[i], NULL))
            return sl_err_set(err, SL_ERR_INVALID_ARG,
                              "decode: id %d at position %d is not a token (ids are 0..%d)", ids[i],
                              i, t->n_ids - 1);
        total += t->tok_off[ids[i] + 1] - t->tok_off[ids[i]];
    }
    char *o = malloc(total + 1);
    if (!o) return sl_err_set(err, SL_ERR_OOM_HOST, "decode: out of memory for %zu bytes", total);
    size_t w = 0;
    for (int i = 0; i < n; i++) {
        size_t k = t->tok_off[ids[i] + 1] - t->tok_off[ids[i]];
        memcpy(o + w, t->bytes + t->tok_off[ids[i]], k);
        w += k;
    }
    o[w] = 0;
    *utf8 = o;
    if (len) *len = w;
    return SL_OK;
}
