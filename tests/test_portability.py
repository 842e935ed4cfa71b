"""The portability check catches a stored number that depends on the machine, and passes one
that does not."""

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).parent))
import portability  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# the same million numbers on every machine (uniform draws are exact bit operations; torch's
# float32 normal sampler is not: its AVX2 kernel computes log and cos another way)
DRAW = ("import torch\n"
        "x = torch.rand(10**6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)")
# threads and vector kernels add them in another order
UNSTABLE = "print(x.float().sum().item())  # every digit of a float32 sum"
STABLE = "print(round(x.sum().item(), 6))  # a float64 sum, rounded far above its error"


def executed_notebook(path: Path) -> Path:
    """A notebook stored with its outputs, as `make notebooks` stores them (one thread): the draw,
    then the stable cell (Cell 1), then the unstable one (Cell 2)."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)
                                               for source in (DRAW, STABLE, UNSTABLE)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    nbformat.write(notebook, path)
    return path


def test_the_configurations_cover_every_dimension():
    for native in ("avx512", "avx2", "default"):
        chosen = portability.configurations(native)
        assert len(chosen) >= 2
        kernels = {c.env["ATEN_CPU_CAPABILITY"] for c in chosen}
        assert "default" in kernels and (native == "default" or kernels - {"default"})
        threads = {c.env["OMP_NUM_THREADS"] for c in chosen}  # make test itself runs 1 thread
        assert "2" in threads and portability.UNSET in threads
        assert any(c.env.get("MKL_CBWR") for c in chosen)
        assert any(c.env.get("MKL_ENABLE_INSTRUCTIONS") for c in chosen)
    avx512 = portability.configurations("avx512")
    assert "avx2" in {c.env["ATEN_CPU_CAPABILITY"] for c in avx512}  # the level make test skips


def test_an_unset_variable_is_removed_from_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    lab = portability.Configuration("lab", {"OMP_NUM_THREADS": portability.UNSET})
    assert "OMP_NUM_THREADS" not in lab.environment()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("portability")
    path = executed_notebook(folder / "check.ipynb")
    options = ["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(folder)]
    return [portability.run(configuration, [path], workers=0, extra_args=options)
            for configuration in portability.configurations()]


def failed_cells(outcome) -> list[str]:
    """The failures as 'notebook::Cell n', without the folder."""
    return [failure.rsplit("/", 1)[-1] for failure in outcome.failures]


def test_a_stored_unstable_number_fails_the_check(outcomes):
    failed = [o for o in outcomes if not o.passed]
    assert failed, "no configuration noticed a float32 sum printed to the last digit"
    for outcome in failed:
        assert failed_cells(outcome) == ["check.ipynb::Cell 2"], outcome.failures


def test_a_stored_stable_number_passes_it(outcomes):
    for outcome in outcomes:
        assert "check.ipynb::Cell 1" not in failed_cells(outcome)
        assert f"{3 - len(outcome.failures)} passed" in outcome.summary, outcome.summary
