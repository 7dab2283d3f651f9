"""Load the phrase files (``phrases/*.yaml``) into compiled, validated structures.

Phrase material lives in data files so it can grow without touching code: one file per privacy
label, several ``none_*.yaml`` files (one per domain), label-agnostic ``frames.yaml``, agent lines
in ``conversation.yaml`` and global ``slots.yaml``. Loading compiles every template once and checks
that each ``{slot}`` resolves, so a typo in a phrase file fails at import of the bank (and in the
tests), not in the middle of a 200k-row run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from privacy_ray.config import LABELS
from privacy_ray.errors import ConfigError
from privacy_ray.synth.grammar import Seq, compile_list, slot_names

PHRASES_DIR = Path(__file__).parent / "phrases"
#: Template styles a family may define: neutral, chat fragment, formal letter, lowercase question.
STYLES = ("t", "short", "formal", "q")
#: Domains of ``none`` families; registers ``banking`` and ``travel`` draw from the matching one.
DOMAINS = ("banking", "travel", "retail", "tech", "dev", "assistant")
#: Slots filled in code (PII, dates, ids) rather than from phrase files.
DYNAMIC_SLOTS = frozenset((
    "name", "first", "last", "last_initial", "email", "phone", "address", "postcode", "city_home",
    "dob", "dob_wrong", "first_typo", "last_typo", "username", "handle", "account_no", "iban",
    "card", "card_last4", "ip", "order_no", "ticket_no", "ref", "date", "month", "year", "weekday",
    "amount", "num", "small_num", "time", "company", "company_legal", "company_domain", "handle_co",
    "law", "authority", "booking_ref", "flight_no", "tracking_no", "agent", "first_comma",
    "subject",
))

Compiled = tuple[Seq, ...]


@dataclass
class Family:
    """One paraphrase family: several templates for one way of expressing an intent."""

    id: str
    label: str
    name: str
    domain: str | None
    styles: dict[str, Compiled]
    titles: Compiled
    slots: dict[str, Compiled]

    def templates(self, style: str) -> Compiled:
        """Templates of ``style``, falling back to the neutral ones (``t``) when absent."""
        return self.styles.get(style) or self.styles.get("t") or next(iter(self.styles.values()))


@dataclass
class LabelBank:
    """Everything one label contributes: families plus subjects, details and letter parts."""

    label: str
    families: list[Family] = field(default_factory=list)
    subjects: Compiled = ()
    details: Compiled = ()
    formal_opening: Compiled = ()
    formal_legal: dict[str, Compiled] = field(default_factory=dict)
    items_intro: Compiled = ()
    items: Compiled = ()


@dataclass
class PhraseBank:
    """All compiled phrase material."""

    labels: dict[str, LabelBank]
    slots: dict[str, Compiled]
    frames: dict[str, Any]
    conversation: dict[str, Any]

    def families_for(self, label: str, domain: str | None = None) -> list[Family]:
        fams = self.labels[label].families
        return [f for f in fams if f.domain == domain] if domain else fams


#: libyaml's safe loader where PyYAML was built with it: it parses the phrase files about five
#: times faster, and every Ray worker that generates data loads them once.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except yaml.YAMLError as e:
        msg = f"phrase file {path.name} is not valid YAML ({e}); fix the file"
        raise ConfigError(msg) from e
    if not isinstance(data, dict):
        msg = f"phrase file {path.name} must hold a mapping at the top level"
        raise ConfigError(msg)
    return data


def _compile_tree(node: Any, where: str) -> Any:
    """Compile every list of strings in a nested mapping, keeping the mapping's shape."""
    if isinstance(node, dict):
        return {str(k): _compile_tree(v, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return compile_list(node, where)
    if isinstance(node, str):
        return compile_list([node], where)
    msg = f"{where}: expected a list of templates or a mapping, got {type(node).__name__}"
    raise ConfigError(msg)


def _load_label_file(data: dict[str, Any], fname: str, bank: LabelBank) -> None:
    where = fname
    bank.subjects += compile_list(data.get("subjects", []), f"{where}.subjects")
    bank.details += compile_list(data.get("details", []), f"{where}.details")
    formal = data.get("formal") or {}
    bank.formal_opening += compile_list(formal.get("opening", []), f"{where}.formal.opening")
    for regime, items in (formal.get("legal") or {}).items():
        bank.formal_legal[regime] = bank.formal_legal.get(regime, ()) + compile_list(
            items, f"{where}.formal.legal.{regime}")
    bank.items_intro += compile_list(formal.get("items_intro", []), f"{where}.formal.items_intro")
    bank.items += compile_list(formal.get("items", []), f"{where}.formal.items")
    for name, spec in (data.get("families") or {}).items():
        fid = f"{bank.label}/{name}"
        if any(f.id == fid for f in bank.families):
            msg = f"{fname}: family {fid} is defined twice; rename one"
            raise ConfigError(msg)
        if not isinstance(spec, dict):
            msg = f"{fname}: family {name} must be a mapping of styles"
            raise ConfigError(msg)
        unknown = set(spec) - set(STYLES) - {"domain", "titles", "slots"}
        if unknown:
            msg = f"{fname}: family {name} has unknown keys {sorted(unknown)}; use {STYLES}"
            raise ConfigError(msg)
        styles = {s: compile_list(spec[s], f"{fname}.{name}.{s}") for s in STYLES if spec.get(s)}
        if not styles:
            msg = f"{fname}: family {name} has no templates"
            raise ConfigError(msg)
        domain = spec.get("domain")
        if bank.label == "none" and domain not in DOMAINS:
            msg = f"{fname}: none family {name} needs a domain, one of {DOMAINS}"
            raise ConfigError(msg)
        bank.families.append(Family(
            id=fid, label=bank.label, name=name, domain=domain, styles=styles,
            titles=compile_list(spec.get("titles", []), f"{fname}.{name}.titles"),
            slots={k: compile_list(v, f"{fname}.{name}.slots.{k}")
                   for k, v in (spec.get("slots") or {}).items()},
        ))


def _check_slots(bank: PhraseBank) -> None:
    known = set(bank.slots) | DYNAMIC_SLOTS

    def check(seqs: Any, where: str, extra: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        if isinstance(seqs, dict):
            for k, v in seqs.items():
                check(v, f"{where}.{k}", extra)
            return
        for seq in seqs:
            missing = slot_names(seq) - known - extra
            if missing:
                msg = f"phrase {where} uses unknown slot(s) {sorted(missing)}; define them"
                raise ConfigError(msg)

    check(bank.slots, "slots")
    check(bank.frames, "frames")
    check(bank.conversation, "conversation")
    for lb in bank.labels.values():
        for part in ("subjects", "details", "formal_opening", "items_intro", "items"):
            check(getattr(lb, part), f"{lb.label}.{part}")
        check(lb.formal_legal, f"{lb.label}.formal.legal")
        for fam in lb.families:
            check(fam.styles, fam.id, set(fam.slots))
            check(fam.titles, f"{fam.id}.titles", set(fam.slots))
            check(fam.slots, f"{fam.id}.slots", set(fam.slots))


@lru_cache(maxsize=1)
def load_bank(directory: str | None = None) -> PhraseBank:
    """Load and compile all phrase files (cached: the bank is immutable after loading)."""
    root = Path(directory) if directory else PHRASES_DIR
    labels = {label: LabelBank(label=label) for label in LABELS}
    slots: dict[str, Compiled] = {}
    frames: dict[str, Any] = {}
    conversation: dict[str, Any] = {}
    for path in sorted(root.glob("*.yaml")):
        data = _read(path)
        if path.name == "slots.yaml":
            slots.update({k: compile_list(v, f"slots.{k}") for k, v in data.items()})
        elif path.name == "frames.yaml":
            frames = _compile_tree(data, "frames")
        elif path.name == "conversation.yaml":
            conversation = _compile_tree(data, "conversation")
        else:
            label = data.get("label")
            if label not in labels:
                msg = f"phrase file {path.name}: label {label!r} is not one of {LABELS}"
                raise ConfigError(msg)
            _load_label_file(data, path.name, labels[label])
    for key, value in frames.items():  # top-level frame lists double as slots ({job_title})
        if isinstance(value, tuple):
            slots.setdefault(key, value)
    empty = [lb.label for lb in labels.values() if not lb.families]
    if empty:
        msg = f"no phrase families for label(s) {empty} in {root}; add a phrase file"
        raise ConfigError(msg)
    bank = PhraseBank(labels=labels, slots=slots, frames=frames, conversation=conversation)
    _check_slots(bank)
    return bank
