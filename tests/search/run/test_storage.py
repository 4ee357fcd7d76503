"""A journal storage that a killed writer left mid-line still resumes; a broken one is one clear line."""

import optuna
import pytest

from autolor2c.cli import main
from autolor2c.search.run import resolve_storage


def _study(path, n):
    study = optuna.create_study(storage=resolve_storage(f"journal:{path}"), study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)


def test_a_journal_cut_mid_write_resumes_and_keeps_what_it_writes_next(tmp_path):
    path = tmp_path / "studies.journal"
    _study(path, 3)
    whole = path.read_bytes()
    path.write_bytes(whole[:-15])  # the last write (trial 2's completion) cut short, as a kill leaves it
    study = optuna.load_study(storage=resolve_storage(f"journal:{path}"), study_name="s")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2 + [
        optuna.trial.TrialState.RUNNING]
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    again = optuna.load_study(storage=resolve_storage(f"journal:{path}"), study_name="s")
    assert [t.number for t in again.trials] == [0, 1, 2, 3, 4]
    assert [t.state for t in again.trials[3:]] == [optuna.trial.TrialState.COMPLETE] * 2
    assert path.read_bytes().startswith(whole[:whole.rfind(b"\n", 0, len(whole) - 15) + 1])


def test_a_journal_with_a_broken_line_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "studies.journal"
    _study(path, 2)
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1][:12]
    path.write_bytes(b"\n".join(lines))
    before = path.read_bytes()
    assert main(["show", "--study", "s", "--storage", f"journal:{path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"autolor2c: error: bad --storage 'journal:{path}': ")
    assert "not a readable Optuna journal" in err
    assert path.read_bytes() == before


@pytest.mark.parametrize("tail", [b"", b"\n", b"{\"op_code\": 0"])
def test_cutting_keeps_every_whole_line(tmp_path, tail):
    from autolor2c.search.run.storage import _cut_unfinished_line

    path = tmp_path / "j"
    body = b"".join(b"%d\n" % i for i in range(30000))  # longer than one look-back block
    path.write_bytes(body + tail.rstrip(b"\n") if tail != b"\n" else body)
    _cut_unfinished_line(str(path))
    assert path.read_bytes() == body
    path.write_bytes(b"no newline at all")
    _cut_unfinished_line(str(path))
    assert path.read_bytes() == b""



def test_a_journal_cut_mid_write_that_cannot_be_written_still_reads(tmp_path, monkeypatch):
    """On a read-only folder (``show`` or ``export`` on a copied study) the lock cannot be taken: the file is
    read as it is (Optuna skips the unfinished line), not refused."""
    from optuna.storages.journal import JournalFileSymlinkLock

    path = tmp_path / "studies.journal"
    _study(path, 3)
    path.write_bytes(path.read_bytes()[:-15])
    before = path.read_bytes()

    def read_only(self):
        raise PermissionError(13, "Permission denied", str(path) + ".lock")
    monkeypatch.setattr(JournalFileSymlinkLock, "acquire", read_only)
    study = optuna.load_study(storage=resolve_storage(f"journal:{path}"), study_name="s")
    assert len(study.trials) == 3 and path.read_bytes() == before
