"""helpers/site.py without building the site: the run lines and the static fallback of a live
widget (the built site is tested in tests/browser/test_site_in_browser.py)."""

import runpy
import shutil

import nbformat
import pytest

from helpers import site
from helpers.exercises import student

WIDGET_VIEW = site.WIDGET_VIEW


def notebook(*cells, widgets=None):
    nb = nbformat.v4.new_notebook(cells=list(cells))
    if widgets is not None:
        nb.metadata["widgets"] = {site.WIDGET_STATE: {"state": widgets, "version_major": 2,
                                                      "version_minor": 0}}
    return nb


# ---------------------------------------------------------------------------------------------
# run lines


@pytest.mark.parametrize("relative, kind, readme", [
    ("notebooks/03_gradient_descent.ipynb", "chapter", "../README.md"),
    ("exercises/03_gradient_descent.ipynb", "exercise notebook", "../README.md"),
    ("exercises/solutions/03_gradient_descent.ipynb", "solution", "../../README.md"),
])
def test_the_run_line_opens_that_notebook_on_binder_and_names_the_local_command(relative, kind,
                                                                                 readme):
    line = site.run_line(relative)
    owner_and_name = site.repository_url().removeprefix("https://github.com/")
    assert line.startswith(f"▶ **Run this {kind}:**")
    assert f"(https://mybinder.org/v2/gh/{owner_and_name}/main?urlpath=lab/tree/{relative})" in line
    assert f'`jupyter lab "--LabApp.default_url=/lab/tree/{relative}"`' in line
    assert f"]({readme}#set-up-without-make)" in line


def test_the_run_line_goes_under_the_title_once_and_replaces_an_old_one():
    nb = notebook(nbformat.v4.new_markdown_cell("# 01 · Title\n\nThe intro."))
    once = site.with_run_line(nb, "notebooks/01_x.ipynb")
    assert once.cells[0].source == (f"# 01 · Title\n\n{site.run_line('notebooks/01_x.ipynb')}"
                                    f"\n\nThe intro.")
    assert site.with_run_line(once, "notebooks/01_x.ipynb").cells[0].source == once.cells[0].source
    moved = site.with_run_line(once, "notebooks/02_y.ipynb").cells[0].source
    assert moved.count("▶") == 1 and "02_y.ipynb" in moved and "01_x.ipynb" not in moved
    assert nb.cells[0].source == "# 01 · Title\n\nThe intro.", "the original was changed"


@pytest.mark.parametrize("cells", [
    [], [nbformat.v4.new_code_cell("x = 1")], [nbformat.v4.new_markdown_cell("No title.")]])
def test_a_notebook_without_a_title_cell_is_refused_with_what_was_expected(cells):
    with pytest.raises(ValueError, match="expected a first markdown cell that starts with the "
                                         "title"):
        site.with_run_line(notebook(*cells), "notebooks/01_x.ipynb")


def test_a_repository_that_is_not_on_github_is_refused(monkeypatch):
    monkeypatch.setattr(site, "repository_url", lambda: "https://gitlab.com/a/b")
    with pytest.raises(ValueError, match="expected a https://github.com/OWNER/NAME .* but got "
                                         "'https://gitlab.com/a/b'"):
        site.binder_url("notebooks/01_x.ipynb")


def test_the_binder_address_names_the_owner_then_the_repository_and_opens_jupyterlab(monkeypatch):
    monkeypatch.setattr(site, "repository_url", lambda: "https://github.com/owner/name")
    assert site.binder_url("notebooks/01_x.ipynb") == (
        "https://mybinder.org/v2/gh/owner/name/main?urlpath=lab/tree/notebooks/01_x.ipynb")


def test_every_notebook_has_its_own_up_to_date_run_line():
    stale = site.stale_run_lines(site.course_notebooks(), write=False)
    assert not stale, f"run `python -m helpers.site --links` (and make exercises): {stale}"
    assert len(site.course_notebooks()) == 12 + 11 + 11


def test_a_missing_or_stale_run_line_is_found_and_written(tmp_path, monkeypatch):
    shutil.copy2(site.ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    monkeypatch.setattr(site, "ROOT", tmp_path)
    (tmp_path / "notebooks").mkdir()
    path = tmp_path / "notebooks" / "01_x.ipynb"
    nbformat.write(notebook(nbformat.v4.new_markdown_cell("# 01 · Title\n\nIntro.")), path)
    assert site.stale_run_lines([path], write=False) == [path]
    assert "▶" not in path.read_text(), "--check wrote the notebook"
    assert site.stale_run_lines([path], write=True) == [path]
    assert site.stale_run_lines([path], write=False) == []
    assert site.main(["--links", "--check"]) == 0
    path.write_text(path.read_text().replace("01_x.ipynb", "01_old.ipynb"))
    stale = path.read_text()
    assert site.main(["--links", "--check"]) == 1
    assert path.read_text() == stale, "--check wrote the notebook"
    assert site.main(["--links"]) == 0 and site.main(["--links", "--check"]) == 0


def test_the_student_notebook_runs_itself_not_the_solution():
    solution = site.ROOT / "exercises" / "solutions" / "01_mse_loss.ipynb"
    rendered = nbformat.reads(student.render(solution), as_version=4)
    assert site.run_line("exercises/01_mse_loss.ipynb") in rendered.cells[0].source
    assert "solutions/01_mse_loss.ipynb" not in rendered.cells[0].source


# ---------------------------------------------------------------------------------------------
# live widgets as their static fallback


def model(name, state, buffers=None):
    found = {"model_name": name, "model_module": "@jupyter-widgets/controls",
             "model_module_version": "2.0.0", "state": state}
    if buffers:
        found["buffers"] = buffers
    return found


def explorer_state():
    """A box with a shown slider, a hidden slider, a dropdown, a status line and an image."""
    return {
        "box": model("VBoxModel", {"children": ["IPY_MODEL_lr", "IPY_MODEL_momentum",
                                                "IPY_MODEL_opt", "IPY_MODEL_status",
                                                "IPY_MODEL_image"]}),
        "lr": model("FloatLogSliderModel", {"description": "lr", "value": 0.0562341325,
                                            "layout": "IPY_MODEL_shown"}),
        "momentum": model("FloatSliderModel", {"description": "momentum", "value": 0.9,
                                               "layout": "IPY_MODEL_hidden"}),
        "opt": model("DropdownModel", {"description": "optimizer", "index": 1,
                                       "_options_labels": ["SGD", "Adam"]}),
        "status": model("HTMLModel", {"value": "<b>converges</b>"}),
        "image": model("ImageModel", {"format": "png"},
                       [{"path": ["value"], "encoding": "base64", "data": "iVBORw0KGgo="}]),
        "shown": model("LayoutModel", {"display": None}),
        "hidden": model("LayoutModel", {"display": "none"}),
    }


def widget_cell(model_id="box"):
    cell = nbformat.v4.new_code_cell("Explorer()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        WIDGET_VIEW: {"model_id": model_id, "version_major": 2, "version_minor": 0},
        "text/plain": "VBox(children=(...))"})]
    return cell


def test_a_live_widget_becomes_its_note_figure_and_status_line():
    printed = nbformat.v4.new_output("stream", text="kept\n")
    cell = widget_cell()
    cell.outputs.insert(0, printed)
    nb = notebook(nbformat.v4.new_markdown_cell("# T"), cell, widgets=explorer_state())
    static = site.without_live_widgets(nb, "RUN IT")
    outputs = static.cells[1].outputs
    assert outputs[0] == printed
    note, status, image = (o["data"] for o in outputs[1:])
    assert "(lr = 0.05623, optimizer = Adam). RUN IT to move its controls." in note["text/html"]
    assert "momentum" not in note["text/html"], "a hidden control was listed"
    assert status == {"text/html": "<b>converges</b>"}
    assert image == {"image/png": "iVBORw0KGgo="}
    assert "widgets" not in static.metadata
    assert "widgets" in nb.metadata and WIDGET_VIEW in nb.cells[1].outputs[1]["data"]


def test_a_widget_without_saved_state_or_without_a_figure_is_refused():
    nb = notebook(widget_cell("gone"), widgets=explorer_state())
    with pytest.raises(ValueError, match="widget gone has no saved state"):
        site.without_live_widgets(nb, "RUN")
    bare = explorer_state()
    bare["box"]["state"]["children"] = ["IPY_MODEL_lr"]
    with pytest.raises(ValueError, match="saved no figure and no status"):
        site.without_live_widgets(notebook(widget_cell(), widgets=bare), "RUN")


def test_a_comparison_in_a_description_is_not_followed_by_another_sign():
    threshold = model("SelectionSliderModel", {"description": "score >=", "index": 0,
                                               "_options_labels": ["0.325"]})
    assert site.setting(threshold, {}) == "score >= 0.325"
    assert site.setting(model("HTMLModel", {"value": "x"}), {}) is None


def test_the_settings_in_the_note_are_escaped():
    state = explorer_state()
    state["lr"]["state"]["description"] = "lr <"
    static = site.without_live_widgets(notebook(widget_cell(), widgets=state), "RUN")
    assert "(lr &lt; 0.05623, optimizer = Adam)" in static.cells[0].outputs[0]["data"]["text/html"]


def test_every_live_widget_of_the_course_has_a_static_fallback():
    shown = 0
    for path in site.course_notebooks():
        static = site.without_live_widgets(nbformat.read(path, as_version=4), "RUN")
        outputs = [o for c in static.cells if c.cell_type == "code" for o in c.outputs]
        assert not any(WIDGET_VIEW in o.get("data", {}) for o in outputs), path
        shown += sum("course-widget-note" in o.get("data", {}).get("text/html", "")
                     for o in outputs)
    assert shown == 6, "chapters 03, 04, 05, 06, 07 and 09 each have one explorer"


def test_the_site_loads_no_widget_manager_even_for_a_widget_state_left_behind():
    conf = runpy.run_path(str(site.CONF_DIR / "conf.py"))
    assert conf.get("nb_ipywidgets_js") == {}, "myst-nb would load one from a CDN"


def test_without_mathjax_installed_the_build_says_which_extra_brings_it(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"the website's pages need the package "
                                                  r"'jupyter_server_mathjax': install the course "
                                                  r"with its site extra \(pip install -e "
                                                  r"'\.\[site\]'\)"):
        site.mathjax_folder()


def test_check_without_links_is_refused_rather_than_ignored(capsys):
    with pytest.raises(SystemExit):
        site.main(["--build", "unused", "--check"])
    assert "--check goes with --links" in capsys.readouterr().err
