"""Golden AdamW trajectory from PyTorch for crates/train/tests/adamw_pytorch.rs, which holds
duet's optimizer (duet_train::optim::AdamW) to it step by step.

torch.optim.AdamW on float32 parameters, two groups as duet forms them: a matrix `w` with
weight decay and a vector `b` without (duet decays no parameter of rank 1). Betas, eps and
decay are not PyTorch's defaults, so that each one must be read from the configuration; the
learning rate changes every step (as under duet's warm-up and decay) and the gradients are
seeded draws with a zero, a large entry and sign changes. adamw_golden.json holds the
settings, the initial parameters, and per step the learning rate, the gradients and the
parameters after the step.

Run from the repository root (the venv is git-ignored; torch from PyPI, CPU is enough):

  python3 -m venv data/pyenv && data/pyenv/bin/pip install torch==2.15.0
  data/pyenv/bin/python testdata/train/make_adamw_golden.py
"""

import json
import pathlib

import torch

BETAS = (0.85, 0.98)
EPS = 1e-6
WEIGHT_DECAY = 0.1
LRS = [0.01, 0.02, 0.03, 0.03, 0.025, 0.02, 0.015, 0.01, 0.005, 0.001]

g = torch.Generator().manual_seed(20261202)
w = torch.nn.Parameter(torch.randn(2, 3, generator=g, dtype=torch.float32))
b = torch.nn.Parameter(torch.randn(3, generator=g, dtype=torch.float32))
init = {"w": w.detach().flatten().tolist(), "b": b.detach().flatten().tolist()}
opt = torch.optim.AdamW(
    [
        {"params": [w], "weight_decay": WEIGHT_DECAY},
        {"params": [b], "weight_decay": 0.0},
    ],
    lr=LRS[0],
    betas=BETAS,
    eps=EPS,
    foreach=False,  # the plain per-parameter loop (the reference implementation)
)
steps = []
for t, lr in enumerate(LRS):
    for group in opt.param_groups:
        group["lr"] = lr
    gw = torch.randn(2, 3, generator=g, dtype=torch.float32)
    gw[0, 1] = 0.0  # a zero gradient: only decay moves it
    gw[1, 2] = 25.0 if t % 2 == 0 else -25.0  # large, changing sign
    gb = torch.randn(3, generator=g, dtype=torch.float32) * 0.01  # small
    w.grad, b.grad = gw.clone(), gb.clone()
    opt.step()
    steps.append(
        {
            "lr": lr,
            "grads": {"w": gw.flatten().tolist(), "b": gb.flatten().tolist()},
            "params": {"w": w.detach().flatten().tolist(), "b": b.detach().flatten().tolist()},
        }
    )

golden = {
    "made_by": "testdata/train/make_adamw_golden.py",
    "torch_version": torch.__version__,
    "betas": list(BETAS),
    "eps": EPS,
    "weight_decay": WEIGHT_DECAY,
    "shapes": {"w": [2, 3], "b": [3]},
    "init": init,
    "steps": steps,
}
out = pathlib.Path(__file__).with_name("adamw_golden.json")
out.write_text(json.dumps(golden, indent=1) + "\n")
print(f"wrote {out}")
