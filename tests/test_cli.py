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

from autolor2c.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "optuna", "datasets", "ray", "pandas", "peft", "sklearn")


def test_help_and_bad_values_import_nothing_heavy(tmp_path):
    code = ("import sys\n"
            "from autolor2c.cli import main\n"
            "for argv in (['--help'], ['search', '--help'], ['export', '--help']):\n"
            "    try: main(argv)\n"
            "    except SystemExit: pass\n"
            "codes = [main(['search', *bad]) for bad in (['--budget', '10MB'], ['--task', 'sst5'], ['--sampler', 'x'],\n"
            "         ['--storage', 'ftp://x'], ['--fidelity-rungs', '0.5,2'], ['--data-dir', '/no/such'],\n"
            f"         ['--model', './no/such'], ['--space', 'nope.yaml'], ['--storage', 'journal:{tmp_path}'])]\n"
            f"print(codes, [m for m in {HEAVY!r} if m in sys.modules])\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == f"{[2] * 9} []"


def test_a_journal_storage_that_is_a_folder_is_one_line_before_anything_is_made(tmp_path, capsys):
    folder = tmp_path / "studies"
    folder.mkdir()
    for command in (["search", "--task", "sst2", "--budget", "1M", "--out", str(tmp_path / "out")],
                    ["show", "--study", "s"]):
        assert main([*command, "--storage", f"journal:{folder}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"autolor2c: error: bad --storage 'journal:{folder}': ")
        assert "is a folder" in err and f"journal:{folder / 'autolor2c.log'}" in err
    assert [p.name for p in tmp_path.iterdir()] == ["studies"] and not any(folder.iterdir())


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
    from autolor2c.search.front import PICKS
    from autolor2c.search.run import SAMPLERS

    by_dest = {a.dest: a for a in search._actions}
    assert by_dest["sampler"].choices is SAMPLERS and by_dest["pick"].choices is PICKS and by_dest["backend"].choices
    retrain = next(p for p in _all_parsers(build_parser()) if p.prog.endswith(" retrain"))
    assert next(a for a in retrain._actions if a.dest == "pick").choices is PICKS


def _search_parser() -> argparse.ArgumentParser:
    return next(p for p in _all_parsers(build_parser()) if p.prog.endswith(" search"))


FIELD_OF_DEST = {"fidelity_rungs": "fidelity"}  # parsed into a Fidelity (--no-multi-fidelity sets one too)
LIBRARY_ONLY_FIELDS = {"max_consecutive_failures"}


def test_search_flags_take_default_and_help_from_their_settings_field():
    """SearchSettings is the one home of a search default and its help: a flag that spelled either again
    would drift from it."""
    from autolor2c.cli import _OFF_SWITCHES
    from autolor2c.search.run import settings_fields

    fields = settings_fields()
    by_dest = {a.dest: a for a in _search_parser()._actions}
    checked = set()
    for dest, action in by_dest.items():
        name = FIELD_OF_DEST.get(dest, dest)
        if name not in fields:
            continue
        f = fields[name]
        shown = (action.help or "").replace("%%", "%")
        if dest == "trials":  # None on the command line: the field's default, or no limit with --timeout
            assert action.default is None and f"default {f.default}," in shown
        elif dest == "workers":  # None on the command line: the machine's (default_workers), the library's is 1
            assert action.default is None and f.default == 1 and "default: 2 on a CPU" in shown
        else:
            assert action.default == f.default and type(action.default) is type(f.default), dest
        assert dest == "worker" or f.metadata["help"] in shown, dest
        checked.add(name)
    for flag, name in _OFF_SWITCHES.items():
        action = next(a for a in by_dest.values() if flag in a.option_strings)
        assert fields[name].default is True and action.default is False
        assert action.help.replace("%%", "%") == f"do not {fields[name].metadata['help']}"
        checked.add(name)
    assert set(fields) - checked == LIBRARY_ONLY_FIELDS


def test_search_with_no_flags_is_the_library_default_search():
    from autolor2c.cli import _settings_from_args
    from autolor2c.search.run import SearchSettings, default_workers

    # but for the workers: the command line runs the machine's cores, the library one process
    assert _settings_from_args(build_parser().parse_args(["search"])) == SearchSettings(workers=default_workers())
    a = build_parser().parse_args(["search", "--no-baselines", "--no-progress", "--no-builtins-first"])
    s = _settings_from_args(a)
    assert not (s.baselines or s.progress or s.builtins_first)


def test_every_settings_field_has_help_that_tells_a_none_default():
    """None means "the library's default" (or none): the help says which, and the library's numbers are
    TrainArgs' own."""
    from autolor2c.search.run import settings_fields
    from autolor2c.train import TrainArgs

    for name, f in settings_fields().items():
        text = f.metadata.get("help")
        assert text, f"SearchSettings.{name} has no help"
        if f.default is None:
            assert "default" in text, f"SearchSettings.{name}: {text!r} does not say what None means"
        said = re.search(r"the library's, ([0-9.e-]+)", text)
        if said:
            assert float(said.group(1)) == getattr(TrainArgs, name), name


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
    from autolor2c.search.space import parse_budget

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
