"""The one import name llmplane ships under: `llmplane.spec`, `llmplane.components`, `llmplane.stacks`, ... so a
consumer's own `components` or `stacks` never collides with ours.

The packages keep their folders at the repository's top level (facts/, spec/, components/, ...). In a checkout
this package's path is that top level, so `llmplane.components` is `components/`; in an installed wheel the
packages sit inside this one (pyproject.toml's package-dir)."""

from pathlib import Path

_HERE = Path(__file__).resolve().parent
if not (_HERE / "components").is_dir():
    __path__.append(str(_HERE.parent))
