"""Surface noise real customers add: typos, chat abbreviations, casing, dropped punctuation.

Typos are drawn per word at a configurable rate (geometric skipping, so the cost does not grow
with the rate) and never touch tokens with digits or ``@`` in them, so the PII that the redaction
stage must find stays intact.
"""

from __future__ import annotations

import math
import re
from random import Random

_NEAR_KEYS = {
    "a": "qwsz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc",
    "g": "ftyhbv", "h": "gyujnb", "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop",
    "m": "njk", "n": "bhjm", "o": "iklp", "p": "ol", "q": "wa", "r": "edft", "s": "awedxz",
    "t": "rfgy", "u": "yhji", "v": "cfgb", "w": "qase", "x": "zsdc", "y": "tghu", "z": "asx",
}

_ABBREV = {
    "you": ("u",), "your": ("ur", "yr"), "please": ("pls", "plz"), "thanks": ("thx", "ty"),
    "account": ("acct", "acc"), "information": ("info",), "because": ("bc", "cuz"),
    "are": ("r",), "with": ("w/",), "don't": ("dont",), "can't": ("cant",), "i'm": ("im",),
    "it's": ("its",), "what's": ("whats",), "doesn't": ("doesnt",), "haven't": ("havent",),
    "didn't": ("didnt",), "message": ("msg",), "tomorrow": ("tmrw",), "about": ("abt",),
    "know": ("kno",), "really": ("rly",), "people": ("ppl",), "before": ("b4",),
}
_ABBREV_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k in _ABBREV) + r")\b", re.IGNORECASE)
_APOSTROPHE_RE = re.compile(r"(?<=[a-z])'(?=[a-z])")


def _typo(word: str, rng: Random) -> str:
    n = len(word)
    i = 1 + int(rng.random() * (n - 1)) if n > 1 else 0
    r = rng.random()
    if r < 0.35 and i < n - 1:  # transpose two neighbours
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if r < 0.6:  # drop a letter
        return word[:i] + word[i + 1 :]
    if r < 0.8:  # hit a neighbouring key
        near = _NEAR_KEYS.get(word[i].lower())
        if near:
            return word[:i] + near[int(rng.random() * len(near))] + word[i + 1 :]
        return word
    return word[:i] + word[i] + word[i:]  # double a letter


def add_typos(text: str, rate: float, rng: Random) -> str:
    """Misspell about ``rate`` of the alphabetic words (>= 3 letters) of ``text``."""
    if rate <= 0.0:
        return text
    words = text.split(" ")
    n = len(words)
    if rate >= 1.0:
        positions = range(n)
    else:
        log_q = math.log1p(-rate)
        positions = []
        i = -1
        while True:
            i += 1 + int(math.log(1.0 - rng.random()) / log_q)
            if i >= n:
                break
            positions.append(i)
    if not positions:
        return text
    for i in positions:
        w = words[i]
        core = w.rstrip(".,!?;:")
        if len(core) >= 3 and core.isalpha():
            words[i] = _typo(core, rng) + w[len(core) :]
    return " ".join(words)


def abbreviate(text: str, rng: Random, p: float = 0.6) -> str:
    """Replace common words with chat abbreviations ("please" -> "pls"), each with chance ``p``."""

    def sub(m: re.Match[str]) -> str:
        if rng.random() >= p:
            return m.group(0)
        options = _ABBREV[m.group(0).lower()]
        return options[int(rng.random() * len(options))]

    return _ABBREV_RE.sub(sub, text)


def drop_apostrophes(text: str) -> str:
    """``don't`` -> ``dont``: lowercase crowd questions rarely bother with apostrophes."""
    return _APOSTROPHE_RE.sub("", text)


def strip_end_punct(text: str) -> str:
    return text.rstrip(".?! ")
