"""Reading a spec file: YAML or TOML text to plain data, with the line of every key.

``frontends.spec`` checks the data; this module only parses and remembers
positions, so its errors can read like a compiler's (``file:line: key: ...``).
YAML lines come from PyYAML's node marks; tomllib keeps no positions, so for
TOML a small scanner over the (already parsed, hence valid) text finds the line
of each key, table header and array element -- best effort: if it cannot place
a key it reports the nearest enclosing one it could place.
"""

from __future__ import annotations

import os
import re
from typing import Any

KeyPath = tuple  # of str (mapping keys) and int (list indices)


class SpecError(ValueError):
    """A spec file that cannot be used; the message names the file, the line, the key
    path and what was expected. The parts are kept as ``file``, ``line`` (1-based, or
    ``None``), ``key`` (e.g. ``"model.layers[1].units"``) and ``problem``."""

    def __init__(self, file: str, key: str, line: int | None, problem: str):
        self.file, self.key, self.line, self.problem = file, key, line, problem
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


def format_key(path: KeyPath) -> str:
    """``("model", "layers", 1, "units")`` -> ``"model.layers[1].units"``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --------------------------------------------------------------------------- reading


class Source:
    """The parsed file's name and where each key path sits in it."""

    def __init__(self, file: str):
        self.file = file
        self.value_lines: dict[KeyPath, int] = {}  # line where a path's value starts
        self.key_lines: dict[KeyPath, int] = {}    # line of the key itself (or table header)

    def line(self, path: KeyPath, key: bool = False) -> int | None:
        """The line of ``path``'s value (of its key if ``key``: where a key is unknown or
        lacks a required entry), else the key line of its nearest placed ancestor."""
        for n in range(len(path), -1, -1):
            sub = path[:n]
            prefer_value = n == len(path) and not key
            for lines in ((self.value_lines, self.key_lines) if prefer_value
                          else (self.key_lines, self.value_lines)):
                if sub in lines:
                    return lines[sub]
        return None

    def error(self, path: KeyPath, problem: str, key: bool = False) -> SpecError:
        return SpecError(self.file, format_key(path), self.line(path, key), problem)


def _read_text(path) -> tuple[str, str]:
    """``(display name, text)``; any failure is a ``SpecError`` naming the file."""
    on_disk = isinstance(path, (str, os.PathLike))
    name = os.fspath(path) if on_disk else str(path)
    try:
        if on_disk:
            with open(path, "rb") as fh:
                data = fh.read()
        else:  # a Traversable, e.g. DEFAULT_SPEC inside a zipped install
            data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(name, "", None, "no such file") from None
    except IsADirectoryError:
        raise SpecError(name, "", None, "is a directory, not a spec file") from None
    except OSError as err:
        raise SpecError(name, "", None, f"cannot read: {err.strerror or err}") from None
    try:
        return name, data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise SpecError(name, "", line, f"not UTF-8 text (byte {err.start})") from None


def parse(path) -> tuple[Any, Source]:
    name, text = _read_text(path)
    suffix = os.path.splitext(name)[1].lower()
    source = Source(name)
    if suffix in (".yaml", ".yml"):
        return _parse_yaml(text, source), source
    if suffix == ".toml":
        return _parse_toml(text, source), source
    raise SpecError(name, "", None, f"unknown spec file type {suffix or '(no extension)'!r}; "
                    "expected .yaml, .yml or .toml")


def _yaml_loader():
    """``yaml.SafeLoader`` that also reads ``1e-4`` as a float (YAML 1.2, and what
    everyone writes for a regularisation constant; YAML 1.1 wants ``1.0e-4``
    and would silently give the string ``"1e-4"``)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"))
    return Loader


def _parse_yaml(text: str, source: Source):
    import yaml

    loader = _yaml_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError(source.file, "", None, "empty spec file; expected a mapping with "
                            "a 'model' section")
        _yaml_positions(node, (), source, set())
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        if mark is None:
            raise SpecError(source.file, "", None, f"invalid YAML: {problem}") from None
        raise SpecError(source.file, "", mark.line + 1,
                        f"invalid YAML: {problem} (line {mark.line + 1}, column "
                        f"{mark.column + 1})") from None
    finally:
        loader.dispose()


def _yaml_positions(node, path: KeyPath, source: Source, active: set[int]) -> None:
    """Record the line of every key and value under ``node`` (aliases visited once per
    branch: a recursive anchor would otherwise never end)."""
    import yaml

    if id(node) in active:
        return
    source.value_lines.setdefault(path, node.start_mark.line + 1)
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                _yaml_positions(value_node, path, source, active)
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                raise SpecError(source.file, format_key(path + (key,)), line,
                                f"duplicate key {key!r} (first at line {seen[key]})")
            seen[key] = line
            source.key_lines[path + (key,)] = line
            source.value_lines[path + (key,)] = value_node.start_mark.line + 1
            _yaml_positions(value_node, path + (key,), source, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _yaml_positions(item, path + (i,), source, active)
    active.discard(id(node))


def _parse_toml(text: str, source: Source):
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise SpecError(source.file, "", None, "reading TOML needs Python 3.11+ (tomllib) "
                            "or the tomli package; use a .yaml spec instead") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        found = re.search(r"line (\d+)", str(err))
        line = int(found.group(1)) if found else None
        if line is None and "end of document" in str(err):
            line = text.count("\n") + (not text.endswith("\n"))
        raise SpecError(source.file, "", line, f"invalid TOML: {err}") from None
    try:
        _TomlPositions(text, source, tomllib).scan()
    except Exception:  # noqa: BLE001 -- positions are best effort; the data is already valid
        pass
    return data


class _TomlPositions:
    """Finds the line of each key, table header and array element in valid TOML text.

    A small scanner rather than a parser: tomllib has already accepted the text,
    so it only tracks tables (``[a.b]``, ``[[a.b]]`` with their running index),
    keys (bare, quoted, dotted) and the nesting of arrays and inline tables,
    skipping strings (all four kinds) and comments.
    """

    def __init__(self, text: str, source: Source, toml_module):
        self.s, self.i, self.lineno, self.source = text, 0, 1, source
        self.toml = toml_module  # decodes quoted keys exactly as the parser did
        self.array_tables: dict[KeyPath, int] = {}

    def scan(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_space(newlines=True)
            if self.i >= len(self.s):
                return
            if self.s.startswith("[[", self.i):
                self.i += 2
                parts = self.key(("]]",))
                self.i += 2
                array = self.resolve(parts[:-1]) + (parts[-1],)
                index = self.array_tables.get(array, 0)
                self.array_tables[array] = index + 1
                table = array + (index,)
                self.mark_parents(array)
                self.mark(array, key=True, keep=True)
                self.mark(table, key=True)
            elif self.s[self.i] == "[":
                self.i += 1
                table = self.resolve(self.key(("]",)))
                self.i += 1
                self.mark_parents(table)
                self.mark(table, key=True)
            else:
                self.key_value(table)

    def resolve(self, parts: KeyPath) -> KeyPath:
        """A header's key path with the current index of each array of tables in it."""
        out: KeyPath = ()
        for part in parts:
            out += (part,)
            if out in self.array_tables:
                out += (self.array_tables[out] - 1,)
        return out

    def mark(self, path: KeyPath, key: bool = False, keep: bool = False) -> None:
        for table in (self.source.key_lines, self.source.value_lines) if key else (
                self.source.value_lines,):
            if keep:
                table.setdefault(path, self.lineno)
            else:
                table[path] = self.lineno

    def mark_parents(self, path: KeyPath) -> None:
        """A header ``[a.b.c]`` defines ``a`` and ``a.b`` here unless they appeared before."""
        for n in range(1, len(path)):
            self.mark(path[:n], key=True, keep=True)

    def key_value(self, table: KeyPath) -> None:
        parts = self.key(("=",))
        self.i += 1  # '='
        path = table + parts
        for n in range(len(table) + 1, len(path)):  # dotted keys define their parents
            self.mark(path[:n], key=True, keep=True)
        self.source.key_lines[path] = self.lineno
        self.skip_space()
        self.value(path)

    def key(self, stops: tuple[str, ...]) -> KeyPath:
        """A (dotted) key up to one of ``stops``, which is not consumed."""
        parts = []
        while True:
            self.skip_space()
            if self.s[self.i] in "\"'":
                start = self.i
                self.skip_string()
                parts.append(next(iter(self.toml.loads(self.s[start:self.i] + " = 0"))))
            else:
                found = re.compile(r"[A-Za-z0-9_-]+").match(self.s, self.i)
                parts.append(found.group())
                self.i = found.end()
            self.skip_space()
            if self.s[self.i] == ".":
                self.i += 1
                continue
            if any(self.s.startswith(stop, self.i) for stop in stops):
                return tuple(parts)
            raise ValueError(f"unexpected {self.s[self.i]!r} in a key")

    def value(self, path: KeyPath) -> None:
        self.mark(path)
        c = self.s[self.i]
        if c == "[":
            self.i += 1
            index = 0
            while True:
                self.skip_space(newlines=True)
                if self.s[self.i] == "]":
                    self.i += 1
                    return
                self.value(path + (index,))
                index += 1
                self.skip_space(newlines=True)
                if self.s[self.i] == ",":
                    self.i += 1
        elif c == "{":
            self.i += 1
            while True:
                self.skip_space(newlines=True)
                if self.s[self.i] == "}":
                    self.i += 1
                    return
                self.key_value(path)
                self.skip_space(newlines=True)
                if self.s[self.i] == ",":
                    self.i += 1
        elif c in "\"'":
            self.skip_string()
        else:
            found = re.compile(r"[^,\]}#\n]*").match(self.s, self.i)
            self.i = found.end()

    def skip_space(self, newlines: bool = False) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in " \t\r":
                self.i += 1
            elif c == "#":
                while self.i < len(s) and s[self.i] != "\n":
                    self.i += 1
            elif c == "\n" and newlines:
                self.i += 1
                self.lineno += 1
            else:
                return

    def skip_string(self) -> None:
        s, quote = self.s, self.s[self.i]
        escapes = quote == '"'
        delimiter = quote * 3 if s.startswith(quote * 3, self.i) else quote
        self.i += len(delimiter)
        while not s.startswith(delimiter, self.i):
            if escapes and s[self.i] == "\\":
                self.i += 1
            if s[self.i] == "\n":
                self.lineno += 1
            self.i += 1
        self.i += len(delimiter)
        if len(delimiter) == 3:  # up to two quotes may end the content: """a"""""
            for _ in range(2):
                if self.i < len(s) and s[self.i] == quote:
                    self.i += 1
