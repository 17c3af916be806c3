#!/usr/bin/env python3
"""Tiny random checkpoints per architecture, converted to GGUF by llama.cpp's own converter, with
golden outputs from transformers (f32, eager attention) and from llama.cpp on every GGUF.

    bench/gguf/setup.sh                                  # venv + llama.cpp build + sdist
    data/pyenv/bin/python testdata/gguf/tiny/make.py [--only NAME[,NAME...]] [--skip-convert]

For each model NAME (model_specs() below: llama-spm, llama-bpe, llama3-rope, qwen2, qwen3, mistral,
gpt2, phi3, gemma; hidden 64, 2 layers, 4 query / 2 KV heads, intermediate 128, except GPT-2: 4
heads without GQA and MLP 4 x 64 = 256, the only width llama.cpp's converter writes for GPT-2):
  data/bench/gguf/tiny/NAME/        the Hugging Face folder: config.json, generation_config.json,
                                    model.safetensors (save_pretrained(safe_serialization=True)),
                                    tokenizer files (tokenizer.json, tokenizer_config.json, and
                                    tokenizer.model for the SentencePiece ones)
  testdata/gguf/tiny/NAME/NAME-{f32,f16,q8_0}.gguf
                                    bench/gguf/convert.py = llama.cpp's convert_hf_to_gguf.py
                                    --outtype f32|f16|q8_0 (the wrapper only names a BPE
                                    pre-tokenizer whose hash the converter does not know)
  testdata/gguf/tiny/NAME/golden.safetensors
                                    input_ids   int64 [12]      the fixed input sequence
                                    logits      float32 [12, V] transformers logits, every position
                                    greedy_ids  int64 [20]      transformers generate(do_sample=False,
                                                                max_new_tokens=20, min_new_tokens=20)
  testdata/gguf/tiny/NAME/golden.json
                                    config summary, tokenizer kind, the 10 TEST_STRINGS with the
                                    HF tokenizer's ids (add_special_tokens False and True) and
                                    llama.cpp's ids on the f32 GGUF (special False/True, add_bos
                                    False/True); per GGUF type what llama.cpp gives for input_ids
                                    (evaluated in one batch, logits of every position kept):
                                    last-position top-10 [id, logit], 20 greedy ids (argmax loop,
                                    EOS not special-cased), and the max |llama.cpp - transformers|
                                    logit difference per position; once with llama.cpp's default
                                    f16 KV cache and once with an f32 KV cache (type_k=type_v=F32).

Deterministic: torch.manual_seed per model, float32, 2 threads, deterministic algorithms;
weights re-drawn with larger scales than transformers' init (weights N(0, 0.2), biases
N(0, 0.1), norm weights 1 + N(0, 0.1) -- for Gemma, whose norm is (1 + w), the stored w is
N(0, 0.1)) so logits differ clearly between tokens; the input ids (no special token) are drawn from seeds
1..64, keeping the one whose transformers greedy continuation has the largest smallest top-1/top-2
margin, among those with at least 5 distinct tokens that equal a plain argmax loop (so the EOS
masking of min_new_tokens changes nothing); that margin must be >= 0.05.
Tokenizers are trained on the hand-written conversations of testdata/gguf/smollm2/prompts.jsonl
(texts with any non-Latin character once, others 20 times), single-threaded:
  spm        sentencepiece BPE, vocab 512, byte_fallback, split_digits, Llama-2 ids
             (<unk>=0, <s>=1, </s>=2), add_dummy_prefix (llama.cpp vocab type "llama")
  spm-phi3   spm + Phi-3's added special tokens <|endoftext|> <|assistant|> <|system|> <|end|>
             <|user|> (ids 512..516)
  spm-gemma  spm with Gemma's ids (<pad>=0, <eos>=1, <bos>=2, <unk>=3, <mask>=4), no dummy prefix
  llama-bpe  `tokenizers` byte-level BPE, Llama 3's pre-tokenizer (regex split + ByteLevel),
             ignore_merges like Llama 3, 381 trained ids + <|begin_of_text|>, <|end_of_text|>,
             <|eot_id|> (BOS added by the post-processor)
  qwen2      byte-level BPE with Qwen2's NFC + regex split, 381 + <|endoftext|>, <|im_start|>,
             <|im_end|>, ChatML chat template
  gpt-2      byte-level BPE with GPT-2's ByteLevel pre-tokenizer, 383 + <|endoftext|>
"""
import sys

sys.dont_write_bytecode = True  # importing bench/gguf/convert.py must not leave __pycache__ there

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
WORK = ROOT / "data/bench/gguf/tiny"
CONVERT = ROOT / "bench/gguf/convert.py"
PROMPTS = ROOT / "testdata/gguf/smollm2/prompts.jsonl"
SEED = 0
SEQ_LEN, NEW_TOKENS = 12, 20
MIN_MARGIN = 0.05
N_SEEDS = 64
OUTTYPES = ["f32", "f16", "q8_0"]
GGML_TYPE_F32 = 0

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

TEST_STRINGS = [
    "Hello world! How are you today?",
    "I'm sure it's what they're saying, isn't it? We'll see.",
    "The price is $1,234.56 on 2025-12-31 at 23:59, order #000123.",
    "def add(a, b):\n    return a + b\n\n\tprint(add(1, 2))",
    "你好，世界！今天天气很好。",
    "naïve café, Zürich, crème brûlée",
    "Emoji: 😀 👍🏽 👨‍👩‍👧 ❤️",
    "   leading spaces and trailing   \n\n\nnewlines",
    "<|im_start|>user\nhi<|im_end|> <s> </s> <|endoftext|>",
    "1 12 123 1234 12345 123456 3.14159",
]

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

COMMON = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, rms_norm_eps=1e-6)
LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


def model_specs():
    from transformers import (GemmaConfig, GemmaForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                              LlamaForCausalLM, MistralConfig, MistralForCausalLM, Phi3Config, Phi3ForCausalLM,
                              Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)
    spm_ids = dict(bos_token_id=1, eos_token_id=2, pad_token_id=None)
    return {
        "llama-spm": ("spm", LlamaForCausalLM, lambda v: LlamaConfig(
            **COMMON, vocab_size=v, max_position_embeddings=2048, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=False, **spm_ids)),
        "llama-bpe": ("llama-bpe", LlamaForCausalLM, lambda v, t: LlamaConfig(
            **COMMON, vocab_size=v, max_position_embeddings=8192, rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
            tie_word_embeddings=False, bos_token_id=t["<|begin_of_text|>"], eos_token_id=t["<|end_of_text|>"])),
        "llama3-rope": ("llama-bpe", LlamaForCausalLM, lambda v, t: LlamaConfig(
            **COMMON, vocab_size=v, max_position_embeddings=131072, rope_parameters=dict(LLAMA3_ROPE),
            tie_word_embeddings=True, bos_token_id=t["<|begin_of_text|>"], eos_token_id=t["<|end_of_text|>"])),
        "qwen2": ("qwen2", Qwen2ForCausalLM, lambda v, t: Qwen2Config(
            **COMMON, vocab_size=v, max_position_embeddings=32768, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            tie_word_embeddings=True, use_sliding_window=False, bos_token_id=t["<|endoftext|>"], eos_token_id=t["<|endoftext|>"])),
        "qwen3": ("qwen2", Qwen3ForCausalLM, lambda v, t: Qwen3Config(
            **COMMON, head_dim=16, vocab_size=v, max_position_embeddings=40960,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            tie_word_embeddings=True, use_sliding_window=False, bos_token_id=t["<|endoftext|>"], eos_token_id=t["<|im_end|>"])),
        "mistral": ("spm", MistralForCausalLM, lambda v: MistralConfig(
            **COMMON, vocab_size=v, max_position_embeddings=32768, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            sliding_window=None, tie_word_embeddings=False, **spm_ids)),
        "gpt2": ("gpt-2", GPT2LMHeadModel, lambda v, t: _gpt2_config(GPT2Config, v, t["<|endoftext|>"])),
        "phi3": ("spm-phi3", Phi3ForCausalLM, lambda v, t: Phi3Config(
            **COMMON, vocab_size=v, max_position_embeddings=4096, original_max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0,
                             "original_max_position_embeddings": 4096},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=t["<|endoftext|>"], pad_token_id=None)),
        "gemma": ("spm-gemma", GemmaForCausalLM, lambda v: GemmaConfig(
            **COMMON, head_dim=16, vocab_size=v, max_position_embeddings=8192,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, hidden_activation="gelu_pytorch_tanh",
            tie_word_embeddings=True, bos_token_id=2, eos_token_id=1, pad_token_id=0)),
    }


def _gpt2_config(GPT2Config, v, eot):
    # n_inner=None: the MLP is 4 x n_embd = 256 wide, as in every GPT-2. llama.cpp's converter writes
    # feed_forward_length = 4 * n_embd whatever n_inner says (conversion/gpt2.py), so a GPT-2 with
    # n_inner=128 converts to a GGUF that llama.cpp refuses to load (ffn_down has the wrong shape).
    cfg = GPT2Config(vocab_size=v, n_positions=128, n_embd=64, n_layer=2, n_head=4, n_inner=None,
                     bos_token_id=eot, eos_token_id=eot)
    cfg.n_ctx = cfg.n_positions  # llama.cpp's converter reads hparams["n_ctx"] for GPT-2
    return cfg


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------- tokenizers
def corpus():
    texts = []
    for line in open(PROMPTS, encoding="utf-8"):
        for m in json.loads(line)["messages"]:
            if m["content"]:
                texts.append(m["content"])
    out = []
    for t in texts:
        out += [t] * (1 if any(ord(ch) > 0x24F for ch in t) else 20)
    return out


def train_spm(out_dir: Path, gemma: bool):
    import sentencepiece as spm
    buf = io.BytesIO()
    if gemma:  # Gemma's ids and piece names: <pad>=0, <eos>=1, <bos>=2, <unk>=3, <mask>=4
        ids = dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
                   unk_piece="<unk>", control_symbols=["<mask>"])
    else:  # Llama 2's: <unk>=0, <s>=1, </s>=2
        ids = dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()), model_writer=buf, model_type="bpe", vocab_size=512,
        byte_fallback=True, character_coverage=0.98, num_threads=1, split_digits=True,
        allow_whitespace_only_pieces=True, remove_extra_whitespaces=False, normalization_rule_name="identity",
        add_dummy_prefix=not gemma, max_sentence_length=100000, minloglevel=2, **ids)
    (out_dir / "tokenizer.model").write_bytes(buf.getvalue())
    if gemma:
        cfg = {"tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>",
               "pad_token": "<pad>", "mask_token": "<mask>", "add_bos_token": True, "add_eos_token": False}
    else:
        cfg = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
               "add_bos_token": True, "add_eos_token": False, "legacy": False}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(out_dir)  # converts tokenizer.model -> tokenizer.json
    tok.save_pretrained(out_dir)
    # save_pretrained rewrites tokenizer_config.json; keep the keys llama.cpp's converter reads
    saved = json.loads((out_dir / "tokenizer_config.json").read_text())
    saved.update(cfg)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(saved, indent=2, ensure_ascii=False))


def train_bpe(out_dir: Path, kind: str):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from convert import LLAMA3_REGEX, QWEN2_REGEX  # bench/gguf/convert.py

    specials = {"gpt-2": ["<|endoftext|>"],
                "llama-bpe": ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
                "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]}[kind]
    vocab = 384
    tok = Tokenizer(models.BPE(ignore_merges=(kind == "llama-bpe")))
    if kind == "gpt-2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        regex = LLAMA3_REGEX if kind == "llama-bpe" else QWEN2_REGEX
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        if kind == "qwen2":
            tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab - len(specials), min_frequency=2, show_progress=False,
                                  special_tokens=[], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    assert tok.get_vocab_size() == vocab - len(specials), tok.get_vocab_size()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    ids = {s: tok.token_to_id(s) for s in specials}
    if kind == "llama-bpe":
        bos = "<|begin_of_text|>"
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                                          special_tokens=[(bos, ids[bos])])])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.save(str(out_dir / "tokenizer.json"))
    added = {str(i): {"content": s, "lstrip": False, "rstrip": False, "normalized": False, "single_word": False,
                      "special": True} for s, i in ids.items()}
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
           "added_tokens_decoder": added, "model_max_length": 131072}
    if kind == "gpt-2":
        cfg.update(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>", add_bos_token=False)
    elif kind == "llama-bpe":
        cfg.update(bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>", add_bos_token=True)
    else:
        cfg.update(eos_token="<|endoftext|>", pad_token="<|endoftext|>", bos_token=None, add_bos_token=False,
                   chat_template=CHATML)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))


PHI3_ADDED = ["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"]


def add_phi3_tokens(out_dir: Path):
    """Phi-3's added special tokens after the SentencePiece ids (Phi-3-mini: 32000 <|endoftext|>,
    32001 <|assistant|>, 32006 <|system|>, 32007 <|end|>, 32010 <|user|>; here 512..516). llama.cpp
    needs <|endoftext|> in a vocabulary whose general.name says phi3 (llama-vocab.cpp sets its
    RSTRIP attribute with token_to_id.at and fails to load the model without it)."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(out_dir)
    tok.add_tokens([AddedToken(t, special=True, normalized=False, rstrip=False, lstrip=False) for t in PHI3_ADDED],
                   special_tokens=True)
    tok.save_pretrained(out_dir)
    saved = json.loads((out_dir / "tokenizer_config.json").read_text())
    saved.update({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "<|endoftext|>",
                  "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False, "legacy": False})
    (out_dir / "tokenizer_config.json").write_text(json.dumps(saved, indent=2, ensure_ascii=False))


def make_tokenizer(kind: str, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    if kind in ("spm", "spm-gemma", "spm-phi3"):
        train_spm(out_dir, gemma=(kind == "spm-gemma"))
        if kind == "spm-phi3":
            add_phi3_tokens(out_dir)
    else:
        train_bpe(out_dir, kind)
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(out_dir)


# ----------------------------------------------------------------------------------- models
@torch.no_grad()
def reinit(model, gemma: bool):
    for name, p in model.named_parameters():  # skips tied duplicates
        if name.endswith("bias"):
            p.normal_(0.0, 0.1)
        elif p.dim() == 1:  # norm weights (Gemma stores w of (1 + w))
            p.normal_(0.0, 0.1)
            if not gemma:
                p.add_(1.0)
        else:
            p.normal_(0.0, 0.2)


def special_ids(tok):
    ids = set(int(i) for i in tok.all_special_ids)
    ids |= {int(i) for i, t in tok.added_tokens_decoder.items() if t.special}
    return sorted(ids)


@torch.no_grad()
def pick_inputs(model, tok, vocab):
    """Input ids drawn (special tokens excluded) from seeds 1..N_SEEDS; the seed kept is the one with
    the largest smallest top-1/top-2 margin over the 20 greedy steps, among those whose greedy
    continuation has >= 5 distinct tokens and equals generate(min_new_tokens=20)."""
    avoid = set(special_ids(tok))
    allowed = torch.tensor([i for i in range(vocab) if i not in avoid])
    best = None
    for seed in range(SEED + 1, SEED + 1 + N_SEEDS):
        g = torch.Generator().manual_seed(seed)
        ids = allowed[torch.randint(0, len(allowed), (1, SEQ_LEN), generator=g)]
        seq = ids
        margins = []
        for _ in range(NEW_TOKENS):
            logits = model(input_ids=seq).logits[0, -1]
            top2 = logits.topk(2).values
            margins.append((top2[0] - top2[1]).item())
            seq = torch.cat([seq, logits.argmax().view(1, 1)], dim=1)
        new = seq[0, SEQ_LEN:].tolist()
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0)
        if len(set(new)) >= 5 and gen[0, SEQ_LEN:].tolist() == new and (best is None or min(margins) > best[3]):
            best = (seed, ids, gen[0, SEQ_LEN:], min(margins))
    if best is None or best[3] < MIN_MARGIN:
        raise SystemExit("no input seed gave a robust greedy continuation")
    log(f"    input seed {best[0]}: min greedy margin {best[3]:.4f}")
    return best


def convert(hf_dir: Path, out: Path, outtype: str):
    cmd = ["nice", "-n", "19", sys.executable, str(CONVERT), str(hf_dir), "--outtype", outtype, "--outfile", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    logf = WORK / f"{out.stem}.convert.log"
    logf.write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"convert {hf_dir.name} {outtype} failed (log {logf}):\n" + (r.stdout + r.stderr)[-3000:])
    pre = [ln for ln in (r.stdout + r.stderr).splitlines() if "convert.py:" in ln]
    return pre


def llama_cpp_side(gguf: Path, input_ids, hf_logits: np.ndarray, kv_f32: bool):
    import llama_cpp
    kw = dict(n_ctx=64, n_threads=2, n_threads_batch=2, n_batch=64, n_ubatch=64, logits_all=True, verbose=False,
              flash_attn=False)
    if kv_f32:
        kw.update(type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32)
    llm = llama_cpp.Llama(str(gguf), **kw)
    n_vocab = llm.n_vocab()
    ids = [int(i) for i in input_ids]
    llm.reset()
    llm.eval(ids)
    all_logits = np.array(llm.scores[:len(ids)], dtype=np.float32)  # logits_all: every position
    diff = np.abs(all_logits - hf_logits).max(axis=1)
    last = all_logits[-1]
    order = np.argsort(-last, kind="stable")
    greedy = []
    for step in range(NEW_TOKENS):
        lg = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
        t = int(np.argmax(lg))
        greedy.append(t)
        if step + 1 < NEW_TOKENS:
            llm.eval([t])
    res = {
        "kv_cache": "f32" if kv_f32 else "f16 (llama.cpp default)",
        "last_top10": [[int(t), float(last[t])] for t in order[:10]],
        "greedy_ids": greedy,
        "max_abs_diff_vs_transformers_per_position": [float(x) for x in diff],
    }
    del llm
    return res


def llama_cpp_tokenize(gguf: Path, strings):
    import llama_cpp
    llm = llama_cpp.Llama(str(gguf), n_ctx=64, n_threads=2, vocab_only=True, verbose=False)
    out = []
    for s in strings:
        b = s.encode("utf-8")
        out.append({
            "special_false": llm.tokenize(b, add_bos=False, special=False),
            "special_true": llm.tokenize(b, add_bos=False, special=True),
            "add_bos_special_true": llm.tokenize(b, add_bos=True, special=True),
        })
    meta = {k: v for k, v in llm.metadata.items() if k.startswith("tokenizer.ggml.") and k not in ("tokenizer.ggml.merges",)}
    del llm
    return out, meta


def make_one(name, kind, cls, cfg_fn, skip_convert=False):
    log(f"== {name} ({cls.__name__}, tokenizer {kind})")
    hf_dir = WORK / name
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    hf_dir.mkdir(parents=True)
    tok = make_tokenizer(kind, hf_dir)
    vocab = len(tok)
    tokmap = {tok.convert_ids_to_tokens(i): i for i in special_ids(tok)}
    config = cfg_fn(vocab) if kind in ("spm", "spm-gemma") else cfg_fn(vocab, tokmap)
    torch.manual_seed(SEED)
    model = cls._from_config(config, attn_implementation="eager", dtype=torch.float32)
    reinit(model, gemma=(name == "gemma"))
    model.eval()
    model.save_pretrained(hf_dir, safe_serialization=True)
    n_params = sum(p.numel() for p in model.parameters())

    seed, input_ids, greedy, margin = pick_inputs(model, tok, vocab)
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits[0].float().contiguous()
    # the saved folder alone must reproduce the logits
    again = cls.from_pretrained(hf_dir, attn_implementation="eager", dtype=torch.float32).eval()
    with torch.no_grad():
        d = (again(input_ids=input_ids).logits[0] - logits).abs().max().item()
    assert d == 0.0, f"{name}: reloaded logits differ by {d}"

    out_dir = HERE / name
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({"input_ids": input_ids[0].contiguous(), "logits": logits, "greedy_ids": greedy.contiguous()},
              str(out_dir / "golden.safetensors"),
              metadata={"made_by": f"transformers {transformers.__version__}, torch {torch.__version__}, eager, float32"})

    hf_tok = [{"text": s, "ids": tok(s, add_special_tokens=False).input_ids,
               "ids_add_special_tokens": tok(s, add_special_tokens=True).input_ids} for s in TEST_STRINGS]

    ggufs, converter_notes = {}, []
    for ot in OUTTYPES:
        path = out_dir / f"{name}-{ot}.gguf"
        if not skip_convert or not path.exists():
            converter_notes += convert(hf_dir, path, ot)
        ggufs[ot] = path

    hf_logits = logits.numpy()
    lc = {}
    for ot, path in ggufs.items():
        lc[ot] = {"file": path.name, "size_bytes": path.stat().st_size,
                  "kv_f16": llama_cpp_side(path, input_ids[0].tolist(), hf_logits, kv_f32=False),
                  "kv_f32": llama_cpp_side(path, input_ids[0].tolist(), hf_logits, kv_f32=True)}
    lc_tok, gguf_tok_meta = llama_cpp_tokenize(ggufs["f32"], TEST_STRINGS)
    for row, lt in zip(hf_tok, lc_tok):
        row["llama_cpp_f32_gguf"] = lt

    cfg = json.loads((hf_dir / "config.json").read_text())
    golden = {
        "name": name,
        "hf_class": cls.__name__,
        "tokenizer_kind": kind,
        "vocab_size": vocab,
        "n_params": n_params,
        "config": cfg,
        "special_tokens": tokmap,
        "input_seed": seed,
        "input_ids": input_ids[0].tolist(),
        "transformers": {
            "greedy_ids": greedy.tolist(),
            "min_greedy_margin": margin,
            "last_top10": [[int(i), float(logits[-1, i])] for i in torch.argsort(-logits[-1], stable=True)[:10]],
            "logits_file": "golden.safetensors (logits float32 [12, vocab])",
            "settings": "eager attention, float32, generate(do_sample=False, max_new_tokens=20, min_new_tokens=20)",
        },
        "llama_cpp": lc,
        "llama_cpp_settings": "llama_cpp.Llama(n_ctx=64, n_threads=2, n_batch=n_ubatch=64, logits_all=True, flash_attn=False); "
                              "the 12 ids in one llm.eval, then 19 single-token evals; argmax (lowest id on ties)",
        "gguf_tokenizer_metadata": gguf_tok_meta,
        "converter_notes": converter_notes,
        "tokenize": hf_tok,
    }
    (out_dir / "golden.json").write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n")
    for ot in OUTTYPES:
        k = lc[ot]["kv_f32"]
        log(f"    {ot}: {lc[ot]['size_bytes']} bytes; max|diff| vs HF {max(k['max_abs_diff_vs_transformers_per_position']):.2e}"
            f"; greedy equal {k['greedy_ids'] == greedy.tolist()}")
    return golden


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--skip-convert", action="store_true", help="reuse existing GGUF files (debugging)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench/gguf"))
    specs = model_specs()
    names = [n for n in args.only.split(",") if n] or list(specs)
    WORK.mkdir(parents=True, exist_ok=True)
    for name in names:
        kind, cls, fn = specs[name]
        make_one(name, kind, cls, fn, skip_convert=args.skip_convert)
    summary = {}
    for gj in sorted(HERE.glob("*/golden.json")):
        g = json.loads(gj.read_text())
        hf = g["transformers"]["greedy_ids"]
        summary[g["name"]] = {ot: {"size_bytes": v["size_bytes"],
                                   "greedy_equal_kv_f32": v["kv_f32"]["greedy_ids"] == hf,
                                   "greedy_equal_kv_f16": v["kv_f16"]["greedy_ids"] == hf,
                                   "max_abs_diff_kv_f32": max(v["kv_f32"]["max_abs_diff_vs_transformers_per_position"]),
                                   "max_abs_diff_kv_f16": max(v["kv_f16"]["max_abs_diff_vs_transformers_per_position"])}
                              for ot, v in g["llama_cpp"].items()}
    (HERE / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
