"""``scarce embed``: write frozen features (pooled, optionally all tokens) with labels and ids."""

from __future__ import annotations

import argparse
from pathlib import Path

from scarce.commands.base import add_data_arguments, register_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="run directory, checkpoint (.pt) or weights (.safetensors)")
    add_data_arguments(parser, required=True)
    parser.add_argument("--out", required=True, help="output file: .npz or .safetensors")
    parser.add_argument("--encoder", choices=("context", "target"), default="context")
    parser.add_argument("--tokens", action="store_true", help="also write all tokens [M, N, D]")
    parser.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from scarce.engine.checkpoint import atomic_write
    from scarce.engine.device import select_device
    from scarce.errors import ConfigError
    from scarce.eval.encoders import load_encoder
    from scarce.eval.features import FrozenEncoder, eval_view, extract
    from scarce.evaluate import EvaluationConfig, run_config_of, splits_for

    out = Path(args.out)
    if out.suffix not in (".npz", ".safetensors"):
        raise ConfigError(f"--out must end in .npz or .safetensors, got {out.name}")
    loaded = load_encoder(args.source, args.encoder)
    splits = splits_for(args.data, EvaluationConfig(download=args.download), run_config_of(loaded))
    frozen = FrozenEncoder(loaded.encoder, select_device(args.device))
    arrays: dict[str, torch.Tensor] = {}
    ids: list[str] = []
    names: list[str] = []
    for name, split in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if split is None:
            continue
        images = eval_view(split, loaded.encoder.config.img_size)
        parts = {"features": extract(frozen.pooled, images)}
        if args.tokens:
            parts["tokens"] = extract(frozen.tokens, images)
        parts["labels"] = split.labels if split.labels is not None else torch.full((len(split),), -1)
        for key, value in parts.items():
            arrays[key] = torch.cat([arrays[key], value]) if key in arrays else value
        ids += split.ids
        names += [name] * len(split)
    if out.suffix == ".npz":
        payload = {key: value.numpy() for key, value in arrays.items()}
        payload |= {"ids": np.array(ids), "split": np.array(names), "classes": np.array(splits.train.classes)}

        def write_npz(temporary: Path) -> None:
            with temporary.open("wb") as handle:  # a file object: np.savez would append ".npz" to a path
                np.savez(handle, **payload)

        atomic_write(out, write_npz)
    else:
        split_code = torch.tensor([("train", "val", "test").index(name) for name in names])
        tensors = {**{key: value.contiguous() for key, value in arrays.items()}, "split": split_code}
        metadata = {"ids": "\n".join(ids), "classes": "\n".join(splits.train.classes), "split_codes": "train,val,test"}
        atomic_write(out, lambda temporary: save_file(tensors, str(temporary), metadata=metadata))
    print(f"wrote {len(ids)} embeddings ({arrays['features'].shape[1]}-d) to {out}")
    return 0


register_command("embed", run, add_arguments)
