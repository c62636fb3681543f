"""Keras Tuner's chief/worker distribution, as ``kblocks search --distributed chief|worker``.

The chief holds the oracle and answers workers over gRPC; each worker asks it for a trial, trains
it and reports back, until the oracle has no more trials. The roles are Keras Tuner's own,
chosen by its environment variables (``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``,
``KERASTUNER_ORACLE_PORT``), which :func:`kblocks.search.runner.run_search` sets.

The chief here serves with Keras Tuner's ``OracleServicer`` but polls for the end of the search
every half second (Keras Tuner's own loop sleeps 20 seconds between checks) and stops its server
when it returns. The gRPC port is unauthenticated: bind it to an address only your workers reach.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

from kblocks.common.errors import ConfigError


def serve(oracle, host: str, port: int, *, echo=print, poll: float = 0.5):
    """Serve ``oracle`` to workers on ``host:port`` until every trial is done and every worker
    has been told to stop."""
    import grpc
    from concurrent import futures

    try:  # Keras Tuner's servicer; its module is internal, so fall back to its own loop
        from keras_tuner.src import protos
        from keras_tuner.src.distribute.oracle_chief import OracleServicer, exit_chief
    except ImportError:  # pragma: no cover - a Keras Tuner that moved them
        from keras_tuner.src.distribute import oracle_chief

        return oracle_chief.start_server(oracle)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        raise ConfigError(f"cannot listen on {host}:{port} (in use, or not an address of this "
                          f"machine)", what="port", hint="choose another --port or --bind")
    server.start()
    echo(f"chief: serving trials on {host}:{port}; start workers with "
         f"--distributed worker --chief HOST:{port}")
    try:
        while not (servicer.stop_triggered and exit_chief(oracle)):
            time.sleep(poll)
    finally:
        server.stop(grace=2)


def quiet_condition_protos():
    """Keras Tuner 1.4's ``Parent.to_proto`` prints the first value of every condition each time
    a search space crosses gRPC; keep that off the console."""
    try:
        from keras_tuner.src.engine import conditions
    except ImportError:  # pragma: no cover
        return
    original = conditions.Parent.to_proto
    if getattr(original, "_kblocks_quiet", False):
        return

    def to_proto(self):
        with contextlib.redirect_stdout(io.StringIO()):
            return original(self)

    to_proto._kblocks_quiet = True
    conditions.Parent.to_proto = to_proto


def _search_over(folder) -> bool:
    """Whether the chief wrote that the search in ``folder`` ended (when the folder is shared)."""
    try:
        record = json.loads((Path(folder) / "search.json").read_text())
    except (OSError, ValueError):
        return False
    return record.get("status") in ("finished", "stopped", "failed")


def _wait_for_chief(host, port, folder, timeout: float) -> str:
    """``"ready"``, ``"over"`` (the shared folder says the search ended) or ``"timeout"``."""
    import grpc

    deadline = time.time() + timeout
    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        while True:
            if _search_over(folder):
                return "over"
            try:
                grpc.channel_ready_future(channel).result(timeout=1.0)
                return "ready"
            except grpc.FutureTimeoutError:
                if time.time() >= deadline:
                    return "timeout"
    finally:
        channel.close()


def join(host, port, folder, timeout: float, *, echo=print) -> bool:
    """Wait for the chief at ``host:port``: True once it answers, False if the shared ``folder``
    says the search is already over; a ConfigError after ``timeout`` seconds of silence. A worker
    calls this before it touches the folder, which the chief prepares before it listens."""
    try:  # how long one call to the chief may wait for it (Keras Tuner's default is an hour)
        from keras_tuner.src.distribute import oracle_client

        oracle_client.TIMEOUT = max(5, int(timeout))
    except ImportError:  # pragma: no cover
        pass
    state = _wait_for_chief(host, port, folder, timeout)
    if state == "over":
        echo(f"worker: the search in {folder} is already over; stopping")
        return False
    if state == "timeout":
        raise ConfigError(f"no chief answered at {host}:{port} within {timeout:g} s",
                          what="chief", hint="start the chief first (kblocks search ... "
                                               "--distributed chief --port PORT), and check the "
                                               "address and any firewall")
    return True


def work(tuner, fit_args, fit_kwargs, *, host, port, folder, echo=print):
    """Run trials for the chief until it has none left (see :func:`join` for the start)."""
    import grpc

    try:
        tuner.search(*fit_args, **fit_kwargs)
    except grpc.RpcError as err:
        if _search_over(folder):
            echo(f"worker: the search in {folder} is over; stopping")
            return
        raise ConfigError(f"lost the chief at {host}:{port} ({err.code().name})",
                          what="chief", hint="restart the worker with the same --worker-id "
                                               "once the chief runs again (--resume)") from None
    echo("worker: the chief has no more trials; stopping")
