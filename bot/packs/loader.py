"""Read YAML rule files safely and turn every problem into a located `RuleIssue`.

Safety first: files over `MAX_BYTES`, YAML aliases (the "billion laughs" bomb) and nesting
deeper than `MAX_DEPTH` are refused from the event stream before any object is built, and only
a safe loader ever builds objects.  Then pydantic validates, and each error's `loc` path is
walked back through ruamel's round-trip line/column marks to the offending key.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .errors import Location, RuleFileError, RuleIssue

MAX_BYTES = 2_000_000
MAX_DEPTH = 40
M = TypeVar("M", bound=BaseModel)
_YAML11_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}


class _Loader(yaml.CSafeLoader):
    """libyaml's safe loader with YAML 1.2 scalars, as ruamel reads them: `no`, `on` and `off`
    stay strings (the negation list has "no"), dates stay strings, `1:30` is not sexagesimal."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML11_TAGS]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


class YamlFile:
    """One parsed rule file: the plain data for validation, and its round-trip tree on demand.

    libyaml (C) parses every file quickly; ruamel's round-trip tree, which knows the line and
    column of every key, is built only when an error has to be located.
    """

    def __init__(self, path: Path, text: str, data: Any) -> None:
        self.path, self.text, self.data = path, text, data
        self._tree: Any = None

    @property
    def tree(self) -> Any:
        if self._tree is None:
            self._tree = YAML(typ="rt").load(self.text)
        return self._tree


def read_yaml(path: Path) -> YamlFile:
    """Parse one YAML file safely or raise RuleFileError with its location."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RuleFileError([RuleIssue(Location(path), f"cannot read file: {exc.strerror}")]) from exc
    if len(raw) > MAX_BYTES:
        raise RuleFileError(
            [RuleIssue(Location(path), f"file is {len(raw):,} bytes", f"split it; the limit is {MAX_BYTES:,}")]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleFileError(
            [RuleIssue(Location(path), f"not UTF-8 at byte {exc.start}", "save the file as UTF-8")]
        ) from exc
    try:
        depth = 0
        for event in yaml.parse(text, Loader=_Loader):  # events first: nothing is built yet
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                raise RuleFileError(
                    [RuleIssue(Location(path, mark.line + 1, mark.column + 1), "YAML aliases (*name) are not allowed",
                               "write the value out in full")]
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    raise RuleFileError(
                        [RuleIssue(Location(path, mark.line + 1, mark.column + 1),
                                   f"nesting deeper than {MAX_DEPTH} levels", "flatten the structure")]
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return YamlFile(path, text, yaml.load(text, Loader=_Loader))  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        if "nesting depth" in str(exc.problem):  # PyYAML >= 6.0.4 stops deep nesting itself, sooner
            raise RuleFileError(
                [RuleIssue(Location(path, line, col), f"nesting deeper than {MAX_DEPTH} levels", "flatten the structure")]
            ) from exc
        raise RuleFileError(
            [RuleIssue(Location(path, line, col), f"invalid YAML: {exc.problem or exc.context}",
                       "check indentation, colons and quotes on this line")]
        ) from exc


def _locate(doc: Any, loc: tuple, path: Path) -> tuple[Location, Any, Any]:
    """Follow a pydantic loc path through ruamel nodes; return the deepest located position."""
    line, col = 1, 1
    node, parent = doc, None
    for part in loc:
        key = "not" if part == "not_" else ("pass" if part == "pass_" else part)
        if isinstance(node, CommentedMap) and key in node:
            line, col = node.lc.key(key)[0] + 1, node.lc.key(key)[1] + 1
            parent, node = node, node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
            line, col = node.lc.item(key)[0] + 1, node.lc.item(key)[1] + 1
            parent, node = node, node[key]
        else:
            break
    return Location(path, line, col), node, parent


def _issues_from(exc: ValidationError, doc: Any, path: Path, model: type[BaseModel]) -> list[RuleIssue]:
    issues = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "list[", "str"))))
        location, node, _ = _locate(doc, loc, path)
        msg, hint = err["msg"], ""
        if err["type"] == "extra_forbidden":
            name = str(loc[-1])
            allowed = _allowed_keys(model, loc[:-1])
            close = difflib.get_close_matches(name, allowed, n=1)
            msg = f"unknown key {name!r}"
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(sorted(allowed))}"
        elif err["type"] == "missing":
            msg = f"missing required key {str(loc[-1])!r}"
            hint = "add it"
        elif err["type"] in ("literal_error", "enum"):
            ctx = err.get("ctx", {})
            expected = ctx.get("expected", "")
            close = difflib.get_close_matches(str(err.get("input")), [e.strip("' ") for e in str(expected).replace(" or ", ",").split(",")], n=1)
            msg = f"{err.get('input')!r} is not allowed here; expected {expected}"
            hint = f"did you mean {close[0]!r}?" if close else ""
        issues.append(RuleIssue(location, msg, hint))
    return issues


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Walk the model along loc to find which keys are allowed at that level."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get("not_" if part == "not" else part)
        if field is None:
            break
        current = _inner_model(field.annotation) or current
    fields = getattr(current, "model_fields", {})
    return [f.alias or name for name, f in fields.items()]


def _inner_model(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def load_model(path: Path, model: type[M], key: str | None = None) -> tuple[M, "LocatedNode"]:
    """Read `path` and validate it (or its top-level `key`) as `model`; raise located errors."""
    f = read_yaml(path)
    if not isinstance(f.data, dict):
        raise RuleFileError([RuleIssue(Location(path, 1, 1), "expected a mapping at the top of the file")])
    data = f.data
    if key is not None:
        if key not in data:
            raise RuleFileError([RuleIssue(Location(path, 1, 1), f"missing top-level key {key!r}")])
        data = data[key]
    node = LocatedNode(f, key)
    try:
        return model.model_validate(_plain(data)), node
    except ValidationError as exc:
        raise RuleFileError(_issues_from(exc, node.tree, path, model)) from None


class LocatedNode:
    """A validated part of a file whose positions can still be asked for (see `line_of`)."""

    def __init__(self, file: YamlFile, key: str | None) -> None:
        self.file, self.key = file, key

    @property
    def tree(self) -> Any:
        tree = self.file.tree
        return tree[self.key] if self.key is not None else tree


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def line_of(doc: Any, *loc: Any) -> tuple[int, int]:
    """The (line, column) of a nested key or item, for errors found after validation."""
    location, _, _ = _locate(doc.tree if isinstance(doc, LocatedNode) else doc, loc, Path("."))
    return location.line, location.column


def load_lexicon_file(path: Path, data: Any) -> None:
    """Add an owner lexicon (YAML) to LexiconData; owner entries win over the shipped sources."""
    from .schema import LexiconFile

    lex, _ = load_model(path, LexiconFile)
    for item in lex.entries:
        generics = [g.strip().lower() for g in (item.generic or "").split(";") if g.strip()]
        data.add(item.name, generics, lex.id, ambiguous=item.ambiguous, owner=True)
    from ..lexicon import key_of

    data.never.update(key_of(w) for w in lex.never)
    data.ambiguous.update(key_of(w) for w in lex.ambiguous)
    data.always.update(key_of(w) for w in lex.always)
    for old, new in lex.rename.items():
        data.rename[old.lower()] = tuple(n.strip().lower() for n in new.split(";") if n.strip())
    data.sources.append(f"{path.name}" + (f" ({lex.attribution})" if lex.attribution else ""))
