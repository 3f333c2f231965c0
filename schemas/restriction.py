"""Restrictions typed on the command line (``--where``), parsed so that they can only restrict.

A ``--where`` text becomes part of the SQL that workers run with their own privileges. It is
tokenised and rebuilt from a small grammar of attribute conditions, so that a restriction can
never carry a second statement, a comment, a sub-query or a function call::

    condition  := attribute OP literal | attribute [NOT] IN (literal, ...)
                | attribute [NOT] LIKE 'text' | attribute IS [NOT] NULL
                | NOT condition | ( expression )
    expression := condition ((AND | OR) condition)*
    OP         := = | != | <> | < | <= | > | >=
    literal    := integer | decimal number | 'single-quoted text' (a quote doubled as '')

Examples: ``seed = 1``, ``seed IN (1, 2) AND model_fn LIKE 'mylab.%'``,
``trainer_hash = '5d1e...'``.
"""

from __future__ import annotations

import re

__all__ = ["RestrictionError", "parse_where"]


class RestrictionError(ValueError):
    """A ``--where`` text that is not a plain attribute restriction."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\\x00]|'')*')
      | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<op><=|>=|<>|!=|=|<|>)
      | (?P<paren>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL", "TRUE", "FALSE"}
_MAX_LENGTH = 4000


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise RestrictionError(
                f"--where {text!r}: cannot read {text[position:position + 20].strip()!r} at "
                f"character {position + 1}. A restriction is attribute conditions joined by AND/OR, "
                "e.g. \"seed = 1 AND model_fn LIKE 'mylab.%'\"; ';', comments, quotes other than "
                "'...', and function calls are refused."
            )
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "word":
            upper = value.upper()
            if upper in _KEYWORDS:
                kind, value = "keyword", upper
        tokens.append((kind, value))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def fail(self, expected: str):
        found = self.tokens[self.at][1] if self.at < len(self.tokens) else "the end"
        raise RestrictionError(
            f"--where {self.text!r}: expected {expected}, found {found!r}. A restriction is "
            "attribute conditions joined by AND/OR, e.g. \"seed IN (1, 2) AND model_fn LIKE 'mylab.%'\"."
        )

    def peek(self, kind: str, value: str | None = None) -> bool:
        if self.at >= len(self.tokens):
            return False
        k, v = self.tokens[self.at]
        return k == kind and (value is None or v == value)

    def take(self, kind: str, value: str | None = None, expected: str = "") -> str:
        if not self.peek(kind, value):
            self.fail(expected or value or kind)
        self.at += 1
        return self.tokens[self.at - 1][1]

    def expression(self, depth: int = 0) -> str:
        if depth > 20:
            self.fail("fewer nested parentheses")
        parts = [self.condition(depth)]
        while self.peek("keyword", "AND") or self.peek("keyword", "OR"):
            parts.append(self.take("keyword"))
            parts.append(self.condition(depth))
        return " ".join(parts)

    def condition(self, depth: int) -> str:
        if self.peek("keyword", "NOT"):
            self.take("keyword", "NOT")
            return f"NOT {self.condition(depth)}"
        if self.peek("paren", "("):
            self.take("paren", "(")
            inner = self.expression(depth + 1)
            self.take("paren", ")", "')'")
            return f"({inner})"
        attribute = self.take("word", expected="an attribute name")
        if self.peek("paren", "("):
            self.fail("a comparison after the attribute name (function calls are refused)")
        if self.peek("op"):
            return f"{attribute} {self.take('op')} {self.literal()}"
        negated = "NOT " if self.peek("keyword", "NOT") else ""
        if negated:
            self.take("keyword", "NOT")
        if self.peek("keyword", "IN"):
            self.take("keyword", "IN")
            self.take("paren", "(", "'(' after IN")
            values = [self.literal()]
            while self.peek("paren", ","):
                self.take("paren", ",")
                values.append(self.literal())
            self.take("paren", ")", "')' closing the IN list")
            return f"{attribute} {negated}IN ({', '.join(values)})"
        if self.peek("keyword", "LIKE"):
            self.take("keyword", "LIKE")
            return f"{attribute} {negated}LIKE {self.take('string', expected='a quoted pattern')}"
        if not negated and self.peek("keyword", "IS"):
            self.take("keyword", "IS")
            not_null = "NOT " if self.peek("keyword", "NOT") else ""
            if not_null:
                self.take("keyword", "NOT")
            self.take("keyword", "NULL", "NULL")
            return f"{attribute} IS {not_null}NULL"
        self.fail("a comparison (=, !=, <, <=, >, >=, IN, LIKE, IS NULL)")

    def literal(self) -> str:
        for kind in ("string", "number"):
            if self.peek(kind):
                return self.take(kind)
        if any(self.peek("keyword", word) for word in ("TRUE", "FALSE", "NULL")):
            return self.take("keyword")
        self.fail("a number or a 'quoted' value")

    def parse(self) -> str:
        if not self.tokens:
            raise RestrictionError("--where is empty; leave it out to work on every job")
        sql = self.expression()
        if self.at != len(self.tokens):
            self.fail("AND, OR or the end")
        return sql


def parse_where(text: str) -> str:
    """The SQL of a ``--where`` restriction, rebuilt from its parsed conditions.

    Args:
        text: e.g. ``"seed = 1 AND model_fn LIKE 'mylab.%'"``.

    Returns:
        An equivalent SQL condition holding only attribute names, comparison operators,
        literals, AND/OR/NOT and parentheses.

    Raises:
        RestrictionError: anything else (a ';', a comment, a function call, a sub-query, an
            unbalanced parenthesis, a backslash inside quotes), naming where it was found.

    Examples:
        >>> parse_where("seed in (1,2) and model_fn like 'a%'")
        "seed IN (1, 2) AND model_fn LIKE 'a%'"
    """
    if not isinstance(text, str):
        raise RestrictionError(f"--where must be text, not {type(text).__name__}")
    if len(text) > _MAX_LENGTH:
        raise RestrictionError(f"--where is {len(text)} characters long; at most {_MAX_LENGTH} are accepted")
    return _Parser(text).parse()
