"""The ``kblocks`` click group every command module adds its commands to.

Mistakes in user input (``KBlocksError``, missing files) print one clear message on stderr and exit
with code 2, never a traceback.
"""
from __future__ import annotations

import sys

import click

from kblocks.common.errors import KBlocksError


class _Group(click.Group):
    """Turns user-input errors raised by any command into exit code 2 with a plain message."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KBlocksError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except FileNotFoundError as err:
            click.echo(f"error: file not found: {err.filename or err}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kblocks")
def main():
    """kblocks: architecture strings and YAML blocks compiled to Keras models."""
