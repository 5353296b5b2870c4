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
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise YamlProblem(f"{where}{exc.problem or exc.context or 'not valid YAML'}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"not valid YAML: {exc}") from None
