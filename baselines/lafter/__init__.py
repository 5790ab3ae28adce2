"""The ``lafter`` method, LAFTER v1.1 reimplemented: :mod:`~baselines.lafter.method` (the
:class:`Lafter` method the registry loads), :mod:`~baselines.lafter.algorithm` (the two passes
and the self-check), :mod:`~baselines.lafter.kernels` (their compiled voxel loops)."""
