"""Growing a trained UNet (`models/unet.py`) into a larger one that starts by computing exactly what it did.

Two ways to grow, which combine:
- deeper: more residual blocks per level. A block the trained UNet lacks starts as an identity: its last layer
  (a residual block's second convolution, an attention block's output projection) at zero, the rest random.
- wider: a level with more channels (e.g. widths 32 → 48 at full resolution). Each new GroupNorm group is a copy
  of one of the trained level's groups (so the copies' group statistics are the trained group's), and a layer
  that reads a copied channel gets that channel's weights split between its copies with random shares that sum
  to one, element by element (Net2Net's function-preserving widening, Chen et al., 2016). The random split
  breaks the copies' symmetry: with equal shares they would get proportional gradients, which Adam turns into
  equal updates, and they would never differ.

A level can widen only where its GroupNorm groups keep their size (4 channels for every multiple of 4 up to 128,
as `blocks.group_norm` splits them), where it has no self-attention (nor the deepest level, which the middle's
attention reads), and where no residual block's shortcut changes kind (a 1×1 projection between
two widths cannot become an identity): `grow_unet_state` checks the grown UNet against the trained one on a
random input and refuses a growth that would change what it computes.
"""

from __future__ import annotations

import torch

from facemend.errors import FacemendError
from facemend.models.blocks import AttnBlock, ResBlock, group_norm
from facemend.models.unet import UNet, UNetConfig

SPLIT_SEED = 0  # seeds the random shares of a widening: a grown UNet is the same every time


def _group_copies(old: int, new: int) -> torch.Tensor:
    """For a layer widened from `old` to `new` channels, the old channel each new channel copies: new group j is
    old group j mod (old groups), channel for channel."""
    old_groups, new_groups = group_norm(old).num_groups, group_norm(new).num_groups
    size = old // old_groups
    if new // new_groups != size:
        raise FacemendError(f"a width of {old} cannot grow to {new}: its GroupNorm groups would change size")
    return torch.tensor([(j % old_groups) * size + r for j in range(new_groups) for r in range(size)])


def _channel_maps(trained: UNetConfig, grown: UNetConfig) -> dict[tuple[int, int], torch.Tensor]:
    """(trained size, grown size) of every channel space the growth widens → the trained channel each grown
    channel copies. The spaces are the levels' widths and the up path's inputs, cat(coarser features, skip)."""
    old_widths, new_widths = trained.widths(), grown.widths()
    level_maps = [_group_copies(old, new) for old, new in zip(old_widths, new_widths, strict=True)]
    spaces = list(zip(old_widths, new_widths, level_maps, strict=True))
    for i in range(len(old_widths)):
        coarser = min(i + 1, len(old_widths) - 1)  # the deepest level's up path reads the middle's output
        index = torch.cat([level_maps[coarser], old_widths[coarser] + level_maps[i]])
        spaces.append((old_widths[coarser] + old_widths[i], new_widths[coarser] + new_widths[i], index))
    maps: dict[tuple[int, int], torch.Tensor] = {}
    for old, new, index in spaces:
        if old == new:
            continue
        if (old, new) in maps and not torch.equal(maps[old, new], index):
            raise FacemendError(f"two channel spaces grow from {old} to {new} channels in different ways")
        maps[old, new] = index
    return maps


def _split_shares(index: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Random shares for a weight whose dimension 1 reads copied channels (`index`: the copied channel of each):
    per element, the shares of the copies of one channel sum to one; a channel with one copy keeps its weight."""
    copies = torch.bincount(index)
    noise = torch.rand(shape, generator=generator) - 0.5
    moved = noise.movedim(1, -1)
    mean = torch.zeros(*moved.shape[:-1], int(index.max()) + 1).index_add_(-1, index, moved) / copies
    zero_sum = moved - mean.index_select(-1, index)
    return ((1 + zero_sum) / copies[index]).movedim(-1, 1)


def _widen(name: str, tensor: torch.Tensor, shape: torch.Size, maps, generator) -> torch.Tensor:
    if tensor.ndim != len(shape) or any(new < old for old, new in zip(tensor.shape, shape, strict=True)):
        raise FacemendError(f"{name}: trained shape {tuple(tensor.shape)} does not grow into {tuple(shape)}")
    for dim, (old, new) in enumerate(zip(tensor.shape, shape, strict=True)):
        if old == new:
            continue
        if (old, new) not in maps:
            raise FacemendError(f"{name}: dimension {dim} grows from {old} to {new}, which no level's widening does")
        index = maps[old, new]
        tensor = tensor.index_select(dim, index)
        if dim == 1:  # a weight reading copied channels: split it between the copies
            tensor = tensor * _split_shares(index, tuple(tensor.shape), generator)
    return tensor


def grow_unet_state(
    unet: UNet, trained: UNetConfig, trained_state: dict[str, torch.Tensor], prefix: str = ""
) -> dict[str, torch.Tensor]:
    """A state dict for `unet` (keys under `prefix`) from a trained UNet's (`trained`, `trained_state`, same
    keys) with no more blocks per level and no wider levels: every trained tensor where it was (copied and split
    where its level widened), the blocks it lacks as identities. Raises FacemendError, naming the field, when the
    trained UNet is not a part of `unet`, or when the grown UNet would not compute what the trained one does."""
    ours = unet.config
    for name in ("attention_levels", "time_dim", "image_channels", "condition_channels"):
        if getattr(ours, name) != getattr(trained, name):
            raise FacemendError(f"model.unet.{name}: {getattr(ours, name)} differs from the weights' {name}")
    if len(ours.channel_mults) != len(trained.channel_mults):
        raise FacemendError(
            f"model.unet.channel_mults: {len(ours.channel_mults)} levels, the weights have {len(trained.channel_mults)}"
        )
    if any(mine < theirs for mine, theirs in zip(ours.widths(), trained.widths(), strict=True)):
        raise FacemendError(
            f"model.unet.channels: widths {ours.widths()} are narrower than the weights' {trained.widths()}"
        )
    if any(mine < theirs for mine, theirs in zip(ours.level_blocks(), trained.level_blocks(), strict=True)):
        raise FacemendError(
            f"model.unet.blocks_per_level: {ours.blocks_per_level} has fewer blocks than the weights' "
            f"{trained.blocks_per_level}"
        )
    deepest = len(ours.channel_mults) - 1
    for level, (mine, theirs) in enumerate(zip(ours.widths(), trained.widths(), strict=True)):
        if mine != theirs and (level in ours.attention_levels or level == deepest):
            raise FacemendError(f"model.unet.channels: level {level} has self-attention and cannot widen")
    try:
        maps = _channel_maps(trained, ours)
    except FacemendError as error:
        raise FacemendError(f"model.unet.channels: {error}") from None
    state = {f"{prefix}{key}": value.detach().clone() for key, value in unet.state_dict().items()}
    for name, module in unet.named_modules():
        if isinstance(module, ResBlock | AttnBlock) and not any(key.startswith(f"{name}.") for key in trained_state):
            last = "conv2" if isinstance(module, ResBlock) else "proj"
            for suffix in ("weight", "bias"):
                state[f"{prefix}{name}.{last}.{suffix}"].zero_()
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    for key in sorted(trained_state):
        if f"{prefix}{key}" not in state:
            raise FacemendError(
                f"model.unet: the weights' {key} has no place in the grown UNet (a widened level would turn a "
                "shortcut's projection into an identity)"
                if key.endswith("shortcut.weight") or key.endswith("shortcut.bias")
                else f"model.unet: the weights' {key} has no place in the grown UNet"
            )
        grown = _widen(key, trained_state[key].float(), state[f"{prefix}{key}"].shape, maps, generator)
        state[f"{prefix}{key}"] = grown.to(state[f"{prefix}{key}"].dtype)
    _check_same_function(unet, trained, trained_state, state, prefix)
    return state


def _check_same_function(unet: UNet, trained: UNetConfig, trained_state, state, prefix: str) -> None:
    old, new = UNet(trained), UNet(unet.config)
    old.load_state_dict({key: value.float() for key, value in trained_state.items()})
    new.load_state_dict({key.removeprefix(prefix): value.float() for key, value in state.items()})
    size = 2 * trained.stride
    inputs = torch.rand(
        1, trained.image_channels + trained.condition_channels, size, size, generator=torch.Generator().manual_seed(0)
    )
    sample, condition = inputs[:, : trained.image_channels], inputs[:, trained.image_channels :]
    timesteps = torch.zeros(1) if trained.time_dim else None
    condition = condition if trained.condition_channels else None
    with torch.no_grad():
        expected, got = old.eval()(sample, timesteps, condition), new.eval()(sample, timesteps, condition)
    error = float((got - expected).abs().max())
    if error > 1e-4 * max(1.0, float(expected.abs().max())):
        raise FacemendError(
            f"model.unet: growing {trained.widths()} → {unet.config.widths()} changes what the UNet computes "
            f"(max difference {error:.2g})"
        )
