"""Tiny random checkpoints + golden outputs made by Hugging Face transformers.

Writes testdata/model/<name>/ for six tiny models (GPT-2, Llama with GQA,
Qwen2, and three BERT heads), each with the files `save_pretrained` writes
(config.json, model.safetensors, generation_config.json for the decoders) and
a `golden.safetensors` of inputs and reference outputs for parity tests of
duet's candle implementations.

Run from the repository root:

    data/pyenv/bin/python testdata/model/make_tiny.py

Deterministic: every model is built after `torch.manual_seed(0)`, in float32,
on the CPU with 2 threads, and with the eager (plain math) attention.
Transformers initialises weights with std 0.02, which makes a tiny random
model's logits near uniform; the weights are therefore re-drawn with larger
scales (weights N(0, 0.2), biases N(0, 0.1), norm weights 1 + N(0, 0.1)) so
logits differ clearly between tokens and greedy decoding does not repeat one
token.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

OUT = Path(__file__).resolve().parent
SEED = 0
BATCH, SEQ_LEN, NEW_TOKENS, STEP_PREFIX = 2, 10, 20, 6
BERT_PAD = 3  # row 1 of the BERT inputs ends with 3 padding positions
BERT_TYPE1 = 4  # row 0 of the BERT inputs: last 4 real positions have token type 1
MIN_MARGIN = 1e-2  # greedy top-1 minus top-2 logit, so float noise cannot flip an argmax

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)


def decoder_configs():
    common = dict(vocab_size=512, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return {
        "tiny-gpt2": (
            GPT2LMHeadModel,
            GPT2Config(n_positions=64, n_embd=48, n_layer=2, n_head=4, **common),
        ),
        "tiny-llama": (
            LlamaForCausalLM,
            LlamaConfig(
                hidden_size=48,
                intermediate_size=96,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                rope_theta=10000.0,
                rms_norm_eps=1e-6,
                max_position_embeddings=64,
                tie_word_embeddings=False,
                **common,
            ),
        ),
        "tiny-qwen2": (
            Qwen2ForCausalLM,
            Qwen2Config(
                hidden_size=48,
                intermediate_size=96,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                rope_theta=1000000.0,
                rms_norm_eps=1e-6,
                max_position_embeddings=64,
                tie_word_embeddings=True,
                use_sliding_window=False,
                **common,
            ),
        ),
    }


def bert_configs():
    sizes = dict(
        vocab_size=512,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
    )
    cls_labels = ["neg", "neu", "pos"]
    tok_labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]

    def labelled(names):
        return dict(
            num_labels=len(names),
            id2label={i: n for i, n in enumerate(names)},
            label2id={n: i for i, n in enumerate(names)},
        )

    return {
        "tiny-bert-mlm": (BertForMaskedLM, BertConfig(**sizes)),
        "tiny-bert-cls": (BertForSequenceClassification, BertConfig(**sizes, **labelled(cls_labels))),
        "tiny-bert-tok": (BertForTokenClassification, BertConfig(**sizes, **labelled(tok_labels))),
    }


@torch.no_grad()
def reinit(model):
    """Re-draw every parameter with larger scales (tied tensors are drawn once)."""
    for name, p in model.named_parameters():  # named_parameters() skips tied duplicates
        if name.endswith("bias"):
            p.normal_(0.0, 0.1)
        elif p.dim() == 1:  # LayerNorm / RMSNorm weight
            p.normal_(0.0, 0.1).add_(1.0)
        else:
            p.normal_(0.0, 0.2)


def build(cls, config):
    torch.manual_seed(SEED)
    model = cls._from_config(config, attn_implementation="eager", dtype=torch.float32)
    reinit(model)
    return model.eval()


def make_ids(vocab, seed=SEED + 1, low=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, vocab, (BATCH, SEQ_LEN), generator=g, dtype=torch.int64)


def manual_greedy(model, ids, n):
    """Greedy decoding by full re-forwards and argmax, without any logits processor."""
    for _ in range(n):
        nxt = model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
    return ids


def greedy_margin(model, greedy):
    """Smallest top-1 minus top-2 logit over the generated positions."""
    logits = model(input_ids=greedy[:, :-1]).logits[:, SEQ_LEN - 1 :]
    top2 = logits.topk(2, dim=-1).values
    return (top2[..., 0] - top2[..., 1]).min().item()


@torch.no_grad()
def make_decoder(name, cls, config):
    model = build(cls, config)
    # The input ids are drawn from seeds 1, 2, ... until greedy decoding is
    # robust: no near-tie between the two best tokens and no degenerate repeat.
    for seed in range(SEED + 1, SEED + 100):
        input_ids = make_ids(config.vocab_size, seed)
        attention_mask = torch.ones_like(input_ids)
        greedy = model.generate(
            input_ids,
            attention_mask=attention_mask,
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            pad_token_id=0,
        )
        margin = greedy_margin(model, greedy)
        distinct = min(len(set(row)) for row in greedy[:, SEQ_LEN:].tolist())
        print(f"  input seed {seed}: greedy margin {margin:.4f}, min distinct new tokens {distinct}")
        if margin >= MIN_MARGIN and distinct >= 5:
            break
    else:
        raise SystemExit(f"{name}: no input seed gave a robust greedy continuation")
    assert greedy.shape == (BATCH, SEQ_LEN + NEW_TOKENS), greedy.shape
    # generate() (with its KV cache and min_new_tokens eos masking) must equal a
    # plain argmax loop, so the Rust side needs no logits processor to match.
    ref = manual_greedy(model, input_ids, NEW_TOKENS)
    assert torch.equal(greedy, ref), f"{name}: generate() != argmax loop\n{greedy}\n{ref}"
    for row in greedy[:, SEQ_LEN:].tolist():
        print(f"  greedy {row}  ({len(set(row))} distinct)")
    out = model(input_ids=input_ids, attention_mask=attention_mask)
    base = model.base_model(input_ids=input_ids, attention_mask=attention_mask)
    step = model(input_ids=input_ids[:, :STEP_PREFIX], attention_mask=attention_mask[:, :STEP_PREFIX])
    check_logits(name, out.logits)
    tensors = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "logits": out.logits,
        "hidden": base.last_hidden_state,
        "logits_step": step.logits,
        "greedy": greedy,
    }
    save(name, model, tensors)


@torch.no_grad()
def make_bert(name, cls, config):
    model = build(cls, config)
    input_ids = make_ids(config.vocab_size)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, SEQ_LEN - BERT_PAD :] = 0
    input_ids[1, SEQ_LEN - BERT_PAD :] = config.pad_token_id
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[0, SEQ_LEN - BERT_TYPE1 :] = 1  # row 0 has no padding
    kw = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
    out = model(**kw)
    base = model.bert(**kw)
    check_logits(name, out.logits)
    tensors = {**kw, "logits": out.logits, "hidden": base.last_hidden_state}
    if base.pooler_output is not None:  # only the classification model has a pooler
        tensors["pooled"] = base.pooler_output
    save(name, model, tensors)


def check_logits(name, logits):
    lp = logits.float().log_softmax(-1)
    spread = (lp.max(-1).values - lp.min(-1).values).min().item()
    top = logits.argmax(-1)
    print(f"  logits {tuple(logits.shape)} std {logits.std():.3f}, min max-min log-prob spread {spread:.2f}")
    print(f"  argmax per position {top.tolist()}")
    assert spread > 0.5, f"{name}: logits are too flat to make a meaningful parity test"


def save(name, model, tensors):
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        if f.is_file():
            f.unlink()
    model.save_pretrained(d, safe_serialization=True)
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    for k, v in tensors.items():
        assert v.dtype in (torch.int64, torch.float32), (k, v.dtype)
    save_file(tensors, d / "golden.safetensors", metadata={"made_by": f"transformers {transformers.__version__}, torch {torch.__version__}"})
    # Reload to prove the checkpoint alone reproduces the logits.
    cls = type(model)
    again, info = cls.from_pretrained(d, output_loading_info=True, attn_implementation="eager")
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"{name}: reload reported {bad}"
    kw = {k: tensors[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in tensors}
    diff = (again.eval()(**kw).logits - tensors["logits"]).abs().max().item()
    assert diff == 0.0, f"{name}: reloaded logits differ by {diff}"
    print(f"  wrote {d.relative_to(OUT.parent.parent)}:")
    for f in sorted(d.iterdir()):
        print(f"    {f.name:28s} {f.stat().st_size:9d} bytes")
    with safe_open(d / "model.safetensors", "pt") as st:
        for k in st.keys():
            print(f"      {k:60s} {list(st.get_slice(k).get_shape())}")


def main():
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python {sys.version.split()[0]}")
    for name, (cls, config) in decoder_configs().items():
        print(name)
        make_decoder(name, cls, config)
    for name, (cls, config) in bert_configs().items():
        print(name)
        make_bert(name, cls, config)


if __name__ == "__main__":
    main()
