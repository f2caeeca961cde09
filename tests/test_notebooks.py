"""The analysis notebooks in notebooks/ run headless (nbclient, the venv's ipykernel) over a results
store filled by real `tinylab bench --compare` runs, and over an empty store."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from hil.store.results import open_store
from tinylab_cli.main import main

from conftest import needs_arm_gcc, needs_qemu

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
LAB_ANALYSIS = NOTEBOOKS_DIR / "lab_analysis.ipynb"
KERNEL = "python3"  # the kernel spec ipykernel installs into the venv's share/jupyter
CELL_TIMEOUT_S = 120

# Appended to lab_analysis.ipynb when the tests run it: which models each of its tables covers.
TABLE_CHECK = """
import json as _json
print("TABLES " + _json.dumps({
    name: sorted(set(table.index.get_level_values("model"))) if not table.empty else []
    for name, table in {"latency_table": latency_table, "sram_table": sram_table,
                        "plan_table": plan_table, "trend_table": trend_table}.items()}))
"""


def notebook_id(path: Path) -> str:
    return path.name


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with two real runs of `tinylab bench --compare mcunet-tiny` on qemu-f746: our
    engine, our portable kernels and TFLM's arena on the host, twice (so there are trends)."""
    path = tmp_path_factory.mktemp("notebook-store") / "lab.sqlite"
    for _ in range(2):
        code = main(["bench", "--compare", "mcunet-tiny", "--board", "qemu-f746",
                     "--store", str(path)])
        assert code == 0, f"tinylab bench --compare failed with exit code {code}"
    return path


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean HOME and Jupyter paths, so that the kernel is the venv's ipykernel and nothing of
    the user's (kernel specs, IPython profile) takes part. Returns the kernel's working folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("JUPYTER_PATH", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR",
                 "IPYTHONDIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR",
                 "MPLBACKEND", "MPLCONFIGDIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "1")  # the venv's kernel specs come first
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiet debugpy in the kernel
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(f"no Jupyter kernel spec {KERNEL!r}: ipykernel is not installed in "
                    f"{sys.prefix} (run scripts/install.sh)")
    assert Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve()), (
        f"kernel spec {KERNEL!r} comes from {spec.resource_dir}, not from this venv {sys.prefix}")
    # jupyter_client runs "python" (or pythonX, pythonX.Y) in a spec's argv as sys.executable.
    same_python = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2],
                   sys.executable}
    assert spec.argv[0] in same_python, (
        f"kernel spec {KERNEL!r} in {spec.resource_dir} runs {spec.argv[0]}, not {sys.executable}")
    workdir = tmp_path / "kernel-cwd"
    workdir.mkdir()
    return workdir


def execute(path: Path, workdir: Path, *, extra_cell: str | None = None) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in a fresh kernel; fail with the cell's error if one raises."""
    notebook = nbformat.read(path, as_version=4)
    if extra_cell is not None:
        notebook.cells.append(nbformat.v4.new_code_cell(extra_cell))
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL,
                            extra_arguments=["--InteractiveShell.colors=nocolor"],  # plain tracebacks
                            resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()
    except CellExecutionError as error:
        failure = str(error)
    else:
        return notebook
    pytest.fail(f"{path.name} raised while running headless:\n{failure}", pytrace=False)


def outputs(notebook: nbformat.NotebookNode, kind: str | None = None) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.outputs if kind is None or output.output_type == kind]


def text_of(notebook: nbformat.NotebookNode) -> str:
    """Everything a reader sees as text: streams, plain-text and Markdown displays."""
    parts = []
    for output in outputs(notebook):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("display_data", "execute_result"):
            parts += [output.data.get("text/plain", ""), output.data.get("text/markdown", "")]
    return "\n".join(parts)


def table_models(notebook: nbformat.NotebookNode) -> dict[str, list[str]]:
    lines = [line for line in text_of(notebook).splitlines() if line.startswith("TABLES ")]
    assert lines, "the table check appended to lab_analysis.ipynb printed nothing"
    return json.loads(lines[-1][len("TABLES "):])


def test_there_is_an_analysis_notebook():
    assert LAB_ANALYSIS in NOTEBOOKS, f"{LAB_ANALYSIS} is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_committed_notebooks_are_valid_and_have_no_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.get("kernelspec", {}).get("name") == KERNEL, (
        f"{path.name} should name the {KERNEL!r} kernel")
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name}: code cell {index} has outputs; clear them before committing "
                "(in Jupyter: Edit > Clear Outputs of All Cells, then save)")


def check_lab_analysis(notebook: nbformat.NotebookNode, frame) -> None:
    """lab_analysis.ipynb's tables cover every stored model, and show the engine against its
    baselines from the figures of the same runs."""
    models = sorted(set(frame["model"]))
    assert table_models(notebook) == {name: models for name in
                                      ("latency_table", "sram_table", "plan_table", "trend_table")}
    text = text_of(notebook)
    assert "speed-up vs tinylab-portable" in text
    assert "TFLM arena (host)" in text and "SRAM / TFLM activations (host)" in text
    tflm = frame[(frame["engine"] == "tflite-micro") & (frame["metric"] == "tflm_arena")]
    assert f"{tflm['value'].iloc[0]:.1f}" in text, "the TFLM arena from the store is not shown"
    assert "plan / lower bound" in text
    assert "newest runs match TFLite Micro bit for bit" in text
    # Figures (latency, memory against TFLM, trends), drawn off-screen and shown as PNG.
    assert len([o for o in outputs(notebook) if "image/png" in o.get("data", {})]) >= 3


@pytest.mark.slow
@needs_arm_gcc
@needs_qemu
@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_notebook_runs_over_a_filled_store(path: Path, filled_store: Path, kernel_env: Path,
                                           monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TINYLAB_STORE", str(filled_store))
    with open_store(filled_store) as store:
        frame = store.dataframe()
    assert not frame.empty, "tinylab bench stored nothing"
    notebook = execute(path, kernel_env, extra_cell=TABLE_CHECK if path == LAB_ANALYSIS else None)
    assert not outputs(notebook, "error")
    text = text_of(notebook)
    for model in set(frame["model"]):
        assert model in text, f"{path.name} never shows model {model!r}, which the store holds"
    assert f"no measurements in {filled_store}" not in text, (
        f"{path.name} says the filled store is empty")
    if path == LAB_ANALYSIS:
        check_lab_analysis(notebook, frame)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
@pytest.mark.parametrize("store_kind", ["empty", "missing"])
def test_notebook_says_so_when_the_store_is_empty(path: Path, store_kind: str, tmp_path: Path,
                                                  kernel_env: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    store_path = tmp_path / "store" / "lab.sqlite"
    if store_kind == "empty":
        open_store(store_path).close()
    monkeypatch.setenv("TINYLAB_STORE", str(store_path))
    notebook = execute(path, kernel_env, extra_cell=TABLE_CHECK if path == LAB_ANALYSIS else None)
    assert not outputs(notebook, "error")
    text = text_of(notebook)
    assert f"no measurements in {store_path}" in text, (
        f"{path.name} does not say that the store {store_path} has no measurements")
    if path == LAB_ANALYSIS:
        assert table_models(notebook) == {name: [] for name in
                                          ("latency_table", "sram_table", "plan_table", "trend_table")}
    if store_kind == "missing":
        assert not store_path.exists(), f"{path.name} created the store it only reads"
