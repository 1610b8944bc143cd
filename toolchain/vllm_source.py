"""vLLM's own source, per supported release: fetched from PyPI, verified, cached, and read for what it accepts.

vLLM cannot be installed here (its wheels need CUDA torch), so its truth is read as text: the release's source
distribution is downloaded once (`https://pypi.org/pypi/vllm/json` names it), kept only when its sha256 equals the
one facts/engines.py pins, and its Python files are unpacked into the llmplane cache. `surface(version)` parses them
into what facts/engines.py loads at validation time; `write` records that into facts/engine_surface/, and the tests
re-read every release's source and compare, so the recorded surface never drifts from the source.

    python -m llmplane.toolchain.vllm_source fetch          # every supported release, into the cache
    python -m llmplane.toolchain.vllm_source write          # facts/engine_surface/<version>.json from the source
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import re
import shutil
import tarfile
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path

from llmplane.facts.engines import RELEASES, SURFACES
from llmplane.toolchain import gotools

PYPI_INDEX = "https://pypi.org/pypi/vllm/json"
TIMEOUT_S = 60
FLAG = re.compile(r"^--[a-z0-9][a-z0-9-]*$")
METRIC = re.compile(r"""\bname\s*=\s*["'](vllm:[a-z][a-z0-9_:]*)["']""")
"""A metric family's definition: vLLM passes every family's name as `name="vllm:..."` (keyword or assignment)."""
ARG_CLASSES = ("EngineArgs", "FrontendArgs")
"""The dataclasses `vllm serve` derives its options from (vllm/engine/arg_utils.py, the frontend's cli_args.py);
their base classes are followed by name (0.34 moved the frontend's options into a base class of another module)."""


class SourceRefused(RuntimeError):
    """A download whose bytes are not the release PyPI published (sha256 mismatch): never unpacked."""


def release_dir(version: str) -> Path:
    return gotools.cache_root() / "vllm" / version


def source_root(version: str) -> Path | None:
    """The unpacked `vllm/` package of a fetched release, or None when it has not been fetched."""
    root = release_dir(version) / "src"
    return root / "vllm" if (root / ".verified").is_file() else None


def require(version: str) -> Path:
    found = source_root(version)
    if found is None:
        raise FileNotFoundError(f"vLLM {version}'s source is not in the cache: run `make test-setup` "
                                f"(python -m llmplane.toolchain.vllm_source fetch)")
    return found


def _sdist_url(version: str) -> str:
    with urllib.request.urlopen(PYPI_INDEX, timeout=TIMEOUT_S) as response:
        index = json.load(response)
    for entry in index["releases"].get(version, []):
        if entry["packagetype"] == "sdist":
            return urllib.parse.urljoin(PYPI_INDEX, entry["url"])
    raise SourceRefused(f"PyPI lists no source distribution of vllm {version}")


def fetch(version: str) -> Path:
    """Download, verify and unpack one release's Python source (about 20 to 50 MB per release)."""
    found = source_root(version)
    if found is not None:
        return found
    expected = RELEASES[version].sdist_sha256
    with urllib.request.urlopen(_sdist_url(version), timeout=TIMEOUT_S) as response:
        data = response.read()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise SourceRefused(f"vllm-{version}.tar.gz has sha256 {actual}, PyPI published {expected}")
    target = release_dir(version) / "src"
    shutil.rmtree(target, ignore_errors=True)
    prefix = f"vllm-{version}/"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            name = member.name.removeprefix(prefix)
            if member.isfile() and name.startswith("vllm/") and name.endswith(".py") and ".." not in name:
                path = target / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(archive.extractfile(member).read())
    (target / ".verified").write_text(actual + "\n")
    return target / "vllm"


@cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _fields(classes: dict[str, list[ast.ClassDef]], name: str, seen: set[str]) -> dict[str, str]:
    """Annotated fields of every class of that name and of its bases (by name), with their annotation's text."""
    fields: dict[str, str] = {}
    for node in classes.get(name, []):
        for base in node.bases:
            base_name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
            if base_name and base_name not in seen:
                seen.add(base_name)
                fields |= _fields(classes, base_name, seen)
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                fields[item.target.id] = ast.unparse(item.annotation)
    return fields


def _class_index(root: Path, names: tuple[str, ...]) -> dict[str, list[ast.ClassDef]]:
    """The module-level classes of those names and, transitively, of their bases, wherever they are defined (only
    the files that define one are parsed)."""
    texts = {path: path.read_text() for path in sorted(root.rglob("*.py"))}
    found: dict[str, list[ast.ClassDef]] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found[name] = [node for path, text in texts.items() if f"class {name}" in text
                       for node in _parsed(path).body if isinstance(node, ast.ClassDef) and node.name == name]
        todo += [base.id for node in found[name] for base in node.bases if isinstance(base, ast.Name)]
    return found


def _literal_flags(path: Path) -> set[str]:
    """Option strings written out in `add_argument` calls (`--served-model-name`, deprecated spellings)."""
    flags: set[str] = set()
    for node in ast.walk(_parsed(path)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and FLAG.match(arg.value):
                    flags.add(arg.value[2:])
    return flags


def flags(root: Path) -> set[str]:
    """`vllm serve` options of the release: one per field of its argument dataclasses (bools also as `no-`), and
    those added by name."""
    classes = _class_index(root, ARG_CLASSES)
    found: set[str] = set()
    for name in ARG_CLASSES:
        for field, annotation in _fields(classes, name, {name}).items():
            flag = field.replace("_", "-")
            found.add(flag)
            if re.fullmatch(r"bool( \| None)?", annotation):
                found.add(f"no-{flag}")
    for module in ("engine/arg_utils.py", "entrypoints/openai/cli_args.py", "entrypoints/common/cli_args.py",
                   "entrypoints/cli/serve.py"):
        if (root / module).is_file():
            found |= _literal_flags(root / module)
    return found


def environment(root: Path) -> set[str]:
    """Keys of vllm/envs.py's `environment_variables` table: every variable vLLM reads."""
    for node in _parsed(root / "envs.py").body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if getattr(target, "id", None) == "environment_variables" and isinstance(node.value, ast.Dict):
            return {key.value for key in node.value.keys if isinstance(key, ast.Constant)}
    raise KeyError("environment_variables not in vllm/envs.py")


def _hidden_nodes(tree: ast.AST) -> list[ast.AST]:
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.If) and "show_hidden_metrics" in ast.unparse(node.test)]


def metrics(root: Path) -> tuple[set[str], set[str]]:
    """(exported by default, exported only with --show-hidden-metrics-for-version): every `vllm:` family the
    release's source names, the hidden ones being those created under an `if self.show_hidden_metrics` branch."""
    shown: set[str] = set()
    hidden: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        if "vllm:" not in text:
            continue
        names = set(METRIC.findall(text))
        if not names:
            continue
        gated = {name for node in _hidden_nodes(_parsed(path)) for name in METRIC.findall(ast.unparse(node))}
        hidden |= gated
        shown |= names - gated
    return shown, hidden - shown


def _literal_values(module: ast.Module, name: str) -> set[str]:
    """The strings a module-level `Name = Literal[...]` alias allows, following aliases it names."""
    aliases = {node.targets[0].id: node.value for node in module.body
               if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}

    def resolve(node: ast.AST) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.Name) and node.id in aliases:
            return resolve(aliases[node.id])
        if isinstance(node, ast.Subscript):
            inner = node.slice
            return set().union(*(resolve(e) for e in (inner.elts if isinstance(inner, ast.Tuple) else [inner])))
        if isinstance(node, ast.BinOp):
            return resolve(node.left) | resolve(node.right)
        return set()

    if name not in aliases:
        return set()
    return resolve(aliases[name])


def _constant(path: Path, name: str):
    for node in _parsed(path).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(f"{name} not in {path}")


def load_formats(root: Path) -> set[str]:
    """The `--load-format` values the release's model loader registry names."""
    module = _parsed(root / "model_executor/model_loader/__init__.py")
    found = _literal_values(module, "LoadFormats")
    for node in ast.walk(module):
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
            if "runai_streamer" in keys:
                found |= keys
    return found


def surface(version: str) -> dict:
    """What one fetched release accepts and emits, as facts/engines.py records it."""
    root = require(version)
    shown, hidden = metrics(root)
    cache_config = _parsed(root / "config/cache.py")
    speculative = root / "config/speculative.py"
    loader = (root / "model_executor/model_loader/runai_streamer_loader.py").read_text()
    return {
        "version": version,
        "flags": sorted(flags(root)),
        "environment": sorted(environment(root)),
        "metrics": sorted(shown),
        "hidden_metrics": sorted(hidden),
        "finish_reasons": list(_constant(root / "v1/engine/__init__.py", "FINISH_REASON_STRINGS")),
        "load_formats": sorted(load_formats(root)),
        "kv_cache_dtypes": sorted(_literal_values(cache_config, "CacheDType")),
        "speculative_methods": sorted(_literal_values(_parsed(speculative), "SpeculativeMethod")),
        "kv_offloading_backends": sorted(_literal_values(cache_config, "KVOffloadingBackend")),
        "streamer_distributed": '"distributed"' in loader,
    }


def write(version: str) -> Path:
    path = SURFACES / f"{version}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(surface(version), indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmplane.toolchain.vllm_source",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("fetch", "write"))
    parser.add_argument("versions", nargs="*", help="releases (default: every supported one)")
    args = parser.parse_args(argv)
    for version in args.versions or list(RELEASES):
        if version not in RELEASES:
            parser.error(f"vLLM {version} is not a supported release ({', '.join(RELEASES)}): add it to "
                         "facts/engines.py first")
        fetch(version)
        print(write(version) if args.command == "write" else f"vLLM {version}: {source_root(version)}")


if __name__ == "__main__":
    main()
