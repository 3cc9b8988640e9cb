"""``scarce export``: write a trained classifier as ONNX or TorchScript (float images in [0, 1] -> logits)."""

from __future__ import annotations

import argparse
from pathlib import Path

from scarce.commands.base import register_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RUN", help="classifier run directory or its classifier.safetensors")
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript"), dest="export_format")
    parser.add_argument(
        "-o", "--out", help="output file (default: RUN/classifier.onnx or RUN/classifier.torchscript.pt)"
    )


def run(args: argparse.Namespace) -> int:
    from scarce.export import check_export_format, export_classifier
    from scarce.models.classifier import load_classifier

    check_export_format(args.export_format)  # a missing onnx package: say so before loading anything
    loaded = load_classifier(args.source)
    out = export_classifier(loaded, args.export_format, Path(args.out) if args.out else None)
    print(
        f"wrote {args.export_format} model ({len(loaded.classes)} classes, input [B, 3, {loaded.img_size}, "
        f"{loaded.img_size}] float in [0, 1]) to {out}"
    )
    return 0


register_command("export", run, add_arguments)
