"""environment.yml (conda / Binder) and pyproject.toml must describe the same environment."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pyproject_requirements():
    project = tomllib.loads(ROOT.joinpath("pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return project["dependencies"] + extras


def conda_pip_section():
    dependencies = yaml.safe_load(ROOT.joinpath("environment.yml").read_text())["dependencies"]
    sections = [d["pip"] for d in dependencies if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml needs exactly one pip section"
    return sections[0]


def normalise(requirement):
    return requirement.replace(" ", "").lower()


def test_same_requirements_with_the_same_versions():
    listed = [r for r in conda_pip_section() if not r.startswith("-e")]
    assert sorted(map(normalise, listed)) == sorted(map(normalise, pyproject_requirements()))


def test_pip_section_installs_this_package_editable():
    assert any(r.startswith("-e .") for r in conda_pip_section())


def test_python_versions_agree():
    dependencies = yaml.safe_load(ROOT.joinpath("environment.yml").read_text())["dependencies"]
    python = next(d for d in dependencies if isinstance(d, str) and d.startswith("python="))
    minimum = tomllib.loads(ROOT.joinpath("pyproject.toml").read_text())["project"][
        "requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))
