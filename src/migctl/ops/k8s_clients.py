"""``migctl k8s clients pause|resume`` and ``k8s hooks-file``: the GPU client pods around a MIG change.

The hooks file migctl ships for Kubernetes (``migctl k8s hooks-file``) runs these. As the GPU
Operator's mig-manager does, it flips the DaemonSets' nodeSelector labels
``nvidia.com/gpu.deploy.<component>`` on this node and, when pausing, waits for the pods to be
gone. kubectl is run as an argv list with a timeout; nothing goes through a shell.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Literal

from migctl.errors import MigctlError, UsageError
from migctl.integrations.k8s import client_labels
from migctl.records.schedulers import K8sClientsReport, K8sHooksFileReport

#: Pods of the GPU clients as NVIDIA's Helm charts label them (device plugin, GFD, dcgm-exporter).
DEFAULT_SELECTOR = "app.kubernetes.io/name in (nvidia-device-plugin,gpu-feature-discovery,dcgm-exporter)"


def _kubectl(kubectl: str | None) -> str:
    exe = shutil.which(kubectl or "kubectl")
    if exe is None:
        raise UsageError(f"{kubectl or 'kubectl'} not found", hint="install kubectl or pass --kubectl PATH")
    return exe


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MigctlError(f"{' '.join(argv[:3])} ... timed out after {timeout:.0f} s") from None
    except OSError as exc:
        raise MigctlError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None


def node_name(option: str | None) -> str:
    import socket

    return option or os.environ.get("NODE_NAME") or socket.gethostname().lower()


def clients(
    action: Literal["pause", "resume"],
    *,
    node: str | None = None,
    selector: str = DEFAULT_SELECTOR,
    timeout: float = 300,
    kubectl: str | None = None,
) -> K8sClientsReport:
    """Pause (labels to ``paused-for-mig-change``, then wait for the pods to go) or resume them.

    Raises :class:`~migctl.errors.UsageError` when kubectl is missing, and
    :class:`~migctl.errors.MigctlError` when it fails (its words in the message).
    """
    exe, name = _kubectl(kubectl), node_name(node)
    got = _run([exe, "get", "node", name, "-o", "json"], 60)
    if got.returncode != 0:
        raise MigctlError(f"kubectl get node {name} failed: {got.stderr.strip()[-300:]}",
                          hint="is this the node's name (--node / NODE_NAME) and is KUBECONFIG readable?")
    try:
        current = dict(json.loads(got.stdout)["metadata"].get("labels") or {})
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MigctlError(f"kubectl get node {name} -o json printed something that is not a Node") from None
    labels = client_labels(current, action)
    done = _run([exe, "label", "--overwrite", "node", name, *(f"{k}={v}" for k, v in labels.items())], 60)
    if done.returncode != 0:
        raise MigctlError(f"kubectl label node {name} failed: {done.stderr.strip()[-300:]}")
    if action == "resume":
        return K8sClientsReport(action, name, labels, False, "")
    wait = _run([exe, "wait", "--for=delete", "pod", "--all-namespaces", f"--timeout={int(timeout)}s",
                 "--field-selector", f"spec.nodeName={name}", "-l", selector], timeout + 30)
    # kubectl wait fails when no pod matched (nothing to wait for): like mig-manager, go on.
    note = "" if wait.returncode == 0 else (wait.stderr.strip() or wait.stdout.strip())[-300:]
    return K8sClientsReport(action, name, labels, wait.returncode == 0, note)


def hooks_file() -> K8sHooksFileReport:
    """The hooks file migctl ships for Kubernetes nodes (``migctl k8s hooks-file``)."""
    from importlib import resources

    return K8sHooksFileReport(resources.files("migctl.integrations").joinpath("data/k8s-hooks.yaml").read_text("utf-8"))
