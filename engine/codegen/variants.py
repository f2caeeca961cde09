"""The kernel sets and the variant tags that name the code paths a layer takes in one of them
("family:choice", such as conv:window or fc:rq-signed). Each op family lists the tags its
emitter may choose under each set (CForm.variants, engine.ops.spec); the differential test
reaches every one."""
from __future__ import annotations

# "optimized": one specialised function per layer where the op's family has one (tl_opt.h);
# "portable": the C kernel library with literal arguments (the in-run baseline).
KERNEL_SETS = ("optimized", "portable")


def tags(family: str, *choices: object) -> tuple[str, ...]:
    """A layer's variant: "family:choice" for each choice that applies (falsy ones are left out)."""
    return tuple(f"{family}:{choice}" for choice in choices if choice)


def tag_set(family: str, *choices: str) -> frozenset[str]:
    """Every tag a family's emitter may choose under one kernel set."""
    return frozenset(tags(family, *choices))


def library_variants(family: str, *choices: str) -> dict[str, frozenset[str]]:
    """The variants of an op that calls the kernel library in every kernel set."""
    return {kernels: tag_set(family, *choices) for kernels in KERNEL_SETS}
