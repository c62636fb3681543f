"""Pieces the benchmark scripts share: the CPU's name and the ResNet-50 text used when no zoo file is
found. Imported as ``from _common import ...`` (a script's own folder is first on sys.path)."""
from __future__ import annotations

import platform
from pathlib import Path

# ResNet-50 v1 as keras.applications builds it (25,636,712 parameters), used only when the zoo has
# no resnet50.yaml; each script says which source it used.
RESNET50_TEXT = """
ZEROPAD(3) - CONV(64, 7, stride=2, padding=valid) - BN(epsilon=1.001e-5) - RELU
- ZEROPAD(1) - POOL(3, 2)
- @bottleneck(64, 256, proj=1) - [@bottleneck(64, 256)]*2
- @bottleneck(128, 512, stride=2, proj=1) - [@bottleneck(128, 512)]*3
- @bottleneck(256, 1024, stride=2, proj=1) - [@bottleneck(256, 1024)]*5
- @bottleneck(512, 2048, stride=2, proj=1) - [@bottleneck(512, 2048)]*2
- GAP - FC(classes) - SOFTMAX
"""


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
