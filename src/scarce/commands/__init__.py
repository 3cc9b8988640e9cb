"""The ``scarce`` sub-commands, one module each; importing this package registers them in
:data:`COMMANDS` (see :mod:`scarce.commands.base`)."""

from scarce.commands import embed, evaluate, info, pretrain, supervised
from scarce.commands.base import COMMANDS, Command, register_command

__all__ = ["COMMANDS", "Command", "embed", "evaluate", "info", "pretrain", "register_command", "supervised"]
