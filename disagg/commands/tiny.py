"""`disagg make-tiny-model DIR`."""

from __future__ import annotations

import argparse

from .common import EXIT_CLEAN, err


def run(args: argparse.Namespace) -> int:
    import importlib.util

    need = ["tokenizers"] + ([] if args.no_weights else ["safetensors", "numpy"])
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        return err(f"make-tiny-model needs {', '.join(missing)}: pip install '.[vllm]'")
    from disagg.runtime.tiny_model import make_tiny_model

    try:
        cfg = make_tiny_model(args.dir, weights=not args.no_weights, seed=args.seed)
    except OSError as exc:
        return err(f"cannot write {args.dir}: {exc.strerror}")
    print(f"wrote a {cfg['num_hidden_layers']}-layer Llama (hidden {cfg['hidden_size']}, vocab {cfg['vocab_size']}) to {args.dir}")
    return EXIT_CLEAN


