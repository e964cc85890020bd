"""The native batch-1 convolution: built from ``_native_conv.cpp`` at first use, called via ctypes.

At batch 1 PyTorch's CPU convolution is im2col + GEMM, whose cost barely falls when output
channels are dropped (see ``benchmarks/conv_cost.py``). The native kernel is a direct NHWC
convolution whose cost is proportional to kept outputs × inputs, with the residual block's epilogue
fused in. The engine uses it for every batch-1 float32 CPU convolution when it is available.

It is compiled once per machine and source version into the lcnas cache folder
(``$LCNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/lcnas``, else ``~/.cache/lcnas``) with the C++
compiler in ``$CXX`` (else ``g++``, ``c++``, ``clang++``). Without a compiler, or with
``LCNAS_NATIVE=0``, the engine keeps PyTorch's convolutions; :func:`native_status` says which
path is in use and why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .._env import cpu_model, cpuinfo_field, user_cache_root
from ..cost import conv_mflops, kept_width

__all__ = ["NativeConv", "PackedConv", "native", "native_status", "cache_dir", "compiler_available", "kept_width", "packable", "padded",
           "window_ok"]

# The library is built from the network interpreter, which includes the convolution kernel.
_SOURCE = Path(__file__).with_name("_native_net.cpp")
_SOURCES = (_SOURCE, Path(__file__).with_name("_native_conv.cpp"))
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC")
_LANE = 4  # packed output widths are multiples of this (the kernel's 8-float vectors + a 4-float tail)
_WINDOW = 8  # a shortcut's channel window must fall on the kernel's 8-float vectors
_CL = torch.channels_last

_state: dict[str, object] = {}


def cache_dir() -> Path:
    """Where lcnas keeps machine-specific build products."""
    env = os.environ.get("LCNAS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(user_cache_root()) / "lcnas"


@dataclass(frozen=True)
class PackedConv:
    """One convolution's folded weights in the kernel's layout: ``[K][K][Cin][Kp]``, bias ``[Kp]``."""

    weight: torch.Tensor
    bias: torch.Tensor
    out_channels: int  # real outputs; Kp - out_channels trailing outputs are zero
    padded_out: int
    kernel: int
    stride: int
    pad: int
    in_channels: int  # real inputs; the weight may carry zero rows for a padded input
    pad_value: torch.Tensor | None = None  # per input channel, read for out-of-image taps (None: 0)

    def mflops(self, out_hw: int) -> float:
        """Useful MFLOPs (2 per multiply-add, padding excluded) for ``out_hw`` output pixels."""
        return conv_mflops(self.in_channels, self.out_channels, self.kernel, out_hw)


class NativeConv:
    """Handle on the loaded kernel library."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lib = ctypes.CDLL(str(path))
        p, i, f, n = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_long
        fn = lib.lcnas_conv
        fn.argtypes = [p, i, i, i, n, n, n, p, i, i, i, p, p, i, f, p, n, n, i, i, i, p, p, i]
        fn.restype = i
        self._fn = fn
        pad = lib.lcnas_pad_subsample
        pad.argtypes = [p, i, i, i, i, i, i, p]
        pad.restype = None
        self._pad = pad
        net = lib.lcnas_net_forward
        net.argtypes = [p, p, i, n, n, n, n, p, p, p, i, p, p, p, p, p, i]
        net.restype = i
        self.net_forward = net  # images through a whole packed network (see _native_net.py)
        blk = lib.lcnas_net_block
        blk.argtypes = [p, i, p, i, p, p, p, p, i, p, p, p, p, i]
        blk.restype = i
        self.net_block = blk  # one block of a packed network (what the latency tables time)
        kw = lib.lcnas_kept_width
        kw.argtypes = [i]
        kw.restype = i
        self.kept_width = kw  # the engine's conv1 width for a kept-channel count (see kept_width)

    @staticmethod
    def pack(weight: torch.Tensor, bias: torch.Tensor, stride: int, pad: int, in_channels: int | None = None,
             pad_value: torch.Tensor | None = None, width: int | None = None) -> PackedConv:
        """Pack a ``Cout×Cin×K×K`` weight (square kernel, groups 1, dilation 1) and its bias.

        ``in_channels`` > Cin adds zero input rows, so the conv reads an input whose trailing
        channels are another packed conv's zero padding. ``width`` (a multiple of 4, at least
        ``padded(Cout)``) is the output width to compute, the extra outputs zero; default ``padded(Cout)``.
        """
        cout, cin, kh, kw = weight.shape
        if kh != kw:
            raise ValueError(f"native conv needs a square kernel, got {kh}×{kw}")
        kp = padded(cout) if width is None else width
        if kp < padded(cout) or kp % _LANE:
            raise ValueError(f"output width {kp} is not a multiple of {_LANE} of at least {padded(cout)}")
        w = weight.detach().float().permute(2, 3, 1, 0)
        if in_channels is not None and in_channels > cin:
            w = torch.cat([w, w.new_zeros(kh, kw, in_channels - cin, cout)], 2)
        b = bias.detach().float()
        if kp != cout:
            w = torch.cat([w, w.new_zeros(kh, kw, w.shape[2], kp - cout)], 3)
            b = torch.cat([b, b.new_zeros(kp - cout)])
        pv = None if pad_value is None else pad_value.detach().float().reshape(-1).contiguous()
        return PackedConv(w.contiguous(), b.contiguous(), cout, kp, kh, stride, pad, cin, pv)

    def __call__(self, x: torch.Tensor, conv: PackedConv, *, alpha: float = 1.0, residual: torch.Tensor | None = None,
                 residual_stride: int = 1, residual_offset: int = 0, relu: bool = False,
                 channel_scale: torch.Tensor | None = None) -> torch.Tensor:
        """``channel_scale·relu(alpha·conv(x) + residual)`` (each part optional) for one float32
        image ``x`` (``1×C×H×W``, any strides); returns ``1×Kp×Ho×Wo`` channels-last.

        ``residual`` (channels contiguous) is read at every ``residual_stride``-th pixel into
        output channels ``residual_offset`` onwards, zeros elsewhere: an "option A" shortcut
        without materialising it. ``channel_scale`` has ``Kp`` entries.
        """
        _, cin, h, w = x.shape
        if cin != conv.weight.shape[2]:
            raise ValueError(f"native conv: input has {cin} channels, the packed weight expects {conv.weight.shape[2]}")
        ho = (h + 2 * conv.pad - conv.kernel) // conv.stride + 1
        wo = (w + 2 * conv.pad - conv.kernel) // conv.stride + 1
        y = torch.empty((1, conv.padded_out, ho, wo), dtype=torch.float32, memory_format=_CL)
        _, xs_c, xs_h, xs_w = x.stride()
        if residual is None:
            r, rs_h, rs_w, lo, hi = None, 0, 0, 0, 0
        else:
            r, rs_h, rs_w = residual.data_ptr(), residual.stride(2) * residual_stride, residual.stride(3) * residual_stride
            lo, hi = residual_offset, residual_offset + residual.shape[1]
        rc = self._fn(x.data_ptr(), h, w, cin, xs_h, xs_w, xs_c,
                      None if conv.pad_value is None else conv.pad_value.data_ptr(), conv.kernel, conv.stride, conv.pad,
                      conv.weight.data_ptr(), conv.bias.data_ptr(), conv.padded_out, alpha,
                      r, rs_h, rs_w, lo, hi, int(relu),
                      None if channel_scale is None else channel_scale.data_ptr(),
                      y.data_ptr(), torch.get_num_threads())
        if rc != 0:
            raise RuntimeError(f"native conv rejected its arguments: Kp={conv.padded_out}, Cin={cin}, residual channels [{lo}, {hi})")
        return y

    def pad_subsample(self, x: torch.Tensor, stride: int, offset: int, out_channels: int) -> torch.Tensor:
        """"Option A" shortcut of one NHWC-contiguous image: every ``stride``-th pixel, its channels
        placed at ``offset`` among ``out_channels`` zeros."""
        _, cin, h, w = x.shape
        y = torch.empty((1, out_channels, (h - 1) // stride + 1, (w - 1) // stride + 1), dtype=torch.float32, memory_format=_CL)
        self._pad(x.data_ptr(), h, w, cin, stride, offset, out_channels, y.data_ptr())
        return y


def padded(channels: int, multiple: int = _LANE) -> int:
    """The kernel's output width for ``channels`` outputs (next multiple of its vector width)."""
    return -(-channels // multiple) * multiple


def window_ok(*channels: int) -> bool:
    """Whether a shortcut channel window with these bounds can be read in place by the epilogue."""
    return all(c % _WINDOW == 0 for c in channels)


def packable(conv: torch.nn.Conv2d) -> bool:
    """Whether the native kernel computes this conv: square kernel/stride/padding, no groups or dilation."""
    k, s, p, d = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    return (conv.groups == 1 and conv.padding_mode == "zeros" and not isinstance(p, str)
            and k[0] == k[1] and s[0] == s[1] and p[0] == p[1] and d == (1, 1))


def _compilers() -> list[str]:
    env = os.environ.get("CXX")
    if env:
        return [env]
    return [c for c in (shutil.which(n) for n in ("g++", "c++", "clang++")) if c]


def compiler_available() -> bool:
    """Whether a C++ compiler is there to build the kernel with."""
    return bool(_compilers())


# os.environ's backing dict, read directly on every batch-1 call: os.environ.get raises and
# catches a KeyError inside when the variable is unset (~2 µs a call after a pass has evicted
# Python's state from the caches). Other platforms or Pythons take os.environ.get.
_ENVIRON_DATA, _NATIVE_KEY = getattr(os.environ, "_data", None), None
if _ENVIRON_DATA is not None:
    try:
        _NATIVE_KEY = os.environ.encodekey("LCNAS_NATIVE")
    except AttributeError:
        _ENVIRON_DATA = None


def _disabled() -> bool:
    if _ENVIRON_DATA is not None and _NATIVE_KEY not in _ENVIRON_DATA:
        return False
    return os.environ.get("LCNAS_NATIVE", "1").strip().lower() in ("0", "false", "no", "off")


def _build() -> NativeConv:
    source = b"\0".join(path.read_bytes() for path in _SOURCES)
    # -march=native code is only valid on a CPU with the same model and feature flags
    machine = f"{cpu_model()}\0{cpuinfo_field('flags', 'Features') or ''}".encode()
    errors = []
    for cxx in _compilers():
        for openmp in (True, False):  # OpenMP splits output rows over torch's threads; optional
            flags = _FLAGS + (("-fopenmp",) if openmp else ())
            key = hashlib.sha256(b"\0".join([source, cxx.encode(), " ".join(flags).encode(), machine])).hexdigest()[:16]
            out = cache_dir() / "native" / key / "libconv.so"
            if out.is_file():
                return NativeConv(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
            os.close(fd)
            try:
                proc = subprocess.run([cxx, *flags, str(_SOURCE), "-o", tmp], capture_output=True, text=True, timeout=300)
                if proc.returncode == 0:
                    os.replace(tmp, out)  # atomic: a concurrent build never sees half a library
                    return NativeConv(out)
                errors.append(f"{cxx} {' '.join(flags)}: {proc.stderr.strip()[-400:]}")
            except (OSError, subprocess.TimeoutExpired) as e:
                errors.append(f"{cxx}: {e}")
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    if not errors:
        raise RuntimeError("no C++ compiler found (set $CXX, or install g++)")
    raise RuntimeError("; ".join(errors))


def native() -> NativeConv | None:
    """The loaded kernel, building it on first call; None when disabled or unavailable (warns once)."""
    if _disabled():
        return None
    if "lib" not in _state:
        try:
            lib = _state["lib"] = _build()
            _state["why"] = f"native kernel {lib.path}"
        except Exception as e:  # noqa: BLE001 - any build/load failure falls back to PyTorch convs
            _state["lib"] = None
            _state["why"] = f"native kernel unavailable ({e}); batch-1 convolutions use PyTorch"
            warnings.warn(f"lcnas: {_state['why']}", RuntimeWarning, stacklevel=2)
    return _state["lib"]  # type: ignore[return-value]


def native_status() -> str:
    """Which batch-1 convolution the engine uses, and why."""
    if _disabled():
        return "native kernel disabled by LCNAS_NATIVE=0; batch-1 convolutions use PyTorch"
    native()
    return str(_state["why"])
