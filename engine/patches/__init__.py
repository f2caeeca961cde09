"""Patch-based inference (MCUNetV2): the first ops of a network run patch by patch, so that only
one patch's intermediate tensors are live beside the stage's input and output.

regions.py maps an op's output region back to the input region it reads, with the padding that
region gets; rewrite.py turns a graph and a grid (PatchGrid, `PxQ@N`) into an ordinary graph
that the planner and the code generator take as they are."""
