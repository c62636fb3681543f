"""The ``kblocks`` click group every command module adds its commands to.

Mistakes in user input (``KBlocksError``, missing files) print one clear message on stderr and exit
with code 2, never a traceback. Library errors name Python arguments (``epochs``, ``transfer=``);
here they are printed with the command's flags (``--epochs``, ``--transfer``). Any other
``OSError`` that escapes a command (a full disk, a read-only folder: issue 20) is printed in words by
:func:`kblocks.common.files.os_error`, also with exit code 2.
"""
from __future__ import annotations

import errno
import sys

import click

from kblocks.cli.options import flags_of, in_flags
from kblocks.common.errors import KBlocksError
from kblocks.common.files import os_error

#: errno values that can only come from a write
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def _writing(err: OSError) -> bool:
    return err.errno in _WRITE_ERRNOS


class _Group(click.Group):
    """Turns user-input errors raised by any command into exit code 2 with a plain message."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KBlocksError as err:
            click.echo(f"error: {in_flags(err, self._flags(ctx))}", err=True)
            sys.exit(2)
        except FileNotFoundError as err:
            click.echo(f"error: file not found: {err.filename or err}", err=True)
            sys.exit(2)
        except OSError as err:  # the safety net: a full disk, a read-only folder... in words
            words = os_error(err, err.filename, action="write" if _writing(err) else "read")
            click.echo(f"error: {words.render()}", err=True)
            sys.exit(2)


    def _flags(self, ctx) -> dict:
        """``{library argument name: flag}`` of the command that ran (its options, by name)."""
        command = self.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
        return flags_of(command)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kblocks")
def main():
    """kblocks: architecture strings and YAML blocks compiled to Keras models."""
