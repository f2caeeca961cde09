"""The layers only point down: engine < hil (the lab) < nas (the search) < tinylab_cli (the command
line). Checked statically (scripts/import_graph.py) and by running each lower layer with the
layers above it made unimportable."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from engine.errors import EngineError, TinylabError
from hil.errors import LabError
from nas.lut import LutError
from tinylab_cli import main as cli

REPO = Path(__file__).resolve().parents[1]


def _load_import_graph() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", REPO / "scripts" / "import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


import_graph = _load_import_graph()


def _shown(imports: list) -> list[str]:
    return [f"{i.source}:{i.line} -> {i.target} ({i.how})" for i in imports]


# --- statically ---------------------------------------------------------------------------------


def test_no_layer_imports_a_layer_above_it() -> None:
    imports = import_graph.all_imports()
    assert any(i.source.startswith("hil.") and i.target.startswith("engine.") for i in imports)  # it sees imports
    assert _shown(import_graph.upward_imports(imports)) == []


def test_engine_imports_neither_the_lab_nor_the_search() -> None:
    imports = import_graph.all_imports()
    assert _shown([i for i in imports if i.source.split(".")[0] == "engine"
                   and i.target.split(".")[0] in ("hil", "nas", "tinylab_cli")]) == []


def test_the_lab_does_not_import_the_search() -> None:
    imports = import_graph.all_imports()
    assert _shown([i for i in imports if i.source.split(".")[0] == "hil"
                   and i.target.split(".")[0] in ("nas", "tinylab_cli")]) == []


def test_no_import_cycle_inside_the_lab() -> None:
    assert import_graph.cycles(import_graph.all_imports(), "hil") == []


def test_no_import_cycle_between_the_lab_s_sub_packages() -> None:
    imports = import_graph.all_imports()
    assert any(i.source.startswith("hil.run.") and i.target.startswith("hil.firmware_build.") for i in imports)
    assert import_graph.subpackage_cycles(imports, "hil") == []


def test_the_lab_library_does_not_import_its_commands() -> None:
    assert _shown(import_graph.library_imports_of_commands(import_graph.all_imports())) == []


def test_the_checker_sees_importlib_strings_tables_and_cycles(tmp_path: Path) -> None:
    for package in ("engine", "hil", "nas", "tinylab_cli"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "nas" / "lut.py").write_text("")
    (tmp_path / "hil" / "a.py").write_text(textwrap.dedent("""\
        import importlib
        TABLE = {"lut": "nas.lut:open_table"}

        def later():
            from hil import b
            return importlib.import_module("nas")
        """))
    (tmp_path / "hil" / "b.py").write_text("from hil.a import TABLE\n")
    imports = import_graph.all_imports(tmp_path)
    assert sorted((i.target, i.how) for i in import_graph.upward_imports(imports)) == [
        ("nas", "importlib"), ("nas.lut", "string")]
    assert import_graph.cycles(imports, "hil") == [["hil.a", "hil.b"]]


def test_the_checker_sees_cycles_between_sub_packages_without_a_module_cycle(tmp_path: Path) -> None:
    for package in ("hil", "hil/up", "hil/down"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "hil" / "up" / "a.py").write_text("from hil.down.b import B\n")
    (tmp_path / "hil" / "down" / "b.py").write_text("B = 1\n")
    (tmp_path / "hil" / "down" / "c.py").write_text("from hil.up import a\n")  # down points up
    imports = import_graph.all_imports(tmp_path)
    assert import_graph.cycles(imports, "hil") == []
    assert import_graph.subpackage_cycles(imports, "hil") == [["hil.down", "hil.up"]]


# --- one base class for every user-facing error -------------------------------------------------


def test_every_layer_s_errors_share_one_base() -> None:
    assert issubclass(EngineError, TinylabError)
    assert issubclass(LabError, TinylabError)
    assert issubclass(LutError, TinylabError)


@pytest.mark.parametrize("error", [EngineError, LabError, LutError])
def test_the_cli_prints_any_layer_s_error_without_a_traceback(
        error: type[TinylabError], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def run(args: object) -> int:
        raise error("it went wrong")

    fake = types.ModuleType("fake_command")
    fake.SUMMARY, fake.EXAMPLES = "fails", "  tinylab fails\n"
    fake.add_arguments = lambda parser: None
    fake.run = run
    monkeypatch.setitem(sys.modules, "fake_command", fake)
    monkeypatch.setattr(cli, "COMMANDS", {"fails": "fake_command"})
    assert cli.main(["fails"]) == 2
    err = capsys.readouterr().err
    assert err == "tinylab fails: error: it went wrong\n"


# --- with the layers above made unimportable ----------------------------------------------------

REFUSE = """\
import importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    \"\"\"Makes packages unimportable, as if they were not installed.\"\"\"

    def __init__(self, *packages):
        self.packages = packages

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.packages:
            raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)
        return None

sys.meta_path.insert(0, Refuse(*REFUSED))
"""


def _run_without(packages: tuple[str, ...], body: str) -> subprocess.CompletedProcess[str]:
    script = f"REFUSED = {packages!r}\n" + REFUSE + textwrap.dedent(body) + textwrap.dedent("""
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in REFUSED)
        assert not leaked, leaked
        """)
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_the_lab_and_its_commands_work_without_the_search(tmp_path: Path) -> None:
    out = tmp_path / "c"
    compile_too = shutil.which("arm-none-eabi-gcc") is not None
    result = _run_without(("nas",), f"""
        import json
        import engine, hil
        import hil.report.report, hil.report.report_figures, hil.experiments.nightly
        from tinylab_cli.main import main
        assert main(["boards", "--json"]) == 0
        if {compile_too!r}:
            assert main(["compile", "mcunet-tiny", "-o", {str(out)!r}, "--json"]) == 0
        assert main(["lut", "build", "--board", "qemu-f746"]) == 2
        """)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    boards = json.loads(result.stdout[: result.stdout.index("\n}\n") + 3])
    assert "qemu-f746" in [b["name"] for b in boards["boards"]]
    assert "tinylab lut: error: unavailable: it needs the 'nas' package" in result.stderr
    if compile_too:
        assert (out / "model.c").is_file() and (out / "plan.json").is_file()


def test_the_engine_compiles_without_the_lab() -> None:
    result = _run_without(("hil", "nas", "tinylab_cli"), """
        import numpy as np
        import engine
        from engine.compiler import compile_graph
        from engine.synth import chain_model
        compiled = compile_graph(chain_model(np.random.default_rng(0)))
        assert compiled.generated.files["model.c"]
        print(sorted(compiled.generated.files))
        """)
    assert result.returncode == 0, result.stderr
    assert "model.c" in result.stdout
