"""Estimated cycles: an execution profile of an emulated run (hil.cycles.profile), a timing model
per core (hil.cycles.coremodel, data in boards/cores/), and its validation against latencies
published for real boards (hil.cycles_validation.validation)."""
