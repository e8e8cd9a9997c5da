#!/usr/bin/env python3
"""Train on one MIG device: the seed's step-8 PyTorch script ("not achieved"), fixed.

What went wrong: the original started CUDA (``torch.cuda.is_available()``), listed
``torch.cuda.get_device_properties(i).uuid`` and called ``torch.cuda.set_device(i)`` for the UUID
it wanted. With MIG that cannot work. CUDA decides which devices a process sees once, when it
initialises, from ``CUDA_VISIBLE_DEVICES``; a MIG device is visible only if that variable names
it (``MIG-<uuid>``), and a CUDA process uses one MIG device. ``get_device_properties().uuid`` is
moreover a raw CUDA UUID without the ``MIG-`` prefix that ``nvidia-smi -L`` prints.

The fix: choose the MIG device *before* CUDA starts. ``migctl.use()`` picks a free one (or the
one you name), leases it so no other program lands on it, and sets ``CUDA_VISIBLE_DEVICES``;
after that, ``cuda:0`` is that MIG device.

    python examples/train_on_mig.py                       # any free MIG device
    python examples/train_on_mig.py --on 1g.12gb          # any free 1g.12gb
    python examples/train_on_mig.py --on MIG-1b24da31-838c-5294-b2b5-22ae3e5f0676
    python examples/train_on_mig.py --on 0:2 --queue 600  # GPU 0, GPU instance 2; queue up to 10 min
    migctl run --on 1g.12gb -- python examples/train_on_mig.py   # or let migctl run choose
    MIGCTL_SIM=h20x8 python examples/train_on_mig.py      # on the simulator (prints what it would do)

(``migctl status`` shows the GPU instance IDs there are; ``0:2`` is the 3g.48gb instance that
``migctl apply -f examples/layouts.yaml -c balanced`` makes on an H20's GPU 0.)

On a simulated node CUDA cannot be real: the script leases the device, says so, and says what
would happen on the hardware (exit 0). With a CPU-only PyTorch build it says that too.

Two programs in parallel on two instances (the seed's step 6): start this script twice, or
``migctl batch --each-instance -- python examples/train_on_mig.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

# migctl, not torch, first: importing torch would be harmless, but nothing may touch CUDA before use().
from migctl.errors import MigctlError
from migctl.torchcheck import torch_build, without_cuda
from migctl.usage import use  # also importable as migctl.use


def run_sample_computation(torch: Any) -> float:
    """The seed's computation, on cuda:0, which is now the MIG device."""
    device = torch.device("cuda:0")
    a = torch.randn(1000, 1000, device=device)
    b = torch.randn(1000, 1000, device=device)
    c = a @ b  # matrix multiplication
    result = float(c.mean().item())
    print(f"result (mean of a @ b): {result}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a PyTorch computation on one MIG device.")
    parser.add_argument("--on", metavar="TARGET", help="MIG-<uuid>, GPU:GI (0:2) or a profile (1g.12gb)")
    parser.add_argument(
        "--queue", type=float, default=0, metavar="SECONDS", help="queue this long for a free one (migctl run --queue)"
    )
    args = parser.parse_args(argv)

    # Step 1: choose and lease the MIG device, before CUDA initialises.
    try:
        dev = use(args.on, wait=args.queue)
    except MigctlError as exc:
        print(f"cannot use a MIG device: {exc}", file=sys.stderr)
        return exc.exit_code
    print(
        f"MIG device {dev.uuid}: GPU {dev.gpu}, GPU instance {dev.gpu_instance_id}, "
        f"compute instance {dev.compute_instance_id}, {dev.profile}, {dev.memory_mib} MiB"
    )
    print(f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}")

    # Step 2: only now start CUDA.
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed. With it, this script would now:")
        print("  1. check torch.cuda.is_available() and that torch.cuda.device_count() == 1 (only this MIG device);")
        print(f"  2. compute a @ b for two random 1000x1000 tensors on cuda:0 (= {dev.uuid}) and print the mean.")
        if os.environ.get("MIGCTL_SIM"):
            print("(This node is simulated: even with PyTorch, CUDA cannot be real here; it would on the hardware.)")
        return 0
    if not torch.cuda.is_available():
        simulated = bool(os.environ.get("MIGCTL_SIM"))  # use() opened the node MIGCTL_SIM names
        why, problem = without_cuda(torch_build(torch), simulated=simulated, device=dev.uuid)
        print(why, file=sys.stderr if problem else sys.stdout)
        return 1 if problem else 0
    count = torch.cuda.device_count()
    print(f"CUDA sees {count} device(s); cuda:0 is {torch.cuda.get_device_name(0)}")
    if count != 1:
        print(f"expected exactly one device (the MIG device {dev.uuid}), got {count}", file=sys.stderr)
        return 1

    # Step 3: compute on it.
    run_sample_computation(torch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
