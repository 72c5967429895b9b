"""The compiled CPU compositor (``csrc/composite.cpp``, C++/OpenMP through
``torch.utils.cpp_extension``) as an autograd function.

It computes what ``rasterize._composite_chunk`` computes (the pure-PyTorch oracle it is tested
against) with a hand-written backward pass, walking each pixel's depth-sorted list once and
stopping early, which the vectorised oracle cannot. It is built on first use (about a minute;
cached by torch under ``TORCH_EXTENSIONS_DIR``) and needs a C++ compiler with OpenMP.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

_EXT = None
_FAILED: Optional[str] = None


def load_extension():
    """The compiled module, building it on first use; None (with one warning) if it cannot be built."""
    global _EXT, _FAILED
    if _EXT is not None or _FAILED is not None:
        return _EXT
    try:
        from torch.utils.cpp_extension import load

        if shutil.which("ninja") is None:  # pip's ninja sits beside this interpreter, maybe not on PATH
            os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

        src = Path(__file__).with_name("csrc") / "composite.cpp"
        from torch.utils.cpp_extension import _get_build_directory

        build = Path(_get_build_directory("geossl_composite_cpu", verbose=False))
        if not any(build.glob("*.so")):
            print(f"geossl: building the compiled CPU Gaussian compositor (once, about a minute; cached in {build})",
                  file=sys.stderr, flush=True)
        _EXT = load(name="geossl_composite_cpu", sources=[str(src)], extra_cflags=["-O3", "-fopenmp"],
                    extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as e:  # no compiler, no OpenMP, read-only cache: the PyTorch path still works
        _FAILED = f"{type(e).__name__}: {e}"
        warnings.warn(f"The compiled CPU Gaussian compositor could not be built ({_FAILED.splitlines()[0]}); "
                      "rendering falls back to the (slower) pure-PyTorch compositor.")
    return _EXT


class CompositeCPU(torch.autograd.Function):
    """``(features [H, W, D], alpha [H, W, 1])`` from projected Gaussians and their tile lists."""

    @staticmethod
    def forward(ctx, means2d: Tensor, conics: Tensor, opacities: Tensor, feats: Tensor, tile_offsets: Tensor, ids: Tensor,
                width: int, height: int, tile: int):
        ext = load_extension()
        args = [means2d.detach().contiguous(), conics.detach().contiguous(), opacities.detach().contiguous(),
                feats.detach().contiguous(), tile_offsets.contiguous(), ids.contiguous()]
        out, alpha, final_t, count = ext.forward(*args, width, height, tile)
        ctx.save_for_backward(*args, final_t, count)
        ctx.size = (width, height, tile)
        return out, alpha[..., None]

    @staticmethod
    def backward(ctx, grad_out: Tensor, grad_alpha: Tensor):
        *args, final_t, count = ctx.saved_tensors
        width, height, tile = ctx.size
        g = load_extension().backward(*args, width, height, tile, final_t, count, grad_out.contiguous(),
                                      grad_alpha[..., 0].contiguous())
        return g[0], g[1], g[2], g[3], None, None, None, None, None
