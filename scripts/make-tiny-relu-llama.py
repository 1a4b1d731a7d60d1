#!/usr/bin/env python3
"""Make a tiny random ReLU-LLaMA checkpoint + sparse predictor, offline and deterministic.

    /usr/bin/python3 scripts/make-tiny-relu-llama.py --out DIR [--seed N]

Writes

    DIR/model/config.json          LlamaForCausalLM, model_type "llama", hidden_act "relu",
                                   2 layers, hidden 64, ffn 256, 4 heads, vocab 512, ctx 256
    DIR/model/tokenizer.model      sentencepiece BPE (vocab 512, byte fallback), trained here on
                                   a generated text; it does not depend on --seed
    DIR/model/model.safetensors    F32, Hugging Face LLaMA tensor names, written by hand
    DIR/predictor/model_{i}.pt     one per layer: safetensors bytes (PowerInfer's convert.py
                                   sniffs the content, so no torch is needed) holding
                                   fc1.weight [32, 64] and fc2.weight [256, 32], F32
    DIR/predictor/config.json      {"sparse_threshold": 0.0}

which PowerInfer's convert.py turns into a working .powerinfer.gguf:

    /usr/bin/python3 convert.py --outfile DIR/tiny.powerinfer.gguf DIR/model DIR/predictor

Same seed -> byte-identical files. Needs only the standard library, numpy and sentencepiece
(Debian: apt-get install python3-numpy python3-sentencepiece; use /usr/bin/python3).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

try:
    import numpy as np
    import sentencepiece as spm
except ImportError as err:  # one clear line, non-zero exit
    sys.stderr.write(
        f"make-tiny-relu-llama: missing Python module '{err.name}': install the Debian packages "
        "python3-numpy python3-sentencepiece and run with /usr/bin/python3\n")
    sys.exit(2)

N_LAYER = 2
N_EMBD = 64
N_FF = 256
N_HEAD = 4
N_VOCAB = 512
N_CTX = 256
N_PRED = 32  # predictor width P
RMS_EPS = 1e-6
SPARSE_THRESHOLD = 0.0

WORDS = (
    "once upon a time there was little girl boy cat dog bird tree house garden river sun moon "
    "star day night happy sad big small red blue green yellow she he they it played ran jumped "
    "looked saw found went came said asked loved wanted liked made had was were is are the and "
    "to of in on with for at from but so then very friend mother father sister brother ball "
    "toy book cake apple flower park school forest sky water fish car boat box door window "
    "morning evening together every one two three named lily tom ben sue max mia sam"
).split()


class Lcg:
    """Tiny 64-bit LCG: the training text must not depend on Python's or numpy's RNG versions."""

    def __init__(self, seed: int) -> None:
        self.state = (seed * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)

    def below(self, n: int) -> int:
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        return (self.state >> 33) % n


def training_text() -> list[str]:
    """A fixed, generated corpus: story-like sentences plus digits and punctuation."""
    rng = Lcg(20240601)
    lines = []
    for i in range(3000):
        n = 4 + rng.below(10)
        words = [WORDS[rng.below(len(WORDS))] for _ in range(n)]
        words[0] = words[0].capitalize()
        end = ".!?"[rng.below(3)]
        lines.append(" ".join(words) + end + (f" {i}" if i % 7 == 0 else ""))
    lines.insert(0, "Once upon a time, there was a little girl named Lily.")
    return lines


def train_tokenizer() -> bytes:
    buf = _BytesSink()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_text()),
        model_writer=buf,
        model_type="bpe",
        vocab_size=N_VOCAB,
        character_coverage=1.0,
        byte_fallback=True,          # <0x00>..<0xFF> at ids 3..258, like LLaMA's tokenizer
        split_digits=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        num_threads=1,
        minloglevel=2,               # keep the trainer's log off stderr
    )
    return buf.data


class _BytesSink:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def safetensors_bytes(tensors: list[tuple[str, "np.ndarray"]]) -> bytes:
    """safetensors layout: u64 LE header length, JSON header (space-padded to 8), raw LE data."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, arr in tensors:
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def model_tensors(rng: "np.random.Generator") -> list[tuple[str, "np.ndarray"]]:
    def w(*shape: int, scale: float = 0.02) -> "np.ndarray":
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)).astype(np.float32)

    def norm() -> "np.ndarray":
        return (1.0 + rng.standard_normal(N_EMBD, dtype=np.float32) * np.float32(0.01)).astype(np.float32)

    out = [("model.embed_tokens.weight", w(N_VOCAB, N_EMBD, scale=0.1))]
    for i in range(N_LAYER):
        p = f"model.layers.{i}."
        out += [
            (p + "self_attn.q_proj.weight", w(N_EMBD, N_EMBD, scale=0.1)),
            (p + "self_attn.k_proj.weight", w(N_EMBD, N_EMBD, scale=0.1)),
            (p + "self_attn.v_proj.weight", w(N_EMBD, N_EMBD, scale=0.1)),
            (p + "self_attn.o_proj.weight", w(N_EMBD, N_EMBD, scale=0.1)),
            (p + "mlp.gate_proj.weight", w(N_FF, N_EMBD, scale=0.1)),
            (p + "mlp.up_proj.weight", w(N_FF, N_EMBD, scale=0.1)),
            (p + "mlp.down_proj.weight", w(N_EMBD, N_FF, scale=0.05)),
            (p + "input_layernorm.weight", norm()),
            (p + "post_attention_layernorm.weight", norm()),
        ]
    out += [("model.norm.weight", norm()), ("lm_head.weight", w(N_VOCAB, N_EMBD, scale=0.1))]
    return out


def config_json() -> dict[str, object]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "relu",
        "hidden_size": N_EMBD,
        "intermediate_size": N_FF,
        "num_hidden_layers": N_LAYER,
        "num_attention_heads": N_HEAD,
        "num_key_value_heads": N_HEAD,
        "vocab_size": N_VOCAB,
        "max_position_embeddings": N_CTX,
        "rms_norm_eps": RMS_EPS,
        "rope_theta": 10000.0,
        "initializer_range": 0.02,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
    }


def write(path: Path, data: bytes, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    written.append(path)


def main() -> int:
    ap = argparse.ArgumentParser(description="Make a tiny random ReLU-LLaMA + predictor (deterministic).")
    ap.add_argument("--out", required=True, type=Path, help="output directory (gets model/ and predictor/)")
    ap.add_argument("--seed", type=int, default=0, help="seed for the weights (default 0)")
    args = ap.parse_args()
    if args.seed < 0:
        ap.error("--seed must be >= 0")

    out: Path = args.out
    written: list[Path] = []
    rng = np.random.default_rng(args.seed)

    tok = train_tokenizer()
    check = spm.SentencePieceProcessor(model_proto=tok)
    if check.vocab_size() != N_VOCAB:
        sys.stderr.write(f"make-tiny-relu-llama: tokenizer has {check.vocab_size()} pieces, expected {N_VOCAB}\n")
        return 1

    cfg = json.dumps(config_json(), indent=2, sort_keys=True) + "\n"
    write(out / "model" / "config.json", cfg.encode(), written)
    write(out / "model" / "tokenizer.model", tok, written)
    write(out / "model" / "model.safetensors", safetensors_bytes(model_tensors(rng)), written)
    for i in range(N_LAYER):
        pred = [("fc1.weight", (rng.standard_normal((N_PRED, N_EMBD), dtype=np.float32) * np.float32(0.1))),
                ("fc2.weight", (rng.standard_normal((N_FF, N_PRED), dtype=np.float32) * np.float32(0.1)))]
        write(out / "predictor" / f"model_{i}.pt", safetensors_bytes(pred), written)
    pcfg = json.dumps({"sparse_threshold": SPARSE_THRESHOLD}) + "\n"
    write(out / "predictor" / "config.json", pcfg.encode(), written)

    print(f"tiny ReLU-LLaMA (seed {args.seed}): {N_LAYER} layers, hidden {N_EMBD}, ffn {N_FF}, "
          f"{N_HEAD} heads, vocab {N_VOCAB}, ctx {N_CTX}, predictor width {N_PRED}")
    for p in written:
        data = p.read_bytes()
        print(f"  {hashlib.sha256(data).hexdigest()[:16]}  {len(data):8d}  {p}")
    print(f"convert: /usr/bin/python3 convert.py --outfile {out}/tiny.powerinfer.gguf "
          f"{out}/model {out}/predictor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
