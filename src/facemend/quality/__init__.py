"""No-reference image quality: NIQE and BRISQUE as batched, differentiable torch modules."""
