"""How damaged a face is, from cheap measurements of its aligned crop, and the restoration strength that follows.

Measured on the crop's luminance, inside the template face box, at a fixed analysis size (so the answer does not
depend on the restorer's face size):

- `noise`: σ of additive noise in grey levels (0–255), from the median response of Immerkær's Laplacian-difference
  operator (robust to the face's edges, which touch few pixels); at the analysis size a sharp face's skin texture
  reads as a little noise too, so a large face with less of it than sharp faces have was smoothed (blur, JPEG);
- `detail`: the share of the face's band-pass energy in its finest octave, net of the noise's share: blur,
  JPEG smoothing and up-sampling take the finest octave first;
- `blockiness`: JPEG's 8×8 grid, as the excess of the luminance step across block borders over the step across
  block middles, in the photo's own pixel grid (1 = no grid);
- `resolution`: the face's native size over the analysis size (at 1 or below, the face has no pixels to spare);
- `native_detail`: `detail` measured again one octave finer, on the face at its own resolution up to twice the
  analysis size (`NATIVE_VIEW_SIZE`), for faces with pixels to spare: a large face blurred at its own size can
  look sharp once shrunk to the analysis size, but it lacks the octave just finer than it, which is the detail
  the paste-back keeps from the input. (Measured at the full resolution of a large photo instead, a face that was
  enlarged once, as many scans are, would read as damaged however sharp it looks.)

`auto_strength` maps them to a strength in [0, 1] (1 = the restorer's output, 0 = the input); its ramps were
chosen on facemend-val's degraded faces and on sharp FFHQ faces (see docs/no-harm.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from facemend.faces.template import template_face_box

ANALYSIS_SIZE = 128
NATIVE_VIEW_SIZE = 2 * ANALYSIS_SIZE  # `native_detail`: faces larger than this are measured shrunk to it
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_MEDIAN_TO_SIGMA = 1.0 / (0.6745 * 6.0)  # |operator response| median of N(0, σ²) noise is 0.6745 · 6σ
JPEG_BLOCK = 8

# Ramps (value where the face counts as clean → value where it counts as fully damaged), see `auto_strength`.
# Chosen on facemend-val (medium, heavy, and its HQ faces degraded with `mild`) and sharp FFHQ faces at 150, 300
# and 600 px (docs/no-harm.md): 95% of sharp FFHQ crops have detail ≥ 0.45 and noise ≤ 3.0 (skin texture reads as
# noise); 95% of val-heavy faces have detail ≤ 0.39. Noisy medium faces look as detailed as sharp ones at 128 px,
# so a face with no more pixels than the analysis size is restored fully: only faces shrunk into the crop (native
# size ≥ 1.5 × 128, whose crop is an area-averaged, cleaner view) are judged by their detail, noise and blocks.
DETAIL_RAMP = (0.40, 0.30)
# One octave finer (docs/no-harm.md), by the same rule: 95% of sharp FFHQ faces at 150, 300 and 600 px have
# `native_detail` ≥ 0.35, and the clean end sits 0.05 below; the damaged end is about the median of facemend-val's
# faces degraded with `mild` at 256 px (0.19).
NATIVE_DETAIL_RAMP = (0.30, 0.20)
NOISE_RAMP = (3.5, 6.0)
# The same measurement read from below (docs/no-harm.md, "Too smooth"): at the analysis size a sharp face's skin,
# hair and pores read as noise (95% of sharp FFHQ crops at 150, 300 and 600 px: σ ≥ 1.36), and blur and JPEG
# smoothing take that texture away first. The clean end sits about 12% under the sharp faces (1.2), the damaged
# end at the median of facemend-val's faces degraded with `mild` at 256 px (0.5).
SMOOTHNESS_RAMP = (1.2, 0.5)
BLOCKINESS_RAMP = (1.15, 1.4)
RESOLUTION_RAMP = (1.5, 1.0)


@dataclass(frozen=True)
class FaceDamage:
    """Cheap measurements of one face crop (see the module's docstring)."""

    detail: float
    noise: float
    blockiness: float
    resolution: float
    native_detail: float

    def to_dict(self) -> dict[str, float]:
        return {name: round(value, 4) for name, value in asdict(self).items()}


def luminance(image: np.ndarray) -> np.ndarray:
    """H×W luminance in grey levels (0–255) of H×W×3 float RGB in [0, 1]."""
    return cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2GRAY) * 255.0


def measure_damage(
    crop: np.ndarray,
    native_size: float,
    photo_region: np.ndarray | None = None,
    native_crop: np.ndarray | None = None,
) -> FaceDamage:
    """The damage of an aligned H×H×3 float RGB face crop whose face measures `native_size` pixels in its photo
    (its crop side at scale 1); `photo_region`, the face's pixels in the photo's own grid, is where JPEG's block
    grid is looked for (without it, blockiness is not measured: 1); `native_crop`, the same aligned face at its
    own resolution (at the side `native_view_size` gives), is where `native_detail` is measured (without it:
    `detail`)."""
    size = crop.shape[0]
    interpolation = cv2.INTER_AREA if size > ANALYSIS_SIZE else cv2.INTER_CUBIC
    analysed = cv2.resize(crop, (ANALYSIS_SIZE, ANALYSIS_SIZE), interpolation=interpolation)
    detail, noise = _detail_and_noise(analysed)
    return FaceDamage(
        detail=detail,
        noise=noise,
        blockiness=blockiness(luminance(photo_region)) if _holds_blocks(photo_region) else 1.0,
        resolution=min(native_size, 4.0 * ANALYSIS_SIZE) / ANALYSIS_SIZE,
        native_detail=detail if native_crop is None else _detail_and_noise(native_crop)[0],
    )


def native_view_size(native_size: float) -> int | None:
    """The side at which a face of `native_size` pixels is measured for `native_detail` (its own, at most
    `NATIVE_VIEW_SIZE`); None when it has no pixels to spare over the analysis size."""
    side = round(min(native_size, NATIVE_VIEW_SIZE))
    return side if side > ANALYSIS_SIZE else None


def _detail_and_noise(crop: np.ndarray) -> tuple[float, float]:
    """`detail` and `noise` of an aligned square crop, inside the template face box at the crop's own size."""
    luma = luminance(np.clip(crop, 0.0, 1.0))
    box = template_face_box(crop.shape[0])
    left, top, right, bottom = (round(v) for v in (box.left, box.top, box.right, box.bottom))
    noise = noise_sigma(luma[top:bottom, left:right])
    return fine_detail_share(luma, noise)[top:bottom, left:right].mean().item(), noise


def _holds_blocks(region: np.ndarray | None) -> bool:
    return region is not None and min(region.shape[:2]) >= 2 * JPEG_BLOCK


def noise_sigma(luma: np.ndarray) -> float:
    """σ (grey levels) of white noise in a luminance image, from the median of Immerkær's operator."""
    response = cv2.filter2D(luma, -1, _IMMERKAER, borderType=cv2.BORDER_REFLECT_101)[1:-1, 1:-1]
    return float(np.median(np.abs(response)) * _MEDIAN_TO_SIGMA)


def fine_detail_share(luma: np.ndarray, noise: float) -> np.ndarray:
    """Per pixel (locally averaged): energy of the finest octave over the energy of the two finest, with the
    noise's expected energy taken out of the finest."""
    fine = luma - cv2.GaussianBlur(luma, (0, 0), 1.0)
    coarser = cv2.GaussianBlur(luma, (0, 0), 1.0) - cv2.GaussianBlur(luma, (0, 0), 2.0)
    # white noise of σ keeps ≈ 0.71 σ² of its energy in `fine` (1 − 2·G₁ + G₁∗G₁ summed over the kernel)
    fine_energy = np.maximum(cv2.GaussianBlur(fine * fine, (0, 0), 4.0) - 0.71 * noise * noise, 0.0)
    coarser_energy = cv2.GaussianBlur(coarser * coarser, (0, 0), 4.0)
    return fine_energy / (fine_energy + coarser_energy + 1.0)


def blockiness(luma: np.ndarray) -> float:
    """Mean luminance step across 8-pixel block borders over the mean step across the middles of the blocks
    (1 = no block grid). Comparing with the middles, which a photo enlarged 2× or 4× by pixel repetition steps at
    too, keeps such photos from counting as blocky."""
    across, middle = [], []
    for axis in (0, 1):
        step = np.abs(np.diff(luma, axis=axis))
        positions = np.arange(step.shape[axis]) % JPEG_BLOCK
        if (positions == JPEG_BLOCK - 1).sum() < 2:
            return 1.0
        across.append(np.compress(positions == JPEG_BLOCK - 1, step, axis=axis).mean())
        middle.append(np.compress(positions == JPEG_BLOCK // 2 - 1, step, axis=axis).mean())
    return float((np.mean(across) + 1e-3) / (np.mean(middle) + 1e-3))


def _ramp(value: float, clean: float, damaged: float) -> float:
    """0 at `clean`, 1 at `damaged`, linear between (either direction)."""
    return float(np.clip((value - clean) / (damaged - clean), 0.0, 1.0))


def fine_band_damage(damage: FaceDamage) -> float:
    """How much of a face's detail finer than the restorer's face size is damage rather than detail, in [0, 1]: the
    worst of its noise, JPEG blocks and blur (at the analysis size or one octave finer). The paste-back drops that
    share of it (times the strength), so a noisy or blurred large face does not keep a fine band that is noise,
    blocks or empty."""
    return max(
        _ramp(damage.detail, *DETAIL_RAMP),
        _ramp(damage.noise, *NOISE_RAMP),
        _ramp(damage.blockiness, *BLOCKINESS_RAMP),
        _ramp(damage.native_detail, *NATIVE_DETAIL_RAMP),
    )


def auto_strength(damage: FaceDamage) -> float:
    """The restoration strength for a face: the worst of its damages, each on a ramp from clean (0) to damaged (1)
    (those of `fine_band_damage`, a face with no pixels to spare over the analysis size, and a face too smooth for
    a sharp one). Smoothness raises the strength only: the face's fine band is still kept, so a sharp face that
    reads smooth (retouched skin) keeps its eyelashes and hair."""
    return max(
        fine_band_damage(damage),
        _ramp(damage.resolution, *RESOLUTION_RAMP),
        _ramp(damage.noise, *SMOOTHNESS_RAMP),
    )
