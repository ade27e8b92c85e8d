"""Copy a stage's exported EMA weights into the package as a bundled weight folder (float16) and record its
sha256 in src/facemend/bundled/registry.json. A restorer's training-only parts (its `training_only`, e.g.
daefr's LQ tokenizer) are left out. Then `python scripts/weights_manifest.py` records the new files.

    python scripts/bundle_weights.py runs/residual-unet-tiny/restore residual-unet-tiny
"""

from __future__ import annotations

import argparse

import torch

from facemend.methods.registry import RESTORER_KINDS
from facemend.weights import BUNDLED_DIR, load_weights, register_bundled, save_weights

MAX_FILE_BYTES = 20 * 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="an exported weights folder (runs/NAME/STAGE)")
    parser.add_argument("name", help="bundled name, e.g. residual-unet-tiny")
    args = parser.parse_args()
    weights = load_weights(args.source)
    restorer = RESTORER_KINDS.get(weights.kind)
    state = restorer.inference_state(weights.state_dict) if restorer else weights.state_dict
    target = BUNDLED_DIR / args.name
    save_weights(
        target,
        weights.kind,
        weights.config,
        state,
        dtype=torch.float16,
        training={**weights.info.get("training", {}), "source": str(args.source)},
    )
    size = (target / "model.safetensors").stat().st_size
    if size > MAX_FILE_BYTES:
        raise SystemExit(f"{target}/model.safetensors is {size / 2**20:.1f} MiB: over the 20 MiB limit")
    hashes = register_bundled(args.name)
    print(f"{target}: {size / 2**20:.1f} MiB, sha256 {hashes}")


if __name__ == "__main__":
    main()
