"""Parse the tile IR's textual form (see printer.py) back into a Module."""
from __future__ import annotations

import json
import re
from typing import Optional

from ..diagnostics import Location
from .core import OPS, Function, Module, Region, Value
from .types import SCALAR_NAMES, parse_type

_TOKEN = re.compile(r"""
    (?P<newline>\n)
  | (?P<space>[ \t\r]+|//[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<value>%[A-Za-z0-9_.<>]+)
  | (?P<symbol>@[A-Za-z_][A-Za-z0-9_.$]*)
  | (?P<number>-?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+)|-?inf\b|nan\b)
  | (?P<typed>(?:ptr|vec|var|tmap_im2col|tmap)<)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[=,:(){}\[\]^])
""", re.VERBOSE)


class ParseError(ValueError):
    pass


class _Lexer:
    def __init__(self, text: str):
        self.tokens: list[tuple[str, str, int]] = []
        pos, line = 0, 1
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise ParseError(f"line {line}: unexpected character {text[pos]!r}")
            kind = m.lastgroup
            if kind == "typed":
                end = _match_angle(text, m.end(), line)
                self.tokens.append(("type", text[pos:end], line))
                pos = end
                continue
            if kind != "space":
                self.tokens.append((kind, m.group(), line))
            line += kind == "newline"
            pos = m.end()
        self.tokens.append(("eof", "", line))
        self.i = 0

    def peek(self, ahead: int = 0):
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str):
        kind, value, line = self.next()
        if value != text:
            raise ParseError(f"line {line}: expected {text!r}, found {value or kind!r}")

    def accept(self, text: str) -> bool:
        if self.peek()[1] == text and self.peek()[0] in ("punct", "ident"):
            self.i += 1
            return True
        return False

    def skip_newlines(self):
        while self.peek()[0] == "newline":
            self.i += 1


def _string(text: str, line: int) -> str:
    """A quoted string token's value (JSON's escapes, as the printer writes them)."""
    try:
        return json.loads(text)
    except ValueError as error:
        raise ParseError(f"line {line}: bad string {text}: {error}") from None


def _match_angle(text: str, pos: int, line: int) -> int:
    depth = 1
    while pos < len(text) and depth:
        depth += {"<": 1, ">": -1}.get(text[pos], 0)
        pos += 1
    if depth:
        raise ParseError(f"line {line}: unclosed '<' in a type")
    return pos


class Parser:
    def __init__(self, text: str):
        self.lex = _Lexer(text)
        self.values: dict[str, Value] = {}

    # -- pieces -----------------------------------------------------------------------
    def type(self):
        kind, text, line = self.lex.next()
        if kind == "type" or (kind == "ident" and (text in SCALAR_NAMES or text == "tmap")):
            try:
                return parse_type(text)
            except ValueError as error:   # (a known shape with a bad part: vec<0xf32>, ptr<foo>, tmap<f32, 8>)
                raise ParseError(f"line {line}: bad type {text!r}: {error}") from None
        raise ParseError(f"line {line}: expected a type, found {text!r}")

    def attr_value(self):
        kind, text, line = self.lex.peek()
        if text == "[":
            self.lex.next()
            items = []
            while not self.lex.accept("]"):
                items.append(self.attr_value())
                self.lex.accept(",")
            return tuple(items)
        if kind == "type" or (kind == "ident" and (text in SCALAR_NAMES or text == "tmap")):
            return self.type()
        self.lex.next()
        if kind == "string":
            return _string(text, line)
        if kind == "number":
            if re.fullmatch(r"-?\d+", text):
                return int(text)
            return float(text)
        if kind == "ident" and text in ("true", "false"):
            return text == "true"
        raise ParseError(f"line {line}: expected an attribute value, found {text!r}")

    def attrs(self) -> dict:
        self.lex.expect("{")
        attrs = {}
        while not self.lex.accept("}"):
            kind, key, line = self.lex.next()
            if kind != "ident":
                raise ParseError(f"line {line}: expected an attribute name, found {key!r}")
            self.lex.expect("=")
            attrs[key] = self.attr_value()
            self.lex.accept(",")
        return attrs

    def at_attrs(self) -> bool:
        return self.lex.peek()[1] == "{" and self.lex.peek(1)[0] == "ident" and self.lex.peek(2)[1] == "="

    def use(self) -> Value:
        kind, name, line = self.lex.next()
        if kind != "value":
            raise ParseError(f"line {line}: expected a value, found {name!r}")
        if name not in self.values:
            raise ParseError(f"line {line}: use of undefined value {name}")
        return self.values[name]

    def define(self, name: str, value: Value, line: int):
        if name in self.values:
            raise ParseError(f"line {line}: value {name} defined twice")
        self.values[name] = value

    def typed_args(self) -> list[tuple[str, object, int]]:
        self.lex.expect("(")
        args = []
        while not self.lex.accept(")"):
            kind, name, line = self.lex.next()
            if kind != "value":
                raise ParseError(f"line {line}: expected an argument name, found {name!r}")
            self.lex.expect(":")
            args.append((name, self.type(), line))
            self.lex.accept(",")
        return args

    # -- structure --------------------------------------------------------------------
    def region(self, region: Optional[Region] = None) -> Region:
        self.lex.expect("{")
        if region is None:
            region = Region()
            if self.lex.peek()[1] == "^":
                self.lex.next()
                args = self.typed_args()
                region = Region([t for _, t, _ in args])
                for (name, _, line), value in zip(args, region.args):
                    self.define(name, value, line)
        while True:
            self.lex.skip_newlines()
            if self.lex.accept("}"):
                return region
            self.op(region)

    def op(self, region: Region):
        names = []
        line = self.lex.peek()[2]
        while self.lex.peek()[0] == "value":
            names.append(self.lex.next()[1])
            if not self.lex.accept(","):
                self.lex.expect("=")
                break
        kind, opname, line = self.lex.next()
        if kind != "ident" or opname not in OPS:
            raise ParseError(f"line {line}: unknown op {opname!r}")
        operands = []
        if self.lex.peek()[0] == "value":
            operands.append(self.use())
            while self.lex.accept(","):
                operands.append(self.use())
        attrs = self.attrs() if self.at_attrs() else {}
        types = []
        if self.lex.accept(":"):
            types.append(self.type())
            while self.lex.accept(","):
                types.append(self.type())
        if len(types) != len(names):
            raise ParseError(f"line {line}: '{opname}' names {len(names)} results but gives {len(types)} types")
        loc = self.location()
        regions = []
        while self.lex.peek()[1] == "{":
            regions.append(self.region())
        op = OPS[opname](operands, types, attrs, regions if regions else None, loc)
        for name, value in zip(names, op.results):
            self.define(name, value, line)
        region.append(op)

    def location(self) -> Optional[Location]:
        if not self.lex.accept("loc"):
            return None
        self.lex.expect("(")
        file = self._location_part("string")
        self.lex.expect(":")
        line = self._location_part("number")
        self.lex.expect(":")
        col = self._location_part("number")
        self.lex.expect(")")
        return Location(file, line, col)

    def _location_part(self, kind: str):
        """loc("file":line:col)'s next part: the file (a string) or a line or column (an int)."""
        found, text, line = self.lex.next()
        if found != kind or kind == "number" and not re.fullmatch(r"\d+", text):
            raise ParseError(f"line {line}: expected {'a quoted file name' if kind == 'string' else 'an int'} "
                             f"in loc(...), found {text!r}")
        return _string(text, line) if kind == "string" else int(text)

    def function(self) -> Function:
        self.lex.expect("kernel")
        kind, symbol, line = self.lex.next()
        if kind != "symbol":
            raise ParseError(f"line {line}: expected @name after 'kernel', found {symbol!r}")
        self.values = {}
        args = self.typed_args()
        attrs = self.attrs() if self.at_attrs() else {}
        fn = Function(symbol[1:], [t for _, t, _ in args], attrs=attrs)
        for (name, _, line), value in zip(args, fn.args):
            self.define(name, value, line)
        self.region(fn.body)
        return fn

    def module(self) -> Module:
        module = Module()
        self.lex.skip_newlines()
        if self.lex.accept("module"):
            module.attrs = self.attrs()
        while True:
            self.lex.skip_newlines()
            if self.lex.peek()[0] == "eof":
                return module
            module.functions.append(self.function())


def parse_module(text: str) -> Module:
    return Parser(text).module()
