"""MLflow's search filter grammar, plus gitrun's extensions, as a tokenizer and parser.

    filter     := or_expr
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | "(" or_expr ")" | comparison
    comparison := identifier op value
                | identifier ["NOT"] ("LIKE" | "ILIKE") string
                | identifier ["NOT"] "IN" "(" value ("," value)* ")"
                | identifier "IS" ["NOT"] "NULL"          (params and tags, as MLflow)
    identifier := [type "."] key        type: metric(s), param(s)/parameter(s), tag(s),
                                              attribute(s)/attr/run, dataset(s),
                                              input(s) (path, digest, kind, context);
                                        the type may be in backticks (`metric`.acc), the
                                        key in backticks or quotes; a whole identifier in
                                        backticks or double quotes is an attribute
    order_by   := identifier ["ASC" | "DESC"]

MLflow's part is AND-joined comparisons; OR, NOT, parentheses, IN on params and tags,
numeric comparison of params and `metrics.<key>.min/.max` are gitrun's (docs/search.md).
Nothing here evaluates text: the parser builds a small tree that `index.py` compiles to SQL
with placeholders.
"""

from __future__ import annotations

import re
from typing import Union

from ..errors import FilterError

METRIC, PARAM, TAG, ATTR, DATASET = "metric", "param", "tag", "attribute", "dataset"
INPUT = "input"  # gitrun: the data a run read (inputs.tsv)
TYPE_ALIASES = {
    "metric": METRIC,
    "metrics": METRIC,
    "param": PARAM,
    "params": PARAM,
    "parameter": PARAM,
    "parameters": PARAM,
    "tag": TAG,
    "tags": TAG,
    "attribute": ATTR,
    "attributes": ATTR,
    "attr": ATTR,
    "run": ATTR,
    "dataset": DATASET,
    "datasets": DATASET,
    "input": INPUT,
    "inputs": INPUT,
}
STRING_ATTRS = ("run_id", "run_name", "status", "artifact_uri", "user_id")
NUMERIC_ATTRS = ("start_time", "end_time")
# MLflow's alternate attribute names (SearchUtils: exactly these spellings), and gitrun's
# run_uuid (MLflow's old name of run_id).
ATTR_ALIASES = {
    "created": "start_time",
    "Created": "start_time",
    "run name": "run_name",
    "Run name": "run_name",
    "Run Name": "run_name",
    "run_uuid": "run_id",
}
DATASET_KEYS = ("name", "digest", "context")
INPUT_KEYS = ("path", "digest", "kind", "context")
# order_by may also use these (a gitrun extension: MLflow refuses them).
ORDER_ONLY_ATTRS = ("experiment_id",)

NUMERIC_OPS = ("=", "!=", ">", ">=", "<", "<=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE")
NULL_OPS = ("IS NULL", "IS NOT NULL")  # whether a param or tag is absent / present
KEYWORDS = ("AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "ASC", "DESC")
# Limits that keep a hostile filter from reaching Python's recursion limit or SQLite's
# expression-depth limit (1000); real filters are far below them.
MAX_DEPTH = 20  # nested parentheses and NOTs (SQLite's own parser overflows near 30)
MAX_TERMS = 500  # comparisons in one filter
MAX_IN_VALUES = 1000  # values in one IN (...) list

Value = Union[float, str]


class _Frozen:
    """Value objects compared by their fields (plain classes: `dataclasses` costs ~10 ms
    to import, and `gitrun search` starts often)."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._fields()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{s}={getattr(self, s)!r}" for s in self.__slots__)
        return f"{type(self).__name__}({inner})"


class Ident(_Frozen):
    __slots__ = ("kind", "key", "pos")

    def __init__(self, kind: str, key: str, pos: int) -> None:
        self.kind = kind  # METRIC, PARAM, TAG, ATTR, DATASET
        self.key = key
        self.pos = pos


class Compare(_Frozen):
    __slots__ = ("ident", "op", "value")

    def __init__(self, ident: Ident, op: str, value: Value | tuple[Value, ...] | None) -> None:
        self.ident = ident
        self.op = op  # one of NUMERIC_OPS, STRING_OPS, NULL_OPS (value None), "IN", "NOT IN"
        self.value = value


class And(_Frozen):
    __slots__ = ("items",)

    def __init__(self, items: tuple[Node, ...]) -> None:
        self.items = items


class Or(_Frozen):
    __slots__ = ("items",)

    def __init__(self, items: tuple[Node, ...]) -> None:
        self.items = items


class Not(_Frozen):
    __slots__ = ("item",)

    def __init__(self, item: Node) -> None:
        self.item = item


Node = Union[Compare, And, Or, Not]


class OrderItem(_Frozen):
    __slots__ = ("ident", "ascending")

    def __init__(self, ident: Ident, ascending: bool) -> None:
        self.ident = ident
        self.ascending = ascending


# ---------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------
class Token(_Frozen):
    __slots__ = ("kind", "text", "value", "pos")

    def __init__(self, kind: str, text: str, value: str, pos: int) -> None:
        self.kind = kind  # word, ident, string, number, op, lparen, rparen, comma, end
        self.text = text  # the source text
        self.value = value  # decoded value (strings unquoted, words as written)
        self.pos = pos


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z0-9_.])")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/\-]*")
_KEY = re.compile(r"[A-Za-z0-9_.:/\-]+")  # an unquoted key after a backticked type
_OPS = ("!=", "<>", ">=", "<=", "==", "=", ">", "<")


def _quoted(text: str, i: int) -> tuple[str, int]:
    """Read a quoted string starting at text[i]; return (value, index after it)."""
    q = text[i]
    out = []
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\" and j + 1 < len(text) and q != "`":
            out.append(text[j + 1])
            j += 2
            continue
        if c == q:
            if j + 1 < len(text) and text[j + 1] == q:  # a doubled quote is one quote
                out.append(q)
                j += 2
                continue
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise FilterError(
        f"Invalid filter: the quoted text starting with {text[i : i + 12]!r} at position {i} "
        f"never ends; close it with {q}."
    )


def tokenize(text: str) -> list[Token]:
    toks: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "(),":
            kind = {"(": "lparen", ")": "rparen", ",": "comma"}[c]
            toks.append(Token(kind, c, c, i))
            i += 1
            continue
        if c in "'\"":
            value, j = _quoted(text, i)
            toks.append(Token("string", text[i:j], value, i))
            i = j
            continue
        if c == "`":
            value, j = _quoted(text, i)
            if j < n and text[j] == ".":
                # `metrics`.acc / `tags`.`my key`: a type prefix in backticks (as MLflow).
                if j + 1 < n and text[j + 1] in "`'\"":
                    key, k = _quoted(text, j + 1)
                else:
                    m = _KEY.match(text, j + 1)
                    key, k = (m.group(), m.end()) if m else ("", j + 1)
                toks.append(Token("ident", text[i:k], value + ".\0" + key, i))
                i = k
                continue
            toks.append(Token("ident", text[i:j], value, i))
            i = j
            continue
        m = _NUMBER.match(text, i)
        if m:
            toks.append(Token("number", m.group(), m.group(), i))
            i = m.end()
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op:
            norm = {"<>": "!=", "==": "="}.get(op, op)
            toks.append(Token("op", op, norm, i))
            i += len(op)
            continue
        m = _WORD.match(text, i)
        if m:
            word = m.group()
            j = m.end()
            # `metrics.`f1 score`` / params."my key": a type prefix glued to a quoted key.
            if word.endswith(".") and j < n and text[j] in "`'\"":
                value, j = _quoted(text, j)
                toks.append(Token("ident", text[i:j], word + "\0" + value, i))
                i = j
                continue
            toks.append(Token("word", word, word, i))
            i = j
            continue
        raise FilterError(
            f"Invalid filter: unexpected character {c!r} at position {i}; "
            "write comparisons like metrics.acc > 0.9 and params.model = 'rf'."
        )
    toks.append(Token("end", "", "", n))
    return toks


# ---------------------------------------------------------------------------
# identifiers
# ---------------------------------------------------------------------------
def make_ident(tok: Token, for_order: bool = False) -> Ident:
    """A word or quoted token as an identifier (type.key; no type means attribute)."""
    if tok.kind == "ident" and "\0" in tok.value:
        prefix, key = tok.value.split("\0", 1)
        return _typed(prefix[:-1], key, tok, for_order)
    if tok.kind == "ident" or _dquoted(tok):
        # a whole identifier in backticks or double quotes: an attribute name (MLflow's
        # `Run name`, "created"); single quotes make a string, never an identifier.
        return _attr(tok.value, tok, for_order)
    if tok.kind != "word":
        raise FilterError(
            f"Invalid filter: expected an identifier such as metrics.acc at position "
            f"{tok.pos}, found {_show(tok)}."
        )
    if "." in tok.value:
        prefix, key = tok.value.split(".", 1)
        return _typed(prefix, key, tok, for_order)
    return _attr(tok.value, tok, for_order)


def _typed(prefix: str, key: str, tok: Token, for_order: bool) -> Ident:
    kind = TYPE_ALIASES.get(prefix.lower())
    if kind is None:
        raise FilterError(
            f"Invalid filter: unknown entity type '{prefix}' in {_show(tok)} at position "
            f"{tok.pos}; use metrics., params., tags. or attributes."
        )
    if not key:
        raise FilterError(
            f"Invalid filter: {_show(tok)} at position {tok.pos} has no key after the "
            "dot; write e.g. metrics.acc, or put odd keys in backticks: metrics.`f1 score`."
        )
    if kind == ATTR:
        return _attr(key, tok, for_order)
    if kind == DATASET and key not in DATASET_KEYS:
        raise FilterError(
            f"Invalid filter: unknown dataset key '{key}' at position {tok.pos}; use "
            "datasets.name, datasets.digest or datasets.context."
        )
    if kind == INPUT and (key not in INPUT_KEYS or for_order):
        raise FilterError(
            f"Invalid filter: {_show(tok)} at position {tok.pos} is not searchable; use "
            "inputs.path, inputs.digest, inputs.kind or inputs.context in a filter."
        )
    return Ident(kind, key, tok.pos)


def _attr(name: str, tok: Token, for_order: bool) -> Ident:
    key = ATTR_ALIASES.get(name, name)
    allowed = STRING_ATTRS + NUMERIC_ATTRS + (ORDER_ONLY_ATTRS if for_order else ())
    if key not in allowed:
        raise FilterError(
            f"Invalid filter: unknown attribute {_show(tok)} at position {tok.pos}; "
            f"attributes are {', '.join(STRING_ATTRS + NUMERIC_ATTRS)} (or prefix the key "
            "with metrics., params. or tags.)."
        )
    return Ident(ATTR, key, tok.pos)


def _dquoted(tok: Token) -> bool:
    return tok.kind == "string" and tok.text.startswith('"')


def _show(tok: Token) -> str:
    return "end of the filter" if tok.kind == "end" else f"'{tok.text}'"


# ---------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.depth = 0
        self.terms = 0

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def next(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def is_kw(self, word: str, offset: int = 0) -> bool:
        t = self.toks[min(self.i + offset, len(self.toks) - 1)]
        return t.kind == "word" and t.value.upper() == word

    def fail(self, tok: Token, expected: str) -> FilterError:
        return FilterError(
            f"Invalid filter: unexpected {_show(tok)} at position {tok.pos}; expected {expected}."
        )

    def parse(self) -> Node | None:
        if self.tok.kind == "end":
            return None
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.fail(self.tok, "AND, OR or the end of the filter")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.is_kw("OR"):
            self.next()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.is_kw("AND"):
            self.next()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        if self.is_kw("NOT") or self.tok.kind == "lparen":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterError(
                    f"Invalid filter: parentheses and NOTs are nested more than {MAX_DEPTH} "
                    f"deep at position {self.tok.pos}; simplify the filter."
                )
            try:
                if self.is_kw("NOT"):
                    self.next()
                    return Not(self.not_expr())
                self.next()
                node = self.or_expr()
                if self.tok.kind != "rparen":
                    raise self.fail(self.tok, "')'")
                self.next()
                return node
            finally:
                self.depth -= 1
        return self.comparison()

    def comparison(self) -> Compare:
        tok = self.tok
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise FilterError(
                f"Invalid filter: it has more than {MAX_TERMS} comparisons (at position "
                f"{tok.pos}); use IN (...) for lists of values or split the search."
            )
        if not (tok.kind in ("word", "ident") or _dquoted(tok)) or (
            tok.kind == "word" and tok.value.upper() in KEYWORDS
        ):
            raise self.fail(tok, "a comparison such as metrics.acc > 0.9")
        ident = make_ident(self.next())
        if self.is_kw("IS"):
            return self.null_test(ident)
        negate = False
        if self.is_kw("NOT") and (
            self.is_kw("IN", 1) or self.is_kw("LIKE", 1) or self.is_kw("ILIKE", 1)
        ):
            self.next()
            negate = True
        optok = self.tok
        if optok.kind == "op":
            self.next()
            op = optok.value
        elif optok.kind == "word" and optok.value.upper() in ("LIKE", "ILIKE", "IN"):
            self.next()
            op = optok.value.upper()
        else:
            raise self.fail(
                optok,
                f"a comparator (=, !=, >, >=, <, <=, LIKE, ILIKE, IN) after {ident_text(ident)}",
            )
        if negate:
            op = "NOT " + op
        if op.endswith("IN"):
            value: Value | tuple[Value, ...] = self.value_list(ident, optok)
        else:
            value = self.value(ident, op, optok)
        return check(Compare(ident, op, value), optok, self.text)

    def null_test(self, ident: Ident) -> Compare:
        optok = self.next()  # IS
        op = "IS NULL"
        if self.is_kw("NOT"):
            self.next()
            op = "IS NOT NULL"
        if not self.is_kw("NULL"):
            raise self.fail(self.tok, f"NULL after {ident_text(ident)} {op[:-5]}")
        self.next()
        return check(Compare(ident, op, None), optok, self.text)

    def value(self, ident: Ident, op: str, optok: Token) -> Value:
        tok = self.next()
        if tok.kind == "string":
            return tok.value
        if tok.kind == "number":
            return float(tok.value)
        if tok.kind == "word" and tok.value.lower() in ("nan", "inf", "infinity", "-inf"):
            return float(tok.value)
        raise self.fail(tok, f"a number or a quoted string after {ident_text(ident)} {op}")

    def value_list(self, ident: Ident, optok: Token) -> tuple[Value, ...]:
        if self.tok.kind != "lparen":
            raise self.fail(self.tok, "'(' starting the list of values for IN")
        self.next()
        values: list[Value] = []
        while True:
            if len(values) >= MAX_IN_VALUES:
                raise FilterError(
                    f"Invalid filter: the list of values for IN at position {optok.pos} has "
                    f"more than {MAX_IN_VALUES} values; split the search."
                )
            values.append(self.value(ident, "IN", optok))
            t = self.next()
            if t.kind == "rparen":
                return tuple(values)
            if t.kind != "comma":
                raise self.fail(t, "',' or ')' in the list of values for IN")


def ident_text(ident: Ident) -> str:
    prefix = {
        METRIC: "metrics.",
        PARAM: "params.",
        TAG: "tags.",
        ATTR: "attributes.",
        DATASET: "datasets.",
        INPUT: "inputs.",
    }[ident.kind]
    key = ident.key
    return prefix + (key if re.fullmatch(r"[A-Za-z0-9_.]+", key) else f"`{key}`")


def check(c: Compare, optok: Token, text: str) -> Compare:
    """Which comparators and value types each kind of identifier accepts."""
    kind, key, op, value = c.ident.kind, c.ident.key, c.op, c.value
    where = f"'{optok.text}' at position {optok.pos}"
    if op in NULL_OPS:
        if kind not in (PARAM, TAG):
            raise FilterError(
                f"Invalid filter: {op} at position {optok.pos} applies only to params and "
                f"tags (as in MLflow), not to {ident_text(c.ident)}."
            )
        return c
    numeric = kind == METRIC or (kind == ATTR and key in NUMERIC_ATTRS)
    if numeric:
        if op not in NUMERIC_OPS:
            raise FilterError(
                f"Invalid filter: comparator {where} cannot compare {ident_text(c.ident)}, "
                "which is numeric; use =, !=, >, >=, < or <=."
            )
        if not isinstance(value, float):
            raise FilterError(
                f"Invalid filter: {ident_text(c.ident)} {op} expects a number after {where}, "
                f"not the string {value!r}; write it without quotes."
            )
        return c
    if op in ("IN", "NOT IN"):
        assert isinstance(value, tuple)
        if kind == ATTR and key not in STRING_ATTRS:
            raise FilterError(f"Invalid filter: IN {where} does not apply to {key}.")
        if any(not isinstance(v, str) for v in value) and kind != PARAM:
            raise FilterError(
                f"Invalid filter: the values for IN {where} must be quoted strings, "
                "e.g. IN ('a', 'b')."
            )
        return c
    if isinstance(value, float):
        # gitrun: params compare numerically when their values are numbers.
        if kind == PARAM and op in NUMERIC_OPS:
            return c
        raise FilterError(
            f"Invalid filter: {ident_text(c.ident)} {op} expects a quoted string after "
            f"{where}, e.g. {ident_text(c.ident)} {op} 'value'."
        )
    if op not in STRING_OPS:
        raise FilterError(
            f"Invalid filter: comparator {where} cannot compare the string "
            f"{ident_text(c.ident)}; use =, !=, LIKE or ILIKE (or a number for params)."
        )
    return c


def parse_filter(text: str | None) -> Node | None:
    """The filter's syntax tree, or None for an empty filter (every run matches)."""
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()


def parse_order_by(items: list[str] | tuple[str, ...] | None) -> list[OrderItem]:
    out: list[OrderItem] = []
    for item in items or ():
        p = _Parser(item)
        tok = p.tok
        if tok.kind not in ("word", "ident") and not _dquoted(tok):
            raise FilterError(
                f"Invalid order_by {item!r}: expected an identifier such as metrics.acc at "
                f"position {tok.pos}, found {_show(tok)}."
            )
        ident = make_ident(p.next(), for_order=True)
        ascending = True
        if p.is_kw("ASC") or p.is_kw("DESC"):
            ascending = p.next().value.upper() == "ASC"
        if p.tok.kind != "end":
            raise FilterError(
                f"Invalid order_by {item!r}: unexpected {_show(p.tok)} at position "
                f"{p.tok.pos}; write '<identifier> [ASC|DESC]'."
            )
        if ident.kind == DATASET:
            raise FilterError(f"Invalid order_by {item!r}: runs cannot be ordered by datasets.")
        out.append(OrderItem(ident, ascending))
    return out


def idents(node: Node | None) -> list[Ident]:
    """Every identifier a parsed filter compares, in order."""
    if node is None:
        return []
    if isinstance(node, Compare):
        return [node.ident]
    if isinstance(node, (And, Or)):
        return [i for part in node.items for i in idents(part)]
    if isinstance(node, Not):
        return idents(node.item)
    return []
