"""The command line answers fast and explains itself: no heavy import before a command runs, every flag
has help and a shown default, one error prefix, --version, and a wheel install runs --help."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from autolor2c.cli import SAMPLER_CHOICES, build_parser, main

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "optuna", "datasets", "ray", "pandas", "peft", "sklearn")


def test_help_and_bad_values_import_nothing_heavy():
    code = ("import sys\n"
            "from autolor2c.cli import main\n"
            "for argv in (['--help'], ['search', '--help'], ['export', '--help']):\n"
            "    try: main(argv)\n"
            "    except SystemExit: pass\n"
            "codes = [main(['search', *bad]) for bad in (['--budget', '10MB'], ['--task', 'sst5'], ['--sampler', 'x'],\n"
            "         ['--storage', 'ftp://x'], ['--fidelity-rungs', '0.5,2'], ['--data-dir', '/no/such'],\n"
            "         ['--model', './no/such'], ['--space', 'nope.yaml'])]\n"
            f"print(codes, [m for m in {HEAVY!r} if m in sys.modules])\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == f"{[2] * 8} []"


def _all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_parsers(sub)


def test_every_flag_has_help_and_says_its_default():
    for parser in _all_parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            if action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"{parser.prog} {action.option_strings} has no help"
            if action.required or isinstance(action.default, bool):
                continue
            shown = formatter._get_help_string(action)
            assert "default" in shown, f"{parser.prog} {action.option_strings}: {shown!r} shows no default"


def test_search_flags_are_grouped_and_fixed_values_are_choices():
    search = next(p for p in _all_parsers(build_parser()) if p.prog.endswith(" search"))
    titles = [g.title for g in search._action_groups]
    for title in ("search space and budget", "trial size and fidelity", "storage and backend",
                  "pick, seeds and baselines", "output"):
        assert title in titles
    from autolor2c.search.study import SAMPLERS

    assert set(SAMPLER_CHOICES) == set(SAMPLERS)
    by_dest = {a.dest: a for a in search._actions}
    assert by_dest["sampler"].choices == SAMPLER_CHOICES and by_dest["pick"].choices and by_dest["backend"].choices


def test_one_error_prefix_and_version(capsys):
    assert main(["search", "--trials", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "autolor2c: error: argument --trials: expected an integer >= 1, got '0'"
    assert main(["search", "--budget", "abc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autolor2c: error: bad --budget 'abc'") and err.count("error") == 1
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    from autolor2c import __version__

    assert capsys.readouterr().out.strip() == f"autolor2c {__version__}"


def test_library_errors_name_the_parameter_and_the_cli_the_flag(capsys):
    from autolor2c.errors import UserError
    from autolor2c.search.budget import parse_budget

    with pytest.raises(UserError) as bad:
        parse_budget("0.1Q")
    assert str(bad.value).startswith("bad budget '0.1Q': ") and bad.value.param == "budget"
    assert main(["search", "--budget", "0.1Q"]) == 2
    assert capsys.readouterr().err.startswith("autolor2c: error: bad --budget '0.1Q': expected a number")
    # the one base class: the method's errors are bad input too; a run that fails (NaN loss) is not
    from autolor2c.lor2c import AdapterLoadError, ConfigError, LayerStackError
    from autolor2c.train import TrainingError

    assert all(issubclass(e, UserError) for e in (ConfigError, LayerStackError, AdapterLoadError))
    assert not issubclass(TrainingError, UserError)


def test_only_the_cli_speaks_of_flags():
    """No error raised outside cli.py names a --flag; every parameter the CLI maps is one of its flags."""
    import ast

    from autolor2c.cli import FLAG_OF_PARAM

    package = REPO / "autolor2c"
    found = []
    for f in sorted(package.rglob("*.py")):
        if f.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                text = "".join(c.value for c in ast.walk(node.exc) if isinstance(c, ast.Constant) and isinstance(c.value, str))
                if re.search(r"(^|[\s(`'])--[a-z]", text):
                    found.append(f"{f.relative_to(package)}:{node.lineno}: {text[:80]}")
    assert found == []
    flags = {o for p in _all_parsers(build_parser()) for a in p._actions for o in a.option_strings}
    assert set(FLAG_OF_PARAM.values()) <= flags


@pytest.mark.slow
def test_wheel_installed_cli_answers_help(tmp_path):
    """A wheel (not an editable install) in a bare venv: --help needs no dependency at all."""
    # built from a copy: setuptools leaves build/ and *.egg-info in the tree it builds, and a stale one
    # there would be packed instead of the sources
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "studies", "runs",
                                                           "__pycache__", ".pytest_cache", "bench", "tests"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(src)], check=True, timeout=300, capture_output=True)
    wheel = next(wheels.glob("autolor2c-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, timeout=300, capture_output=True)
    out = {}
    for argv in (["--help"], ["search", "--help"], ["--version"]):
        p = subprocess.run([str(env_dir / "bin" / "autolor2c"), *argv], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        out[argv[0]] = p.stdout
    assert "search space and budget" in out["search"] and out["--version"].startswith("autolor2c ")
    p = subprocess.run([str(env_dir / "bin" / "autolor2c"), "search", "--budget", "-5"], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("autolor2c: error: bad --budget '-5'")
