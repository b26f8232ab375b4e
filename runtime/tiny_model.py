"""`disagg make-tiny-model DIR`: a tiny Llama-architecture model made here, for machines that cannot download one.

It writes `config.json`, a byte-level BPE tokenizer trained locally with `tokenizers`, and (unless `--no-weights`)
random weights in `model.safetensors`, scaled so that the output depends on the context: vLLM's
`--load-format dummy` draws weights so small that every prompt gives the same output, which would let a test of KV
correctness pass with the wrong KV.
"""

from __future__ import annotations

import json
import os

CORPUS = (
    "Disaggregated serving runs the prefill of a prompt on one group of GPUs and the decode on another, and moves "
    "the key value cache between them. When the decode worker is not told to send prefills away, the prefill "
    "workers sit idle and nobody notices. The quick brown fox jumps over the lazy dog. 0123456789 "
    "Hello, world! How are you today? I am a tiny model that knows very little, but I know it deterministically. "
)

# head_dim 64: vLLM's CPU attention kernels support 32..256, not 16.
SHAPE = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 512}


def make_tiny_model(path: str, weights: bool = True, seed: int = 0, dtype: str = "float32") -> dict:
    """Write the model into `path` (created if needed); returns its config."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    os.makedirs(path, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=SHAPE["vocab_size"], special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([CORPUS] * 20, trainer)
    tok.save(os.path.join(path, "tokenizer.json"))
    vocab = tok.get_vocab_size()
    with open(os.path.join(path, "tokenizer_config.json"), "w", encoding="utf-8") as handle:
        json.dump({
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "model_max_length": 2048,
            "chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
        }, handle, indent=2)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": dtype, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 1,
        **{**SHAPE, "vocab_size": vocab}, "head_dim": SHAPE["hidden_size"] // SHAPE["num_attention_heads"],
    }
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
    with open(os.path.join(path, "generation_config.json"), "w", encoding="utf-8") as handle:
        json.dump({"bos_token_id": 0, "eos_token_id": 1}, handle)
    if weights:
        _write_weights(path, config, seed)
    return config


def _write_weights(path: str, config: dict, seed: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    h, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    heads, kv_heads, hd, vocab = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"], config["vocab_size"]

    def w(rows: int, cols: int, scale: float = 1.0) -> np.ndarray:
        # Xavier-like: large enough that attention over the context changes the logits.
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(np.float32)

    tensors = {"model.embed_tokens.weight": (rng.standard_normal((vocab, h))).astype(np.float32), "model.norm.weight": np.ones(h, np.float32),
               "lm_head.weight": w(vocab, h, 4.0)}
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors.update({
            p + "input_layernorm.weight": np.ones(h, np.float32), p + "post_attention_layernorm.weight": np.ones(h, np.float32),
            p + "self_attn.q_proj.weight": w(heads * hd, h, 3.0), p + "self_attn.k_proj.weight": w(kv_heads * hd, h, 3.0),
            p + "self_attn.v_proj.weight": w(kv_heads * hd, h, 2.0), p + "self_attn.o_proj.weight": w(h, heads * hd, 2.0),
            p + "mlp.gate_proj.weight": w(inter, h), p + "mlp.up_proj.weight": w(inter, h), p + "mlp.down_proj.weight": w(h, inter),
        })
    save_file(tensors, os.path.join(path, "model.safetensors"))
