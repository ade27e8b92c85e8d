"""How should ART-FR's transformer see the LQ face: `add` (projected LQ latent added to every token embedding)
or `cross` (cross-attention to it after each self-attention)? Issue 6 asks for the choice to rest on a
measurement; this is it, in one command.

    LD_PRELOAD=libtcmalloc_minimal.so.4 python experiments/artfr/condition.py --data data/facemend-test-128 \
        -o reports/artfr-condition [--steps 400] [--limit 200]

For each condition it trains configs/artfr/tiny.yaml's `tokens` stage alone, from the same prior and seed, at the
same short budget (`--steps`, warm-up a quarter of it, cosine decay), into runs/artfr-tiny-condition-COND/
(an interrupted run resumes; a finished one is reused), then benchmarks the exported weights with the predicted
codes decoded alone (fidelity 0, no fusion trained yet) at 1 and 8 sampling steps on the `medium` and `heavy`
presets. OUT/condition.md holds the table: parameters, seconds per training step, code accuracy, PSNR-Y, IDD
and FD-dlib.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from facemend.methods.registry import recipe_for
from facemend.pipelines.benchmark import presets_markdown, run_benchmark
from facemend.training.config import load_train_config
from facemend.training.trainer import train

CONDITIONS = ("add", "cross")
PRESETS = ("medium", "heavy")
KEYS = ("psnr_y", "idd", "fd_dlib")
COLUMNS = ("code_acc", *KEYS, "s_per_face")
SAMPLER_STEPS = (1, 8)


def condition_config(base: dict, condition: str, steps: int) -> dict:
    """`base` (artfr-tiny) reduced to its `tokens` stage at `steps` steps, with the given condition."""
    config = json.loads(json.dumps(base))
    tokens = next(stage for stage in config["stages"] if stage["name"] == "tokens")
    tokens.update(steps=steps, warmup_steps=max(1, steps // 4))
    config.update(name=f"{base['name']}-condition-{condition}", stages=[tokens])
    config["model"]["condition"] = condition
    config["trainer"]["sample_every"] = steps
    return config


def train_condition(config_dict: dict) -> tuple[Path, float | None]:
    """Train (or resume, or reuse) one variant; returns its exported weights and seconds per step (None when
    reused)."""
    config = load_train_config(config_dict)
    recipe = recipe_for(config)
    folder = config.run_dir / "tokens"
    if folder.is_dir():
        return folder, None
    resume = (config.run_dir / "checkpoint.ckpt").exists()
    start = time.monotonic()
    result = train(config, recipe, resume=resume)
    if not result.finished:
        raise SystemExit(f"interrupted: rerun to resume {config.run_dir}")
    return folder, None if resume else (time.monotonic() - start) / config.stages[0].steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/artfr/tiny.yaml"))
    parser.add_argument("--steps", type=int, default=400, help="training steps per condition")
    parser.add_argument("--data", type=Path, required=True, help="facemend-test: holds medium/ and heavy/")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=200, help="faces per preset (spread evenly)")
    args = parser.parse_args()

    base = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    folders, step_seconds, parameters = {}, {}, {}
    for condition in CONDITIONS:
        config = condition_config(base, condition, args.steps)
        folders[condition], step_seconds[condition] = train_condition(config)
        model = recipe_for(load_train_config(config)).build_model()
        parameters[condition] = sum(p.numel() for name, p in model.named_parameters() if name.startswith("transformer"))

    specs = {
        f"{folders[c]}:fidelity=0,keep_input=0,steps={n}": (
            c,
            str(n),
            f"{parameters[c] / 1e6:.2f}M",
            _seconds(step_seconds[c]),
        )
        for c in CONDITIONS
        for n in SAMPLER_STEPS
    }
    results = {
        preset: run_benchmark(args.data / preset, list(specs), args.out / preset, 16, KEYS, args.limit)
        for preset in PRESETS
    }
    lines = [
        f"# ART-FR condition: add vs cross ({args.config}, tokens stage only, {args.steps} steps each)",
        "",
        "Codes decoded alone (fidelity 0). Transformer parameters and training seconds per step (batch "
        f"{base['data']['batch_size']}) per row.",
        "",
        *presets_markdown(results, list(specs.items()), ("condition", "steps", "params", "s/train step"), COLUMNS),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "condition.json").write_text(json.dumps({"specs": specs, "results": results}, indent=1) + "\n")
    (args.out / "condition.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
