# Two commands a learner needs: `make lab` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(wildcard notebooks/*.ipynb) $(wildcard exercises/solutions/*.ipynb)
# JupyterLab refuses to run as root unless told; add the flag only when needed.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab explore test test-browser lint unit nbval portability notebooks exercises verify slides release site clean

# Tests and stored outputs run torch single-threaded: the results do not depend on the number
# of cores, and parallel test workers (each with a kernel) do not oversubscribe the CPU.
test test-browser unit nbval notebooks: export OMP_NUM_THREADS = 1

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,classroom,site]'
	touch $(STAMP)

# No news and no update check: the course runs offline. The server fetches nothing
# (news_url=None, NeverCheckForUpdate), and the settings default fetchNews to "false" (an
# overrides.d file of this environment's JupyterLab), which is what stops the pop-up that asks
# about news; tests/browser starts JupyterLab the same way.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/course.json
lab: $(STAMP)
	mkdir -p $(dir $(LAB_OVERRIDES))
	echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' > $(LAB_OVERRIDES)
	$(BIN)/jupyter lab --ip=127.0.0.1 $(ROOT_FLAG) \
		--LabApp.default_url=/lab/tree/notebooks/00_welcome_and_setup.ipynb \
		--LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate

# The explorers alone, for a class: apps/ served with Voila at http://127.0.0.1:8866 (no code
# shown; Voila runs as root without a flag). Each page gets a kernel of its own (about 400 MB),
# shut down when the page is left; one kernel per app is started and run in advance, so that a
# page shows at once. A kernel idle for 10 minutes is culled even with its page open (reloading
# starts a new one): forgotten tabs do not fill the memory. apps/voila.json forbids the pages to
# load anything from another host (the course runs offline) and lets a closing page shut its
# kernel down (Voila 0.5 sends that request without the XSRF cookie it would check). The training
# runs are trained once, by the first kernels, and kept in build/cache.
EXPLORE_PORT ?= 8866
explore: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/voila apps --Voila.config_file_paths=apps --Voila.ip=127.0.0.1 \
		--Voila.port=$(EXPLORE_PORT) --no-browser --VoilaConfiguration.preheat_kernel=True \
		--MappingKernelManager.cull_idle_timeout=600 --MappingKernelManager.cull_interval=60 \
		--MappingKernelManager.cull_connected=True

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --dist loadscope
	$(BIN)/python tests/portability.py

# the notebooks and the exercise checkers again, as other CPUs, MKL paths and thread counts compute
# them (tests/portability.py); part of make test
portability: $(STAMP)
	$(BIN)/python tests/portability.py

# the widgets in JupyterLab + headless Chromium (skipped with a reason when no Chromium is installed)
test-browser: $(STAMP)
	$(BIN)/python -m pytest -p no:xdist tests/browser

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadscope tests --ignore=tests/browser

nbval: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadscope notebooks exercises/solutions

notebooks: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.kernel_name=python3 \
		--ExecutePreprocessor.record_timing=False \
		--ExecutePreprocessor.timeout=600 $(NOTEBOOKS)
	$(BIN)/python -m helpers.site --links
	$(BIN)/python -m helpers.exercises.student
	$(BIN)/python -m helpers.slides

exercises: $(STAMP)
	$(BIN)/python -m helpers.exercises.student

verify: $(STAMP)
	$(BIN)/python -m helpers.verify

# one reveal.js deck per chapter in build/slides/, with reveal.js and MathJax beside it: works
# offline, opened from disk or served (the slide metadata comes from `python -m helpers.slides`)
slides: $(STAMP)
	$(BIN)/python -m helpers.slides --build build/slides

# the graded assignments: an nbgrader course directory in build/classroom, written from the
# solution notebooks; the students' copies (no solutions, no hidden tests) are in its release/
release: $(STAMP)
	$(BIN)/python -m helpers.exercises.release build/classroom

# the course as a static website in build/site/ (open build/site/index.html): every chapter,
# exercise notebook and solution with its stored outputs, math, search; built offline, nothing
# executed (helpers/site.py, docs/site/conf.py)
site: $(STAMP)
	$(BIN)/python -m helpers.site --build build/site

clean:
	rm -rf $(VENV) build *.egg-info
