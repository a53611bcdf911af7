#!/usr/bin/env python3
"""Re-derive tests/fixtures/tokenizer/qwen3_cases.jsonl with Hugging Face `tokenizers` (the ground
truth) and report every case whose ids differ.

The fixture was written by gen_cases.mjs with @lenml/tokenizers (JavaScript); this script checks it
where the Python packages exist (the GPU machine), e.g.:

    python3 tools/ref/tokenizer/check_hf.py --tokenizer-json /path/to/Z-Image-Turbo/tokenizer/tokenizer.json
    python3 tools/ref/tokenizer/check_hf.py --tokenizer-dir /path/to/Z-Image-Turbo/tokenizer   # also
        # checks the chat template rendering with transformers' apply_chat_template

Cases flagged "js_regex" are those where the stock JavaScript regex (\\s without U+0085 but with
U+FEFF, (?i:'s) without U+017F) disagreed with Oniguruma's semantics; their fixture ids assume
Oniguruma's, which is what HF uses. This script confirms or refutes that. Exit status 1 on any
mismatch.
"""
import argparse
import json
import os
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURE = os.path.join(HERE, "..", "..", "..", "tests", "fixtures", "tokenizer", "qwen3_cases.jsonl")
HEAD, TAIL = "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer-json", help="a Qwen3 tokenizer.json")
    ap.add_argument("--tokenizer-dir", help="a folder with tokenizer.json + tokenizer_config.json "
                    "(also checks transformers' chat template)")
    ap.add_argument("--fixture", default=DEFAULT_FIXTURE)
    ap.add_argument("--show", type=int, default=20, help="mismatches to print")
    a = ap.parse_args()
    if not a.tokenizer_json and not a.tokenizer_dir:
        ap.error("give --tokenizer-json or --tokenizer-dir")
    path = a.tokenizer_json or os.path.join(a.tokenizer_dir, "tokenizer.json")

    import tokenizers
    tok = tokenizers.Tokenizer.from_file(path)
    print(f"tokenizers {tokenizers.__version__}, {path}, Python unicodedata {unicodedata.unidata_version}")

    hf_template = None
    if a.tokenizer_dir:
        from transformers import AutoTokenizer
        hf_template = AutoTokenizer.from_pretrained(a.tokenizer_dir)

    cases = [json.loads(l) for l in open(a.fixture, encoding="utf-8") if l.strip()]
    bad = bad_js = n_js = bad_nfc = bad_tpl = 0
    for i, c in enumerate(cases):
        s = c["s"]
        text = HEAD + s + TAIL if c.get("zimage") else s
        ids = tok.encode(text, add_special_tokens=False).ids
        n_js += bool(c.get("js_regex"))
        if ids != c["ids"]:
            bad += 1
            bad_js += bool(c.get("js_regex"))
            if bad <= a.show:
                k = next((j for j, (x, y) in enumerate(zip(ids, c["ids"])) if x != y), min(len(ids), len(c["ids"])))
                print(f"MISMATCH case {i}{' (zimage)' if c.get('zimage') else ''}"
                      f"{' (js_regex)' if c.get('js_regex') else ''}: {s!r}\n"
                      f"  first difference at {k}: hf {ids[k:k + 8]} fixture {c['ids'][k:k + 8]} "
                      f"(lengths {len(ids)} vs {len(c['ids'])})")
        if not c.get("zimage"):
            nfc = unicodedata.normalize("NFC", s)
            if nfc != c.get("nfc", s):
                bad_nfc += 1
                print(f"NFC differs for case {i}: python {nfc!r} fixture {c.get('nfc', s)!r}")
        elif hf_template is not None:
            r = hf_template.apply_chat_template([{"role": "user", "content": s}], tokenize=False,
                                                add_generation_prompt=True)
            if r != text:
                bad_tpl += 1
                print(f"TEMPLATE differs for case {i}: transformers {r!r} vs sluice {text!r}")
            full = hf_template(r, max_length=512, truncation=True)["input_ids"]
            if full != c["ids"][:512]:
                bad_tpl += 1
                print(f"TRUNCATED ids differ for case {i}: {full[:8]}... vs {c['ids'][:8]}...")
    print(f"{len(cases)} cases: {bad} id mismatches ({bad_js} of the {n_js} js_regex cases), "
          f"{bad_nfc} NFC differences, {bad_tpl} template/truncation differences")
    sys.exit(1 if bad or bad_nfc or bad_tpl else 0)


if __name__ == "__main__":
    main()
