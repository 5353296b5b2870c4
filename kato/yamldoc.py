"""YAML read strictly: a duplicate key is an error (not "the last one wins"), and every error
says the line and column where it is."""

from __future__ import annotations

from typing import Any

import yaml


class YamlProblem(ValueError):
    """What is wrong with a YAML document, starting with `line N, column M:`."""


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that names a key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` (the keys it brings may be overridden)
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise YamlProblem(
                        f"line {line}, column {key_node.start_mark.column + 1}: "
                        f"the key {key!r} is given twice (first on line {first})"
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load(text: str | bytes) -> Any:
    """One YAML document; YamlProblem names the line and column of the first thing wrong."""
    return load_marked(text)[0]


def load_marked(text: str | bytes) -> tuple[Any, dict[str, int]]:
    """One YAML document and the line of each key and list item in it, by the path validation
    names it with (`ssh.user`, `nodes[1]`, `nodes[1].address`): a problem in a valid document
    can then say where it is (see `line_of`)."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise YamlProblem(f"{where}{exc.problem or exc.context or 'not valid YAML'}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    if node is not None:
        _mark_lines(node, "", lines, set())
    return document, lines


def _mark_lines(node: yaml.Node, path: str, lines: dict[str, int], seen: set[int]) -> None:
    """Each node is walked once: below an alias (`*base`) a path takes its key's line, and a
    document of nested aliases costs no more than its size."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            at = f"{path}.{key.value}" if path else str(key.value)
            lines.setdefault(at, key.start_mark.line + 1)
            _mark_lines(value, at, lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            at = f"{path}[{index}]"
            lines.setdefault(at, item.start_mark.line + 1)
            _mark_lines(item, at, lines, seen)


def line_of(path: str, lines: dict[str, int]) -> int | None:
    """The line of `path`, else of the nearest key or item holding it (a required key that is
    missing is reported on the line of its mapping)."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None
