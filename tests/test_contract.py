"""The simulator honours pynvml's contract, so code proven on it runs unchanged on the driver.

* the typed boundary (``migctl.device.nvml.NvmlLib``) is exactly the NVML calls the device
  layer makes, and both pynvml and the simulator implement every one with pynvml's parameters;
* every NVML function the simulator offers exists in the installed ``pynvml`` with compatible
  parameters (same names in order, same defaults);
* the device layer never asks whether it runs on the simulator;
* what it returns are pynvml's own ctypes structs and handle types, and what it raises are
  pynvml's ``NVMLError`` subclasses with the driver's words (nvml-python.md);
* a pynvml function the simulator does not model raises NVMLError_FunctionNotFound, and C-symbol
  lookups are answered by the simulator, never by a real libnvidia-ml;
* the installed nvidia-ml-py is inside the range ``pyproject.toml`` pins.
"""

from __future__ import annotations

import ast
import ctypes
import inspect
import re
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pynvml
import pytest
from packaging.requirements import Requirement

from migctl import sim
from migctl.device.nvml import NvmlLib
from migctl.sim.nvml import nvml_functions

REPO = Path(__file__).resolve().parents[1]

# nvml-python.md: the MIG part of pynvml that migctl relies on
MIG_API = {
    "nvmlDeviceGetMigMode",
    "nvmlDeviceSetMigMode",
    "nvmlDeviceGetGpuInstanceProfileInfo",
    "nvmlDeviceGetGpuInstanceRemainingCapacity",
    "nvmlDeviceGetGpuInstancePossiblePlacements",
    "nvmlDeviceCreateGpuInstance",
    "nvmlDeviceCreateGpuInstanceWithPlacement",
    "nvmlGpuInstanceDestroy",
    "nvmlDeviceGetGpuInstances",
    "nvmlDeviceGetGpuInstanceById",
    "nvmlGpuInstanceGetInfo",
    "nvmlGpuInstanceGetComputeInstanceProfileInfo",
    "nvmlGpuInstanceGetComputeInstanceRemainingCapacity",
    "nvmlGpuInstanceGetComputeInstancePossiblePlacements",
    "nvmlGpuInstanceCreateComputeInstance",
    "nvmlGpuInstanceCreateComputeInstanceWithPlacement",
    "nvmlComputeInstanceDestroy",
    "nvmlGpuInstanceGetComputeInstances",
    "nvmlGpuInstanceGetComputeInstanceById",
    "nvmlComputeInstanceGetInfo",
    "nvmlDeviceGetMaxMigDeviceCount",
    "nvmlDeviceGetMigDeviceHandleByIndex",
    "nvmlDeviceIsMigDeviceHandle",
    "nvmlDeviceGetGpuInstanceId",
    "nvmlDeviceGetComputeInstanceId",
    "nvmlDeviceGetDeviceHandleFromMigDeviceHandle",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetHandleByUUID",
    "nvmlDeviceGetName",
    "nvmlDeviceGetIndex",
    "nvmlDeviceGetAttributes",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetComputeRunningProcesses",
}


@pytest.fixture
def nvml(tmp_path: Path) -> Any:
    return sim.open("h100-80gbx2", state_dir=tmp_path)


def _params(sig: inspect.Signature) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def test_the_simulator_offers_the_mig_api(nvml: Any) -> None:
    offered = set(nvml_functions(nvml))
    assert offered >= MIG_API, sorted(MIG_API - offered)


def test_every_simulated_function_exists_in_pynvml_with_the_same_parameters(nvml: Any) -> None:
    problems = []
    for name in nvml_functions(nvml):
        real = getattr(pynvml, name, None)
        if not callable(real):
            problems.append(f"{name}: not in pynvml {version('nvidia-ml-py')}")
            continue
        mine = inspect.signature(getattr(nvml, name))  # bound: no self; follows __wrapped__
        theirs = inspect.signature(real)
        if _params(mine) != _params(theirs):
            problems.append(f"{name}{mine} != pynvml.{name}{theirs}")
    assert not problems, "\n".join(problems)


def test_pynvml_functions_the_simulator_lacks_fail_as_a_driver_without_them(nvml: Any) -> None:
    """An unmodelled call fails as pynvml does for a missing symbol, never AttributeError."""
    assert "nvmlDeviceGetBoardId" not in nvml_functions(nvml)
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        nvml.nvmlDeviceGetBoardId(nvml.nvmlDeviceGetHandleByIndex(0))
    with pytest.raises(AttributeError):  # not a pynvml name at all: as the module would say
        nvml.nvmlNoSuchFunction  # noqa: B018


def test_c_symbol_lookups_are_answered_by_the_simulator(nvml: Any) -> None:
    """nvitop and gpustat probe ``_v2``/``_v3`` symbols; the answers come from the simulator."""
    assert callable(nvml._nvmlGetFunctionPointer("nvmlDeviceGetComputeRunningProcesses_v3"))
    assert callable(nvml._nvmlGetFunctionPointer("nvmlDeviceGetMemoryInfo_v2"))
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        nvml._nvmlGetFunctionPointer("nvmlDeviceGetBoardId")
    assert pynvml.nvmlLib is None  # nothing here loaded the real library


def _protocol_members() -> list[str]:
    return sorted(n for n in vars(NvmlLib) if n.startswith("nvml"))


def _protocol_params(name: str) -> list[tuple[str, Any, Any]]:
    params = list(inspect.signature(getattr(NvmlLib, name)).parameters.values())[1:]  # no self
    return [(p.name, p.kind, p.default) for p in params]


def test_the_typed_boundary_is_implemented_by_pynvml_and_the_simulator(nvml: Any) -> None:
    offered = set(nvml_functions(nvml))
    problems = []
    for name in _protocol_members():
        want = _protocol_params(name)
        real = getattr(pynvml, name, None)
        if not callable(real):
            problems.append(f"{name}: not in pynvml {version('nvidia-ml-py')}")
        elif _params(inspect.signature(real)) != want:
            problems.append(f"{name}{inspect.signature(real)} in pynvml differs from the Protocol {want}")
        if name not in offered:
            problems.append(f"{name}: not modelled by the simulator")
        elif _params(inspect.signature(getattr(nvml, name))) != want:
            problems.append(f"{name}{inspect.signature(getattr(nvml, name))} in the simulator differs from {want}")
    assert not problems, "\n".join(problems)


def test_the_typed_boundary_is_exactly_what_the_device_layer_calls() -> None:
    called: set[str] = set()
    for path in (REPO / "src" / "migctl" / "device").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.findall(r'"(nvml[A-Z]\w+)"', text), f"{path.name} names an NVML call as a string"
        called |= set(re.findall(r"\blib\.(nvml[A-Z]\w+)", text))
    assert called, "no NVML call found in the device layer"
    assert sorted(called) == _protocol_members()


def test_the_device_layer_never_asks_whether_it_runs_on_the_simulator() -> None:
    for path in (REPO / "src" / "migctl" / "device").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name != "simulated.py":  # the simulated platform, chosen when a node is opened
            imports_sim = r"^\s*(from migctl\.sim\b|import migctl\.sim|from migctl import sim)"
            assert not re.search(imports_sim, text, re.M), path.name
        if path.name != "nvml.py":  # open_nvml chooses the platform once, from --sim or MIGCTL_SIM
            assert not re.search(r"environ\S*\(?[\"']MIGCTL_SIM", text), path.name
        for line in text.splitlines():
            code = line.split("#", 1)[0]
            assert not re.search(r"\bif\b.*(is_simulator|\.simulated\b)", code), f"{path.name}: {line.strip()}"


def test_constants_structs_and_errors_are_pynvmls_own(nvml: Any) -> None:
    for name in (
        "c_nvmlGpuInstancePlacement_t",
        "c_nvmlComputeInstancePlacement_t",
        "c_nvmlGpuInstance_t",
        "c_nvmlDevice_t",
        "NVMLError",
        "NVMLError_InUse",
        "NVMLError_InsufficientResources",
    ):
        assert getattr(nvml, name) is getattr(pynvml, name)
    assert nvml.NVML_DEVICE_MIG_ENABLE == pynvml.NVML_DEVICE_MIG_ENABLE == 1
    assert nvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2 == 9  # nvml-python.md constants table


def test_returned_structs_and_handles_are_pynvml_types(nvml: Any) -> None:
    dev = nvml.nvmlDeviceGetHandleByIndex(0)
    assert isinstance(dev, pynvml.c_nvmlDevice_t)
    nvml.nvmlDeviceSetMigMode(dev, pynvml.NVML_DEVICE_MIG_ENABLE)

    v2 = nvml.nvmlDeviceGetGpuInstanceProfileInfo(dev, pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE)
    assert type(v2) is pynvml.c_nvmlGpuInstanceProfileInfo_v2_t
    assert v2.version == pynvml.nvmlGpuInstanceProfileInfo_v2 == 0x02000098
    assert ctypes.sizeof(v2) == 152
    name = v2.name.decode() if isinstance(v2.name, bytes) else v2.name
    assert (v2.id, v2.sliceCount, name) == (9, 3, "MIG 3g.40gb")  # an enum goes in, the ID comes out
    v1 = nvml.nvmlDeviceGetGpuInstanceProfileInfo(dev, pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE, 1)
    assert type(v1) is pynvml.c_nvmlGpuInstanceProfileInfo_t

    count = ctypes.c_uint(0)
    nvml.nvmlDeviceGetGpuInstancePossiblePlacements(dev, 9, None, ctypes.byref(count))
    array = (pynvml.c_nvmlGpuInstancePlacement_t * count.value)()
    assert nvml.nvmlDeviceGetGpuInstancePossiblePlacements(dev, 9, array, ctypes.byref(count)) == 0
    assert [(p.start, p.size) for p in array] == [(0, 4), (4, 4)]  # -lgipp "{0,4}:4"

    gi = nvml.nvmlDeviceCreateGpuInstance(dev, 9)
    assert isinstance(gi, pynvml.c_nvmlGpuInstance_t)
    info = nvml.nvmlGpuInstanceGetInfo(gi)
    assert type(info) is pynvml.c_nvmlGpuInstanceInfo_t
    assert type(info.placement) is pynvml.c_nvmlGpuInstancePlacement_t

    gis = (pynvml.c_nvmlGpuInstance_t * 2)()
    n = ctypes.c_uint(0)
    nvml.nvmlDeviceGetGpuInstances(dev, 9, gis, ctypes.byref(n))
    assert n.value == 1 and nvml.nvmlGpuInstanceGetInfo(gis[0]).id == info.id

    cip = nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(
        gi, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE, pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
    )
    assert type(cip) is pynvml.c_nvmlComputeInstanceProfileInfo_v2_t
    ci = nvml.nvmlGpuInstanceCreateComputeInstance(gi, cip.id)
    assert isinstance(ci, pynvml.c_nvmlComputeInstance_t)
    ci_info = nvml.nvmlComputeInstanceGetInfo(ci)
    assert type(ci_info) is pynvml.c_nvmlComputeInstanceInfo_t
    assert isinstance(ci_info.device, pynvml.c_nvmlDevice_t)
    cis = (pynvml.c_nvmlComputeInstance_t * 1)()
    nvml.nvmlGpuInstanceGetComputeInstances(gi, cip.id, cis, ctypes.byref(n))
    assert n.value == 1

    mig = ci_info.device
    assert type(nvml.nvmlDeviceGetAttributes(mig)) is pynvml.c_nvmlDeviceAttributes
    assert type(nvml.nvmlDeviceGetMemoryInfo(mig)) is pynvml.c_nvmlMemory_t
    mem2 = nvml.nvmlDeviceGetMemoryInfo(mig, version=pynvml.nvmlMemory_v2)
    assert type(mem2) is pynvml.c_nvmlMemory_v2_t
    assert mem2.total == mem2.reserved + mem2.free + mem2.used
    assert isinstance(nvml.nvmlDeviceGetMigMode(dev), list)
    assert isinstance(nvml.nvmlDeviceGetUUID(mig), str)


def test_errors_are_pynvml_subclasses_with_the_drivers_words(nvml: Any) -> None:
    dev = nvml.nvmlDeviceGetHandleByIndex(0)
    nvml.nvmlDeviceSetMigMode(dev, pynvml.NVML_DEVICE_MIG_ENABLE)
    nvml.nvmlDeviceCreateGpuInstance(dev, 0)
    with pytest.raises(pynvml.NVMLError) as full:
        nvml.nvmlDeviceCreateGpuInstance(dev, 19)
    assert type(full.value) is pynvml.NVMLError_InsufficientResources
    assert full.value.value == pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES == 23
    assert str(full.value) == "Insufficient Resources"

    gi = nvml.nvmlDeviceGetGpuInstanceById(dev, 0)
    nvml.nvmlGpuInstanceCreateComputeInstance(gi, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_7_SLICE)
    with pytest.raises(pynvml.NVMLError) as busy:
        nvml.nvmlGpuInstanceDestroy(gi)
    assert type(busy.value) is pynvml.NVMLError_InUse
    assert busy.value.value == pynvml.NVML_ERROR_IN_USE == 19
    assert str(busy.value) == "In use by another client"

    with pytest.raises(pynvml.NVMLError_InvalidArgument) as bad:
        nvml.nvmlDeviceCreateGpuInstance(dev, 1)
    assert str(bad.value) == "Invalid Argument"
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetGpuInstanceById(dev, 5)
    assert nvml.nvmlErrorString(23) == "Insufficient Resources"
    assert nvml.nvmlErrorString(19) == "In use by another client"


def test_error_text_in_a_fresh_process_without_a_driver() -> None:
    """nvml-python.md: without the library pynvml prints "NVML Error with code 23"; not here."""
    import subprocess

    script = (
        "import tempfile, pynvml; from migctl import sim; n = sim.open('a30', state_dir=tempfile.mkdtemp()); "
        "d = n.nvmlDeviceGetHandleByIndex(0); n.nvmlDeviceSetMigMode(d, 1); n.nvmlDeviceCreateGpuInstance(d, 0)\n"
        "try: n.nvmlDeviceCreateGpuInstance(d, 14)\nexcept pynvml.NVMLError as e: print(type(e).__name__, '|', e)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "NVMLError_InsufficientResources | Insufficient Resources"


def test_installed_pynvml_is_inside_the_pinned_range() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = [Requirement(d) for d in project["dependencies"] if Requirement(d).name == "nvidia-ml-py"]
    assert len(pins) == 1, "pyproject.toml must pin nvidia-ml-py exactly once"
    spec = pins[0].specifier
    assert any(s.operator in (">=", ">", "~=", "==") for s in spec), f"no lower bound in {spec}"
    assert any(s.operator in ("<", "<=", "~=", "==") for s in spec), f"no upper bound in {spec}"
    installed = version("nvidia-ml-py")
    assert spec.contains(installed, prereleases=True), f"nvidia-ml-py {installed} is outside {spec}"


def _migctl_imports(path: Path) -> set[str]:
    """The ``migctl.*`` modules a source file imports (anywhere in it, lazily or not)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name == "migctl" or a.name.startswith("migctl.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("migctl"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                # "from migctl import sim" imports a module; "from migctl.x import name" imports from x
                found.add(sub if _module_path(sub) is not None else node.module)
    return found


def _module_path(name: str) -> Path | None:
    base = REPO / "src" / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_the_simulator_shares_no_code_with_core() -> None:
    """No module under migctl.sim imports migctl.core, directly or through another migctl module.

    Python also runs the package's own ``migctl/__init__.py`` (the public API) before any
    submodule; that is not the simulator importing it, so only explicit imports are followed.
    """
    sim_root = REPO / "src" / "migctl" / "sim"
    todo = [f"migctl.sim.{p.stem}" if p.stem != "__init__" else "migctl.sim" for p in sim_root.glob("*.py")]
    assert len(todo) > 5
    seen: dict[str, str] = {}  # module -> the simulator module that pulls it in
    while todo:
        name = todo.pop()
        path = _module_path(name)
        if path is None:
            continue  # a name imported from a module ("from migctl.sim.catalog import model")
        for imported in _migctl_imports(path):
            if imported not in seen and imported != name:
                seen[imported] = seen.get(name, name)
                todo.append(imported)
    core = sorted(f"{m} (via {seen[m]})" for m in seen if m == "migctl.core" or m.startswith("migctl.core."))
    assert core == []
