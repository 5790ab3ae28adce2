"""The crefDenoiser baseline: the published 3D U-Net (network), its weights (checkpoint import,
save/load), whole-map and tiled inference, and the ``crefdenoiser`` method."""
