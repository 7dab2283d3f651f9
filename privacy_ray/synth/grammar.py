"""A tiny template language for phrase material, compiled once and expanded fast.

Phrase files hold sentences like ``"[Please|Kindly] delete {my_data}[ as soon as possible|]."``:

- ``[a|b|c]`` picks one alternative uniformly; an empty alternative (``[a|]``) makes it optional;
  alternatives nest.
- ``{slot}`` is replaced by an expansion of the slot's own template list (family, then label,
  then global ``slots.yaml``) or by a dynamic value (a name, an e-mail, a card number ...) that
  :class:`privacy_ray.synth.compose.Context` produces.
- ``\\[``, ``\\]``, ``\\{``, ``\\}`` and ``\\|`` are literal characters.

Templates compile to nested tuples so that expanding one costs a few microseconds: the generator
must produce 200k messages in well under a minute on one core.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from random import Random

from privacy_ray.errors import ConfigError

#: A compiled template: a tuple of parts. A part is a literal ``str``, an alternation
#: ``(ALT, (Seq, Seq, ...))`` or a slot reference ``(SLOT, name)``.
Part = str | tuple[int, object]
Seq = tuple[Part, ...]
ALT = 0
SLOT = 1

_SLOT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MULTISPACE = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.;:?!)])")
_DOUBLE_PUNCT = re.compile(r"([,;:])\1+|(?<=[.?!]),|,(?=[.?!])")
_SPACE_AFTER_PAREN = re.compile(r"\( +")


class TemplateSyntaxError(ConfigError):
    """A phrase template does not parse; the message names the template and the position."""


def compile_template(text: str, where: str = "") -> Seq:
    """Parse ``text`` into a compiled sequence (see the module docstring for the syntax)."""
    seq, pos = _parse_seq(text, 0, where, top=True)
    if pos != len(text):  # pragma: no cover - _parse_seq consumes everything at top level
        raise TemplateSyntaxError(f"{where}: unexpected text at {pos} in {text!r}")
    return seq


def _parse_seq(text: str, pos: int, where: str, top: bool) -> tuple[Seq, int]:
    parts: list[Part] = []
    buf: list[str] = []
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch == "\\" and pos + 1 < n:
            buf.append(text[pos + 1])
            pos += 2
            continue
        if ch == "[":
            if buf:
                parts.append("".join(buf))
                buf = []
            alts: list[Seq] = []
            pos += 1
            while True:
                alt, pos = _parse_seq(text, pos, where, top=False)
                alts.append(alt)
                if pos >= n:
                    msg = f"{where}: unclosed '[' in template {text!r}; add the missing ']'"
                    raise TemplateSyntaxError(msg)
                if text[pos] == "|":
                    pos += 1
                    continue
                pos += 1  # the closing ']'
                break
            parts.append((ALT, tuple(alts)))
            continue
        if ch in "|]":
            if top:
                msg = f"{where}: stray {ch!r} at position {pos} in template {text!r}; escape it"
                raise TemplateSyntaxError(msg)
            break
        if ch == "{":
            end = text.find("}", pos)
            name = text[pos + 1 : end] if end > 0 else ""
            if end < 0 or not _SLOT_NAME.fullmatch(name):
                msg = f"{where}: bad slot at position {pos} in template {text!r}; use {{name}}"
                raise TemplateSyntaxError(msg)
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append((SLOT, name))
            pos = end + 1
            continue
        buf.append(ch)
        pos += 1
    if buf:
        parts.append("".join(buf))
    return tuple(parts), pos


def slot_names(seq: Seq) -> set[str]:
    """Every slot a compiled template refers to (for load-time checks)."""
    out: set[str] = set()
    for part in seq:
        if isinstance(part, str):
            continue
        kind, payload = part
        if kind == SLOT:
            out.add(payload)  # type: ignore[arg-type]
        else:
            for alt in payload:  # type: ignore[union-attr]
                out |= slot_names(alt)
    return out


def expand(seq: Seq, rng: Random, resolve: Callable[[str], str], out: list[str]) -> None:
    """Append one random expansion of ``seq`` to ``out``; slots go through ``resolve``."""
    for part in seq:
        if part.__class__ is str:
            out.append(part)  # type: ignore[arg-type]
        elif part[0] == ALT:  # type: ignore[index]
            alts = part[1]  # type: ignore[index]
            expand(alts[int(rng.random() * len(alts))], rng, resolve, out)
        else:
            out.append(resolve(part[1]))  # type: ignore[index]


def tidy(text: str) -> str:
    """Collapse the double spaces and stray spaces before punctuation left by empty options."""
    if "  " in text:
        text = _MULTISPACE.sub(" ", text)
    if " ," in text or " ." in text or " ?" in text or " !" in text or " )" in text:
        text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    if ",," in text or ".," in text or ",." in text or "?," in text or ",?" in text:
        text = _DOUBLE_PUNCT.sub(lambda m: m.group(1) or "", text)
    if "( " in text:
        text = _SPACE_AFTER_PAREN.sub("(", text)
    return text.strip()


def capitalize_first(text: str) -> str:
    """Upper-case the first letter (templates that start with a slot need it).

    Text that opens with an e-mail address or a handle is left alone.
    """
    head = text.split(" ", 1)[0]
    if "@" in head:
        return text
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :] if ch.islower() else text
        if ch not in " \"'([*>-":
            return text
    return text


def compile_list(items: Iterable[object], where: str) -> tuple[Seq, ...]:
    """Compile a YAML list of template strings; a non-string item is a phrase-file bug."""
    out: list[Seq] = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            msg = f"{where}[{i}] must be a string template, got {type(item).__name__}"
            raise TemplateSyntaxError(msg)
        out.append(compile_template(item, f"{where}[{i}]"))
    return tuple(out)
