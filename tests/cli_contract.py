"""The bad-input contract shared by the bad-input suites (tests/test_bad_input*.py): run a command through the CLI
and check that an error is one `error:` line, a non-zero exit, no traceback and nothing half-written."""
from pathlib import Path

from sslab.cli import main


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def leftovers(root: Path) -> list[str]:
    """Temp files of atomic writes, rotated checkpoints and downloads that a failed command must not leave."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.name.endswith((".tmp", ".part")))


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(code: int, err: str, contains: str = "") -> str:
    """A non-zero exit and one `error:` line (containing `contains`), no traceback."""
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    assert "internal error" not in lines[0], err
    assert contains.lower() in lines[0].lower(), (contains, err)
    return lines[0]


def assert_error(result, *contains: str, root: Path, out: Path | None = None) -> str:
    """One `error:` line naming the problem, a non-zero exit, no traceback, no temp files, no new `out` folder."""
    code, stdout, err = result
    assert "Traceback" not in stdout
    line = assert_one_line_error(code, err)
    for c in contains:
        assert c.lower() in line.lower(), (c, line)
    assert not leftovers(root), leftovers(root)
    if out is not None:
        assert not out.exists(), sorted(p.name for p in out.iterdir())
    return line
