"""Arithmetic of the restoring networks: fp32, or bf16 autocast where the CPU computes bf16 natively.

Kept free of a top-level torch import so the CLI can offer the choices without loading torch.
"""

from __future__ import annotations

from facemend.errors import FacemendError

PRECISIONS = ("auto", "bf16", "fp32")


def resolve_precision(precision: str) -> str:
    """`bf16` or `fp32`; `auto` is bf16 where the CPU computes it natively (AVX512-BF16 or AMX), else fp32."""
    import torch

    if precision not in PRECISIONS:
        raise FacemendError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return "bf16" if any(check() for check in checks if check is not None) else "fp32"
