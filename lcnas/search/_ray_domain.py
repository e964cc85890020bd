"""A Ray Tune domain for a conditional parameter (imported only when Ray is installed and used)."""

from __future__ import annotations

from typing import Any, cast

from ray.tune.search.sample import BaseSampler, Domain

from ._space import Param, _fmt, _in

__all__ = ["RayConditional"]


class _WhenActiveSampler(BaseSampler):
    def sample(self, domain: Domain, config: Any = None, size: int = 1, random_state: Any = None) -> Any:
        from ._translate import _decode

        domain = cast(RayConditional, domain)  # the only domain this sampler is the default of
        # Tune passes its spec ({"config": {...}}) behind a guard whose attribute access raises
        # RecursiveDependencyError until the parent is sampled; Tune then retries this one later.
        spec = config.config if "config" in config else config
        value = getattr(spec, domain.parent.name)
        if value is None or not _in(domain.allowed, _decode(domain.parent, value)):  # None: the parent is inactive
            return None if size == 1 else [None] * size
        return domain.inner.sample(config=config, size=size, random_state=random_state)


class RayConditional(Domain):
    """Ray domain ``inner`` while parameter ``parent`` takes one of ``allowed``, else ``None``.

    Args:
        inner: the parameter's own Ray domain.
        parent: the parameter it depends on.
        allowed: the parent's values (lcnas values, not encoded) under which it is active.
    """

    default_sampler_cls = _WhenActiveSampler  # type: ignore[assignment]  # Tune declares it None, then sets it per domain

    def __init__(self, inner: Domain, *, parent: Param, allowed: tuple[Any, ...]) -> None:
        self.inner, self.parent, self.allowed = inner, parent, allowed

    @property
    def domain_str(self) -> str:
        """The inner domain and its condition, as Tune prints it."""
        return f"{self.inner.domain_str} when {self.parent.name} in [{', '.join(_fmt(a) for a in self.allowed)}]"
