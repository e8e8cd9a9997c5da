"""Which GPUs a command acts on: ``-i`` as every front end reads it (docs/cli.md).

One rule, as nvidia-smi's: without ``-i``, every GPU. Where acting on every GPU would mean
something else than the user meant, the rule says so here, once, for the CLI and the API:

* ``create`` without ``-i`` creates on every GPU with MIG enabled (on none: on all, so the
  operation says why each cannot);
* GPU-instance IDs (``--gi``, ``--ci``, ``create-ci``, ``ci-profiles``) repeat on every GPU, so
  a command that names them needs ``-i`` on a node with several GPUs;
* ``batch --auto`` without ``-i`` may use and reshape every MIG-capable GPU (it skips the others,
  as ``mode`` does); a GPU named with ``-i`` that is not MIG-capable is an error.

The text of ``-i`` itself is parsed by :mod:`migctl.config.gpus` (through ``Node.select``).
"""

from __future__ import annotations

from migctl.device import Gpu, Node
from migctl.errors import NotSupportedError, UsageError


def for_create(node: Node, spec: str | None) -> list[Gpu]:
    """The GPUs ``create -i spec`` acts on: those named, or every GPU with MIG enabled."""
    chosen = node.select(spec)
    if spec is not None:
        return chosen
    enabled = [g for g in chosen if (m := g.mig_mode()) is not None and m.current]
    return enabled or chosen


def for_instance_ids(node: Node, spec: str | None, command: str) -> list[Gpu]:
    """The GPUs a command that names GPU-instance IDs acts on: those named, or the only one."""
    chosen = node.select(spec)
    if spec is None and len(chosen) > 1:
        raise UsageError(
            f"{command}: GPU-instance IDs repeat on each of this node's {len(chosen)} GPUs: say which with -i",
            hint=f"e.g. migctl {command} -i 0 ... (or -i all for the same IDs on every GPU)",
        )
    return chosen


def one_gpu(node: Node, spec: str | None, command: str) -> Gpu:
    """The one GPU a command about a single GPU instance acts on."""
    chosen = for_instance_ids(node, spec, command)
    if len(chosen) != 1:
        raise UsageError(f"-i {spec}: {command} takes exactly one GPU")
    return chosen[0]


def for_reshape(node: Node, spec: str | None) -> list[Gpu]:
    """The GPUs ``batch --auto -i spec`` may use and reshape: those named (each MIG-capable), or
    every MIG-capable GPU. None at all is a :class:`NotSupportedError`."""
    chosen = node.select(spec)
    out = []
    for g in chosen:
        if g.mig_mode() is not None:
            out.append(g)
        elif spec is not None:
            raise UsageError(f"-i {spec}: GPU {g.index} ({g.name}) is not MIG-capable", hint="leave it out of -i")
    if not out:
        raise NotSupportedError(
            "no MIG-capable GPU to schedule on" + (f" among -i {spec}" if spec is not None else ""),
            hint="batch --auto needs GPUs whose driver lists MIG profiles (enable MIG on one: migctl mode enable -i N)",
        )
    return out
