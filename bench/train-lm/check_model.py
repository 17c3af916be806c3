#!/usr/bin/env python3
"""Checks that train_torch.py's network is GPT-2: same loss and gradients as Hugging Face's
GPT2LMHeadModel (gelu_new, eps 1e-5, no dropout, tied head) with the same weights; the --sdpa
attention gives the same loss; every parameter gets a non-zero gradient; the learning-rate
schedule matches duet's (crates/train/src/schedule.rs tests). Needs `transformers`
(in data/pyenv). Usage: data/pyenv/bin/python bench/train-lm/check_model.py
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_torch import GPT, lr_at  # noqa: E402


def main():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    torch.set_num_threads(2)
    v, t, c, L, h = 97, 16, 32, 2, 4
    mine = GPT(v, t, c, L, h, 0.0, sdpa=False)
    # make biases and LayerNorm parameters non-trivial so that their mapping is tested too
    with torch.no_grad():
        for n, p in mine.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=v, n_positions=t, n_embd=c, n_layer=L, n_head=h,
                                    activation_function="gelu_new", layer_norm_epsilon=1e-5,
                                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                    tie_word_embeddings=True, bos_token_id=None, eos_token_id=None))
    hf.eval()
    sd = {"transformer.wte.weight": mine.wte.weight, "transformer.wpe.weight": mine.wpe.weight,
          "transformer.ln_f.weight": mine.ln_f.weight, "transformer.ln_f.bias": mine.ln_f.bias}
    for i, b in enumerate(mine.blocks):
        p = f"transformer.h.{i}."
        sd |= {p + "ln_1.weight": b.ln1.weight, p + "ln_1.bias": b.ln1.bias,
               p + "ln_2.weight": b.ln2.weight, p + "ln_2.bias": b.ln2.bias,
               # HF Conv1D stores (in, out); nn.Linear stores (out, in)
               p + "attn.c_attn.weight": b.attn.qkv.weight, p + "attn.c_attn.bias": b.attn.qkv.bias,
               p + "attn.c_proj.weight": b.attn.out.weight, p + "attn.c_proj.bias": b.attn.out.bias,
               p + "mlp.c_fc.weight": b.fc1.weight, p + "mlp.c_fc.bias": b.fc1.bias,
               p + "mlp.c_proj.weight": b.fc2.weight, p + "mlp.c_proj.bias": b.fc2.bias}
    conv = ("c_attn.weight", "c_proj.weight", "c_fc.weight")
    missing, unexpected = hf.load_state_dict(
        {k: (x.T if k.endswith(conv) else x).detach().clone().contiguous() for k, x in sd.items()}, strict=False)
    missing = [k for k in missing if k != "lm_head.weight" and not k.endswith(".attn.bias") and not k.endswith("masked_bias")]
    assert not missing and not unexpected, (missing, unexpected)
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr(), "HF head not tied"

    x = torch.randint(0, v, (3, t))
    y = torch.randint(0, v, (3, t))
    mine.train()
    loss = mine(x, y)
    loss.backward()
    logits = hf(input_ids=x).logits
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, v), y.reshape(-1))
    ref.backward()
    print(f"loss: mine {loss.item():.7f}  HF {ref.item():.7f}")
    assert abs(loss.item() - ref.item()) < 1e-5
    worst = 0.0
    for k, p in sd.items():
        q = hf.get_parameter(k)
        g_hf = q.grad
        g_me = p.grad.T if k.endswith(conv) else p.grad
        worst = max(worst, (g_hf - g_me).abs().max().item() / (g_hf.abs().max().item() + 1e-12))
    print(f"worst relative gradient difference over {len(sd)} tensors: {worst:.2e}")
    assert worst < 1e-4
    zero = [n for n, p in mine.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert not zero, f"parameters without gradient: {zero}"

    sd_mine = mine.state_dict()
    other = GPT(v, t, c, L, h, 0.0, sdpa=True)
    other.load_state_dict(sd_mine)
    l2 = other(x, y).item()
    print(f"loss with --sdpa: {l2:.7f}")
    assert abs(l2 - loss.item()) < 1e-5

    tr = {"lr": 1.0, "min_lr": 0.1, "warmup_steps": 10, "max_steps": 110}
    assert lr_at(0, tr) == 0.1 and lr_at(9, tr) == 1.0 and abs(lr_at(10, tr) - 1.0) < 1e-12
    assert abs(lr_at(60, tr) - 0.55) < 1e-9 and abs(lr_at(109, tr) - 0.1) < 1e-3 and lr_at(500, tr) == 0.1
    print("schedule matches duet's; all checks passed")


if __name__ == "__main__":
    main()
