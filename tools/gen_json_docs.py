"""Write docs/json.md and docs/schema/<command>.json from the records (``migctl.records.schema``).

    python tools/gen_json_docs.py          # rewrite them
    python tools/gen_json_docs.py --check  # exit 1 if they are stale (what the test runs)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from migctl.records.schema import COMMANDS, NOT_COMMANDS, command_schema

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HERE = Path(__file__).resolve().parent


def _type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in node:
        return "object"
    if "anyOf" in node:
        return " or ".join(_type(n, defs) for n in node["anyOf"])
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    if "const" in node:
        return json.dumps(node["const"])
    kind = str(node.get("type", "any"))
    if kind == "array":
        return f"array of {_type(node.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in node and isinstance(node["additionalProperties"], dict):
        return f"object of {_type(node['additionalProperties'], defs)}"
    return {"integer": "int", "string": "str", "number": "float", "boolean": "bool", "null": "null"}.get(kind, kind)


def _object_of(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    """The record a property holds (directly, in an array, or as the non-null branch)."""
    if "$ref" in node:
        found: dict[str, Any] = defs[node["$ref"].rsplit("/", 1)[-1]]
        return found
    if node.get("type") == "array":
        return _object_of(node.get("items", {}), defs)
    for branch in node.get("anyOf", []):
        sub = _object_of(branch, defs)
        if sub is not None:
            return sub
    return None


def _fields(obj: dict[str, Any], defs: dict[str, Any], depth: int, seen: tuple[str, ...]) -> list[str]:
    lines = []
    for name, prop in obj.get("properties", {}).items():
        desc = prop.get("description", "")
        text = " ".join(desc.replace("``", "`").split())
        lines.append(f"{'  ' * depth}- `{name}` ({_type(prop, defs)})" + (f": {text}" if text else ""))
        sub = _object_of(prop, defs)
        if sub is not None and sub.get("properties") and str(id(sub)) not in seen:
            lines += _fields(sub, defs, depth + 1, (*seen, str(id(sub))))
    return lines


def render() -> dict[Path, str]:
    files: dict[Path, str] = {}
    parts = [(HERE / "json_docs_intro.md").read_text()]
    for c in COMMANDS:
        schema = command_schema(c.record)
        defs = schema.get("$defs", {})
        title = f"`{c.command}` (any command that fails)" if c.command in NOT_COMMANDS else f"`{c.command}`"
        link = f"[`schema/{c.slug}.json`](schema/{c.slug}.json)"
        parts.append(f"## {title}\n\n{c.summary} Schema: {link}.\n\n")
        parts.append("\n".join(_fields(schema, defs, 0, ())) + "\n\n")
        files[DOCS / "schema" / f"{c.slug}.json"] = json.dumps(schema, indent=2) + "\n"
    parts.append((HERE / "json_docs_outro.md").read_text())
    files[DOCS / "json.md"] = "".join(parts)
    return files


def main(argv: list[str]) -> int:
    files = render()
    if "--check" in argv:
        stale = [str(p.relative_to(ROOT)) for p, text in files.items() if not p.exists() or p.read_text() != text]
        if stale:
            print("stale, run python tools/gen_json_docs.py: " + ", ".join(stale))
            return 1
        return 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
