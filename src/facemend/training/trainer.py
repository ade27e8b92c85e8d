"""The training loop, on Lightning Fabric. Read top to bottom: run folder, Fabric, data, then each stage:
model, optimisers, resume, loop, export.

A run lives in RUNS_DIR/NAME: `checkpoint.ckpt` (latest full state, written atomically every few minutes, on
SIGINT/SIGTERM and at the end of each stage), `<stage>/` (the stage's exported EMA weights: config.json +
model.safetensors), `samples/` (grids from the EMA weights), `csv/` and `tensorboard/` logs, `config.yaml`.
`--resume` continues exactly: the model, EMA, optimisers, schedule, RNG and data position all come back.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from lightning_fabric import Fabric
from lightning_fabric.loggers import CSVLogger, TensorBoardLogger
from lightning_fabric.utilities.seed import seed_everything
from torch.utils.data import DataLoader
from tqdm import tqdm

from facemend.config import ConfigError, to_dict
from facemend.data.datasets import FaceDataset, ResumableSampler, face_files, first_by_hash, load_faces
from facemend.data.io import photo_from_array, write_image
from facemend.errors import FacemendError
from facemend.precision import resolve_precision
from facemend.training.config import StageConfig, TrainConfig, TrainerConfig
from facemend.training.ema import EMA
from facemend.training.losses import hinge_discriminator_loss
from facemend.training.recipe import Recipe
from facemend.weights import load_weights, save_weights, without_parts

CHECKPOINT = "checkpoint.ckpt"


@dataclass
class TrainResult:
    run_dir: Path
    finished: bool  # False when interrupted (a checkpoint was written; continue with --resume)
    stage: str
    step: int


def check_config(config: TrainConfig, recipe: Recipe) -> None:
    """Stage fields that only the recipe can judge: loss names, module names and the method's stage options."""
    recipe.check_trainable()
    recipe.check_stage_options(config)
    model = recipe.build_model()
    modules = [name for name, _ in model.named_children()]
    known_paths = {name for name, _ in model.named_modules() if name}
    for i, stage in enumerate(config.stages):
        for loss in stage.losses:
            if loss not in recipe.losses:
                known = ", ".join(sorted(recipe.losses))
                raise ConfigError(f"stages[{i}].losses.{loss}: unknown loss for recipe {recipe.name!r} ({known})")
        for module in stage.trainable:
            if module not in known_paths:
                raise ConfigError(f"stages[{i}].trainable: no module {module!r} (modules: {', '.join(modules)})")
        for part in stage.init_parts:
            if part not in recipe.init_parts:
                known = ", ".join(recipe.init_parts) or "none"
                raise ConfigError(f"stages[{i}].init_parts.{part}: unknown part for recipe {recipe.name!r} ({known})")
        try:
            recipe.check_stage(stage)
        except ValueError as error:
            raise ConfigError(f"stages[{i}].{error}") from None
        if stage.weight("adversarial") > 0 and recipe.build_discriminator() is None:
            raise ConfigError(f"stages[{i}].losses.adversarial: recipe {recipe.name!r} has no discriminator")


def fabric_precision(trainer: TrainerConfig) -> str:
    """The trainer's precision with `auto` resolved: bf16-mixed off the CPU or where the CPU has native bf16."""
    if trainer.precision != "auto":
        return trainer.precision
    if trainer.accelerator != "cpu" and torch.cuda.is_available():
        return "bf16-mixed"
    return "bf16-mixed" if resolve_precision("auto") == "bf16" else "32-true"


def _set_trainable(model: torch.nn.Module, trainable: tuple[str, ...]) -> None:
    """Freeze `model` but the submodules named in `trainable` (children or dotted paths such as
    `tokenizer.decoder`)."""
    model.requires_grad_(False)
    for name in trainable:
        model.get_submodule(name).requires_grad_(True)


def train(
    config: TrainConfig,
    recipe: Recipe,
    resume: bool = False,
    start_stage: str | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Run (or continue) every stage of `config`. `start_stage` starts fresh at that stage (from its `init`
    or the previous stage's export); `stop_after` interrupts after that many steps of this call, as SIGINT
    would (for tests)."""
    check_config(config, recipe)
    run_dir = config.run_dir
    checkpoint = run_dir / CHECKPOINT
    names = [stage.name for stage in config.stages]
    if start_stage is not None and start_stage not in names:
        raise FacemendError(f"--stage {start_stage!r}: no such stage (stages: {', '.join(names)})")
    if resume and start_stage is not None:
        raise FacemendError("--resume and --stage exclude each other")
    if resume and not checkpoint.exists():
        raise FacemendError(f"{run_dir}: nothing to resume (no {CHECKPOINT})")
    if not resume and start_stage is None and checkpoint.exists():
        raise FacemendError(f"{run_dir} already holds a run: pass --resume to continue it, or remove the folder")

    trainer = config.trainer
    fabric = Fabric(
        accelerator=trainer.accelerator,
        devices=trainer.devices,
        num_nodes=trainer.num_nodes,
        strategy="ddp" if trainer.devices * trainer.num_nodes > 1 else "auto",
        precision=fabric_precision(trainer),
        loggers=[
            CSVLogger(run_dir, name="csv", flush_logs_every_n_steps=1),
            TensorBoardLogger(run_dir, name="tensorboard"),
        ],
    )
    fabric.launch()
    if trainer.threads or fabric.world_size > 1:
        torch.set_num_threads(trainer.threads or max(1, (os.cpu_count() or 1) // trainer.devices))
    if fabric.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")

    data = config.data
    with fabric.rank_zero_first():
        train_faces = load_faces(Path(data.root) / "train", data.size, data.cache_dir)
        val_faces = load_faces(Path(data.root) / "val", data.size, data.cache_dir)
    kept = _kept_faces(config, recipe, fabric)
    val_faces = val_faces[np.linspace(0, len(val_faces) - 1, min(data.val_faces, len(val_faces))).astype(int)]
    degradation = data.degradation if recipe.paired else None
    validation = FaceDataset(
        val_faces, seed=config.seed + 10_000, flip=False, degradation=degradation, gray_prob=data.gray_prob
    )
    val_batch = {key: torch.stack([validation[i][key] for i in range(len(val_faces))]) for key in validation[0]}

    first, resume_step = 0, 0
    if start_stage is not None:
        first = names.index(start_stage)
    elif resume:
        meta = torch.load(checkpoint, map_location="cpu", weights_only=True)
        first, resume_step = int(meta["stage"]), int(meta["step"])
        saved_name = meta.get("stage_name", names[first] if first < len(names) else None)
        if first >= len(names) or saved_name != names[first]:
            raise FacemendError(
                f"{checkpoint}: saved in stage {saved_name!r}, which is not stages[{first}] of the config"
            )
        if resume_step >= config.stages[first].steps:  # that stage had finished
            first, resume_step = first + 1, 0
        resume = resume_step > 0
    if first >= len(config.stages):
        fabric.print(f"{run_dir}: every stage has finished; raise a stage's steps to train on")
        return TrainResult(run_dir, True, names[-1], config.stages[-1].steps)

    interrupted: dict[str, int | None] = {"signal": None}
    restore_signals = _catch_signals(interrupted)
    steps_this_call = 0
    try:
        for index in range(first, len(config.stages)):
            stage = config.stages[index]
            global_offset = sum(s.steps for s in config.stages[:index])
            seed_everything(config.seed + index, verbose=False)

            # --- model, EMA, optimisers -------------------------------------------------------------------
            model = recipe.build_model()
            discriminator = recipe.build_discriminator() if stage.weight("adversarial") > 0 else None
            if not (resume and index == first):
                fresh_parts = _initialise(model, recipe, config, index, fabric)
            _set_trainable(model, stage.trainable)
            ema = EMA(model, trainer.ema_decay, stage.ema_warmup)
            parameters = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(parameters, stage.lr, betas=stage.betas, weight_decay=stage.weight_decay)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s, stage=stage: stage.lr_factor(s))
            model, optimizer = fabric.setup(model, optimizer)
            state = {"model": model, "ema": ema, "optimizer": optimizer, "scheduler": scheduler}
            if discriminator is not None:
                d_optimizer = torch.optim.AdamW(
                    discriminator.parameters(), stage.disc_lr or stage.lr, betas=stage.betas
                )
                discriminator, d_optimizer = fabric.setup(discriminator, d_optimizer)
                state.update(discriminator=discriminator, discriminator_optimizer=d_optimizer)

            # --- data: draws continue where the checkpoint left them ------------------------------------------
            step = resume_step if (resume and index == first) else 0
            stage_seed = config.seed * 1000 + index
            faces = train_faces if kept[index] is None else train_faces[kept[index]]
            dataset = FaceDataset(faces, stage_seed, data.flip, degradation, data.gray_prob)
            sampler = ResumableSampler(
                len(dataset), stage_seed, fabric.global_rank, fabric.world_size, start=step * data.batch_size
            )
            loader = DataLoader(
                dataset,
                data.batch_size,
                sampler=sampler,
                num_workers=data.workers,
                worker_init_fn=_ignore_sigint if data.workers else None,
                drop_last=True,
                generator=torch.Generator().manual_seed(stage_seed),  # leaves the global RNG to the model
            )
            batches = iter(fabric.setup_dataloaders(loader, use_distributed_sampler=False))
            if resume and index == first:
                remainder = fabric.load(checkpoint, state)
                torch.set_rng_state(remainder["rng"])
                fresh_parts = remainder.get("fresh_parts", [])
                fabric.print(f"resumed {stage.name} at step {step}")

            model.eval()  # frozen parts stay in eval mode (norm statistics, quantizer restarts)
            for name in stage.trainable:
                model.module.get_submodule(name).train()  # the model's own parts, not Fabric's wrappers
            if discriminator is not None:
                discriminator.train()

            # --- loop ---------------------------------------------------------------------------------------
            bar = tqdm(
                total=stage.steps, initial=step, desc=stage.name, disable=not fabric.is_global_zero, dynamic_ncols=True
            )
            last_save = time.monotonic()
            while step < stage.steps:
                batch = next(batches)
                adversarial = discriminator is not None and step >= stage.disc_start
                with fabric.autocast():
                    out = recipe.generator_step(model, batch, stage, discriminator if adversarial else None)
                fabric.backward(out.loss)
                if trainer.grad_clip:
                    fabric.clip_gradients(model, optimizer, max_norm=trainer.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                logs = dict(out.logs)
                if adversarial:
                    d_optimizer.zero_grad(set_to_none=True)
                    with fabric.autocast():
                        logits = discriminator(torch.cat([out.real, out.fake.detach()]))
                        real_logits, fake_logits = logits.chunk(2)
                        d_loss = hinge_discriminator_loss(real_logits, fake_logits)
                    fabric.backward(d_loss)
                    d_optimizer.step()
                    d_optimizer.zero_grad(set_to_none=True)
                    logs.update(
                        d_loss=d_loss.item(), d_real=real_logits.mean().item(), d_fake=fake_logits.mean().item()
                    )
                ema.update(model.module)
                step += 1
                steps_this_call += 1
                bar.update()
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "l1", "ce", "d_loss")})
                if step % trainer.log_every == 0 or step == stage.steps:
                    logs["lr"] = scheduler.get_last_lr()[0]
                    fabric.log_dict({f"{stage.name}/{k}": v for k, v in logs.items()}, step=global_offset + step)
                if step % trainer.sample_every == 0 or step == stage.steps:
                    _validate(fabric, recipe, ema.module, val_batch, run_dir, stage.name, global_offset + step)

                stop = interrupted["signal"] is not None or (stop_after is not None and steps_this_call >= stop_after)
                due = stop or time.monotonic() - last_save >= 60.0 * trainer.checkpoint_minutes
                if fabric.world_size > 1:
                    due = fabric.strategy.reduce_boolean_decision(due, all=False)
                    stop = fabric.strategy.reduce_boolean_decision(stop, all=False)
                if step == stage.steps:
                    _export(fabric, recipe, ema.module, run_dir / stage.name, config, stage, step, fresh_parts)
                if due or step == stage.steps:
                    _save(
                        fabric,
                        checkpoint,
                        {
                            **state,
                            "stage": index,
                            "stage_name": stage.name,
                            "step": step,
                            "rng": torch.get_rng_state(),
                            "fresh_parts": fresh_parts,
                        },
                    )
                    last_save = time.monotonic()
                if stop and step < stage.steps:
                    bar.close()
                    fabric.print(f"interrupted: checkpoint at {stage.name} step {step}; continue with --resume")
                    return TrainResult(run_dir, False, stage.name, step)
            bar.close()
            resume = False
        return TrainResult(run_dir, True, config.stages[-1].name, config.stages[-1].steps)
    finally:
        restore_signals()
        for logger in fabric.loggers:
            logger.finalize("success")


def _kept_faces(config: TrainConfig, recipe: Recipe, fabric: Fabric) -> list[np.ndarray | None]:
    """Per stage, the positions of its training faces among all (file-name order): the `data.train_faces`
    subset, if any, narrowed to the faces the recipe keeps for the stage (`Recipe.stage_faces`); None for every
    face. Checked before any stage runs."""
    data = config.data
    files = face_files(Path(data.root) / "train")
    subset = None
    if data.train_faces is not None:
        if data.train_faces > len(files):
            raise FacemendError(f"data.train_faces: {data.train_faces}, but {data.root}/train holds {len(files)}")
        subset = first_by_hash(files, data.train_faces)
        fabric.print(f"training on {len(subset)} of the {len(files)} faces in {data.root}/train (data.train_faces)")
    kept: list[np.ndarray | None] = []
    for stage in config.stages:
        chosen = recipe.stage_faces(stage, data, files)
        if chosen is None:
            kept.append(subset)
            continue
        positions = chosen.positions if subset is None else np.intersect1d(chosen.positions, subset)
        among = len(files) if subset is None else len(subset)
        if len(positions) == 0:
            raise FacemendError(f"stage {stage.name!r}: none of the {among} training faces {chosen.rule}")
        fabric.print(
            f"{stage.name}: {len(positions)} of {among} training faces ({len(positions) / among:.1%}) {chosen.rule}"
        )
        kept.append(positions)
    return kept


def _initialise(model, recipe: Recipe, config: TrainConfig, index: int, fabric: Fabric) -> list[str]:
    """Weights a stage starts from: its `init` folder (and its `init_parts`), else the previous stage's export,
    else random. Returns the recipe's `left_out` parts that the weights lacked and that start fresh (untrained, so
    the stage's export leaves them out again)."""
    stage = config.stages[index]
    folder = Path(stage.init) if stage.init else (config.run_dir / config.stages[index - 1].name if index else None)
    if folder is None:
        recipe.initialize(model, None, stage)
        return []
    hint = f"stages[{index}].init" if stage.init else f"the previous stage ({config.stages[index - 1].name})"
    folders = {hint: folder} | {
        f"stages[{index}].init_parts.{part}": Path(path) for part, path in stage.init_parts.items()
    }
    for field, path in folders.items():
        if not path.exists():
            raise FacemendError(f"{path}: no such weights folder ({field}); train that stage first or set init")
    fabric.print(f"{stage.name}: starting from {', '.join(map(str, folders.values()))}")
    parts = {part: load_weights(path, recipe.init_parts[part]) for part, path in stage.init_parts.items()}
    weights = load_weights(folder)
    recipe.initialize(model, weights, stage, parts)
    if weights.kind != recipe.kind:
        return []
    fresh = recipe.absent_parts(weights.state_dict, model.state_dict())
    if fresh:
        fabric.print(
            f"{stage.name}: {', '.join(fresh)}: not in its weights (restoring weights): started fresh, and left out "
            "of this stage's export"
        )
    return fresh


def _save(fabric: Fabric, path: Path, state: dict) -> None:
    """Atomic: written beside the checkpoint, then renamed over it."""
    temporary = path.with_name(path.name + ".tmp")
    fabric.save(temporary, state)
    if fabric.is_global_zero:
        os.replace(temporary, path)
    fabric.barrier()


def _export(
    fabric: Fabric,
    recipe: Recipe,
    model,
    folder: Path,
    config: TrainConfig,
    stage: StageConfig,
    step: int,
    fresh_parts: list[str],
):
    """The EMA weights, without the `fresh_parts` (never trained: a later stage fills them again or says it needs
    them)."""
    if fabric.is_global_zero:
        training = {
            "run": config.name,
            "recipe": config.recipe,
            "stage": stage.name,
            "steps": step,
            "seed": config.seed,
        }
        if fresh_parts:
            training["left_out"] = list(fresh_parts)
        state = without_parts(model.state_dict(), fresh_parts)
        save_weights(folder, recipe.kind, recipe.model_config(), state, training=training)
        fabric.print(f"exported {stage.name} EMA weights to {folder}")
    fabric.barrier()


def _validate(fabric: Fabric, recipe: Recipe, model, batch: dict, run_dir: Path, stage: str, step: int) -> None:
    if not fabric.is_global_zero:
        return
    with torch.no_grad():
        scores, rows = recipe.validate(model, batch)
    fabric.log_dict({f"{stage}/val_{k}": v for k, v in scores.items()}, step=step)
    fabric.print(f"{stage} step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
    shown = [row[:8].float().clamp(0, 1) for row in rows]
    grid = torch.cat([torch.cat(list(row), dim=2) for row in shown], dim=1)  # 3 H W: one row per kind
    image = np.rint(grid.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
    write_image(run_dir / "samples" / f"{stage}_{step:07d}.jpg", photo_from_array(image))


def _catch_signals(flag: dict):
    """SIGINT / SIGTERM set `flag["signal"]`; the loop checkpoints and returns. Returns the undo function."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, _frame):
        flag["signal"] = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(sig, old) for sig, old in previous.items()]


def _ignore_sigint(_worker_id: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the training process handles it and checkpoints


__all__ = ["TrainResult", "check_config", "train"]
