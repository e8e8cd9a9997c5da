"""Put first on PYTHONPATH by ``migctl sim exec``: pynvml in this process uses the simulated node.

See :mod:`migctl.sim.exec`. Any other ``sitecustomize`` on the path still runs afterwards.
"""

import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _install() -> None:
    try:
        from migctl.sim.exec import install

        install()
    except Exception as exc:  # never stop the program itself from starting
        sys.stderr.write(f"migctl sim exec: pynvml could not be attached to the simulated node: {exc}\n")


def _chain() -> None:
    others = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


if os.environ.get("MIGCTL_SIM_EXEC") and importlib.util.find_spec("pynvml") is not None:
    _install()
_chain()
