"""Registers the tinylab pytest plugin (hil/pytest_plugin.py) for the repository's own tests.

An installed tinylab registers it too, through its `pytest11` entry point, which pytest loads
before this file: register it here only when that has not happened (not installed, or plugin
autoloading turned off), so that it is never registered twice."""
import sys

pytest_plugins = [] if "hil.pytest_plugin" in sys.modules else ["hil.pytest_plugin"]
