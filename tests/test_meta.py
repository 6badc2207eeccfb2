"""Meta tests: every command has help, appears in the README, the CLI stays light, completions are current."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sadcli.cli import app

ROOT = pathlib.Path(__file__).resolve().parent.parent
runner = CliRunner()


def command_names():
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


def test_root_help_lists_commands():
    r = runner.invoke(app, ["--help"], prog_name="sad")
    assert r.exit_code == 0
    for name in command_names():
        assert name in r.stdout


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help_and_is_documented(name):
    import typer.main

    r = runner.invoke(app, [name, "--help"], prog_name="sad")
    assert r.exit_code == 0, r.output
    cmd = typer.main.get_command(app).commands[name]
    assert (cmd.help or "").strip(), f"sad {name} has no help text"
    readme = (ROOT / "README.md").read_text()
    assert f"sad {name}" in readme, f"sad {name} is missing from README.md"


@pytest.mark.parametrize("argv", [["--help"], ["segment", "--help"]])
def test_help_and_segment_do_not_import_heavy_libraries(argv):
    code = (
        "import sys\n"
        f"sys.argv = ['sad'] + {argv!r}\n"
        "from sadcli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'accelerate', 'datasets') if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "HEAVY=" in p.stderr
    assert p.stderr.split("HEAVY=")[-1].strip() == ""


def test_segment_run_does_not_import_torch(tmp_path):
    src = tmp_path / "x.jsonl"
    src.write_text('{"text": "Thought: a\\nAction: b"}\n')
    code = (f"import sys\nsys.argv=['sad','segment',{str(src)!r},'-q']\nfrom sadcli.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nsys.stderr.write('TORCH=%s' % ('torch' in sys.modules))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "TORCH=False" in p.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completions_are_current(shell):
    from sadcli.completions import completion_script

    path = ROOT / "completions" / {"bash": "sad.bash", "zsh": "_sad", "fish": "sad.fish"}[shell]
    assert path.exists(), f"{path} missing: run `make completions`"
    assert path.read_text() == completion_script(shell), f"{path} is stale: run `make completions`"


def test_python_dash_m_works():
    p = subprocess.run([sys.executable, "-m", "sadcli", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0
    import sadcli

    assert p.stdout.strip() == sadcli.__version__
