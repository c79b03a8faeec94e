"""The vLLM adapters (see :mod:`fp4ref.conformance.peers`): vLLM 0.33.0's torch reference
functions, loaded from its wheel's files without installing vLLM or its dependencies.

``.ci/peers/vllm.sh`` unpacks the four files used into ``peers_dir()/vllm-0.33.0``:

- ``vllm/third_party/triton_kernels/numerics_details/mxfp.py``: ``downcast_to_mxfp_torch``
  (MXFP4, ``DequantScaleRoundingMode.ROUND_UP``, the default, or ``ROUND_DOWN``) and
  ``upcast_from_mxfp_torch``;
- ``vllm/model_executor/layers/quantization/utils/nvfp4_emulation_utils.py``:
  ``ref_nvfp4_quant`` (NVFP4; its codes come back as E2M1 float values) and
  ``dequantize_to_dtype`` (``swizzle=False``);
- ``vllm/scalar_type.py`` (standard library only), which the NVFP4 module reads
  ``float4_e2m1f.max()`` from;
- ``vllm/model_executor/layers/quantization/utils/mxfp4_utils.py``: its Triton MXFP4
  quantizer ``downcast_to_mxfp`` and kernels, run by the real ``triton`` in its CPU
  interpreter (:func:`load_triton_quantizer`; nothing is stubbed for it).

What is stubbed, only while those modules are executed (``sys.modules`` is restored after):
``triton`` (``cdiv``, and ``jit`` as the identity: the Triton kernels in the same files are
defined but never run), ``triton.language`` / ``vllm.triton_utils.tl`` (``constexpr`` for
the kernels' annotations), ``vllm.platforms.current_platform`` (``is_cuda_alike()`` is
False: the CPU paths), ``vllm.utils.torch_utils.direct_register_custom_op`` (a no-op: it
registers the Triton-backed gathered-bias op, not used here), and the two Triton kernel
modules ``mxfp.py`` imports from ``mxfp_details`` (their kernels and
``MXFP_BLOCK_SIZE = 32``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import numpy as np

from .base import Peer, _codes, _pack, _to_numpy, _torch, peers_dir

VERSION = "0.33.0"
_MXFP = "vllm/third_party/triton_kernels/numerics_details/mxfp.py"
_NVFP4 = "vllm/model_executor/layers/quantization/utils/nvfp4_emulation_utils.py"
_SCALAR = "vllm/scalar_type.py"
_MXFP4_UTILS = "vllm/model_executor/layers/quantization/utils/mxfp4_utils.py"
#: The functions of ``mxfp4_utils.py`` the Triton adapter runs, taken from the file by name.
_TRITON_FUNCTIONS = ("permute_shape", "_compute_quant_and_scale", "_downcast_to_mxfp",
                     "downcast_to_mxfp")


class _Anything:
    """A stub whose every attribute is itself (Triton's ``tl`` for annotations)."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self


def _stubs() -> dict[str, types.ModuleType]:
    triton = types.ModuleType("triton")
    triton.cdiv = lambda a, b: -(-a // b)
    triton.jit = lambda fn=None, **kw: fn if fn is not None else (lambda f: f)
    triton.language = _Anything()
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_cuda_alike=lambda: False)
    triton_utils = types.ModuleType("vllm.triton_utils")
    triton_utils.tl, triton_utils.triton = triton.language, triton
    torch_utils = types.ModuleType("vllm.utils.torch_utils")
    torch_utils.direct_register_custom_op = lambda *a, **k: None
    package = types.ModuleType("_fp4ref_vllm")
    package.__path__ = []
    details = types.ModuleType("_fp4ref_vllm.mxfp_details")
    details.__path__ = []
    upcast = types.ModuleType("_fp4ref_vllm.mxfp_details._upcast_from_mxfp")
    upcast._upcast_from_mxfp = None
    downcast = types.ModuleType("_fp4ref_vllm.mxfp_details._downcast_to_mxfp")
    downcast._downcast_to_mxfp = downcast._quantize_mxfp8_fn = None
    downcast.MXFP_BLOCK_SIZE = 32
    vllm = types.ModuleType("vllm")
    vllm.__path__ = []
    utils = types.ModuleType("vllm.utils")
    utils.__path__ = []
    return {
        "triton": triton, "triton.language": triton.language, "vllm": vllm,
        "vllm.platforms": platforms, "vllm.triton_utils": triton_utils, "vllm.utils": utils,
        "vllm.utils.torch_utils": torch_utils, "_fp4ref_vllm": package,
        "_fp4ref_vllm.mxfp_details": details, upcast.__name__: upcast,
        downcast.__name__: downcast,
    }


def _load(name: str, path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load(root=None) -> tuple[types.ModuleType, types.ModuleType]:
    """(mxfp, nvfp4_emulation_utils) from the unpacked wheel at ``root`` (default
    ``peers_dir()/vllm-0.33.0``); ImportError if it is not there."""
    root = peers_dir() / f"vllm-{VERSION}" if root is None else root
    for part in (_MXFP, _NVFP4, _SCALAR):
        if not (root / part).is_file():
            raise ImportError(f"vLLM {VERSION} is not unpacked at {root} (run .ci/peers/vllm.sh)")
    _torch()
    saved = dict(sys.modules)
    try:
        sys.modules.update(_stubs())
        _load("vllm.scalar_type", root / _SCALAR)
        mxfp = _load("_fp4ref_vllm.mxfp", root / _MXFP)
        nvfp4 = _load("_fp4ref_vllm.nvfp4_emulation_utils", root / _NVFP4)
    finally:
        sys.modules.clear()
        sys.modules.update(saved)
    return mxfp, nvfp4


class Vllm(Peer):
    name, module = "vllm", "torch"
    own = ("vLLM 0.33.0 downcast_to_mxfp_torch (ROUND_UP) / upcast_from_mxfp_torch, "
           "ref_nvfp4_quant / dequantize_to_dtype, from its wheel")
    profiles = {"mxfp4": "vllm", "nvfp4": "vllm"}
    decode_dtypes = ("float32", "bfloat16", "float16")
    nan_bits = "any"
    # ref_nvfp4_quant's scale G * a of a NaN block under a NaN G (a NaN tensor): x86 keeps
    # the first NaN operand, and which one is first differs between torch's vector body
    # (G's 0xFFFFFFFF: 0xFF) and its tails (a's 0x7FC00000: 0x7F), by the block's position
    nan_scale_sign = "any"
    rounding_mode = "ROUND_UP"

    def __init__(self) -> None:
        super().__init__()
        self.torch = _torch()
        self.mxfp, self.nvfp4 = load()

    @property
    def version(self) -> str:
        return VERSION

    def quantize_probe(self, x, format, tensor_scale):
        torch = self.torch
        t = torch.from_numpy(x.copy())
        if format == "mxfp4":
            if tensor_scale is not None:
                raise NotImplementedError("MXFP4 has no tensor scale")
            mode = self.mxfp.DequantScaleRoundingMode[self.rounding_mode]
            blocks, scales = self.mxfp.downcast_to_mxfp_torch(t, torch.uint8, -1, mode)
            return blocks.numpy(), scales.numpy(), None
        if tensor_scale is None:  # what vLLM's callers pass, in torch (as its tests'
            # nvfp4_utils: (FLOAT8_E4M3_MAX * FLOAT4_E2M1_MAX) / amax; torch evaluates a
            # scalar / tensor as tensor.reciprocal() * scalar)
            g = (448.0 * 6.0) / torch.abs(t).max().to(torch.float32)
            tensor_scale = np.float32(g.item())
        g = torch.tensor(np.float32(tensor_scale))
        with np.errstate(all="ignore"):
            values, scale = self.nvfp4.ref_nvfp4_quant(t, g, 16)
        scales = scale.to(torch.float8_e4m3fn).view(torch.uint8).numpy()
        return _pack(_codes(values.numpy())).astype(np.uint8), scales, np.float32(tensor_scale)

    def dequantize_probe(self, blocks, scales, stored, format, dtype):
        torch = self.torch
        b = torch.from_numpy(np.ascontiguousarray(blocks, np.uint8))
        s = torch.from_numpy(np.ascontiguousarray(scales, np.uint8))
        if format == "mxfp4":
            out = self.mxfp.upcast_from_mxfp_torch(b, s, getattr(torch, dtype), -1)
        else:  # dequantize_to_dtype takes the decode multiplier: callers pass 1 / G
            decode = torch.tensor(1.0 if stored is None else np.float32(1) / np.float32(stored))
            out = self.nvfp4.dequantize_to_dtype(b, s, decode, getattr(torch, dtype),
                                                 swizzle=False)
        return _to_numpy(out)


class VllmRoundDown(Vllm):
    name = "vllm-round-down"
    own = "vLLM 0.33.0 downcast_to_mxfp_torch with DequantScaleRoundingMode.ROUND_DOWN"
    profiles = {"mxfp4": "vllm-round-down"}
    rounding_mode = "ROUND_DOWN"


def load_triton_quantizer(root=None):
    """``downcast_to_mxfp`` of vLLM 0.33.0's ``mxfp4_utils.py`` (what ``mxfp4_quantize``
    runs where there is neither XPU nor aiter), with its two ``@triton.jit`` kernels, for
    Triton's CPU interpreter: the four functions are taken from the file by name (its
    module-level code registers torch custom ops and imports vLLM, so it is not executed)
    and defined with the real ``triton``, ``triton.language`` and ``torch``. Triton must
    have been imported with ``TRITON_INTERPRET=1`` (its own library functions, ``tl.max``,
    are interpreted only then): :class:`VllmTriton` calls this in a process of its own.
    ImportError without the unpacked file."""
    import ast

    root = peers_dir() / f"vllm-{VERSION}" if root is None else root
    path = root / _MXFP4_UTILS
    if not path.is_file():
        raise ImportError(f"vLLM {VERSION}'s {_MXFP4_UTILS} is not unpacked at {root} "
                          "(run .ci/peers/vllm.sh)")
    torch = _torch()
    import triton
    import triton.language as tl

    tree = ast.parse(path.read_text())
    wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef)
              and node.name in _TRITON_FUNCTIONS]
    scope = {"torch": torch, "triton": triton, "tl": tl}
    exec(compile(ast.Module(wanted, []), str(path), "exec"), scope)
    return scope["downcast_to_mxfp"]


#: The Triton worker: reads pickled float16 arrays from stdin, answers pickled (blocks,
#: scales) from ``downcast_to_mxfp(x, axis=-1)``; started with ``TRITON_INTERPRET=1``.
_WORKER = """
import pickle, sys, warnings
import numpy as np, torch
from fp4ref.conformance.peers.vllm import load_triton_quantizer
warnings.simplefilter("ignore")
downcast = load_triton_quantizer()
pickle.dump("ready", sys.stdout.buffer); sys.stdout.buffer.flush()
while True:
    try:
        x = pickle.load(sys.stdin.buffer)
    except EOFError:
        break
    with np.errstate(all="ignore"):
        blocks, scales, _ = downcast(torch.from_numpy(x), -1)
    pickle.dump((blocks.numpy(), scales.numpy()), sys.stdout.buffer)
    sys.stdout.buffer.flush()
"""


class VllmTriton(Vllm):
    """vLLM's Triton MXFP4 quantizer (``mxfp4_utils.downcast_to_mxfp``) in Triton's CPU
    interpreter. It takes bfloat16 or float16 input only; the interpreter emulates
    bfloat16 -> float32 with a converter that flushes subnormals (a GPU converts exactly),
    so the probes are rounded to float16, whose conversion is exact, for it and for fp4ref
    alike. Decoded by ``upcast_from_mxfp_torch``."""

    name = "vllm-triton"
    own = ("vLLM 0.33.0 mxfp4_utils.downcast_to_mxfp (Triton kernel _downcast_to_mxfp, "
           "TRITON_INTERPRET=1 on CPU, float16 input)")
    profiles = {"mxfp4": "vllm-triton"}
    input_dtype = "float16"

    def __init__(self) -> None:
        import subprocess
        from pathlib import Path

        if importlib.util.find_spec("triton") is None:
            raise ImportError("vllm-triton needs triton (the peers extra)")
        super().__init__()
        if not (peers_dir() / f"vllm-{VERSION}" / _MXFP4_UTILS).is_file():
            raise ImportError(f"vLLM {VERSION}'s {_MXFP4_UTILS} is not unpacked (run "
                              ".ci/peers/vllm.sh)")
        package = str(Path(__file__).resolve().parents[3])  # this fp4ref, for the worker
        env = dict(os.environ, TRITON_INTERPRET="1",
                   PYTHONPATH=os.pathsep.join(filter(None, (package,
                                                            os.environ.get("PYTHONPATH")))))
        self.worker = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, env=env)
        if self._receive() != "ready":
            raise ImportError("the Triton worker did not start")

    def _receive(self):
        import pickle

        try:
            return pickle.load(self.worker.stdout)
        except EOFError:
            raise RuntimeError("the Triton worker exited") from None

    def quantize_profile(self, x, tensor_scale, activations=None, *, format, profile,
                         scale_rule=None):
        x = np.asarray(x, np.float32)
        with np.errstate(over="ignore"):
            exact = np.array_equal(x.astype(self.input_dtype).astype(np.float32), x,
                                   equal_nan=True)
        if not exact:  # a suite's float32 case the float16-only quantizer cannot take
            raise NotImplementedError(f"{self.name} takes {self.input_dtype} input only")
        return super().quantize_profile(x, tensor_scale, activations, format=format,
                                        profile=profile, scale_rule=scale_rule)

    def quantize_probe(self, x, format, tensor_scale):
        import pickle

        with np.errstate(over="ignore"):
            half = np.ascontiguousarray(x, np.float32).astype(self.input_dtype)
        pickle.dump(half, self.worker.stdin)
        self.worker.stdin.flush()
        return self._receive() + (None,)

    def __del__(self):
        worker = getattr(self, "worker", None)
        if worker is not None and worker.poll() is None:
            worker.stdin.close()
            worker.wait(timeout=30)
