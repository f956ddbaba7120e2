"""The pack as ComfyUI and pip see it, and the project-wide safety rules."""

import ast
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY_ONLY_MODULES = {"comfy", "folder_paths", "comfy_extras", "server", "execution"}


def _python_files(*dirs):
    for d in dirs:
        yield from (ROOT / d).rglob("*.py")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_comfyui_loads_the_pack_from_its_folder(monkeypatch):
    """ComfyUI imports custom_nodes/<folder>/__init__.py as a package named after the folder."""
    name = "ComfyUI_GoT_R1_under_test"
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    assert {"GoTR1ParseChain", "GoTR1LayoutViewer"} <= set(module.NODE_CLASS_MAPPINGS)
    assert module.NODE_DISPLAY_NAME_MAPPINGS["GoTR1LayoutViewer"] == "GoT-R1 Layout Viewer"
    assert set(module.NODE_CLASS_MAPPINGS) == set(module.NODE_DISPLAY_NAME_MAPPINGS)


def test_a_clone_whose_folder_name_is_not_a_python_name_runs_its_tests(tmp_path):
    """People clone the pack as ComfyUI-GoT-R1; pytest then reads the top __init__.py as a plain file (no package).
    The suite must still run there: a test in such a clone passes instead of erroring at setup."""
    clone = tmp_path / "ComfyUI-GoT-R1"
    (clone / "tests").mkdir(parents=True)
    (clone / "__init__.py").write_text((ROOT / "__init__.py").read_text(encoding="utf-8"), encoding="utf-8")
    (clone / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n', encoding="utf-8")
    (clone / "tests" / "test_one.py").write_text("def test_one():\n    assert True\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=clone,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-2000:]


def test_comfyui_imports_stay_inside_nodes():
    for path in _python_files("gotr1_core", "trainer"):
        assert not (_imported_roots(path) & COMFY_ONLY_MODULES), f"{path} imports ComfyUI"
    assert not (_imported_roots(ROOT / "__init__.py") & COMFY_ONLY_MODULES)


def test_no_pickle_no_remote_code():
    for path in _python_files("gotr1_core", "trainer", "nodes"):
        source = path.read_text(encoding="utf-8")
        assert "pickle" not in _imported_roots(path), path
        assert not re.search(r"trust_remote_code\s*=\s*True", source), path
        for node in ast.walk(ast.parse(source)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                flags = {k.arg: k.value for k in node.keywords}
                assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, \
                    f"{path}:{node.lineno}: torch.load without weights_only=True"


def test_requirements_txt_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[<>=!~ ]", d)[0].lower() for d in project["dependencies"]}
    listed = {
        re.split(r"[<>=!~ ]", line)[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert listed == runtime - {"torch"}  # ComfyUI brings its own torch


def test_pyproject_declares_registry_metadata_and_scripts():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert {"PublisherId", "DisplayName", "Icon", "includes"} <= set(data["tool"]["comfy"])
    assert set(data["project"]["scripts"]) == {"gotr1", "gotr1-train"}
    torch_req = next(d for d in data["project"]["dependencies"] if d.startswith("torch"))
    from packaging.specifiers import SpecifierSet

    assert "2.13.0" in SpecifierSet(torch_req[len("torch"):])


def _module_imports(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports anywhere in its body (a function-level import counts: it is
    still a dependency, only a late one). ``from . import prompts`` depends on the submodule, not the package."""
    graph = {}
    for path in (ROOT / package).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = here.split(".")[:len(here.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                if not target.startswith(package):
                    continue
                submodules = {f"{target}.{a.name}" for a in node.names
                              if (ROOT / target.replace(".", "/") / f"{a.name}.py").exists()}
                found |= submodules if len(submodules) == len(node.names) else {target, *submodules}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith(package)}
        graph[name] = found - {name}
    return graph


def test_core_modules_import_each_other_one_way():
    """No import circle inside the core, not even one broken by a function-level import: what two modules both
    need lives in the lower one (a package's ``__init__`` gathering its modules is not a circle)."""
    graph = _module_imports("gotr1_core")
    circles = []

    def visit(module, path):
        for dep in sorted(graph.get(module, ())):
            if dep in path:
                circles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif len(path) < 12:
                visit(dep, path + [dep])

    for module in sorted(graph):
        if not module.endswith("__init__"):
            visit(module, [module])
    assert not circles, circles[:5]


def test_loading_the_pack_adds_no_heavy_library_to_comfyuis_start():
    """ComfyUI has torch, numpy and PIL loaded when it imports the pack; transformers, scipy and matplotlib wait
    until a node runs (scipy alone added 0.5 s to every server start)."""

    script = ("import importlib.util, sys, torch, numpy, PIL.Image\n"
              f"spec = importlib.util.spec_from_file_location('pack', {str(ROOT / '__init__.py')!r}, "
              f"submodule_search_locations=[{str(ROOT)!r}])\n"
              "module = importlib.util.module_from_spec(spec); sys.modules['pack'] = module\n"
              "spec.loader.exec_module(module)\n"
              "print(sorted(m for m in ('transformers', 'scipy', 'matplotlib', 'diffusers', 'peft') "
              "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
