"""The ``external`` method: any program that reads and writes MRC maps, run as a method.

Modules, one job each: :mod:`~baselines.external.method` (:class:`External` and
``from_recipe``, what the registry loads), :mod:`~baselines.external.template` (command
templates), :mod:`~baselines.external.program` (running a program under supervision),
:mod:`~baselines.external.identity` (which program it is: digests, version text),
:mod:`~baselines.external.outputs` (its maps read back onto the input grid),
:mod:`~baselines.external.recipes` (named recipes; the shipped ones are in
``baselines/recipes/``).
"""
