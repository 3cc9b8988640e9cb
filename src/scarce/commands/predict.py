"""``scarce predict``: classify a folder of images with a trained classifier, to a CSV file."""

from __future__ import annotations

import argparse
from pathlib import Path

from scarce.commands.base import register_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RUN", help="classifier run directory or its classifier.safetensors")
    parser.add_argument(
        "--data", required=True, help="folder:DIR, a folder of images searched recursively (sub-folders are no classes)"
    )
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--top-k", type=int, default=5, help="most probable classes per image (default 5)")
    parser.add_argument(
        "--sort", choices=("file", "confidence"), default="file", help="row order; confidence: the least sure first"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    import sys

    from scarce.engine.device import select_device
    from scarce.errors import ConfigError
    from scarce.models.classifier import load_classifier
    from scarce.predict import folder_of_spec, predict_folder, sort_predictions, write_predictions_csv

    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out must be a file, {out} is a folder")
    folder = folder_of_spec(args.data)
    classifier = load_classifier(args.source)
    result = predict_folder(
        classifier, folder, top_k=args.top_k, batch_size=args.batch_size, device=select_device(args.device)
    )
    for path, reason in result.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    write_predictions_csv(out, sort_predictions(result.predictions, args.sort))
    print(f"{len(result.predictions)} predictions written to {out}; {len(result.skipped)} unreadable images skipped")
    return 0


register_command("predict", run, add_arguments)
