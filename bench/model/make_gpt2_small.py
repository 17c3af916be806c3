#!/usr/bin/env python3
"""Make the model of the decode benchmark: a GPT-2-small-shaped GPT2LMHeadModel (124M
parameters) with seeded random weights and a byte-level BPE tokenizer of exactly 50,257
ids trained on real English text.

    data/pyenv/bin/python bench/model/make_gpt2_small.py [--out DIR] [--force]

Output folder (default data/bench/model/gpt2-small-random/):
  config.json, generation_config.json, model.safetensors   save_pretrained(safe_serialization=True)
      GPT2Config() defaults = GPT-2 small: vocab 50257, n_positions 1024, n_embd 768,
      12 layers, 12 heads, GELU (gelu_new), LayerNorm eps 1e-5, tied lm_head (so the file
      holds transformer.wte only, as GPT-2's own checkpoint does); weights drawn by
      transformers' GPT-2 init after torch.manual_seed(0), stored as f32. config.json also
      carries "n_ctx": 1024 like GPT-2's own (llama.cpp's converter reads it).
  tokenizer.json             `tokenizers` BPE, GPT-2's layout: ByteLevel pre-tokenizer
                             (add_prefix_space=false, GPT-2 regex), ByteLevel decoder and
                             post-processor, no normalizer, no unk; ids 0..50255 trained,
                             "<|endoftext|>" added last as id 50256 (special).
  vocab.json, merges.txt     the same vocabulary and merges in GPT-2's file format
                             (vocab.json includes <|endoftext|> = 50256), for converters.
  tokenizer_config.json, special_tokens_map.json   so AutoTokenizer loads the folder
                             (GPT2TokenizerFast, bos = eos = unk = <|endoftext|>).
  tokenizer-train.json       what the tokenizer was trained on, its size and hashes.

Tokenizer training text (both from scripts/fetch-data.sh; standard text, nothing generated):
  * every English fortune in data/external/fortunes/* (entries split on lines "%"), and
  * data/external/dict-gcide/gcide.dict (the GCIDE dictionary, dictd text), in blocks of
    200 lines,
  BpeTrainer(vocab_size=50256, min_frequency=2, initial_alphabet=ByteLevel.alphabet()).
If the text could not fill 50,256 trained ids, dummy added tokens "<|dummy_N|>" would pad
the vocabulary before <|endoftext|>; tokenizer-train.json records whether that happened
(`dummy_tokens`).
"""
import argparse
import glob
import hashlib
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = 50257
EOT = "<|endoftext|>"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def fortunes(folder):
    files = sorted(p for p in glob.glob(os.path.join(folder, "*"))
                   if os.path.isfile(p) and not os.path.basename(p).startswith(".") and not p.endswith(".dat"))
    n = 0
    for p in files:
        with open(p, encoding="utf-8", errors="replace") as f:
            entry = []
            for line in f:
                if line.rstrip("\r\n") == "%":
                    if entry:
                        n += 1
                        yield "".join(entry)
                    entry = []
                else:
                    entry.append(line)
            if entry:
                n += 1
                yield "".join(entry)
    log(f"fortunes: {len(files)} files, {n} entries")


def gcide(path, block=200):
    with open(path, encoding="utf-8", errors="replace") as f:
        buf = []
        for line in f:
            buf.append(line)
            if len(buf) == block:
                yield "".join(buf)
                buf = []
        if buf:
            yield "".join(buf)


def train_tokenizer(out_dir, fortunes_dir, gcide_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers, AddedToken

    tok = Tokenizer(models.BPE())  # no unk, no dropout, no subword prefixes: GPT-2's BPE
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - 1, min_frequency=2, show_progress=False, special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    n_chars = [0]

    def corpus():
        for t in fortunes(fortunes_dir):
            n_chars[0] += len(t)
            yield t
        for t in gcide(gcide_path):
            n_chars[0] += len(t)
            yield t

    t0 = time.time()
    tok.train_from_iterator(corpus(), trainer=trainer)
    trained = tok.get_vocab_size(with_added_tokens=True)
    log(f"trained {trained} ids in {time.time() - t0:.1f} s on {n_chars[0]} characters")
    dummy = VOCAB - 1 - trained
    if dummy < 0:
        raise SystemExit(f"trainer returned {trained} ids, more than {VOCAB - 1}")
    if dummy:
        log(f"the text filled only {trained} ids: padding with {dummy} dummy added tokens")
        tok.add_tokens([AddedToken(f"<|dummy_{i}|>", special=False, normalized=False) for i in range(dummy)])
    tok.add_special_tokens([AddedToken(EOT, special=True, normalized=False)])
    assert tok.get_vocab_size(with_added_tokens=True) == VOCAB, tok.get_vocab_size(with_added_tokens=True)
    assert tok.token_to_id(EOT) == VOCAB - 1, tok.token_to_id(EOT)
    tok.save(os.path.join(out_dir, "tokenizer.json"))

    # GPT-2's file format: vocab.json (with <|endoftext|>) and merges.txt
    tj = json.load(open(os.path.join(out_dir, "tokenizer.json"), encoding="utf-8"))
    vocab = dict(tj["model"]["vocab"])
    for at in tj["added_tokens"]:
        vocab[at["content"]] = at["id"]
    assert sorted(vocab.values()) == list(range(VOCAB))
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    merges = tj["model"]["merges"]
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write((m if isinstance(m, str) else " ".join(m)) + "\n")

    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({
            "tokenizer_class": "GPT2TokenizerFast", "add_prefix_space": False, "add_bos_token": False,
            "bos_token": EOT, "eos_token": EOT, "unk_token": EOT, "model_max_length": 1024,
            "clean_up_tokenization_spaces": False,
            "added_tokens_decoder": {str(VOCAB - 1): {"content": EOT, "lstrip": False, "rstrip": False,
                                                    "normalized": False, "single_word": False, "special": True}},
        }, f, indent=2)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": EOT, "eos_token": EOT, "unk_token": EOT}, f, indent=2)

    info = {
        "sources": ["data/external/fortunes/* (entries split on '%' lines)",
                    "data/external/dict-gcide/gcide.dict (blocks of 200 lines)"],
        "characters": n_chars[0], "trained_ids": trained, "merges": len(merges),
        "dummy_tokens": dummy, "special": {EOT: VOCAB - 1}, "vocab_size": VOCAB,
        "trainer": {"vocab_size": VOCAB - 1, "min_frequency": 2, "initial_alphabet": "ByteLevel.alphabet() (256)"},
        "tokenizer_json_sha256": sha256_file(os.path.join(out_dir, "tokenizer.json")),
    }
    with open(os.path.join(out_dir, "tokenizer-train.json"), "w") as f:
        json.dump(info, f, indent=2)
    return info


def make_model(out_dir):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config()  # GPT-2 small
    assert (cfg.vocab_size, cfg.n_positions, cfg.n_embd, cfg.n_layer, cfg.n_head) == (50257, 1024, 768, 12, 12)
    cfg.bos_token_id = cfg.eos_token_id = VOCAB - 1
    # GPT-2's published config.json has "n_ctx": 1024 (= n_positions); transformers 5 no longer
    # writes it, and llama.cpp's convert_hf_to_gguf.py reads hparams["n_ctx"] for GPT-2.
    cfg.n_ctx = cfg.n_positions
    model = GPT2LMHeadModel(cfg).to(torch.float32).eval()
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out_dir, safe_serialization=True)
    log(f"model: {n:,} parameters -> {out_dir}")
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "data/bench/model/gpt2-small-random"))
    ap.add_argument("--fortunes", default=os.path.join(ROOT, "data/external/fortunes"))
    ap.add_argument("--gcide", default=os.path.join(ROOT, "data/external/dict-gcide/gcide.dict"))
    ap.add_argument("--force", action="store_true", help="remake even when the files exist")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    if args.force or not os.path.exists(os.path.join(args.out, "tokenizer-train.json")):
        info = train_tokenizer(args.out, args.fortunes, args.gcide)
        log(json.dumps(info))
    else:
        log("tokenizer present, kept (--force to remake)")
    if args.force or not os.path.exists(os.path.join(args.out, "model.safetensors")):
        make_model(args.out)
    else:
        log("model present, kept (--force to remake)")
    for name in ("model.safetensors", "tokenizer.json"):
        p = os.path.join(args.out, name)
        log(f"{name}: {os.path.getsize(p)} bytes, sha256 {sha256_file(p)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
