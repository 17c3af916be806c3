#!/usr/bin/env python3
"""Embedding-throughput peers for all-MiniLM-L6-v2: sentence-transformers (PyTorch) and
onnxruntime, on the same 256 SMS texts, batch 32, at most 128 tokens, f32, 2 threads.

    data/pyenv/bin/python bench/model/embed_peers.py [--runs 5] [--peers st,ort]

Input:  data/bench/model/sms256.txt (bench/model/make_sms256.py), one text per line, kept in
        file order; model folder data/external/minilm/ (scripts/fetch-data.sh minilm).
Output: one JSON line per peer on stdout, and data/bench/model/embed-peers.json.

Per peer: load (untimed), 1 warm-up pass over all 256 texts, then (after waiting up to
--wait-quiet seconds for an idle machine, and logging `top -bn1 | head -15`) --runs timed passes;
time.perf_counter() around the whole encode of the 256 texts (tokenization, batching,
forward, pooling, normalisation; not model loading). Reported: the median sentences/s, the
machine's busy cores just before and the CPU-seconds other processes used during the runs.

* st:  SentenceTransformer(folder, device="cpu"), max_seq_length = 128,
       encode(texts, batch_size=32) -> L2-normalised float32 numpy (the model's modules.json
       has Transformer -> mean Pooling -> Normalize). encode() sorts the texts by length
       (longest first) itself, batches of 32, pads each batch to its longest text.
* ort: the same BertModel exported once to ONNX (torch.onnx.export, TorchScript exporter,
       opset 17, dynamic batch and sequence axes; cached as data/bench/model/minilm.onnx),
       onnxruntime CPUExecutionProvider, graph optimisations ORT_ENABLE_ALL (the default),
       intra_op_num_threads=2, inter_op_num_threads=1, sequential execution. Tokenization with
       the `tokenizers` library from the model's tokenizer.json (truncation 128, padding to the
       longest in each batch), texts sorted by length exactly as sentence-transformers sorts
       them (to be fair: same batches, same padding), mean pooling with the attention mask and
       L2 normalisation in numpy, results put back in input order. Checked against the
       st embeddings: every cosine > 0.99999 or the script fails.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
THREADS = 2
BATCH = 32
MAX_TOKENS = 128

os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(THREADS))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from machine import CpuWatch, before_timing, log  # noqa: E402  (bench/model/machine.py)

torch.set_num_threads(THREADS)
torch.set_num_interop_threads(1)


def timed_runs(name, encode, texts, runs, wait_quiet_s):
    encode(texts)  # warm-up
    seen = before_timing(name, wait_quiet_s)
    times = []
    with CpuWatch() as w:
        for _ in range(runs):
            t0 = time.perf_counter()
            encode(texts)
            times.append(time.perf_counter() - t0)
    sps = [len(texts) / t for t in times]
    return {
        "peer": name,
        "sentences_per_s": round(statistics.median(sps), 2),
        "runs": [round(x, 2) for x in sps],
        "seconds": [round(t, 4) for t in times],
        **seen,
        "others_cpu_s_during": w.others_cpu_s,
        "own_cpu_s": w.own_cpu_s,
    }


# ---------------------------------------------------------------- sentence-transformers --

def make_st(model_dir):
    from sentence_transformers import SentenceTransformer

    m = SentenceTransformer(model_dir, device="cpu")
    m.max_seq_length = MAX_TOKENS
    m.eval()

    def encode(texts):
        return m.encode(texts, batch_size=BATCH, convert_to_numpy=True, show_progress_bar=False)

    return encode


# ------------------------------------------------------------------------ onnxruntime --

def export_onnx(model_dir, path):
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()  # BertModel

    class Wrapper(torch.nn.Module):  # keyword arguments: BertModel.forward's positional order is not stable
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            o = self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return o.last_hidden_state, o.pooler_output

    model = Wrapper(bert).eval()
    # the dummy batch has padding, so that the traced graph keeps the attention-mask path
    # (transformers skips the mask when it is all ones, and the tracer would freeze that choice)
    ids = torch.full((2, 16), 1000, dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    mask[1, 9:] = 0
    ids[1, 9:] = 0
    tt = torch.zeros((2, 16), dtype=torch.long)
    tmp = path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(
            model, (ids, mask, tt), tmp,
            dynamo=False,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state", "pooler_output"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "attention_mask": {0: "batch", 1: "seq"},
                "token_type_ids": {0: "batch", 1: "seq"},
                "last_hidden_state": {0: "batch", 1: "seq"},
                "pooler_output": {0: "batch"},
            },
            opset_version=17,
            do_constant_folding=True,
        )
    os.replace(tmp, path)
    log(f"exported {path} ({os.path.getsize(path)} bytes)")


def make_ort(model_dir, onnx_path):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    if not os.path.exists(onnx_path):
        export_onnx(model_dir, onnx_path)
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    in_names = {i.name for i in sess.get_inputs()}

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_TOKENS)
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]")  # to the longest in the batch

    def encode(texts):
        # the order sentence-transformers uses: longest first by character count
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), 384), dtype=np.float32)
        for s in range(0, len(texts), BATCH):
            idx = order[s:s + BATCH]
            encs = tok.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in in_names:
                feeds["token_type_ids"] = np.array([e.type_ids for e in encs], dtype=np.int64)
            hidden = sess.run(["last_hidden_state"], feeds)[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[idx] = pooled
        return out

    return encode, ort.__version__


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "data/external/minilm"))
    ap.add_argument("--input", default=os.path.join(ROOT, "data/bench/model/sms256.txt"))
    ap.add_argument("--onnx", default=os.path.join(ROOT, "data/bench/model/minilm.onnx"))
    ap.add_argument("--out", default=os.path.join(ROOT, "data/bench/model/embed-peers.json"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--peers", default="st,ort")
    ap.add_argument("--wait-quiet", type=float, default=600.0,
                    help="before each peer's timed runs, wait up to this many seconds for an idle machine")
    args = ap.parse_args()

    with open(args.input, encoding="utf-8") as f:
        texts = f.read().split("\n")
    if texts and texts[-1] == "":
        texts.pop()
    log(f"{len(texts)} texts from {args.input}")

    import sentence_transformers
    import tokenizers
    import transformers

    versions = {
        "python": platform.python_version(), "torch": torch.__version__,
        "transformers": transformers.__version__, "sentence_transformers": sentence_transformers.__version__,
        "tokenizers": tokenizers.__version__, "numpy": np.__version__,
    }
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    results = []
    ref = None
    st_encode = make_st(args.model)  # also the reference for the parity check of ort
    ref = st_encode(texts)
    if "st" in peers:
        r = timed_runs("sentence-transformers", st_encode, texts, args.runs, args.wait_quiet)
        r["version"] = f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}"
        print(json.dumps(r), flush=True)
        results.append(r)
    if "ort" in peers:
        ort_encode, ort_version = make_ort(args.model, args.onnx)
        versions["onnxruntime"] = ort_version
        emb = ort_encode(texts)
        cos = (emb * ref).sum(axis=1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
        min_cos = float(cos.min())
        log(f"onnxruntime vs sentence-transformers: min cosine {min_cos:.8f}, max |diff| {float(np.abs(emb - ref).max()):.2e}")
        if not min_cos > 0.99999:
            raise SystemExit(f"onnxruntime embeddings differ from sentence-transformers: min cosine {min_cos}")
        r = timed_runs("onnxruntime", ort_encode, texts, args.runs, args.wait_quiet)
        r["version"] = f"onnxruntime {ort_version}"
        r["min_cosine_vs_st"] = round(min_cos, 8)
        print(json.dumps(r), flush=True)
        results.append(r)

    report = {
        "benchmark": "all-MiniLM-L6-v2 embeddings",
        "input": os.path.relpath(args.input, ROOT), "texts": len(texts),
        "batch_size": BATCH, "max_tokens": MAX_TOKENS, "threads": THREADS, "dtype": "f32",
        "warmup_passes": 1, "timed_passes": args.runs, "statistic": "median sentences/s",
        "cpu": platform.processor() or platform.machine(), "versions": versions, "peers": results,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
