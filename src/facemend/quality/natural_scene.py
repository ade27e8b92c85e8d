"""Natural-scene statistics shared by NIQE and BRISQUE: grey conversion, MSCN coefficients, neighbour products,
asymmetric generalised Gaussian (AGGD) fits and the two references' half-size bicubic resamplers.

Everything works on `b h w` grey tensors and is differentiable with respect to them. Where the two reference
implementations differ (window, precision, products, shape fit, resampler), each has its own variant here, made to
agree with it to the last bit where rounding noise would otherwise change the scores.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

BT601_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma
SKIMAGE_GREY = (0.2125, 0.7154, 0.0721)  # skimage.color.rgb2gray (BT.709 primaries)
MSCN_C = 1.0 / 255.0  # the stabilising constant: C = 1 on the 0–255 scale
GAUSSIAN_RADIUS = 3  # 7×7 window
GAUSSIAN_SIGMA = 7.0 / 6.0
_TINY = 1e-12  # floor under square roots, so that flat regions give finite gradients

# scikit-video's shape grid: α = 0.2, 0.201, …, 9.999, built with the same np.arange so the values match bit for bit.
SHAPE_GRID = np.arange(0.2, 10, 0.001)


def grey(images: Tensor, weights: tuple[float, float, float], name: str) -> Tensor:
    """`b 3 h w` RGB or `b 1 h w` grey float images in [0, 1] → `b h w` float64 grey; RGB is weighted by `weights`."""
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} expects a float tensor b×3×h×w (RGB) or b×1×h×w (grey), got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"{name} expects float images in [0, 1], got {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} got an empty batch")
    images = images.to(torch.float64)
    if images.shape[1] == 1:
        return images[:, 0]
    r, g, b = weights
    return r * images[:, 0] + g * images[:, 1] + b * images[:, 2]


def gaussian_window(device: torch.device | None = None) -> Tensor:
    """The normalised 1-D Gaussian (7 taps, σ = 7/6) whose outer product is the MSCN window."""
    x = torch.arange(-GAUSSIAN_RADIUS, GAUSSIAN_RADIUS + 1, dtype=torch.float64, device=device)
    w = torch.exp(-0.5 * (x / GAUSSIAN_SIGMA) ** 2)
    return w / w.sum()


@lru_cache(maxsize=1)
def _float32_window() -> np.ndarray:
    """The same window as scikit-video builds it, in float32 arithmetic (its values differ in the last bits)."""
    variance = np.float32(GAUSSIAN_SIGMA) * np.float32(GAUSSIAN_SIGMA)
    taps = [np.exp(np.float32(-0.5) * np.float32(k * k) / variance) for k in range(1, GAUSSIAN_RADIUS + 1)]
    total = np.float32(1.0)
    for tap in taps:
        total = total + np.float32(2.0) * tap
    half = np.array([np.float32(1.0) / total] + [tap / total for tap in taps], np.float32)
    return np.concatenate([half[:0:-1], half])


def _filter_pass(x: Tensor, window: Tensor, dim: int) -> Tensor:
    """Correlation of `b h w` with the symmetric `window` along `dim` (1 or 2), zeros outside (shifted sums are
    several times faster than conv2d on the CPU, especially in float64)."""
    radius = window.numel() // 2
    size = x.shape[dim]
    padded = torch.nn.functional.pad(x, (radius, radius) if dim == 2 else (0, 0, radius, radius))
    out = padded.narrow(dim, radius, size) * window[radius]
    for j in range(1, radius + 1):
        out = out + (padded.narrow(dim, radius - j, size) + padded.narrow(dim, radius + j, size)) * window[radius + j]
    return out


def _smooth(image: Tensor, window: Tensor, float32: bool = False) -> Tensor:
    """Separable Gaussian filtering of `b h w`, down the columns then along the rows, with zeros outside the image
    (scipy's 'constant' mode, convolve2d's 'same'), accumulated in float64; `float32` rounds after each pass
    like scipy's float32 output arrays."""
    x = _filter_pass(image.to(torch.float64), window, 1)
    if float32:
        x = x.to(torch.float32).to(torch.float64)
    x = _filter_pass(x, window, 2)
    return x.to(torch.float32) if float32 else x


def _normalise(image: Tensor, mu: Tensor, mean_square: Tensor, c: float) -> Tensor:
    sigma = torch.sqrt((mean_square - mu * mu).abs().clamp_min(_TINY))
    return (image - mu) / (sigma + c)


def mscn_skvideo(image: Tensor) -> Tensor:
    """Mean-subtracted contrast-normalised coefficients (I − μ) / (σ + C) of 0–255 `b h w` images (C = 1), with
    μ and σ = √|E[I²] − μ²| the local mean and deviation under the 7×7 Gaussian window (σ = 7/6, zeros outside
    the image), in scikit-video's arithmetic: float32 in and out, float32 window, image and squares, moments
    accumulated in float64 and rounded to float32 after each filter pass.

    In smooth regions E[I²] − μ² then keeps few correct digits, which moves NIQE scores by up to ~0.03; matching
    the reference needs the same rounding.
    """
    window = torch.from_numpy(_float32_window()).to(image.device, torch.float64)
    image = image.to(torch.float32)
    return _normalise(image, _smooth(image, window, True), _smooth(image * image, window, True), 1.0)


@lru_cache(maxsize=1)
def _brisque_kernel() -> np.ndarray:
    """The brisque package's 7×7 window: the 2-D Gaussian density normalised by its sum, evaluated in the same
    operations so that its values agree to the last bit."""
    y, x = np.indices((2 * GAUSSIAN_RADIUS + 1,) * 2) - GAUSSIAN_RADIUS
    density = 1 / (2 * np.pi * GAUSSIAN_SIGMA**2) * np.exp(-(x**2 + y**2) / (2 * GAUSSIAN_SIGMA**2))
    return density / np.sum(density)


def _convolve2d_at(image: Tensor, where: Tensor) -> Tensor:
    """scipy.signal.convolve2d(image, kernel, 'same') of `b h w` at the `n 3` positions `where`, added up in the
    order of scipy 1.17's compiled loop: per kernel row, the first four products summed in a block, then the rest
    one by one (verified bit for bit against scipy)."""
    kernel = _brisque_kernel().tolist()
    size = len(kernel)
    radius = size // 2
    padded = torch.nn.functional.pad(image, (radius, radius, radius, radius))
    b, height, width = padded.shape
    flat = padded.reshape(-1)
    base = (where[:, 0] * height + where[:, 1]) * width + where[:, 2]
    total = torch.zeros(len(where), dtype=image.dtype, device=image.device)
    for j in range(size):
        # convolution: kernel (j, k) meets pixel (m + r − j, n + r − k), i.e. padded (m + 2r − j, n + 2r − k)
        row = base + (2 * radius - j) * width + 2 * radius
        terms = [kernel[j][k] * flat[row - k] for k in range(size)]
        total = total + (((terms[0] + terms[1]) + terms[2]) + terms[3])
        for term in terms[4:]:
            total = total + term
    return total


def mscn_brisque(image: Tensor) -> Tensor:
    """The MSCN coefficients of `b h w` images in [0, 1] (C = 1/255) as the brisque package computes them, in
    float64 (same window; its 2-D convolution is separable).

    Where a neighbourhood is flat (or balanced), I − μ is rounding noise whose sign still decides which side of
    the AGGD fit the sample counts for, enough to move BRISQUE by ~5e-3; there μ is recomputed in scipy's exact
    order of additions, so that the signs agree with the reference for the same input bits.
    """
    image = image.to(torch.float64)
    window = gaussian_window(image.device)
    mu = _smooth(image, window)
    noise = (image - mu).detach().abs() <= 1e-12  # μ ≤ 1: the two sums differ by ~1e-15 at most
    if noise.any():
        where = noise.nonzero()
        with torch.no_grad():
            exact = _convolve2d_at(image.detach(), where)
        # the correction is below 1e-12; it only fixes the bits, the gradient flows through the fast μ
        mu = mu.index_put((where[:, 0], where[:, 1], where[:, 2]), exact - mu.detach()[noise], accumulate=True)
    return _normalise(image, mu, _smooth(image * image, window), MSCN_C)


def circular_products(patches: Tensor) -> list[Tensor]:
    """scikit-video's neighbour products of `... p p` patches, wrapping around each patch (its np.roll), in the
    order horizontal, vertical, main diagonal, secondary diagonal."""
    up = torch.roll(patches, 1, dims=-2)  # pixel (i−1, j)
    neighbours = [torch.roll(patches, 1, dims=-1), up, torch.roll(up, 1, dims=-1), torch.roll(up, -1, dims=-1)]
    return [n * patches for n in neighbours]


def cropped_products(m: Tensor) -> list[Tensor]:
    """The brisque package's neighbour products of `b h w`, without wrap-around (each is smaller by one row and/or
    column), in the order horizontal, vertical, main diagonal, secondary diagonal."""
    return [
        m[:, :, :-1] * m[:, :, 1:],
        m[:, :-1, :] * m[:, 1:, :],
        m[:, :-1, :-1] * m[:, 1:, 1:],
        m[:, 1:, :-1] * m[:, :-1, 1:],
    ]


def safe_sqrt(x: Tensor) -> Tensor:
    """√x of x ≥ 0 with a finite gradient at 0 (0 below a tiny floor)."""
    return torch.where(x > _TINY, torch.sqrt(x.clamp_min(_TINY)), 0)


def aggd_moments(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Moments of the samples along the last dimension for the AGGD moment-matching fit, as float64.

    Returns the left and right mean squares (of the negative and of the non-negative samples; 0 where a side is
    empty) and R̂ = r̂ (γ̂³ + 1)(γ̂ + 1) / (γ̂² + 1)², with γ̂ = √left / √right and r̂ = E[|x|]² / E[x²].
    """
    f64 = torch.float64
    n = x.shape[-1]
    negative, positive = x.clamp(max=0), x.clamp(min=0)
    n_left = (x < 0).sum(-1).to(f64)
    left_sum = torch.linalg.vecdot(negative, negative).to(f64)
    right_sum = torch.linalg.vecdot(positive, positive).to(f64)
    abs_mean = (positive.sum(-1).to(f64) - negative.sum(-1).to(f64)) / n
    left = left_sum / n_left.clamp_min(1)
    right = right_sum / (n - n_left).clamp_min(1)
    gamma = safe_sqrt(left) / torch.sqrt(right.clamp_min(_TINY))
    r = abs_mean**2 / ((left_sum + right_sum) / n).clamp_min(_TINY)
    ratio = r * (gamma**3 + 1) * (gamma + 1) / (gamma**2 + 1) ** 2
    return left, right, ratio


def _log_rho(alpha: Tensor) -> Tensor:
    """log ρ(α) = log Γ(2/α)² / (Γ(1/α) Γ(3/α)), the generalised Gaussian's E[|x|]² / E[x²]; increasing in α."""
    return 2 * torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)


@lru_cache(maxsize=1)
def _rho_grid() -> np.ndarray:
    # kept as numpy: a cached tensor made under torch.inference_mode could not be used with autograd later
    return torch.exp(_log_rho(torch.from_numpy(SHAPE_GRID))).numpy()


def shape_on_grid(ratio: Tensor) -> Tensor:
    """scikit-video's fit: the grid α (0.2 to 9.999, step 0.001) whose ρ(α) is nearest to R̂.

    It is an argmin, so α carries no gradient (the scales and means fitted with it do).
    """
    alpha = torch.from_numpy(SHAPE_GRID).to(ratio.device)
    rho = torch.from_numpy(_rho_grid()).to(ratio.device)
    target = ratio.detach()
    # ρ increases along the grid, so the nearest value is one of the two neighbours of the insertion point;
    # on a tie np.argmin picks the first, hence `<=`.
    upper = torch.searchsorted(rho, target).clamp(1, rho.numel() - 1)
    lower = upper - 1
    pick_lower = (rho[lower] - target) ** 2 <= (rho[upper] - target) ** 2
    index = torch.where(pick_lower, lower, upper)
    # a non-finite R̂ makes every squared difference NaN or inf, and np.argmin then returns the first index
    index = torch.where(target.isfinite(), index, 0)
    return alpha[index]


def shape_by_root(ratio: Tensor, low: float = 0.01, high: float = 100.0, steps: int = 60) -> Tensor:
    """The brisque package's fit: the root α of ρ(α) = R̂ (it asks scipy.optimize.root; ρ is increasing, so
    bisection in log α finds the same root), clamped to [low, high] when R̂ is out of ρ's range (0, 3/4).

    Differentiable: one Newton step on the detached root gives dα/dR̂ = 1/ρ'(α) (implicit function theorem).
    """
    target = torch.log(ratio.detach().clamp_min(1e-300))
    with torch.no_grad():
        lo = torch.full_like(target, math.log(low))
        hi = torch.full_like(target, math.log(high))
        for _ in range(steps):
            mid = (lo + hi) / 2
            below = _log_rho(torch.exp(mid)) < target
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        alpha = torch.exp((lo + hi) / 2)
        rho = torch.exp(_log_rho(alpha))
        # d log ρ / dα = (ψ(1/α) + 3ψ(3/α) − 4ψ(2/α)) / α²
        slope = rho * (torch.digamma(1 / alpha) + 3 * torch.digamma(3 / alpha) - 4 * torch.digamma(2 / alpha))
        slope = slope / alpha**2
    inside = (alpha > low * 1.0001) & (alpha < high * 0.9999)
    return torch.where(inside, alpha - (rho - ratio) / slope, alpha)


def aggd_constants(alpha: Tensor) -> tuple[Tensor, Tensor]:
    """√(Γ(1/α) / Γ(3/α)) (standard deviation → AGGD scale β) and Γ(2/α) / Γ(1/α) (for the AGGD mean)."""
    lg1, lg2, lg3 = torch.lgamma(1 / alpha), torch.lgamma(2 / alpha), torch.lgamma(3 / alpha)
    return torch.exp((lg1 - lg3) / 2), torch.exp(lg2 - lg1)


def _cubic(t: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel with parameter `a` (Pillow: −0.5, OpenCV: −0.75)."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = a * (((t - 5) * t + 8) * t - 4)
    return np.where(t < 1, near, np.where(t < 2, far, 0.0))


@lru_cache(maxsize=16)
def pillow_bicubic_matrix(size_in: int, size_out: int) -> np.ndarray:
    """`out in` matrix of Pillow's BICUBIC resize along one axis (Image.resize, as old scipy.misc.imresize
    used it): the kernel is stretched by the scale factor when shrinking (antialiasing) and, at the borders,
    cut to the image and renormalised."""
    scale = size_in / size_out
    stretch = max(scale, 1.0)
    support = 2.0 * stretch
    matrix = np.zeros((size_out, size_in))
    for i in range(size_out):
        centre = (i + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        stop = min(int(centre + support + 0.5), size_in)
        taps = np.arange(first, stop)
        weights = _cubic((taps - centre + 0.5) / stretch, -0.5)
        matrix[i, first:stop] = weights / weights.sum()
    return matrix


def opencv_half(image: Tensor) -> Tensor:
    """cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC) of `b h w` float64, to the last bit.

    OpenCV rounds the size half to even and samples source position 2i + ½: taps 2i − 1 … 2i + 2 with the fixed
    weights of its a = −0.75 cubic at ±½ and ±1½, indices clamped at the borders, no antialiasing; rows first,
    then columns, each output a left-to-right sum of the four products.
    """
    weights = _cubic(np.array([1.5, 0.5, 0.5, 1.5]), -0.75).tolist()
    x = image.to(torch.float64)
    for dim in (2, 1):
        size = x.shape[dim]
        start = torch.arange(round(size / 2), device=x.device) * 2 - 1
        taps = [x.index_select(dim, (start + k).clamp(0, size - 1)) * weights[k] for k in range(4)]
        x = ((taps[0] + taps[1]) + taps[2]) + taps[3]
    return x


def pillow_resample(image: Tensor, rows: np.ndarray, cols: np.ndarray, float32: bool = False) -> Tensor:
    """`b h w` → `b h' w'` with the `h' h` matrix `rows` and the `w' w` matrix `cols`: along rows first, then
    columns, like Pillow; `float32` rounds after each pass like Pillow's float32 ('F') images."""
    r = torch.from_numpy(rows).to(image.device, torch.float64)
    c = torch.from_numpy(cols).to(image.device, torch.float64)
    x = image.to(torch.float64) @ c.T
    if float32:
        x = x.to(torch.float32).to(torch.float64)
    x = r @ x
    return x.to(torch.float32) if float32 else x
