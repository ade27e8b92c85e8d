"""Data: image I/O, the degradation model, datasets and splits."""
