"""The ``scarce`` sub-commands, one module each; importing this package registers them in
:data:`COMMANDS` (see :mod:`scarce.commands.base`)."""

from scarce.commands import (
    distill,
    embed,
    evaluate,
    export,
    finetune,
    info,
    predict,
    pretrain,
    report,
    semisup,
    supervised,
    visualize,
)
from scarce.commands.base import COMMANDS, Command, register_command

__all__ = [
    "COMMANDS",
    "Command",
    "distill",
    "embed",
    "evaluate",
    "export",
    "finetune",
    "info",
    "predict",
    "pretrain",
    "register_command",
    "report",
    "semisup",
    "supervised",
    "visualize",
]
