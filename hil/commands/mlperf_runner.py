"""`tinylab mlperf-runner`: MLPerf Tiny's official runner (its files unchanged) driving a served
firmware's pseudo-terminal, or any serial port it cannot find by USB VID/PID."""
from __future__ import annotations

import argparse
import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from hil.errors import LabError

RUNNER_ENV = "TINYLAB_MLPERF_RUNNER"
RUNNER_FILES = ("main.py", "device_manager.py", "device_under_test.py")
# The runner's options that name files or folders: made absolute where they exist from here,
# since the runner runs in its own folder (where its defaults and sessions/ are).
PATH_OPTIONS = {"-d": "--device_list", "-t": "--test_script", "-s": "--dataset_path"}
RUNNER_MODULES = {"yaml": "pyyaml", "sklearn": "scikit-learn", "matplotlib": "matplotlib", "usb": "pyusb",
                  "numpy": "numpy", "serial": "pyserial"}

SUMMARY = "run MLPerf Tiny's official runner (unchanged) against a served firmware's pty or any serial port"
EXAMPLES = f"""\
  tinylab serve ../shared/models/vww_96_int8.tflite --pty /tmp/dut &
  tinylab mlperf-dataset ../shared/models/vww_96_int8.tflite ../shared/data/person.bmp -o datasets
  tinylab mlperf-runner --runner tiny/benchmark/runner --port /tmp/dut -- \\
      -d devices_kws_ic_vww.yaml -t tests_performance.yaml -s datasets -m p

  The runner is mlcommons/tiny's benchmark/runner (a checkout of github.com/mlcommons/tiny), or
  ${RUNNER_ENV}. It finds devices by USB VID/PID; the port is added to its list with the VID/PID of
  the DUT in its device file (-d), so its scan picks it. Everything after -- goes to its main.py,
  which runs in its own folder (its session logs go to its sessions/); -d, -t and -s are taken
  from here where they exist here. Under QEMU the runner's windows last the stock counts' virtual
  time (well under 10 s), so it never reports the runtime requirement met: use 'tinylab mlperf'
  for 10-second windows.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runner", type=Path, help=f"the runner's folder (default: ${RUNNER_ENV})")
    parser.add_argument("--port", required=True, help="the serial port: a 'tinylab serve --pty' path or a device")
    parser.add_argument("runner_args", nargs=argparse.REMAINDER, metavar="-- RUNNER_ARGS",
                        help="arguments of the runner's main.py (after --)")


def runner_dir(given: Path | None) -> Path:
    folder = given or (Path(os.environ[RUNNER_ENV]) if os.environ.get(RUNNER_ENV) else None)
    if folder is None:
        raise LabError(f"no runner: pass --runner DIR or set {RUNNER_ENV} to mlcommons/tiny's benchmark/runner folder "
                       "(git clone https://github.com/mlcommons/tiny)")
    missing = [name for name in RUNNER_FILES if not (folder / name).is_file()]
    if missing:
        raise LabError(f"runner folder {folder}: no {', '.join(missing)}; name mlcommons/tiny's benchmark/runner")
    return folder.resolve()


def check_port(port: str) -> None:
    try:
        mode = os.stat(port).st_mode
    except OSError:
        raise LabError(f"no serial port at {port}: start 'tinylab serve MODEL --pty {port}' first, "
                       "or name the board's port") from None
    if not stat.S_ISCHR(mode):
        raise LabError(f"{port} is not a serial port (a character device)")


def resolved_args(args: list[str], runner: Path) -> list[str]:
    """The runner's arguments with -d, -t and -s made absolute where they exist from here."""
    out: list[str] = []
    names = set(PATH_OPTIONS) | set(PATH_OPTIONS.values())
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in names and eq and Path(value).exists():
            arg = f"{name}={Path(value).resolve()}"
        out.append(arg)
        if arg in names and i + 1 < len(args):
            value = args[i + 1]
            out.append(str(Path(value).resolve()) if Path(value).exists() else value)
            i += 1
        i += 1
    return out


def option_value(args: list[str], short: str) -> str | None:
    long = PATH_OPTIONS[short]
    for i, arg in enumerate(args):
        if arg in (short, long) and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"{long}="):
            return arg.split("=", 1)[1]
    return None


def dut_usb_id(device_file: Path) -> tuple[int, int]:
    """The VID and PID of the last DUT of a runner device file (the one the runner uses)."""
    try:
        devices = yaml.safe_load(device_file.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise LabError(f"runner device file {device_file}: {error}") from None
    duts = [d for d in devices or [] if isinstance(d, dict) and d.get("type") == "dut"]
    if not duts or not isinstance(duts[-1].get("usb"), dict) or not duts[-1]["usb"]:
        raise LabError(f"runner device file {device_file}: no DUT with a usb VID/PID to give the port")
    vid, pids = next(iter(duts[-1]["usb"].items()))
    pid = pids[0] if isinstance(pids, list) else pids
    return int(vid), int(pid)


def run(args: argparse.Namespace) -> int:
    runner = runner_dir(args.runner)
    check_port(args.port)
    runner_args = args.runner_args[1:] if args.runner_args[:1] == ["--"] else args.runner_args
    runner_args = resolved_args(runner_args, runner)
    device_list = option_value(runner_args, "-d") or "devices.yaml"
    device_file = Path(device_list) if Path(device_list).is_absolute() else runner / device_list
    if not device_file.is_file():
        raise LabError(f"runner device file {device_file} does not exist: pass -d (e.g. -d devices_kws_ic_vww.yaml)")
    vid, pid = dut_usb_id(device_file)
    missing = [package for module, package in RUNNER_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise LabError(f"the runner needs {', '.join(missing)}: pip install {' '.join(missing)}")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    print(f"MLPerf Tiny runner {runner}: port {args.port} listed as USB {vid:04x}:{pid:04x} "
          f"(the DUT of {device_file.name}); its logs go to {runner / 'sessions'}", flush=True)
    command = [sys.executable, "-m", "hil.run.mlperf_runner_shim", str(runner), args.port, str(vid), str(pid), *runner_args]
    return subprocess.run(command, env=env).returncode
