"""The boards the lab reaches: board files read into BoardSpec, hardware maps, debug probes."""
