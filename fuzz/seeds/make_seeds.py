#!/usr/bin/env python3
"""Writes the fuzz seed files (small, valid) next to this script. Independent of sluice's own
writers, so the seeds also cross-check the parsers: `sluice info fuzz/seeds/*/*` must accept
every file. Run from anywhere: python3 fuzz/seeds/make_seeds.py"""
import json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))

def st_file(tensors, meta=None, pad=True, lead=""):
    """tensors: list of (name, dtype, shape, nbytes); data is a byte pattern."""
    hdr, off = {}, 0
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dt, shape, nb in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + nb]}
        off += nb
    h = lead + json.dumps(hdr, separators=(",", ":"))
    if pad:
        h += " " * (-len(h) % 8)
    hb = h.encode()
    return struct.pack("<Q", len(hb)) + hb + bytes((i * 7 + 3) & 255 for i in range(off))

def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b

def gguf_file(kvs, tensors, align=32, version=3, trailing_pad=True):
    """kvs: list of raw KV byte strings; tensors: (name, ne innermost-first, type, nbytes)."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    off, offs = 0, []
    for name, ne, typ, nb in tensors:
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", typ, off)
        offs.append(off)
        off += nb + (-nb % align)
    out += b"\0" * (-len(out) % align)
    for i, (_, _, _, nb) in enumerate(tensors):
        out += bytes((j * 5 + i) & 255 for j in range(nb))
        if trailing_pad or i + 1 < len(tensors):
            out += b"\0" * (-nb % align)
    return out

def kv(key, typ, payload):
    return gstr(key) + struct.pack("<I", typ) + payload

def write(sub, name, data):
    d = os.path.join(HERE, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# safetensors
write("fuzz_safetensors", "basic.safetensors", st_file(
    [("model.diffusion_model.x.weight", "BF16", [4, 8], 64), ("x.bias", "F32", [4], 16),
     ("scale", "F32", [], 4), ("empty", "F16", [0, 3], 0)], meta={"format": "pt", "sluice.arch": "zimage"}))
write("fuzz_safetensors", "dtypes.safetensors", st_file(
    [(dt, dt, [2, 3], 6 * b) for dt, b in [("F64", 8), ("F32", 4), ("F16", 2), ("BF16", 2),
     ("F8_E4M3", 1), ("F8_E5M2", 1), ("I64", 8), ("I32", 4), ("I16", 2), ("I8", 1), ("U8", 1), ("BOOL", 1)]],
    pad=False, lead=" \n"))
write("fuzz_safetensors", "empty.safetensors", st_file([], meta={"a": "b"}))
write("fuzz_safetensors", "index.json", json.dumps({"metadata": {"total_size": 80}, "weight_map": {
    "a.weight": "m-00001-of-00002.safetensors", "b.weight": "m-00002-of-00002.safetensors",
    "c.weight": "m-00001-of-00002.safetensors"}}, indent=2).encode())

# gguf
kvs = [kv("general.architecture", 8, gstr("flux")), kv("general.quantization_version", 4, struct.pack("<I", 2)),
       kv("x.f32", 6, struct.pack("<f", 0.5)), kv("x.bool", 7, b"\1"), kv("x.i64", 11, struct.pack("<q", -3)),
       kv("x.f64", 12, struct.pack("<d", 1.25)), kv("x.u8", 0, b"\7"), kv("x.i16", 3, struct.pack("<h", -9)),
       kv("tok.tokens", 9, struct.pack("<IQ", 8, 3) + gstr("a") + gstr("") + gstr("bc")),
       kv("x.nested", 9, struct.pack("<IQ", 9, 2) + struct.pack("<IQ", 2, 2) + struct.pack("<HH", 1, 2)
          + struct.pack("<IQ", 8, 1) + gstr("z")),
       kv("comfy.gguf.orig_shape.conv.weight", 9, struct.pack("<IQ", 5, 4) + struct.pack("<4i", 2, 2, 2, 4))]
write("fuzz_gguf", "mixed.gguf", gguf_file(kvs, [
    ("conv.weight", [8, 4], 0, 128), ("w.q8", [32, 2], 8, 68), ("w.q4k", [256, 1], 12, 144),
    ("b", [3], 1, 6), ("bf", [2, 2], 30, 8)]))
write("fuzz_gguf", "v2_align64_nopad.gguf", gguf_file(
    [kv("general.alignment", 4, struct.pack("<I", 64))],
    [("a", [4], 0, 16), ("q", [32], 2, 18)], align=64, version=2, trailing_pad=False))
write("fuzz_gguf", "empty.gguf", gguf_file([kv("general.name", 8, gstr("nothing"))], []))
