"""The method protocol and registry.

A *method* turns a half-map pair into a denoised full map and, where it can, denoised
half-maps. Single-map denoisers subclass :class:`SingleMapMethod` and implement
:meth:`SingleMapMethod.denoise_map`; they are applied to the average of the halves and to
each half. Pair-based denoisers (LAFTER, say) subclass :class:`Method` directly and return
only the full map, with a note saying why the half-map metrics do not apply.

Methods are found by name through the entry-point group ``cref_bench.methods``, or given as
``package.module:Attribute`` or ``path/to/file.py:Attribute`` (a class or a factory called
with the method's parameters); :mod:`cref_bench.methods.registry` resolves the names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cref_bench.errors import CrefBenchError, MethodError
from cref_bench.maps.volume import Volume
from cref_bench.methods.parameters import check_params
from cref_bench.methods.registry import ENTRY_POINT_GROUP, available_methods, resolve

__all__ = ["ENTRY_POINT_GROUP", "Denoised", "Method", "SingleMapMethod", "available_methods",
           "average_halves", "load_method"]


@dataclass
class Denoised:
    """What a method returns for one half-map pair.

    Attributes:
        full: the denoised full map, on the grid of the halves.
        half1, half2: the denoised half-maps, or ``None`` when the method cannot make them.
        note: why the denoised halves are absent (shown beside the half-map metrics).
    """

    full: Volume
    half1: Volume | None = None
    half2: Volume | None = None
    note: str = ""


class Method:
    """Base class of every method. Subclasses set the class attributes and :meth:`denoise`.

    Attributes:
        name: the registry name (``cref-bench run --method NAME``).
        version: bumped whenever results would change; part of the runner's resume key.
        needs_gpu: whether the method is impractical without a GPU.
        safe_in_process: the runner may run it in its own process (no child process, so no
            time or memory limit); for small, trusted code such as the classic filters.
    """

    name: str = "unnamed"
    version: str = "0"
    needs_gpu: bool = False
    safe_in_process: bool = False

    @classmethod
    def unavailable(cls) -> str | None:
        """Why the method cannot run on this machine and how to fix that (an optional
        dependency is missing, say), or ``None`` when it can; ``cref-bench methods`` shows it."""
        return None

    def params(self) -> dict:
        """The method's parameters: recorded in the provenance of every result and part of
        the runner's resume key (with those given to the run), so that results of other
        settings are never reused. Return every setting that changes the output."""
        return {}

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        """Denoise one half-map pair (same grid). Returns a :class:`Denoised`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, "
                f"params={self.params()!r})")


def average_halves(half1: Volume, half2: Volume) -> Volume:
    """The full map ``(M1 + M2) / 2`` of two half-maps.

    Raises:
        GeometryMismatch: the halves are not on one grid.
    """
    half1.check_same_grid(half2)
    return half1.like((half1.data + half2.data) * np.float32(0.5),
                      source=f"average of {half1.source}")


class SingleMapMethod(Method):
    """A denoiser of one map, applied to the average of the halves and to each half."""

    def denoise_map(self, volume: Volume, mask: Volume | None = None) -> Volume:
        """Denoise one map; returns a Volume on the same grid."""
        raise NotImplementedError

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        return Denoised(full=self.denoise_map(average_halves(half1, half2), mask),
                        half1=self.denoise_map(half1, mask),
                        half2=self.denoise_map(half2, mask))


def load_method(spec: str, **params) -> Method:
    """Build a method from a registry name, ``package.module:Attribute`` or
    ``path/to/file.py:Attribute``.

    Args:
        spec: a name registered under the ``cref_bench.methods`` entry points,
            ``package.module:Attribute`` or ``path/to/file.py:Attribute`` (see
            :func:`cref_bench.methods.registry.resolve`).
        **params: keyword parameters passed to the class or factory.

    Returns:
        The method.

    Raises:
        MethodError: no method of that name is registered (the message lists those that
            are), the module or file does not resolve, a parameter it does not take or of a
            type it does not take (:func:`cref_bench.methods.parameters.check_params`), the
            target refuses the parameters (its ``TypeError`` or ``ValueError``, chained),
            or it did not produce a :class:`Method`. The target's own errors of the
            project's family (a missing weights file, say) pass through as they are.
    """
    target = resolve(spec)
    params = check_params(spec, target, params)
    try:
        method = target(**params)
    except CrefBenchError:
        raise
    except (TypeError, ValueError) as exc:
        raise MethodError(spec, f"cannot be built with the parameters {params}: "
                                f"{exc}") from exc
    if not isinstance(method, Method):
        raise MethodError(spec, f"produced {type(method).__name__}, not a "
                          "cref_bench.methods.protocol.Method")
    return method
