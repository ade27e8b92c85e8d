"""Export the EMA weights of a run's last checkpoint, mid-stage, as a weights folder (fp16): a snapshot to
commit when a long stage spans sessions, so that losing `runs/` loses no more than the steps since.

    python scripts/snapshot_weights.py configs/tokenizer/tiny-32.yaml -o weights/tokenizer-tiny-32

Training continues from it (a fresh optimiser) with
`facemend train CONFIG --stage STAGE --init FOLDER`, the stage's steps then counting from zero again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from facemend.methods.registry import recipe_for
from facemend.training.config import load_train_config
from facemend.weights import save_weights, without_parts

EMA_PREFIX = "module."  # torch.optim.swa_utils.AveragedModel keeps the model under `module`


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the run's training config")
    parser.add_argument("-o", "--output", required=True, type=Path, help="weights folder to write")
    args = parser.parse_args()
    config = load_train_config(args.config)
    checkpoint_path = Path(config.trainer.runs_dir) / config.name / "checkpoint.ckpt"
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    stage = config.stages[checkpoint["stage"]]
    ema = {key[len(EMA_PREFIX) :]: value for key, value in checkpoint["ema"].items() if key.startswith(EMA_PREFIX)}
    recipe = recipe_for(config)
    recipe.build_model().load_state_dict(ema)  # strict: the snapshot builds the model it claims to be
    training = {"run": config.name, "recipe": config.recipe, "stage": stage.name, "steps": checkpoint["step"]}
    training |= {"seed": config.seed, "snapshot": "EMA weights of a mid-stage checkpoint"}
    fresh = checkpoint.get("fresh_parts", [])  # parts the stage started fresh and never trains, as its export
    if fresh:
        training["left_out"] = list(fresh)
    state = without_parts(ema, fresh)
    save_weights(args.output, recipe.kind, recipe.model_config(), state, dtype=torch.float16, training=training)
    print(f"{args.output}: {stage.name} EMA weights after {checkpoint['step']} of {stage.steps} steps")


if __name__ == "__main__":
    main()
