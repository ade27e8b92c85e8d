"""Training: the Fabric loop, stages, losses, EMA and checkpoints. Methods describe their own recipes."""
