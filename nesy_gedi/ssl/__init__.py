"""Self-supervised pieces: GEDI's terms, the SGLD sampler, augmentations, and objectives built from them."""
