"""environment.yml, for conda and Binder: pyproject.toml's learner environment, from conda-forge.

The conda packages are exactly pyproject's [project] dependencies, with the same version bounds,
so that the pip section's `-e .` finds every requirement already installed and installs the
package alone. The tests of the Binder configuration check what repo2docker needs to build the
same file: https://repo2docker.readthedocs.io/en/latest/config_files.html
"""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

# pip name -> conda-forge name. torch is the metapackage of the CPU build (its CUDA builds refuse
# to be installed beside it); matplotlib-base is matplotlib without the Qt toolkit.
CONDA_FORGE_NAMES = {
    "torch": "pytorch-cpu",
    "torchvision": "torchvision",
    "numpy": "numpy",
    "scikit-learn": "scikit-learn",
    "matplotlib": "matplotlib-base",
    "ipywidgets": "ipywidgets",
    "pillow": "pillow",
    "ipykernel": "ipykernel",
    "jupyterlab": "jupyterlab",
    "jupyterlab-rise": "jupyterlab_rise",
}
# conda-forge's builds of torchvision are named cpu_... or cuda..._...; a CPU build requires a CPU
# build of pytorch
CONDA_FORGE_BUILDS = {"torchvision": "*cpu*"}
# what the environment needs besides the package's dependencies
TOOLING = {"python", "pip"}


def pyproject():
    return tomllib.loads(ROOT.joinpath("pyproject.toml").read_text())


def environment():
    return yaml.safe_load(ROOT.joinpath("environment.yml").read_text())


def conda_specs():
    """{name: (version, build)} of the conda dependencies, from "name version build" strings."""
    specs = {}
    for entry in environment()["dependencies"]:
        if isinstance(entry, dict):
            continue
        name, *rest = entry.split()
        if "=" in name:  # the "name=version" form, as in python=3.11
            name, version = name.split("=", 1)
            rest = [version]
        assert name not in specs, f"{name} is listed twice in environment.yml"
        specs[name] = (rest[0] if rest else "", rest[1] if len(rest) > 1 else "")
    return specs


def pip_section():
    dependencies = environment()["dependencies"]
    sections = [d["pip"] for d in dependencies if isinstance(d, dict)]
    assert len(sections) == 1 and dependencies[-1] == {"pip": sections[0]}, (
        "environment.yml needs exactly one pip section, at the end")
    return sections[0]


def learner_requirements():
    return [Requirement(r) for r in pyproject()["project"]["dependencies"]]


def test_the_name_table_covers_exactly_the_package_dependencies():
    names = {canonicalize_name(r.name) for r in learner_requirements()}
    assert names == set(CONDA_FORGE_NAMES)


def test_conda_packages_are_the_package_dependencies_with_the_same_bounds():
    specs = conda_specs()
    expected = {CONDA_FORGE_NAMES[canonicalize_name(r.name)]: r for r in learner_requirements()}
    assert set(specs) - TOOLING == set(expected)
    for conda_name, requirement in expected.items():
        version, _ = specs[conda_name]
        assert SpecifierSet(version) == requirement.specifier, (
            f"{conda_name} {version!r} in environment.yml, {requirement} in pyproject.toml")


def test_torch_and_torchvision_are_cpu_builds():
    specs = conda_specs()
    assert "pytorch-cpu" in specs
    assert not {"pytorch", "pytorch-gpu", "cudatoolkit", "cuda-version"} & set(specs)
    for name, build in CONDA_FORGE_BUILDS.items():
        assert specs[name][1] == build, f"{name} needs the build {build!r} in environment.yml"
    # every other entry names no build, so that none can pull a CUDA variant in
    others = {name: build for name, (_, build) in specs.items() if name not in CONDA_FORGE_BUILDS}
    assert not any(others.values()), others


def test_no_developer_tool_in_the_environment():
    extras = pyproject()["project"]["optional-dependencies"]
    tools = {canonicalize_name(Requirement(r).name) for group in extras.values() for r in group}
    listed = {canonicalize_name(name) for name in conda_specs()}
    assert not tools & listed
    assert pip_section() == ["-e ."], "the pip section installs the package, and nothing else"


def test_python_version_agrees_with_requires_python():
    version, _ = conda_specs()["python"]
    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    assert re.fullmatch(r"3\.\d+", version), version
    assert version in requires


def test_the_package_is_installed_editable_from_this_folder():
    (line,) = pip_section()
    option, path = line.split()
    assert option == "-e"
    # conda and micromamba run pip in the folder of environment.yml
    package = tomllib.loads((ROOT / path / "pyproject.toml").read_text())["project"]["name"]
    assert package == pyproject()["project"]["name"]


def test_the_header_says_how_to_add_every_developer_extra():
    header = ROOT.joinpath("environment.yml").read_text().split("\nname:")[0]
    (command,) = re.findall(r'python -m pip install -e "\.\[([\w,-]+)\]"', header)
    assert set(command.split(",")) == set(pyproject()["project"]["optional-dependencies"])


def test_binder_builds_environment_yml_from_the_top_level():
    # a binder/ or .binder/ folder makes repo2docker ignore every configuration file at the top
    # level, and a Dockerfile replaces them all
    for name in ("binder", ".binder", "Dockerfile"):
        assert not (ROOT / name).exists(), f"{name} would hide environment.yml from Binder"


def test_binder_installs_the_package_after_copying_the_repository():
    # repo2docker installs environment.yml before it copies the repository, unless the pip
    # section names a local path (utils.is_local_pip_requirement: the path after "-e" starts
    # with "."); a quoted path is missed, and then "-e" finds no package
    (line,) = pip_section()
    assert re.fullmatch(r"-e \.[\w/.-]*", line), line


def test_binder_finds_the_python_version():
    # repo2docker reads python's version with this pattern and picks its base environment by it
    versions = [m.group(1) for d in environment()["dependencies"] if isinstance(d, str)
                for m in [re.match(r"python\s*=+\s*([\d\.]*)", d)] if m]
    assert versions == [conda_specs()["python"][0]]
