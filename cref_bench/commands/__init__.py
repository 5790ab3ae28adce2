"""Sub-commands of ``cref-bench``: one module each, with ``add_args(parser)`` and ``main(args)``."""
