"""Curated privacy lexicon: the phrases behind the keyword-count features.

Each category maps to a tuple of entries matched case-insensitively on whole words:

* ``"personal data"`` — a phrase; a space matches any run of whitespace or hyphens, so
  "opt out" also matches "opt-out" and "optout";
* ``"delet*"`` — a trailing ``*`` matches any word ending (delete, deleted, deletion);
* ``"re:..."`` — a raw regular expression, for numbered references such as "Article 17"; like
  every entry it must start at a word start (``\\b`` is implied before it).

Within a category, overlapping entries count once: the longest phrase wins at each position
("personal data" is one data-noun mention, not two). Entries are lowercase; curly apostrophes in
the text are folded to ``'`` before matching.
"""

from __future__ import annotations

import functools
import re

LEXICON: dict[str, tuple[str, ...]] = {
    # Verbs of the data-subject rights (GDPR Art. 15-21, CCPA/CPRA).
    "rights_verbs": (
        "delet*", "eras*", "remov*", "wip*", "purg*", "forget", "forgotten", "access*", "copy",
        "copies", "export*", "download*", "correct*", "rectif*", "amend*", "updat*", "opt out",
        "opted out", "opting out", "unsubscrib*", "withdraw*", "revok*", "revoc*", "object",
        "objecting", "objection*", "portab*", "transfer*", "restrict*", "do not sell",
        "don't sell", "do not share", "don't share", "stop processing", "stop selling",
        "stop sharing", "close my account", "cancel my account",
    ),
    # What the rights apply to.
    "data_nouns": (
        "personal data", "personal information", "personal info", "personal details",
        "personally identifiable information", "pii", "my data", "my information", "my info",
        "data", "information", "account*", "record*", "profil*", "purchase history",
        "order history", "browsing history", "search history", "location data",
        "contact details", "email address*", "phone number*", "home address", "detail*",
        "file", "files", "logs", "log files", "metadata", "biometric*", "health data",
        "payment information",
    ),
    # Statutes, articles and sections.
    "regulation": (
        "gdpr", "uk gdpr", "eu gdpr", "dsgvo", "rgpd", "general data protection regulation",
        "ccpa", "cpra", "california consumer privacy act", "california privacy rights act",
        "lgpd", "pipeda", "data protection act", "privacy act", "hipaa", "coppa",
        "right to be forgotten", "right to erasure", "right of access", "right to know",
        "right to delete", "right to correct", "right to rectification", "right to object",
        "right to data portability", "data subject access request", "data subject request",
        "dsar", "dsr",
        r"re:art(?:icle|\.)?\s*(?:1[2-9]|2[0-2])\b(?:\s*\(\d\))?",
        r"re:(?:section|sec\.)\s*1798\.\d{3}\b",
        r"re:1798\.1\d\d\b",
    ),
    # Consent, cookies and tracking.
    "consent_tracking": (
        "consent*", "cookie*", "track*", "tracker*", "pixel*", "fingerprint*", "analytics",
        "third party", "third parties", "do not track", "geolocation", "location tracking",
        "permission*", "opt in", "opted in", "privacy settings", "privacy preferences",
        "cookie banner", "accept all", "reject all", "ad id", "advertising id", "session replay",
    ),
    # Marketing and commercial use.
    "marketing": (
        "marketing", "newsletter*", "promotion*", "promotional", "promo*", "advert*", "ads",
        "targeted ads", "targeted advertising", "personalized ads", "personalised ads",
        "spam*", "mailing list*", "email list*", "sms", "text messages", "campaign*",
        "special offer*", "offers", "profiling", "sell my data", "sale of my", "selling my",
        "sold my", "data broker*", "cross context behavioral advertising",
    ),
    # Complaints, breaches and misuse.
    "complaint_breach": (
        "breach*", "leak*", "hack*", "compromis*", "unauthori*", "misus*", "without my consent",
        "without my permission", "complain*", "stolen", "theft", "identity theft", "fraud*",
        "exposed", "exposure", "violat*", "abus*", "ignored", "ignoring", "no response",
        "never responded", "never heard back", "unacceptable", "outrag*", "disgust*",
        "furious", "angry", "illegal*", "unlawful*",
    ),
    # Linguistic cues.
    "modal": (
        "can", "could", "would", "should", "may", "might", "must", "shall", "will", "can't",
        "cannot", "couldn't", "wouldn't", "shouldn't", "won't", "mustn't",
    ),
    "negation": (
        "not", "no", "never", "none", "nothing", "nobody", "neither", "nor", "without",
        "cannot", "don't", "doesn't", "didn't", "can't", "couldn't", "won't", "wouldn't",
        "shouldn't", "isn't", "aren't", "wasn't", "weren't", "haven't", "hasn't", "hadn't",
        "mustn't", "ain't",
    ),
    "urgency": (
        "urgent*", "asap", "as soon as possible", "immediately", "immediate", "right away",
        "right now", "now", "today", "tonight", "deadline", "without delay",
        "without undue delay", "quickly", "promptly", "at once", "hurry", "emergency",
        "final notice", "last warning", "overdue", r"re:within\s+\d+\s+(?:hours|days)\b",
    ),
    "legal": (
        "lawyer*", "attorney*", "legal*", "law", "laws", "lawsuit*", "sue", "suing", "court*",
        "regulator*", "supervisory authority", "data protection authority", "ombudsman",
        "attorney general", "litigation", "liab*", "statut*", "data protection officer", "dpo",
        "legal action", "complian*", "comply", "obligat*", "ico", "cnil", "ftc", "fined", "fines",
        "penalt*", "jurisdiction", "legitimate interest",
    ),
    "politeness": (
        "please", "pls", "plz", "thank*", "thx", "kindly", "appreciat*", "grateful", "sorry",
        "apolog*", "would you mind", "if possible", "regards", "have a nice day", "cheers",
        "dear", "hello", "hi",
    ),
}  # fmt: skip

#: The privacy keyword categories that become ``f_kw_<category>`` features.
KEYWORD_CATEGORIES: tuple[str, ...] = (
    "rights_verbs",
    "data_nouns",
    "regulation",
    "consent_tracking",
    "marketing",
    "complaint_breach",
)


def entry_pattern(entry: str) -> str:
    """The regex for one lexicon entry (see the module docstring for the syntax)."""
    if entry.startswith("re:"):
        return r"\b" + entry[3:]
    star = entry.endswith("*")
    words = entry.rstrip("*").split()
    body = r"[\s-]*".join(re.escape(w) for w in words)
    if star:
        body += r"[\w'-]*"
    start = r"\b" if re.match(r"\w", entry) else ""
    end = "" if star or not re.search(r"\w$", entry.rstrip("*")) else r"\b"
    return start + body + end


def _trie_regex(entries: list[str]) -> str:
    """One regex for literal entries, factored by common prefixes.

    A backtracking engine (Python's ``re``) tries a flat alternation's branches one by one at
    every position; the trie rejects most positions after one character, and keeps the pattern
    RE2 compiles for the feature counts small. Longer continuations are tried before an entry
    ends, so the longest phrase wins, as in the flat alternation sorted by length.
    """
    trie: dict = {}
    for entry in entries:
        node = trie
        star = entry.endswith("*")
        for unit in re.findall(r"\S+|\s+", entry.rstrip("*")):
            keys = [" "] if unit.isspace() else list(unit)
            for key in keys:
                node = node.setdefault(key, {})
        node["*" if star else ""] = {}

    def emit(node: dict) -> str:
        alts = []
        for key in sorted(k for k in node if k not in ("", "*")):
            unit = r"[\s-]*" if key == " " else re.escape(key)
            alts.append(unit + emit(node[key]))
        if "*" in node:
            alts.append(r"[\w'-]*")
        if "" in node:
            alts.append(r"\b")
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return emit(trie)


@functools.cache
def category_pattern(category: str) -> str:
    """One regex for a category: its raw ``re:`` entries, then a prefix trie of its phrases."""
    entries = LEXICON[category]
    parts = [e[3:] for e in entries if e.startswith("re:")]
    literal = [e for e in entries if not e.startswith("re:")]
    if literal:
        parts.append(_trie_regex(literal))
    return r"\b(?:" + "|".join(parts) + ")"


def flat_category_pattern(category: str) -> str:
    """The same category as a flat alternation, longest entries first (the reference form)."""
    entries = sorted(LEXICON[category], key=lambda e: (-len(e), e))
    return "(?:" + "|".join(entry_pattern(e) for e in entries) + ")"
