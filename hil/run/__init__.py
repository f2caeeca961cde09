"""Firmware on a target: the runners (QEMU, Renode, boards), the line protocol, and what a
session with the target said."""
