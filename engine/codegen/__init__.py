"""Code generation: a Graph and its memory plan -> `model.c` / `model.h`. The generator
(generator.py: generate_c) walks the ops and has each op's family (engine.ops) emit its layer into
an EmitContext (context.py), which holds the model's constant arrays and points into the arena.
Beside it: the kernel sets and variant tags (variants.py), what the sets take from the families
(kernel_sets.py: KERNEL_VARIANTS, kernel_scratch), the int16 widening of weights (widening.py),
calls of the kernel library as dataclasses (library_call.py), the requantisation modes of the
optimised kernels (requant.py), weight packing for tl_opt.h (packing.py), C literals
(literals.py) and the layer an emitter returns (layer.py). Import from those modules: this package
imports nothing, so that the op families can use them while engine.ops is being imported."""
