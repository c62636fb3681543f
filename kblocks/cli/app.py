"""The ``kblocks`` click group every command module adds its commands to.

Mistakes in user input (``KBlocksError``, missing files) print one clear message on stderr and exit
with code 2, never a traceback. Library errors name Python arguments (``epochs``, ``transfer=``);
here they are printed with the command's flags (``--epochs``, ``--transfer``). Any other
``OSError`` that escapes a command (a full disk, a read-only folder: issue 20) is printed in words by
:func:`kblocks.common.files.os_error`, also with exit code 2.

TensorFlow's start-up lines (oneDNN, CUDA, ``I0000``/``W0000``, absl and Keras warnings) are
silenced before any command imports it (:func:`quiet_logs`, issue 17; the oneDNN notice TF 2.21
prints whatever the log level is filtered out of that import by :mod:`kblocks.common.quietimport`);
``kblocks --verbose CMD`` keeps them. A ``TF_CPP_MIN_LOG_LEVEL`` the user set is always kept.
"""
from __future__ import annotations

import errno
import logging
import os
import sys
import warnings

import click

from kblocks.cli.options import flags_of, in_flags
from kblocks.common.errors import KBlocksError
from kblocks.common.files import os_error
from kblocks.common.quietimport import quiet_tensorflow_import

#: errno values that can only come from a write
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


#: environment variables the CLI sets (unless set already) before TensorFlow is imported: TF's C++
#: log level 3 (errors only: no oneDNN, CUDA or I0000/W0000 lines), and the same for gRPC and glog
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "2"}
#: packages whose Python warnings (deprecations, Keras' notices) the CLI hides unless --verbose
NOISY_MODULES = r"(keras|tensorflow|tf_keras|tensorboard|absl|tf2onnx|onnx|google\.protobuf|h5py)(\.|$)"
#: Python loggers TensorFlow and Keras write their warnings to (``WARNING:absl:...``)
NOISY_LOGGERS = ("absl", "tensorflow", "h5py")


def quiet_logs() -> None:
    """Silence TensorFlow's and Keras' log lines for the rest of this process (the CLI's default):
    :data:`QUIET_ENV` (a value the user set is kept), warnings from :data:`NOISY_MODULES` and the
    :data:`NOISY_LOGGERS` at ERROR. It must run before TensorFlow is imported; the CLI imports it
    only inside commands."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    quiet_tensorflow_import()  # the lines TF 2.21 prints whatever the log level
    warnings.filterwarnings("ignore", module=NOISY_MODULES)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


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
@click.option("--verbose", is_flag=True,
              help="Keep TensorFlow's and Keras' own log lines and warnings (hidden by default).")
def main(verbose):
    """kblocks: architecture strings and YAML blocks compiled to Keras models."""
    if not verbose:
        quiet_logs()
