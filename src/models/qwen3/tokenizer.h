/* models/qwen3/tokenizer.h — the Qwen2/Qwen3 byte-level BPE tokenizer (specs/zimage.md §2.4).
 *
 * Encoding follows Hugging Face `tokenizers` (the ground truth) for a tokenizer.json of this shape:
 *   1. added tokens (ids from 151643 on for Qwen3: <|endoftext|>, <|im_start|>, …, </think>) are
 *      matched literally in the raw text, leftmost-longest, before anything else;
 *   2. each stretch of text between them is NFC-normalised (utf8proc);
 *   3. split by the pre-tokenizer regex (PCRE2, UTF + UCP, JIT when available) into pieces, the
 *      text between matches kept as pieces too ("Isolated");
 *   4. each piece's UTF-8 bytes are merged by BPE: repeatedly the adjacent pair with the lowest
 *      merge rank, leftmost first on ties (no dropout, no unk, no cache needed for speed).
 * Regex semantics: HF compiles the pattern with Oniguruma, where `\s` is Unicode White_Space
 * (includes U+0085, excludes U+180E and U+FEFF). PCRE2's `\s` differs on those, so `\s`/`\S` in
 * the pattern are rewritten to the explicit White_Space set before compiling.
 *
 * Invalid UTF-8 input is rejected (SL_ERR_INVALID_ARG naming the byte offset), as HF rejects it
 * (Rust strings and Python str cannot hold it); nothing is replaced silently.
 *
 * A loaded sl_tok is immutable: encode/decode may be called from several threads at once. */
#ifndef SL_MODELS_QWEN3_TOKENIZER_H
#define SL_MODELS_QWEN3_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct sl_tok sl_tok;

/* Qwen3 ids used by the Z-Image prompt frame. */
enum {
    SL_TOK_QWEN3_ENDOFTEXT = 151643, /* <|endoftext|>, the pad id */
    SL_TOK_QWEN3_IM_START = 151644,  /* <|im_start|> */
    SL_TOK_QWEN3_IM_END = 151645,    /* <|im_end|> */
    SL_TOK_ZIMAGE_MAX_TOKENS = 512,  /* max_sequence_length, template included */
};

/* The Qwen3 vocabulary shipped with sluice (data/qwen3/, embedded in the library; about 2.3 MB,
 * loads in a few ms). *out is freed with sl_tok_free. */
sl_status sl_tok_load_builtin(sl_tok **out, sl_err *err);

/* A model folder's own tokenizer.json (HF format): model.type "BPE" with model.vocab, model.merges
 * (either "a b" strings or ["a", "b"] pairs), added_tokens, normalizer NFC or null, pre_tokenizer
 * Sequence[Split(Regex, Isolated), ByteLevel(add_prefix_space=false, use_regex=false)] (the
 * Qwen2/Qwen3 form). Loading the 11 MB Qwen3 file takes about 0.1 s.
 * Anything else (byte_fallback, dropout, an unk token, added tokens with lstrip/rstrip/single_word/
 * normalized=true, other normalisers) is SL_ERR_UNSUPPORTED with a message naming the field. */
sl_status sl_tok_load_json(const char *path, sl_tok **out, sl_err *err);

/* Parse sluice's compact form (the "SLTOKBPE" format written by tools/vocab/qwen3_vocab.py, whose
 * docstring defines it) from bytes; a pure function over (data, size), every length checked.
 * `what` names the source in messages. data is not referenced after the call. */
sl_status sl_tok_load_blob(const void *data, size_t size, const char *what, sl_tok **out,
                           sl_err *err);

void sl_tok_free(sl_tok *tok); /* NULL is fine */

/* Encode UTF-8 text (NUL-terminated, or `len` bytes for sl_tok_encode_n, which may hold NULs).
 * On success *ids is a malloc'd array of *n ids (caller frees with free(); an empty input gives
 * *n = 0 and a non-NULL *ids). On failure *ids = NULL, *n = 0. */
sl_status sl_tok_encode(const sl_tok *tok, const char *utf8, int32_t **ids, int *n, sl_err *err);
sl_status sl_tok_encode_n(const sl_tok *tok, const char *utf8, size_t len, int32_t **ids, int *n,
                          sl_err *err);

/* Concatenate the tokens' bytes (added tokens as their literal text): for debugging and tests.
 * *utf8 is malloc'd and NUL-terminated (caller frees with free()); *len (optional) gets its length.
 * It is valid UTF-8 whenever the ids came from one whole encode; decode(encode(s)) == NFC(s).
 * An id outside the vocabulary is SL_ERR_INVALID_ARG. */
sl_status sl_tok_decode(const sl_tok *tok, const int32_t *ids, int n, char **utf8, size_t *len,
                        sl_err *err);

/* Z-Image's prompt ids: encodes "<|im_start|>user\n" + prompt +
 * "<|im_end|>\n<|im_start|>assistant\n" as ONE text (so a prompt starting with whitespace merges
 * with the template's "\n" exactly as the reference does) and keeps the first max_tokens ids (right
 * truncation; max_tokens <= 0 means SL_TOK_ZIMAGE_MAX_TOKENS). *ids as for sl_tok_encode. n_full
 * (optional) gets the length before truncation, so a caller can warn that the prompt was cut. No
 * BOS, no EOS, no padding. */
sl_status sl_tok_zimage_prompt(const sl_tok *tok, const char *prompt, int max_tokens, int32_t **ids,
                               int *n, int *n_full, sl_err *err);

/* One more than the largest id (151669 for Qwen3). */
int sl_tok_n_ids(const sl_tok *tok);

/* A token's bytes (borrowed, valid until sl_tok_free; not NUL-terminated), NULL for an id that has
 * no token. */
const char *sl_tok_token_bytes(const sl_tok *tok, int32_t id, size_t *len);

/* The id of an added token by its exact text ("<|im_start|>"), or -1. */
int32_t sl_tok_added_id(const sl_tok *tok, const char *text);

#endif
