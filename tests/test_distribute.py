"""--distribute on two logical CPU devices (a subprocess: devices are fixed at TF start-up)."""
import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from kblocks.common.errors import ConfigError
    from kblocks.training import TrainConfig, train
    cfg = TrainConfig(data="digits", subset=400, val_split=80, epochs=1, batch_size=64, seed=5,
                      lr=0.05, schedule="constant", verbose=0, tensorboard=False)
    out = {}
    for distribute in (False, True):
        r = train("CONV(8)-RELU-POOL-FC(32)-RELU-FC", cfg, distribute=distribute)
        out[str(distribute)] = {"val_loss": r.final["val_loss"],
                                "val_accuracy": r.final["val_accuracy"],
                                "placement": r.info["placement"]}
    try:
        train("FC", cfg, distribute=True, batch_size=63)
    except ConfigError as err:
        out["odd_batch"] = str(err)
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.slow
def test_mirrored_two_devices_matches_single_device():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    single, mirrored = out["False"], out["True"]
    assert single["placement"]["replicas"] == 1
    assert mirrored["placement"] == {"kind": "mirrored", "replicas": 2,
                                     "devices": ["/device:CPU:0", "/device:CPU:1"]}
    assert mirrored["val_loss"] == pytest.approx(single["val_loss"], rel=1e-3, abs=1e-3)
    assert mirrored["val_accuracy"] == pytest.approx(single["val_accuracy"], abs=0.02)
    assert "does not split evenly over 2 devices" in out["odd_batch"]


def test_single_device_scope_is_a_no_op():
    from kblocks.training.distribute import scope

    with scope(False, batch_size=7) as placement:
        assert placement.replicas == 1 and placement.kind == "single"
