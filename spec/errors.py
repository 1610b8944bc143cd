"""Validation problems: each names the field, the bad value and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an environment spec."""

    path: str
    """Dotted path as written in the environment file, e.g. `models.llama-3-8b.versions`."""
    message: str
    """What is wrong, in one line."""
    value: str
    """The offending value, shortened."""
    fix: str
    """What to change."""

    def render(self) -> str:
        """Three lines a person can act on."""
        return f"  - {self.path}: {self.message}\n      value: {self.value}\n      fix:   {self.fix}"


class SpecError(Exception):
    """An environment spec with problems; carries all of them, not just the first."""

    def __init__(self, environment: str, problems: list[Problem]):
        self.environment = environment
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        """The whole report, one screen for a handful of problems."""
        count = len(self.problems)
        head = (
            f"environment '{self.environment}' is invalid ({count} problem{'s' if count != 1 else ''}); "
            "nothing was deployed or changed:"
        )
        return "\n".join([head, *(p.render() for p in self.problems)])


def show(value: Any, limit: int = 80) -> str:
    """A value as it would appear in YAML, cut to one line."""
    text = repr(value) if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_PATTERN_HINTS: tuple[tuple[str, str], ...] = (
    ("@sha256", "reference the image by digest: registry/name:tag@sha256:<64 hex digits>"),
    ("38}", "use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 40 characters"),
    ("0-9A-Za-z", "use a semantic version such as 1.2.0"),
    ("0-9a-f]{64}$", "use the 64 lowercase hex digits of the weights' sha256"),
    ("s3|gs|https", "use an immutable s3://, gs:// or https:// location"),
    ("/\\d{1,2}$", "use an IPv4 CIDR such as 10.20.0.0/16"),
    ("A-Za-z0-9_.-]+(/", "name the file relative to the version's folder, e.g. model-00001-of-00004.safetensors"),
    ("^/[A-Za-z0-9_./-]", "use an absolute folder such as /var/lib/llmplane/model-cache"),
)
"""Fragments of the spec's patterns, first match wins, with the advice they call for."""


def _pattern_hint(pattern: str) -> str:
    return next((hint for fragment, hint in _PATTERN_HINTS if fragment in pattern), f"use a value matching {pattern}")


def inline(part: Any) -> str:
    """A path part or user text as is; quoted when blank or unprintable, so a report keeps one line per fact."""
    text = str(part)
    return text if text.strip() and text.isprintable() else repr(text)


def _fix_for(error: dict[str, Any]) -> str:
    kind, ctx, loc = error["type"], error.get("ctx", {}), error["loc"]
    field = inline(loc[-1]) if loc else "value"
    if loc and isinstance(loc[-1], int):
        field = f"{loc[-2]} entry" if len(loc) > 1 else "entry"
    fixes = {
        "missing": f"add `{field}`",
        "extra_forbidden": f"remove `{field}` or correct its spelling",
        "literal_error": f"use one of {ctx.get('expected', '')}",
        "string_pattern_mismatch": _pattern_hint(str(ctx.get("pattern", ""))),
        "greater_than_equal": f"use a value of at least {ctx.get('ge')}",
        "greater_than": f"use a value above {ctx.get('gt')}",
        "less_than_equal": f"use a value of at most {ctx.get('le')}",
        "less_than": f"use a value below {ctx.get('lt')}",
        "too_short": "add at least one entry",
        "string_too_short": "give a non-empty value",
        "cidr": "use a network address with octets up to 255 and no host bits set, such as 10.20.0.0/16",
        "cron": "use five numeric fields (minute hour day month weekday), e.g. `0 8 * * 1-5`",
        "file_name": "name the file relative to the version's folder, e.g. model-00001-of-00004.safetensors",
    }
    return fixes.get(kind, f"give a valid {field}")


def named_path(data: Any, loc: tuple[Any, ...]) -> str:
    """A dotted path where list items show their `name` (or `version`) instead of an index."""
    parts: list[str] = []
    node = data
    for key in loc:
        label = inline(key)
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            item = node[key]
            if isinstance(item, dict):
                named = item.get("name") or item.get("version")
                label = inline(named) if isinstance(named, (str, int, float)) and not isinstance(named, bool) else label
        parts.append(label)
        node = node[key] if isinstance(node, (list, dict)) and _has(node, key) else None
    return ".".join(parts)


def _has(node: list | dict, key: Any) -> bool:
    return key in node if isinstance(node, dict) else isinstance(key, int) and key < len(node)


def problems_from(error: ValidationError, data: Any) -> list[Problem]:
    """Pydantic's errors, rewritten as Problems with paths as the user wrote them."""
    problems = []
    for err in error.errors():
        loc = tuple(part for part in err["loc"] if not str(part).startswith(("literal[", "function-", "[key]")))
        message = err["msg"][0].lower() + err["msg"][1:]
        if err["type"] == "extra_forbidden":
            message = "unknown setting"
        value = "(missing)" if err["type"] == "missing" else show(err.get("input"))
        problems.append(Problem(named_path(data, loc) or "(top level)", message, value, _fix_for(err)))
    return problems
