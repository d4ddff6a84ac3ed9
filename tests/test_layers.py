"""The codebase's contracts: layers import one way (import-linter, pyproject.toml), one layer imports without
loading the layers above it, the engine reads in short named steps, and no private name crosses modules."""
import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sslab"


def test_layer_contract_holds():
    """data -> views -> nets -> methods -> engine -> evaluate -> studies -> report -> api -> cli, leaves below."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=SRC.parents[1], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_a_low_layer_imports_without_the_layers_above():
    code = ("import sys, sslab.views.text; "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['sslab', 'studies'], ['sslab', 'report'], ['sslab', 'engine'], ['sslab', 'methods'])))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_report_renders_without_the_training_stack():
    """`sslab report` re-renders a results.json: the report layer and the study's statistics, no torch."""
    code = "import sys, sslab.report; print('torch' in sys.modules, 'sslab.engine' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_the_package_api_loads_on_first_use():
    code = ("import sys, sslab; before = 'sslab.api' in sys.modules; f = sslab.study; "
            "print(before, 'sslab.api' in sys.modules, callable(f), sslab.data.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "True", "sslab.data"]


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


def test_engine_functions_read_on_one_screen():
    long = [(p.name, name, n) for p in (SRC / "engine").glob("*.py") for name, n in _functions(p) if n > 60]
    assert not long


def test_engine_knows_no_modality():
    words = ("image", "text", "token", "pixel", "caption")
    for p in (SRC / "engine").glob("*.py"):
        code = "\n".join(line.split("#")[0] for line in p.read_text().splitlines())
        tree = ast.parse(code)
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
                {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names -= {"read_text", "write_text"}  # pathlib's
        assert not [n for n in names if any(w in n.lower() for w in words)], p.name


def test_no_private_name_is_imported_across_modules():
    crossing = []
    for p in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sslab"):
                crossing += [f"{p.relative_to(SRC)}:{node.lineno} {a.name}" for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__")]
    assert not crossing
