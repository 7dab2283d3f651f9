"""The public generator: labelled messages and multi-turn conversations as DataFrames.

One ``random.Random(seed)`` drives everything, so a seed reproduces the frame exactly; personas
are seeded per user (``f"{seed}:{user}"``), so the same user carries the same name, e-mail and
phone number in ``generate_messages`` and ``generate_conversations`` of the same seed.
"""

from __future__ import annotations

import math
import numbers
import zlib
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import accumulate
from random import Random
from typing import Any

import numpy as np
import pandas as pd

from privacy_ray.config import DEFAULT_LABEL_MIX, LABELS
from privacy_ray.errors import ConfigError
from privacy_ray.synth.bank import Family, PhraseBank, load_bank
from privacy_ray.synth.compose import REGISTERS, Composer
from privacy_ray.synth.pii import Persona, make_persona

DEFAULT_TYPO_RATE = 0.02

MESSAGE_COLUMNS = ("message_id", "conversation_id", "user_id", "channel", "timestamp", "text",
                   "label", "template_family", "register")
CONVERSATION_COLUMNS = ("conversation_id", "user_id", "channel", "started_at", "turns", "label",
                        "template_family", "register")

_REQUEST_REGISTERS = (("chat_short", 0.24), ("email", 0.2), ("formal_letter", 0.14),
                      ("ticket", 0.13), ("lowercase_question", 0.13), ("dev_post", 0.09),
                      ("social", 0.07))
#: Register mix per label: where each kind of message tends to show up.
REGISTER_MIX: dict[str, tuple[tuple[str, float], ...]] = {
    "none": (("banking", 0.24), ("travel", 0.14), ("chat_short", 0.18), ("email", 0.12),
             ("ticket", 0.09), ("lowercase_question", 0.08), ("social", 0.06),
             ("dev_post", 0.06), ("formal_letter", 0.03)),
    "policy_question": (("lowercase_question", 0.38), ("chat_short", 0.19), ("email", 0.14),
                        ("ticket", 0.09), ("social", 0.08), ("dev_post", 0.07),
                        ("formal_letter", 0.05)),
    "privacy_complaint": (("email", 0.22), ("chat_short", 0.24), ("social", 0.2),
                          ("ticket", 0.12), ("formal_letter", 0.12),
                          ("lowercase_question", 0.05), ("dev_post", 0.05)),
}
for _label in LABELS:
    REGISTER_MIX.setdefault(_label, _REQUEST_REGISTERS)

_CHANNELS_FOR_REGISTER: dict[str, tuple[tuple[str, float], ...]] = {
    "chat_short": (("chat", 0.9), ("social", 0.1)),
    "lowercase_question": (("chat", 0.6), ("ticket", 0.15), ("email", 0.1), ("social", 0.15)),
    "formal_letter": (("email", 0.85), ("ticket", 0.15)),
    "email": (("email", 1.0),),
    "ticket": (("ticket", 1.0),),
    "social": (("social", 1.0),),
    "dev_post": (("ticket", 0.8), ("email", 0.2)),
    "banking": (("chat", 0.75), ("ticket", 0.1), ("email", 0.1), ("social", 0.05)),
    "travel": (("chat", 0.75), ("ticket", 0.1), ("email", 0.1), ("social", 0.05)),
}
#: Which ``none`` domains fit a register (a timer request is never a formal letter).
_NONE_DOMAINS = {
    "banking": ("banking",),
    "travel": ("travel",),
    "dev_post": ("dev", "tech"),
    "email": ("banking", "travel", "retail", "tech"),
    "ticket": ("banking", "travel", "retail", "tech", "dev"),
    "social": ("banking", "travel", "retail", "tech"),
    "chat_short": ("banking", "travel", "retail", "tech", "assistant"),
    "lowercase_question": ("banking", "travel", "retail", "tech", "assistant"),
}
#: Relative activity per hour of day (UTC), so timestamps cluster in waking hours.
_HOUR_WEIGHTS = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3.5, 4.5, 5, 5, 4.8, 4.8, 4.6, 4.4, 4.2, 4,
                 3.8, 3.6, 3.2, 2.8, 2.2, 1.5)
_HOUR_CUM = tuple(accumulate(_HOUR_WEIGHTS))


class _Picker:
    """Weighted choice with precomputed cumulative weights."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, pairs: Sequence[tuple[Any, float]]) -> None:
        self.items = [p[0] for p in pairs]
        self.cum = list(accumulate(p[1] for p in pairs))
        self.total = self.cum[-1]

    def __call__(self, rng: Random) -> Any:
        return self.items[bisect_right(self.cum, rng.random() * self.total)]


def _validate(
    n: int, label_mix: Mapping[str, float] | None, start_date: str, days: int,
    n_users: int | None, typo_rate: float,
) -> tuple[_Picker, int, int]:
    if not isinstance(n, numbers.Integral) or n < 0:
        msg = f"n must be a non-negative integer, got {n!r}"
        raise ConfigError(msg)
    mix = dict(DEFAULT_LABEL_MIX if label_mix is None else label_mix)
    unknown = sorted(set(mix) - set(LABELS))
    if unknown:
        msg = f"label_mix has unknown label(s) {unknown}; use some of {list(LABELS)}"
        raise ConfigError(msg)
    for label, share in mix.items():
        if not isinstance(share, numbers.Real) or not math.isfinite(share) or share < 0:
            msg = f"label_mix[{label!r}] must be a finite number >= 0, got {share!r}"
            raise ConfigError(msg)
    if sum(mix.values()) <= 0:
        msg = "label_mix shares sum to 0; give at least one label a positive share"
        raise ConfigError(msg)
    if not isinstance(days, numbers.Integral) or days < 1:
        msg = f"days must be an integer >= 1, got {days!r}"
        raise ConfigError(msg)
    if n_users is not None and (not isinstance(n_users, numbers.Integral) or n_users < 1):
        msg = f"n_users must be an integer >= 1 or None, got {n_users!r}"
        raise ConfigError(msg)
    if not isinstance(typo_rate, numbers.Real) or not 0.0 <= typo_rate <= 1.0:
        msg = f"typo_rate must lie in [0, 1], got {typo_rate!r}"
        raise ConfigError(msg)
    try:
        start = pd.Timestamp(start_date)
    except (ValueError, TypeError) as e:
        msg = f"start_date {start_date!r} is not a date; use ISO format like 2026-01-01"
        raise ConfigError(msg) from e
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    picker = _Picker([(label, mix[label]) for label in LABELS if mix.get(label, 0) > 0])
    return picker, int(start.timestamp()), int(days)


def _check_seed(seed: object) -> int:
    if not isinstance(seed, numbers.Integral):
        msg = f"seed must be an integer, got {seed!r}"
        raise ConfigError(msg)
    return int(seed)


class _Run:
    """State shared by both generators: bank, RNG, users, pickers."""

    def __init__(self, seed: int, n_records: int, n_users: int | None, typo_rate: float,
                 start_s: int, days: int) -> None:
        self.seed = seed
        self.bank: PhraseBank = load_bank()
        self.rng = Random(seed)
        self.composer = Composer(self.bank, self.rng, typo_rate)
        self.n_users = n_users or max(1, n_records // 3)
        self.tag = f"{zlib.crc32(str(seed).encode()) & 0xFFFFFF:06x}"
        self.start_s = start_s
        self.days = days
        self._personas: dict[int, Persona] = {}
        self.register_pickers = {label: _Picker(REGISTER_MIX[label]) for label in LABELS}
        self.channel_pickers = {r: _Picker(_CHANNELS_FOR_REGISTER[r]) for r in REGISTERS}
        self._families: dict[tuple[str, str], list[Family]] = {}

    def persona(self, user: int) -> Persona:
        p = self._personas.get(user)
        if p is None:
            p = make_persona(Random(f"{self.seed}:{user}"))
            self._personas[user] = p
        return p

    def pick_user(self) -> int:
        # mildly skewed: some users write much more than others
        return min(self.n_users - 1, int(self.n_users * self.rng.random() ** 1.3))

    def user_id(self, user: int) -> str:
        return f"user-{self.tag}-{user:06d}"

    def families(self, label: str, register: str) -> list[Family]:
        key = (label, register)
        fams = self._families.get(key)
        if fams is None:
            all_fams = self.bank.labels[label].families
            if label != "none":
                fams = all_fams
            elif register == "formal_letter":
                fams = [f for f in all_fams if "formal" in f.styles]
            else:
                domains = _NONE_DOMAINS[register]
                fams = [f for f in all_fams if f.domain in domains]
            self._families[key] = fams
        return fams

    def pick_family(self, label: str, register: str) -> Family:
        fams = self.families(label, register)
        return fams[int(self.rng.random() * len(fams))]

    def pick_register(self, label: str) -> str:
        return self.register_pickers[label](self.rng)

    def random_time(self) -> int:
        day = int(self.rng.random() * self.days)
        hour = bisect_right(_HOUR_CUM, self.rng.random() * _HOUR_CUM[-1])
        return self.start_s + day * 86400 + hour * 3600 + int(self.rng.random() * 3600)

    def message(self, persona: Persona, label: str, register: str, fam: Family) -> str:
        c = self.composer
        c.start(persona, fam.slots)
        text = c.render(register, self.bank.labels[label], fam)
        return c.add_noise(text, register)


def generate_messages(
    n: int,
    seed: int = 42,
    label_mix: dict[str, float] | None = None,
    start_date: str = "2026-01-01",
    days: int = 90,
    n_users: int | None = None,
    typo_rate: float = DEFAULT_TYPO_RATE,
) -> pd.DataFrame:
    """``n`` labelled support messages, grouped in short threads per user, sorted by time.

    ``label_mix`` maps labels to shares (normalised; missing labels get 0). ``typo_rate`` is the
    share of words misspelled before the per-register scaling (chat x1.6 ... letters x0.15).
    Columns: see :data:`MESSAGE_COLUMNS`.
    """
    picker, start_s, days = _validate(n, label_mix, start_date, days, n_users, typo_rate)
    run = _Run(_check_seed(seed), int(n), n_users and int(n_users), typo_rate, start_s, days)
    rng = run.rng
    conv_ids: list[str] = []
    user_ids: list[str] = []
    channels: list[str] = []
    stamps: list[int] = []
    texts: list[str] = []
    labels: list[str] = []
    families: list[str] = []
    registers: list[str] = []
    conv = 0
    while len(texts) < n:
        label = picker(rng)
        register = run.pick_register(label)
        channel = run.channel_pickers[register](rng)
        fam = run.pick_family(label, register)
        user = run.pick_user()
        persona = run.persona(user)
        r = rng.random()
        k = 1 if r < 0.72 else 2 if r < 0.92 else 3
        k = min(k, n - len(texts))
        t = run.random_time()
        end_s = start_s + days * 86400 - 1
        conv_id = f"thread-{run.tag}-{conv:07d}"
        uid = run.user_id(user)
        for j in range(k):
            if j:
                t = min(end_s, t + int(120 + rng.random() * (
                    3 * 86400 if channel in ("email", "ticket") else 3600)))
                if rng.random() < 0.5:
                    fam = run.pick_family(label, register)
            conv_ids.append(conv_id)
            user_ids.append(uid)
            channels.append(channel)
            stamps.append(t)
            texts.append(run.message(persona, label, register, fam))
            labels.append(label)
            families.append(fam.id)
            registers.append(register)
        conv += 1
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
    frame = pd.DataFrame({
        "conversation_id": conv_ids, "user_id": user_ids, "channel": channels,
        "timestamp": np.asarray(stamps, dtype=np.int64), "text": texts, "label": labels,
        "template_family": families, "register": registers,
    }).iloc[order].reset_index(drop=True)
    frame.insert(0, "message_id", [f"msg-{run.tag}-{i:08d}" for i in range(len(frame))])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True).astype(
        "datetime64[ns, UTC]")
    return frame[list(MESSAGE_COLUMNS)]


_CONV_CHANNELS = _Picker((("chat", 0.6), ("email", 0.22), ("ticket", 0.12), ("social", 0.06)))


def _conversation_register(run: _Run, label: str, channel: str) -> str:
    r = run.rng.random()
    if channel == "chat":
        if label == "none":
            return "banking" if r < 0.35 else "travel" if r < 0.55 else "chat_short"
        if label == "policy_question":
            return "lowercase_question" if r < 0.45 else "chat_short"
        return "lowercase_question" if r < 0.15 else "chat_short"
    if channel == "email":
        return "formal_letter" if label != "none" and r < 0.1 else "email"
    if channel == "ticket":
        return "dev_post" if r < 0.12 else "ticket"
    return "social"


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def generate_conversations(
    n: int,
    seed: int = 42,
    label_mix: dict[str, float] | None = None,
    start_date: str = "2026-01-01",
    days: int = 90,
    n_users: int | None = None,
    typo_rate: float = DEFAULT_TYPO_RATE,
) -> pd.DataFrame:
    """``n`` multi-turn conversations (2-8 turns, customer and agent), sorted by start time.

    The label is the privacy intent carried by the customer's turns; agents greet, acknowledge,
    ask for verification and confirm. Columns: see :data:`CONVERSATION_COLUMNS`; ``turns`` is a
    list of ``{"role", "text", "timestamp"}`` dicts with ISO-8601 UTC timestamps.
    """
    picker, start_s, days = _validate(n, label_mix, start_date, days, n_users, typo_rate)
    run = _Run(_check_seed(seed), int(n), n_users and int(n_users), typo_rate, start_s, days)
    rng, c, conv_bank = run.rng, run.composer, run.bank.conversation
    rows: list[tuple[Any, ...]] = []
    for _ in range(n):
        label = picker(rng)
        channel = _CONV_CHANNELS(rng)
        register = _conversation_register(run, label, channel)
        fam = run.pick_family(label, register)
        user = run.pick_user()
        persona = run.persona(user)
        live = channel in ("chat", "social")
        turns: list[tuple[str, str]] = []
        c.start(persona, fam.slots)
        request = c.add_noise(c.render(register, run.bank.labels[label], fam), register)
        greeted = live and rng.random() < 0.45
        if greeted:
            turns.append(("customer", c.fill(c.frame("greeting", "chat"))))
            turns.append(("agent", c.fill(conv_bank["agent_greeting"])))
        turns.append(("customer", request))
        target = 2 + int(rng.random() * 7)
        if live and label != "none" and target >= 4 and rng.random() < 0.25:
            extra = c.core(run.pick_family(label, "chat_short"), "chat_short")
            turns.append(("customer", c.add_noise(extra.lower(), "chat_short")))
        ack = c.fill(conv_bank["agent_ack"][label])
        if label == "policy_question":  # nothing to verify: the customer asks a follow-up
            verify = c.core(run.pick_family(label, "chat_short"), "chat_short")
        else:
            verify = c.fill(conv_bank["customer_verify"])
        confirm = c.fill(conv_bank["agent_confirm"][label])
        if not live:
            ack = f"Dear {persona.first},\n\n{ack}\n\nKind regards,\n{c.value('agent')}"
            verify = f"Hi,\n\n{verify}\n\nThanks,\n{persona.first}"
        elif rng.random() < 0.5:
            verify = verify.lower()
        turns += [("agent", ack), ("customer", verify), ("agent", confirm),
                  ("customer", c.fill(conv_bank["customer_followup"])),
                  ("agent", c.fill(conv_bank["agent_close"]))]
        if greeted and target < 5:
            turns = turns[2:]
        turns = turns[:target]
        t = run.random_time()
        out = []
        for i, (role, text) in enumerate(turns):
            if i:
                t += int(10 + rng.random() * 170) if live else int(1800 + rng.random() * 172800)
            out.append({"role": role, "text": text, "timestamp": _iso(t)})
        rows.append((persona, user, channel, out, label, fam.id, register))
    rows.sort(key=lambda row: row[3][0]["timestamp"])
    frame = pd.DataFrame({
        "conversation_id": [f"conv-{run.tag}-{i:07d}" for i in range(len(rows))],
        "user_id": [run.user_id(r[1]) for r in rows],
        "channel": [r[2] for r in rows],
        "started_at": pd.to_datetime([r[3][0]["timestamp"] for r in rows], utc=True).astype(
            "datetime64[ns, UTC]"),
        "turns": pd.Series([r[3] for r in rows], dtype=object),
        "label": [r[4] for r in rows],
        "template_family": [r[5] for r in rows],
        "register": [r[6] for r in rows],
    })
    return frame[list(CONVERSATION_COLUMNS)]
