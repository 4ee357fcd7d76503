"""Training precision: fp32, or bf16 autocast where the CPU computes bf16 natively. Light (torch is imported
inside the check), so the command line can name the choices without loading torch."""

from __future__ import annotations

from pathlib import Path

PRECISIONS = ("fp32", "bf16")
# CPU flags of native bf16 arithmetic: AVX512-BF16 (dot products) and AMX-BF16 (tiles).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16() -> bool:
    """True where this CPU computes bf16 natively. torch's own check (oneDNN can run bf16) is necessary but
    not enough: it also holds on plain AVX-512, where bf16 is emulated and slower than fp32."""
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        if check is not None and not check():
            return False
    except RuntimeError:
        pass
    return bool(_cpu_flags() & set(BF16_FLAGS))
