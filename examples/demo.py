"""The end-to-end demo: the seed's whole MIG workflow on a simulated 8xH20 node, done with migctl.

Run it with ``./dev demo``. Every step is a real ``migctl`` command in a subprocess, printed
as you would type it, against a private state directory (nothing outside it is touched). The
demo checks what each step must do and exits non-zero if anything misbehaves.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

STATE = Path(tempfile.mkdtemp(prefix="migctl-demo-"))
ENV = {**os.environ, "MIGCTL_STATE_DIR": str(STATE), "MIGCTL_SIM": "h20x8", "COLUMNS": "140"}
ENV.pop("MIGCTL_SIM_FAULTS", None)
ENV.pop("MIGCTL_SIM_LATENCY", None)
MIGCTL = [sys.executable, "-m", "migctl"]
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
failures: list[str] = []


def step(title: str, note: str = "") -> None:
    print(f"\n{BOLD}== {title}{RESET}")
    if note:
        print(textwrap.fill(note, 100))


def migctl(*args: str, expect: int = 0, show: bool = True, env: dict[str, str] | None = None) -> str:
    if show:
        print(f"{BOLD}$ migctl {shlex.join(args)}{RESET}")
    p = subprocess.run([*MIGCTL, *args], capture_output=True, text=True, env={**ENV, **(env or {})}, check=False)
    if show:
        sys.stdout.write(p.stdout)
        if p.stderr:
            sys.stdout.write(p.stderr)
    if p.returncode != expect:
        failures.append(f"migctl {shlex.join(args)} exited {p.returncode}, expected {expect}")
        print(f"!! exit code {p.returncode}, expected {expect}")
    elif expect:
        print(f"{DIM}(exit code {p.returncode}, as documented){RESET}")
    return p.stdout


def as_json(*args: str) -> Any:
    return json.loads(migctl(*args, "--json", show=False))


def check(ok: bool, what: str) -> None:
    if not ok:
        failures.append(what)
        print(f"!! {what}")


LAYOUTS = str(Path(__file__).with_name("layouts.yaml"))


def layouts() -> None:
    step(
        "Declarative layouts: the plan first",
        "A mig-parted v1 file (examples/layouts.yaml). migctl plans every GPU before touching any: "
        "mode changes, what to keep, destroy, and create at which placement.",
    )
    migctl("plan", "-f", LAYOUTS, "-c", "balanced")
    step("Apply it: GPUs are independent transactions, applied concurrently")
    migctl("apply", "-f", LAYOUTS, "-c", "balanced")
    migctl("assert", "-f", LAYOUTS, "-c", "balanced")
    migctl("status", "-i", "0")
    step("Applying it again changes nothing (no NVML call that mutates)")
    migctl("apply", "-f", LAYOUTS, "-c", "balanced", "-i", "0")

    jobs()

    gpu0 = as_json("status", "-i", "0")["gpus"][0]
    busy = next(g for g in gpu0["gpu_instances"] if g["profile"] == "1g.12gb")
    uuid = busy["compute_instances"][0]["uuid"]
    job = start_job(uuid)
    try:
        step(
            "Change the layout while a job runs on one instance",
            f"A job runs on GI {busy['id']} ({uuid}). Going to 'inference' (7x 1g.12gb) keeps that instance: "
            "only what differs is destroyed and created, and a busy instance is never touched.",
        )
        migctl("plan", "-f", LAYOUTS, "-c", "inference", "-i", "0")
        migctl("apply", "-f", LAYOUTS, "-c", "inference", "-i", "0")
        migctl("status", "-i", "0")
        after = as_json("status", "-i", "0")["gpus"][0]
        kept = [c["uuid"] for g in after["gpu_instances"] for c in g["compute_instances"]]
        check(uuid in kept, "the busy instance kept its MIG UUID through the layout change")
        step("A layout that needs the busy instance's slices is refused, naming the process; nothing changes")
        migctl("apply", "-f", LAYOUTS, "-c", "whole", "-i", "0", expect=5)
    finally:
        stop_job(job)
    step("Export the layout as a config that apply reproduces exactly")
    migctl("export", "-i", "0")
    doctor()
    step("Tear down")
    migctl("apply", "-f", LAYOUTS, "-c", "off")


def jobs() -> None:
    step(
        "6-8. Run two CUDA programs in parallel, one per MIG instance",
        "migctl run leases a free instance (exclusively, for the job's whole life) and starts the job with "
        "CUDA_VISIBLE_DEVICES=MIG-<uuid> set before CUDA starts: the step the seed marked 'not achieved'.",
    )
    script = 'echo "$MIGCTL_PROFILE job sees CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"; sleep 1'
    argv = [*MIGCTL, "run", "--on", "1g.12gb", "--", "sh", "-c", script]
    print(f"{BOLD}$ migctl run --on 1g.12gb -- sh -c '...' &   (twice){RESET}")
    started = time.monotonic()
    pair = [subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    lines = [p.communicate()[0].strip() for p in pair]
    took = time.monotonic() - started
    print("\n".join(lines))
    check(all(p.returncode == 0 for p in pair), "both jobs ran")
    check(len({line.split("=")[-1] for line in lines}) == 2, "the two jobs got two different MIG devices")
    print(f"{DIM}(both finished in {took:.1f} s: they ran side by side){RESET}")
    step("One command per instance, with a summary", "migctl batch --each-instance runs it once on every instance")
    migctl("batch", "--each-instance", "--on", "1g.12gb", "--logs", str(STATE / "logs"), "--",
           "sh", "-c", "echo $MIGCTL_DEVICE_UUID")
    step(
        "The seed's PyTorch script, fixed",
        "examples/train_on_mig.py calls migctl.use() before torch touches CUDA; without torch it prints the plan.",
    )
    p = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("train_on_mig.py"))],
        env=ENV, capture_output=True, text=True, check=False,
    )
    print(p.stdout + p.stderr)
    check(p.returncode == 0 and "MIG-" in p.stdout, "the example selected a MIG device")


def auto_batch() -> None:
    step(
        "Let migctl choose the partition: batch --auto",
        "Each job says its memory and run time, or names a model in migctl's speed table "
        "(examples/auto-jobs.yaml). migctl turns MIG on, reshapes idle slices and picks each job's profile: "
        "a model that scales gets a big slice, jobs that barely scale share small ones.",
    )
    out = migctl("batch", "--auto", str(Path(__file__).with_name("auto-jobs.yaml")), "-i", "0",
                 "--logs", str(STATE / "auto-logs"))
    check("5 jobs: 5 succeeded" in out, "every job of the auto-partitioned batch succeeded")
    gpu0 = as_json("status", "-i", "0")["gpus"][0]
    check(gpu0["mig"]["current"] and gpu0["gpu_instances"], "batch --auto turned MIG on and partitioned GPU 0")


def doctor() -> None:
    step("Health check", "Driver, MIG state per GPU, the fabric manager (H20 needs it), and a test on every instance.")
    migctl("doctor", "-i", "0")
    step("Without the fabric manager, CUDA cannot start on an HGX board: doctor says so, and how to fix it")
    migctl("sim", "fabric-manager", "stop", show=False)
    migctl("doctor", "-i", "0", expect=1)
    migctl("sim", "fabric-manager", "start", show=False)


def start_job(uuid: str) -> subprocess.Popen[bytes]:
    """A long job holding one MIG device through migctl run."""
    job = subprocess.Popen([*MIGCTL, "run", "--on", uuid, "--", "sleep", "300"], env=ENV)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        gpu0 = as_json("status", "-i", "0")["gpus"][0]
        cis = [c for g in gpu0["gpu_instances"] for c in g["compute_instances"] if c["uuid"] == uuid]
        if cis and cis[0]["processes"]:
            return job
        time.sleep(0.1)
    failures.append("the job never showed up on its instance")
    return job


def stop_job(job: subprocess.Popen[bytes]) -> None:
    job.terminate()
    job.wait(timeout=30)


def main() -> int:
    print(f"migctl demo on a simulated 8xH20 node (state in {STATE})")
    migctl("sim", "reset", show=False)

    step("1. Enable MIG on GPU 0", "nvidia-smi -i 0 -mig 1. On Hopper it takes effect at once when the GPU is idle.")
    migctl("mode", "enable", "-i", "0")

    step("2. MIG mode, current and pending", "nvidia-smi -i 0 -q | grep -i mig, without scraping text.")
    migctl("status", "-i", "0")

    step("3. GPU-instance profiles", "nvidia-smi mig -lgip: the seed's row is 1g.12gb, ID 19, 7/7, 11.75 GiB, SM 8.")
    out = migctl("profiles", "-i", "0")
    check("1g.12gb" in out and "11.75" in out, "profiles shows the seed's 1g.12gb row")

    step(
        "4a. The seed's mistake: nvidia-smi mig -cgi 20,1g.12gb,1 -C",
        "-cgi takes a list of profiles, so '1' was read as profile ID 1, which H20 lacks; nvidia-smi made two "
        "instances and then failed, half-done. migctl validates the whole request first and creates nothing:",
    )
    migctl("create", "-i", "0", "20,1g.12gb,1", expect=2)
    check(not as_json("status", "-i", "0")["gpus"][0]["gpu_instances"], "nothing was created by the bad request")

    step("4b. What the engineer meant: two 1g.12gb instances, each with its compute instance")
    migctl("create", "-i", "0", "1g.12gb:2")

    step("5. Verify", "The slice bar shows which memory slices each instance holds, and the free ones.")
    migctl("status", "-i", "0")

    step("6. MIG device UUIDs for CUDA_VISIBLE_DEVICES", "nvidia-smi -L")
    migctl("devices", "-i", "0")

    step(
        "Creation order never matters",
        "On A100-style parts, creating small profiles first can make a later 3g fail with Insufficient Resources. "
        "migctl places every instance explicitly, so any argument order that can fit, fits:",
    )
    migctl("create", "-i", "1", "1g.12gb", "1g.12gb", "2g.24gb", "3g.48gb", expect=3)
    migctl("mode", "enable", "-i", "1", show=False)
    migctl("create", "-i", "1", "1g.12gb", "1g.12gb", "2g.24gb", "3g.48gb")
    step("A request that cannot fit is refused before anything changes, with what would fit")
    migctl("create", "-i", "1", "4g.48gb", expect=4)

    step("10. Destroy chosen compute instances of one GPU instance", "nvidia-smi mig -dci -ci 0,1 -gi GI")
    gi3g = next(
        g["id"] for g in as_json("status", "-i", "1")["gpus"][0]["gpu_instances"] if g["profile"] == "3g.48gb"
    )
    migctl("destroy", "-i", "1", "--gi", str(gi3g))
    migctl("create", "-i", "1", "3g.48gb", "--no-compute-instance")
    gi3g = next(
        g["id"] for g in as_json("status", "-i", "1")["gpus"][0]["gpu_instances"] if g["profile"] == "3g.48gb"
    )
    migctl("create-ci", "-i", "1", "--gi", str(gi3g), "1c.3g.48gb:3")
    migctl("destroy", "-i", "1", "--ci", f"{gi3g}:0", "--ci", f"{gi3g}:1")
    migctl("status", "-i", "1")

    step("9. Destroy everything, 11. disable MIG", "nvidia-smi mig -dci && nvidia-smi mig -dgi; nvidia-smi -mig 0")
    migctl("mode", "disable", "-i", "0", expect=5)
    migctl("destroy", "-i", "0-1", "--all")
    migctl("mode", "disable", "-i", "0-1")

    layouts()
    auto_batch()

    print()
    if failures:
        print("DEMO FAILED:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("demo finished: every step behaved as documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
