"""The cycle model (hil.cycles) against real boards: latencies published with their software's
source (published/*.yaml), recipes that rebuild that software for the board's emulated twin
(recipes/), and the validation that profiles, estimates and compares (validation.py)."""
