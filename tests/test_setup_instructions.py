"""The README's set-up without make: the commands of each platform, their paths, and a real run.

The commands live in the README's section "Set-up without make", in fenced blocks whose first
line is a comment naming the platform ("# Linux and macOS: ...", "# Windows: PowerShell",
"rem Windows: Command Prompt", "# All platforms: the tests ...", "# conda: ..."). The Windows
blocks must do what the Linux and macOS block does, every path and extra they name must exist,
and the Linux and macOS block is run as written in a copy of this working tree when
COURSE_RUN_SETUP=1 (it creates a venv and installs the course: 107 s on an idle two-core machine,
up to 4 minutes on a busy one, and on Linux pip's default torch is the CUDA build).
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Set-up without make"
POSIX, POWERSHELL, CMD = "Linux and macOS", "Windows: PowerShell", "Windows: Command Prompt"
TESTS, CONDA = "All platforms", "conda"
# download.pytorch.org: the index of torch's CPU builds, for Linux without an NVIDIA GPU
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
ACTIVATION = {
    "bash": "source .venv/bin/activate",
    "powershell": r".venv\Scripts\Activate.ps1",
    "bat": r".venv\Scripts\activate.bat",
}


def readme_section():
    text = ROOT.joinpath("README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start:end if end >= 0 else None]


def blocks():
    """[(language, title, commands)] of the fenced blocks that open with a comment."""
    found = []
    for language, body in re.findall(r"^```(\w+)\n(.*?)^```$", readme_section(), re.M | re.S):
        lines = body.splitlines()
        title = re.match(r"(?:#|rem) (.+)", lines[0])
        if not title:
            continue
        commands = [ln for ln in lines[1:] if ln.strip() and not re.match(r"(#|rem )", ln)]
        found.append((language, title.group(1), commands))
    return found


def block(prefix):
    (match,) = [b for b in blocks() if b[1].startswith(prefix)]
    return match


def pyproject():
    return tomllib.loads(ROOT.joinpath("pyproject.toml").read_text())


def repository():
    return pyproject()["project"]["urls"]["Repository"]


def is_cpu_index_line(command):
    return CPU_INDEX in command


def steps(language, commands):
    """The commands with the shell-specific ones replaced by the step they take."""
    named = []
    for command in commands:
        if is_cpu_index_line(command):
            continue
        if re.fullmatch(r"(python3|py) -m venv \.venv", command):
            named.append("create .venv")
        elif command == ACTIVATION[language]:
            named.append("activate .venv")
        else:
            named.append(command)
    return named


def test_each_platform_has_one_block_in_its_shell():
    languages = {title: language for language, title, _ in blocks()}
    assert languages == {
        "Linux and macOS: bash or zsh": "bash",
        POWERSHELL: "powershell",
        CMD: "bat",
        "All platforms: the tests, in the activated environment": "bash",
        "conda: any platform": "bash",
    }


@pytest.mark.parametrize("title", [POWERSHELL, CMD])
def test_windows_does_what_linux_and_macos_do(title):
    posix = steps(*block(POSIX)[::2])
    windows = steps(*block(title)[::2])
    assert windows == posix
    # the same steps: a venv, its activation, the same pip arguments, the same notebook
    assert posix[:2] == ["create .venv", "activate .venv"]
    assert any(s.startswith("python -m pip install -e ") for s in posix)
    assert any(s.startswith("jupyter lab ") for s in posix)


def test_powershell_gets_its_dotted_options_whole():
    # PowerShell splits an unquoted argument that starts with "-" at its first "."
    # (github.com/PowerShell/PowerShell/issues/6291)
    for command in block(POWERSHELL)[2]:
        unquoted = re.sub(r'"[^"]*"', "", command).split()
        assert not [t for t in unquoted if t.startswith("-") and "." in t], command


def test_only_linux_takes_torch_from_the_cpu_index():
    cpu_lines = [(t, c) for _, t, cs in blocks() for c in cs if is_cpu_index_line(c)]
    assert [t for t, _ in cpu_lines] == [block(POSIX)[1]]
    # it installs torch and torchvision within pyproject's bounds (a newer torch would make the
    # next line replace it with pip's default build), before the package
    _, command = cpu_lines[0]
    requirements = re.findall(r'"([^"]+)"', command)
    assert command == " ".join(["python -m pip install", *(f'"{r}"' for r in requirements),
                                f"--index-url {CPU_INDEX}"])
    wanted = {Requirement(r).name: Requirement(r) for r in pyproject()["project"]["dependencies"]}
    assert [Requirement(r) for r in requirements] == [wanted["torch"], wanted["torchvision"]]
    commands = block(POSIX)[2]
    assert commands.index(command) < commands.index("python -m pip install -e .")


def named_notebooks():
    """Every notebook path that a jupyter command or the Binder link opens."""
    paths = []
    for _, _, commands in blocks():
        for command in commands:
            paths += re.findall(r"--LabApp\.default_url=/lab/tree/([^\s\"]+)", command)
    for url in re.findall(r"\((https://mybinder\.org/\S+)\)", readme_section()):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        paths += [p.removeprefix("lab/tree/") for p in query["urlpath"]]
    return paths


def test_every_named_path_and_extra_exists():
    extras = set(pyproject()["project"]["optional-dependencies"])
    for _, _, commands in blocks():
        for command in commands:
            for spec in re.findall(r"-e (\S+)", command):
                path, _, named = spec.strip('"').partition("[")
                assert ROOT.joinpath(path, "pyproject.toml").is_file(), command
                assert set(filter(None, named.rstrip("]").split(","))) <= extras, command
            for path in re.findall(r"env create -f (\S+)", command):
                assert ROOT.joinpath(path).is_file(), command
    notebooks = named_notebooks()
    assert len(notebooks) == 5  # three platform blocks, conda, Binder
    for path in notebooks:
        assert ROOT.joinpath(path).is_file(), path
    # the notebook that `make lab` opens
    makefile = ROOT.joinpath("Makefile").read_text()
    assert set(notebooks) == set(re.findall(r"default_url=/lab/tree/(\S+)", makefile))


def test_conda_activates_the_environment_it_creates():
    name = yaml.safe_load(ROOT.joinpath("environment.yml").read_text())["name"]
    assert f"conda activate {name}" in block(CONDA)[2]


def test_links_point_at_the_repository():
    owner_name = urllib.parse.urlparse(repository()).path.strip("/")
    assert f"git clone {repository()}`" in readme_section()
    binder = re.findall(r"\((https://mybinder\.org/\S+)\)", readme_section())
    assert [urllib.parse.urlparse(u).path for u in binder] == [f"/v2/gh/{owner_name}/main"]


# --- the Linux and macOS block, run -------------------------------------------------------------


def index_host():
    url = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").split()[0]
    return urllib.parse.urlparse(url).hostname


def reachable(host):
    try:
        socket.create_connection((host, 443), timeout=5).close()
        return True
    except OSError:
        return False


def working_tree_copy(destination):
    """This working tree as it is (uncommitted changes included), without what git ignores."""
    lines = ROOT.joinpath(".gitignore").read_text().splitlines()
    ignored = [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.startswith("#")]
    shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(".git", *ignored))
    return destination


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_environment():
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX"}}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not p.startswith(sys.prefix))
    return env


def run(script, cwd, env, timeout):
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{script}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def answers(url, token, timeout=60):
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.skipif(os.environ.get("COURSE_RUN_SETUP") != "1", reason=(
    "COURSE_RUN_SETUP=1 runs the README's Linux and macOS set-up in a fresh venv: 2 to 4 minutes"))
@pytest.mark.skipif(sys.platform == "win32", reason="the Linux and macOS block runs in bash")
def test_linux_and_macos_block_runs_as_written(tmp_path):
    host = index_host()
    if not reachable(host):
        pytest.skip(f"{host} is unreachable, and the block installs from it")
    if shutil.which("python3") is None:
        pytest.skip("no python3 on PATH")
    env = clean_environment()
    version = subprocess.run(["python3", "-c", "import sys; print(sys.version_info >= (3, 11))"],
                             env=env, capture_output=True, text=True).stdout.strip()
    if version != "True":
        pytest.skip("python3 on PATH is older than the 3.11 that the README asks for")
    tree = working_tree_copy(tmp_path / "course")
    _, _, commands = block(POSIX)
    *setup, lab = commands
    assert lab.startswith("jupyter lab ")
    lines = []
    for command in setup:
        if is_cpu_index_line(command):
            # this one line is left out: the course's test machines reach PyPI but not
            # download.pytorch.org, so pip's default torch comes instead (on Linux the CUDA
            # build, unless pip's configuration offers another)
            print(f"skipped: {command} (the tests do not reach {CPU_INDEX})")
            continue
        lines.append(command)

    started = time.monotonic()
    run("\n".join(lines), tree, env, timeout=1800)
    installed = time.monotonic()
    activate = "source .venv/bin/activate\n"

    # from another folder, so that only the installed package can be imported
    where = run(f"source {tree}/.venv/bin/activate\n"
                'python -c "import helpers, torch; print(helpers.__file__)"', tmp_path, env,
                timeout=120)
    assert Path(where.strip()) == tree / "helpers" / "__init__.py", "editable, from the copy"
    # the chapter that the jupyter lab line opens runs top to bottom in the new environment
    run(activate + "jupyter nbconvert --to notebook --execute --output-dir "
        f"{tmp_path} notebooks/00_welcome_and_setup.ipynb", tree, env, timeout=600)

    # the jupyter lab line as written, without a browser: it serves the course's folder, with
    # chapter 00 and the exercises that the chapters link to
    port, token = free_port(), "setup-instructions-test"
    extra = f" --no-browser --ServerApp.port={port} --IdentityProvider.token={token}"
    if os.geteuid() == 0:
        extra += " --allow-root"  # the README says so
    server = subprocess.Popen(["bash", "-c", activate + "exec " + lab + extra], cwd=tree, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        default_url = lab.split("--LabApp.default_url=")[1].strip('"')
        assert answers(base + default_url, token) == 200
        assert answers(base + "/api/contents/notebooks/00_welcome_and_setup.ipynb?content=0",
                       token) == 200
        assert answers(base + "/api/contents/exercises?content=0", token) == 200
    finally:
        server.terminate()
        server.wait(timeout=30)

    # the tests' block: its install line as written, its pytest line on this module's neighbour
    install, pytest_line = block(TESTS)[2]
    run(activate + install, tree, env, timeout=900)
    run(activate + pytest_line + " tests/test_environment.py", tree, env, timeout=600)
    print(f"install {installed - started:.0f} s, all {time.monotonic() - started:.0f} s")
