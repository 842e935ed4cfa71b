"""Sphinx configuration of the course's website (built by `make site`: python -m helpers.site).

The sources are the executed notebooks, staged by helpers/site.py in the course's own layout;
nothing is executed and nothing is fetched at build time.
"""

from helpers.site import BRANCH, repository_url

project = "Evaluating and optimizing PyTorch models, from scratch"
author = "The authors of the course"
copyright = "2026, the authors of the course; text CC BY 4.0, code MIT"
root_doc = "README"

extensions = ["myst_nb"]
exclude_patterns = [".doctrees", "_build", "**.ipynb_checkpoints"]

# the notebooks are shown as stored: executed by `make notebooks`, checked by `make test`
nb_execution_mode = "off"
# consecutive prints of a cell shown as one block, as in JupyterLab
nb_merge_streams = True
# live widgets are replaced by their static fallback when staged: no widget manager, which
# would come from a CDN
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# MathJax 2 is configured below (myst would add a MathJax 3 setting that MathJax 2 misreads)
myst_update_mathjax = False
suppress_warnings = ["mystnb.unknown_mime_type"]
# tracebacks of the cells that raise on purpose: ANSI colours, no Python lexing (which trips on ✗)
nb_render_error_lexer = "myst-ansi"

# MathJax 2.7 from the installed jupyter-server-mathjax, copied into the site's _static after the
# build (helpers/site.py)
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    "HTML-CSS": {"availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web", "scale": 90,
                 "webFont": "STIX-Web", "imageFont": None},
}

html_theme = "sphinx_book_theme"
html_title = project
html_copy_source = False
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_theme_options = {
    "repository_url": repository_url(),
    "repository_branch": BRANCH,
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": False,
    "launch_buttons": {"binderhub_url": "https://mybinder.org", "notebook_interface": "jupyterlab"},
    "show_toc_level": 2,
    # pydata-sphinx-theme 0.20 adds a second search field in a bar above the page; the Book
    # Theme has its own, in the sidebar
    "navbar_persistent": [],
}
