"""Build generated C for the host with gcc and run it: the fast way to check the engine's C
against TFLM without a board. Builds are cached by the hash of everything that goes in, outside
the repository (TINYLAB_CACHE, else ~/.cache/tinylab), under `hostbuild/`."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from engine.cache import cache_root
from engine.codegen.generator import KERNELS_DIR, GeneratedModel
from engine.compiler import compile_graph, kernel_sources
from engine.errors import EngineError
from engine.ir import DTYPES, Graph

HOST_CC = "gcc"
HOST_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
RUN_TIMEOUT_S = 120
BUILD_TIMEOUT_S = 300

_MAIN_C = """\
/* Host harness: read {PREFIX}_INPUT_BYTES from stdin, invoke, write {PREFIX}_OUTPUT_BYTES to
 * stdout; repeated until stdin ends. */
#include <stdio.h>
#include "{prefix}.h"

int main(void)
{{
    for (;;) {{
        size_t got = fread({prefix}_input(), 1, {PREFIX}_INPUT_BYTES, stdin);
        if (got == 0) {{
            return 0;
        }}
        if (got != {PREFIX}_INPUT_BYTES) {{
            fprintf(stderr, "short input: %lu of %lu bytes\\n", (unsigned long)got, (unsigned long){PREFIX}_INPUT_BYTES);
            return 2;
        }}
        {prefix}_invoke();
        if (fwrite({prefix}_output(), 1, {PREFIX}_OUTPUT_BYTES, stdout) != {PREFIX}_OUTPUT_BYTES) {{
            return 3;
        }}
    }}
}}
"""


class HostBuildError(EngineError):
    """The generated C did not compile, or the program failed; the message has the compiler output."""


def cache_dir() -> Path:
    return cache_root() / "hostbuild"


def build_host_program(generated: GeneratedModel) -> Path:
    """Compile the generated model, the kernels and a stdin/stdout main; the executable's path."""
    sources = dict(generated.files)
    sources["main.c"] = _MAIN_C.format(prefix=generated.prefix, PREFIX=generated.prefix.upper())
    return _build(sources, f"generated C for '{generated.prefix}'")


def _build(sources: dict[str, str], what: str) -> Path:
    """Compile `sources` with the kernel library into a program, cached by their hash."""
    if shutil.which(HOST_CC) is None:
        raise HostBuildError(f"{HOST_CC} is not installed; it is needed to build generated C for the host")
    digest = _kernel_digest()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    key = digest.hexdigest()[:32]

    root = cache_dir()
    final = root / key
    program = final / "model"
    if program.is_file():
        return program
    objects = kernel_objects()
    work = _work_dir(root, key)
    for name, text in sources.items():
        (work / name).write_text(text)
    command = [HOST_CC, *HOST_FLAGS, f"-I{KERNELS_DIR}", "-I.", *[n for n in sources if n.endswith(".c")],
               *[str(p) for p in objects], "-o", "model"]
    _compile(command, work, what)
    return _publish(work, final) / "model"


_BUNDLE_MAIN_C = """\
/* Host harness for several models: read a model number (int32), then that model's input bytes;
 * invoke it and write its output bytes; repeated until stdin ends. */
#include <stdint.h>
#include <stdio.h>
{includes}

typedef struct {{ void *(*input)(void); const void *(*output)(void); void (*invoke)(void); size_t in, out; }} entry_t;
static const entry_t models[] = {{
{entries}
}};

int main(void)
{{
    int32_t which;
    while (fread(&which, 4, 1, stdin) == 1) {{
        const entry_t *m;
        if (which < 0 || (size_t)which >= sizeof models / sizeof models[0]) {{
            fprintf(stderr, "no model %ld\\n", (long)which);
            return 2;
        }}
        m = &models[which];
        if (fread(m->input(), 1, m->in, stdin) != m->in) {{
            fprintf(stderr, "short input for model %ld\\n", (long)which);
            return 2;
        }}
        m->invoke();
        if (fwrite(m->output(), 1, m->out, stdout) != m->out) {{
            return 3;
        }}
    }}
    return 0;
}}
"""


def build_host_bundle(models: Sequence[GeneratedModel]) -> Path:
    """One host program holding several generated models (distinct prefixes), run by number with
    run_host_bundle: one compiler call and one link for all of them."""
    prefixes = [m.prefix for m in models]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError("the models of a bundle need distinct prefixes")
    files: dict[str, str] = {}
    for m in models:
        files.update(m.files)
    files["main.c"] = _BUNDLE_MAIN_C.format(
        includes="\n".join(f'#include "{p}.h"' for p in prefixes),
        entries="\n".join(f"    {{{p}_input, {p}_output, {p}_invoke, {p.upper()}_INPUT_BYTES, {p.upper()}_OUTPUT_BYTES}},"
                          for p in prefixes))
    return _build(files, "a bundle of " + ", ".join(prefixes[:3]) + (" ..." if len(prefixes) > 3 else ""))


def run_host_bundle(program: Path, runs: Sequence[tuple[int, Graph, np.ndarray]]) -> list[np.ndarray]:
    """Run models of a bundle: (model number, its graph, one input) each; their outputs in order."""
    payload = bytearray()
    for which, graph, value in runs:
        payload += np.int32(which).tobytes() + _input_bytes(graph, [value])
    stdout = _run(program, bytes(payload))
    outputs, at = [], 0
    for _, graph, _ in runs:
        out = graph.tensors[graph.outputs[0]]
        size = out.nbytes
        if at + size > len(stdout):
            raise HostBuildError(f"{program} wrote {len(stdout)} bytes; the outputs need more")
        outputs.append(np.frombuffer(stdout[at:at + size], dtype=DTYPES[out.dtype]).reshape(out.shape).copy())
        at += size
    return outputs


def kernel_objects() -> tuple[Path, ...]:
    """The kernel library compiled for the host (cached by the hash of its sources and flags)."""
    key = "kernels-" + _kernel_digest().hexdigest()[:32]
    root = cache_dir()
    final = root / key
    names = [p.with_suffix(".o").name for p in kernel_sources()]
    if not all((final / n).is_file() for n in names):
        work = _work_dir(root, key)
        _compile([HOST_CC, *HOST_FLAGS, f"-I{KERNELS_DIR}", "-c", *[str(p) for p in kernel_sources()]], work,
                 "the kernel library")
        final = _publish(work, final)
    return tuple(final / n for n in names)


def _kernel_digest() -> "hashlib._Hash":
    """A hash of the compiler, its flags and every kernel source and header."""
    digest = hashlib.sha256(" ".join((HOST_CC, *HOST_FLAGS)).encode() + b"\0")
    for path in sorted(KERNELS_DIR.iterdir()):
        if path.suffix in (".c", ".h"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest


def _work_dir(root: Path, key: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"build-{key[:20]}-", dir=root))


def _compile(command: list[str], work: Path, what: str) -> None:
    try:
        result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise HostBuildError(f"{HOST_CC} took more than {BUILD_TIMEOUT_S} s on {what}; sources in {work}") from None
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: an unfinished build is not kept in the cache
        shutil.rmtree(work, ignore_errors=True)
        raise
    if result.returncode != 0:
        output = (result.stderr + result.stdout).strip()
        raise HostBuildError(f"{what} did not compile ({' '.join(command)}), sources in {work}:\n{output[-6000:]}")


def _publish(work: Path, final: Path) -> Path:
    """Move a finished build to its cache place; if another process got there first, use theirs."""
    try:
        work.rename(final)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)
    return final


def run_host_program(program: Path, graph: Graph, batches: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
    """Run a built program on several input sets in one process; the outputs of each."""
    out_tensor = graph.tensors[graph.outputs[0]]
    out_dtype = np.dtype(DTYPES[out_tensor.dtype])
    stdout = _run(program, b"".join(_input_bytes(graph, inputs) for inputs in batches))
    size = out_tensor.nbytes
    if len(stdout) != size * len(batches):
        raise HostBuildError(f"{program} wrote {len(stdout)} bytes; expected {size * len(batches)}")
    return [
        [np.frombuffer(stdout[i * size : (i + 1) * size], dtype=out_dtype).reshape(out_tensor.shape).copy()]
        for i in range(len(batches))
    ]


def _input_bytes(graph: Graph, inputs: Sequence[np.ndarray]) -> bytes:
    """One input set of the graph as the bytes its program reads; ValueError naming what is wrong."""
    in_tensor = graph.tensors[graph.inputs[0]]
    in_dtype = np.dtype(DTYPES[in_tensor.dtype])
    if len(inputs) != 1:
        raise ValueError(f"model {graph.name} takes one input; {len(inputs)} given")
    value = np.asarray(inputs[0])
    if value.dtype.kind != in_dtype.kind:
        raise ValueError(f"model {graph.name}: input of type {value.dtype} given; the input tensor is {in_tensor.dtype}")
    if value.size != in_tensor.elements:
        raise ValueError(
            f"model {graph.name}: input of {value.size} values given; the input tensor "
            f"'{in_tensor.name}' has shape {in_tensor.shape}"
        )
    return np.ascontiguousarray(value, dtype=in_dtype).tobytes()


def _run(program: Path, payload: bytes) -> bytes:
    """Run a built program on `payload`; its standard output."""
    try:
        result = subprocess.run([str(program)], input=payload, capture_output=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise HostBuildError(f"{program} ran for more than {RUN_TIMEOUT_S} s") from None
    if result.returncode != 0:
        raise HostBuildError(
            f"{program} exited with status {result.returncode}: {result.stderr.decode(errors='replace')[-2000:]}"
        )
    return result.stdout


def generate_for_host(graph: Graph, prefix: str = "model", kernels: str = "optimized") -> GeneratedModel:
    """The generated C of the engine's whole pipeline (engine.compiler), as a board would get it."""
    return compile_graph(graph, prefix, kernels).generated


def run_generated_on_host(graph: Graph, inputs: Sequence[np.ndarray], kernels: str = "optimized") -> list[np.ndarray]:
    """Compile with the engine, build with host gcc and run the graph on `inputs`; its outputs."""
    return run_generated_on_host_many(graph, [inputs], kernels)[0]


def run_generated_on_host_many(
    graph: Graph, batches: Sequence[Sequence[np.ndarray]], kernels: str = "optimized"
) -> list[list[np.ndarray]]:
    """As run_generated_on_host, for several input sets, with one build and one process."""
    program = build_host_program(generate_for_host(graph, kernels=kernels))
    return run_host_program(program, graph, batches)
