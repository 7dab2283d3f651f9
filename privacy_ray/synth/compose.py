"""Compose one message (or one conversation turn) from parts, per register.

A message is greeting + context + core request + extra detail + closing/signature, each drawn
independently, so the combinations explode while only the core carries the label. Registers
decide the shape and the length: a one-line chat, a lowercase crowd question, a multi-paragraph
letter citing GDPR articles or CCPA sections, a ticket with a subject line, a social post with
@mentions and hashtags, a developer-forum post, a Banking77/CLINC150-style utterance.
"""

from __future__ import annotations

from random import Random

from privacy_ray.synth import noise
from privacy_ray.synth.bank import Compiled, Family, LabelBank, PhraseBank
from privacy_ray.synth.grammar import Seq, capitalize_first, expand, tidy
from privacy_ray.synth.pii import Persona, make_address, make_dob, make_persona

REGISTERS: tuple[str, ...] = (
    "chat_short", "lowercase_question", "formal_letter", "email", "ticket", "social",
    "dev_post", "banking", "travel",
)
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_MON = tuple(m[:3] for m in _MONTHS)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_AIRLINES = ("BA", "LH", "AF", "KL", "UA", "DL", "AA", "EI", "FR", "U2", "IB", "AZ", "AC", "QF")
_LEGAL_SUFFIX = {"gdpr": ("Ltd", "Limited", "GmbH", "SAS", "B.V.", "plc", "S.L."),
                 "ccpa": ("Inc.", "LLC", "Corp."), "generic": ("Pty Ltd", "Inc.", "Ltd")}
_CURRENCY = {"us": "$", "us_ca": "$", "ca": "$", "au": "$", "uk": "£", "in": "₹"}
_AGENTS = ("Sam", "Priya", "Alex", "Jordan", "Maria", "Tom", "Aisha", "Chris", "Lena", "Diego",
           "Hannah", "Marcus", "Yuki", "Olivia")

#: Which template style a register prefers, as (style, cumulative weight) pairs.
_STYLE_PREF = {
    "chat_short": (("short", 0.7), ("t", 1.0)),
    "lowercase_question": (("q", 0.8), ("short", 1.0)),
    "banking": (("t", 0.6), ("short", 1.0)),
    "travel": (("t", 0.6), ("short", 1.0)),
    "social": (("t", 0.6), ("short", 1.0)),
    "email": (("t", 0.9), ("formal", 0.96), ("short", 1.0)),
    "ticket": (("t", 0.88), ("short", 0.96), ("formal", 1.0)),
    "dev_post": (("t", 0.92), ("short", 1.0)),
    "formal_letter": (("formal", 0.7), ("t", 1.0)),
}
#: Typo-rate multiplier per register: chat is sloppier than a formal letter.
TYPO_SCALE = {"chat_short": 1.6, "social": 1.5, "lowercase_question": 1.2, "banking": 1.0,
              "travel": 1.0, "email": 0.6, "ticket": 0.6, "dev_post": 0.4, "formal_letter": 0.15}


class Composer:
    """Holds the run's RNG and phrase bank, and the state of the message being written."""

    def __init__(self, bank: PhraseBank, rng: Random, typo_rate: float) -> None:
        self.bank = bank
        self.rng = rng
        self.typo_rate = typo_rate
        self.frames = bank.frames
        self.persona: Persona = make_persona(rng)
        self.company = "Northwind"
        self.regime = "gdpr"
        self.local_slots: dict[str, Compiled] = {}
        self._sticky: dict[str, str] = {}
        self._dynamic = {
            "name": lambda: self.persona.name,
            "first": lambda: self.persona.first,
            "last": lambda: self.persona.last,
            "last_initial": lambda: self.persona.last[0],
            "email": lambda: self.persona.email,
            "phone": lambda: self.persona.phone,
            "address": lambda: self.persona.address,
            "postcode": lambda: self.persona.postcode,
            "city_home": lambda: self.persona.city,
            "dob": lambda: self.persona.dob,
            "dob_wrong": self._dob_wrong,
            "first_typo": lambda: self._name_typo(self.persona.first),
            "last_typo": lambda: self._name_typo(self.persona.last),
            "username": lambda: self.persona.username,
            "handle": lambda: "@" + self.persona.username,
            "account_no": lambda: self.persona.account_no,
            "iban": lambda: self.persona.iban or self.persona.account_no,
            "card": lambda: self.persona.card,
            "card_last4": lambda: self.persona.card_last4,
            "ip": lambda: self.persona.ip,
            "law": lambda: self.persona.law,
            "authority": lambda: self.persona.authority,
            "company": lambda: self.company,
            "company_legal": self._company_legal,
            "company_domain": self._company_domain,
            "handle_co": lambda: "@" + self._company_domain().split(".")[0],
            "order_no": self._order_no,
            "ticket_no": lambda: str(100000 + int(self.rng.random() * 9_899_999)),
            "ref": self._ref,
            "date": self._date,
            "month": lambda: _MONTHS[int(self.rng.random() * 12)],
            "year": lambda: str(2012 + int(self.rng.random() * 14)),
            "weekday": lambda: _WEEKDAYS[int(self.rng.random() * 7)],
            "time": self._time,
            "amount": self._amount,
            "num": lambda: str(1 + int(self.rng.random() * 999)),
            "small_num": lambda: str(2 + int(self.rng.random() * 8)),
            "booking_ref": lambda: self._code(6),
            "flight_no": lambda: self._choice(_AIRLINES) + str(10 + int(self.rng.random() * 2980)),
            "tracking_no": lambda: "1Z" + self._code(16),
            "agent": lambda: self._choice(_AGENTS),
            "first_comma": lambda: ", " + self.persona.first if self.rng.random() < 0.5 else "",
            "subject": lambda: self._sticky.get("subject", "your request"),
        }

    # ------------------------------------------------------------------ message state

    def start(self, persona: Persona, local_slots: dict[str, Compiled] | None = None) -> None:
        """Begin a new message for ``persona``: pick the company it is addressed to."""
        self.persona = persona
        self.regime = persona.regime
        self.company = self._fill_one(self.bank.slots["brand"])
        self.local_slots = local_slots or {}
        self._sticky = {}

    # ------------------------------------------------------------------ expansion helpers

    def _resolve(self, name: str) -> str:
        seqs = self.local_slots.get(name) or self.bank.slots.get(name)
        if seqs is not None:
            out: list[str] = []
            expand(seqs[int(self.rng.random() * len(seqs))], self.rng, self._resolve, out)
            return "".join(out)
        return self._dynamic[name]()

    def _fill_one(self, seqs: Compiled) -> str:
        out: list[str] = []
        expand(seqs[int(self.rng.random() * len(seqs))], self.rng, self._resolve, out)
        return "".join(out)

    def fill(self, seqs: Compiled) -> str:
        """One tidied, capitalised expansion of a random template of ``seqs``."""
        return capitalize_first(tidy(self._fill_one(seqs)))

    def fill_seq(self, seq: Seq, cap: bool = True) -> str:
        out: list[str] = []
        expand(seq, self.rng, self._resolve, out)
        text = tidy("".join(out))
        return capitalize_first(text) if cap else text

    def value(self, slot: str) -> str:
        """One value of a slot (``agent``, ``email`` ...) in the current message's state."""
        return self._resolve(slot)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def _choice(self, items: tuple[str, ...]) -> str:
        return items[int(self.rng.random() * len(items))]

    def frame(self, *path: str) -> Compiled:
        node = self.frames
        for key in path:
            node = node[key]
        return node  # type: ignore[return-value]

    def _code(self, n: int) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        return "".join(alphabet[int(self.rng.random() * 32)] for _ in range(n))

    # ------------------------------------------------------------------ dynamic values

    def _dob_wrong(self) -> str:
        return make_dob(self.rng, self.persona.country)

    def _name_typo(self, name: str) -> str:
        if len(name) < 3:
            return name + name[-1]
        i = 1 + int(self.rng.random() * (len(name) - 2))
        r = self.rng.random()
        if r < 0.4:
            return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
        if r < 0.7:
            return name[:i] + name[i + 1 :]
        return name[:i] + name[i] + name[i:]

    def _company_legal(self) -> str:
        if "company_legal" not in self._sticky:
            suffix = self._choice(_LEGAL_SUFFIX[self.regime])
            self._sticky["company_legal"] = f"{self.company} {suffix}"
        return self._sticky["company_legal"]

    def _company_domain(self) -> str:
        slug = "".join(c for c in self.company.lower() if c.isalnum())
        return slug + (".co.uk" if self.persona.country == "uk" else ".com")

    def _order_no(self) -> str:
        r = self.rng.random()
        digits = "".join(str(int(self.rng.random() * 10)) for _ in range(14))
        if r < 0.25:
            return "#" + digits[:7]
        if r < 0.45:
            return f"{digits[:3]}-{digits[3:10]}-{digits[7:14]}"
        if r < 0.65:
            return "ORD-" + digits[:6]
        if r < 0.8:
            return digits[:4]
        return self._code(2) + digits[:8]

    def _ref(self) -> str:
        r = self.rng.random()
        if r < 0.4:
            return "CAS-" + str(1_000_000 + int(self.rng.random() * 8_999_999))
        if r < 0.7:
            return "REF" + self._code(7)
        return "#" + str(10000 + int(self.rng.random() * 89999))

    def _date(self) -> str:
        y = 2025 + int(self.rng.random() * 2)
        m, d = 1 + int(self.rng.random() * 12), 1 + int(self.rng.random() * 28)
        if self.persona.country in ("us", "us_ca"):
            forms = (f"{m}/{d}/{y}", f"{_MONTHS[m - 1]} {d}, {y}", f"{_MON[m - 1]} {d}",
                     f"{y}-{m:02d}-{d:02d}")
        else:
            forms = (f"{d}/{m}/{y}", f"{d} {_MONTHS[m - 1]} {y}", f"{d:02d}.{m:02d}.{y}",
                     f"{d} {_MON[m - 1]}", f"{y}-{m:02d}-{d:02d}")
        return self._choice(forms)

    def _time(self) -> str:
        h, mi = 7 + int(self.rng.random() * 14), int(self.rng.random() * 60)
        if self.persona.country in ("us", "us_ca", "ca", "au", "in"):
            return f"{(h - 1) % 12 + 1}:{mi:02d} {'am' if h < 12 else 'pm'}"
        return f"{h:02d}:{mi:02d}"

    def _amount(self) -> str:
        value = 1 + self.rng.random() * (400 if self.rng.random() < 0.8 else 4000)
        sym = _CURRENCY.get(self.persona.country, "€")
        cents = f"{value:.2f}" if self.rng.random() < 0.7 else f"{int(value)}"
        if sym == "€" and self.rng.random() < 0.5:
            return f"{cents.replace('.', ',')} €" if self.rng.random() < 0.5 else f"{cents} EUR"
        return f"{sym}{cents}"

    # ------------------------------------------------------------------ parts

    def core(self, fam: Family, register: str) -> str:
        """The sentence that carries the intent, in the style the register prefers."""
        self.local_slots = fam.slots
        r = self.rng.random()
        style = "t"
        for s, cum in _STYLE_PREF[register]:
            if r < cum:
                style = s
                break
        text = self.fill(fam.templates(style))
        if style != "q" and self.rng.random() < 0.12:  # lead-in or hedge, label-agnostic
            if self.rng.random() < 0.6:
                lead = self.fill(self.frame("lead_in"))
                if lead[-1] in ".:":
                    text = f"{lead} {text}"
                else:
                    text = f"{lead} {text[:1].lower()}{text[1:]}"
            elif text[-1:] == "." and fam.label != "privacy_complaint":
                text = f"{text[:-1]}, {self.fill(self.frame('hedge')).lower()}{text[-1]}"
        return text

    def subject(self, lb: LabelBank, fam: Family) -> str:
        """A subject line or issue title: label subjects, a family title, a fragment, or vague."""
        self.local_slots = fam.slots
        r = self.rng.random()
        if fam.titles and r < 0.5:
            s = self.fill(fam.titles)
        elif lb.label != "none" and r < 0.55:
            s = self.fill(lb.subjects)
        elif r < 0.8 and "short" in fam.styles:
            s = self.fill(fam.styles["short"])
            if self.chance(0.6):
                s = s[:1].upper() + s[1:]
        else:
            s = self.fill(self.frame("generic_subject"))
        self._sticky["subject"] = s
        return s

    def fill_distinct(self, seqs: Compiled, k: int) -> list[str]:
        """``k`` expansions of different templates of ``seqs`` (no repeated sentence)."""
        if k <= 0:
            return []
        idx = self.rng.sample(range(len(seqs)), min(k, len(seqs)))
        return [self.fill_seq(seqs[i]) for i in idx]

    def context(self, k: int) -> list[str]:
        return self.fill_distinct(self.frame("context"), k)

    def core_pair(self, fam: Family, register: str, p_second: float) -> list[str]:
        """The core, and with chance ``p_second`` a second, different sentence of the family."""
        first = self.core(fam, register)
        if self.rng.random() < p_second:
            for _ in range(3):
                second = self.core(fam, register)
                if second[:25] != first[:25]:
                    return [first, second]
        return [first]

    def secondary(self, label: str) -> str:
        """A minor second topic that does not change the label (an ordinary support aside)."""
        if label == "none":
            return self.fill(self.frame("privacy_aside"))
        fams = self.bank.labels["none"].families
        fam = fams[int(self.rng.random() * len(fams))]
        while fam.domain == "assistant":
            fam = fams[int(self.rng.random() * len(fams))]
        text = self.fill(fam.templates("t"))
        lead = self._choice(
            ("Also, ", "Separately, ", "One more thing: ", "P.S. ", "Unrelated, but "))
        return lead + text[:1].lower() + text[1:] if lead != "P.S. " else lead + text

    def signature(self) -> str:
        return self.fill(self.frame("signature"))

    # ------------------------------------------------------------------ registers

    def render(self, register: str, lb: LabelBank, fam: Family) -> str:
        """The full message text for one register (before noise)."""
        return getattr(self, "_r_" + register)(lb, fam)

    def _r_chat_short(self, lb: LabelBank, fam: Family) -> str:
        parts: list[str] = []
        if self.chance(0.3):
            parts.append(self.fill(self.frame("greeting", "chat")))
        if self.chance(0.15):
            parts.append(self.fill(self.frame("context_chat")))
        parts.append(self.core(fam, "chat_short"))
        if self.chance(0.05):
            parts.append(self.secondary(lb.label))
        if self.chance(0.2):
            parts.append(self.fill(self.frame("closing", "chat")))
        sep = self._choice((" ", " ", ", ", ". ", "\n", " - "))
        text = parts[0]
        for part in parts[1:]:
            if sep in (" ", ", ", " - ") and not part[:2].isupper():
                part = part[:1].lower() + part[1:]
            text += (" " if sep == ". " and text[-1:] in ".?!," else sep) + part
        r = self.rng.random()
        if r < 0.45:
            text = text.lower()
        elif r < 0.48 and len(text) < 80:
            text = text.upper()
        if self.chance(0.3):
            text = noise.abbreviate(text, self.rng)
        if self.chance(0.12):
            text += self._choice(("", " ")) + self.fill(self.frame("emoji"))
        return text

    def _r_lowercase_question(self, lb: LabelBank, fam: Family) -> str:
        text = self.core(fam, "lowercase_question").lower()
        if self.chance(0.5):
            text = noise.drop_apostrophes(text)
        if self.chance(0.75):
            text = noise.strip_end_punct(text)
        return text

    def _utterance(self, fam: Family, register: str) -> str:
        text = self.core(fam, register)
        r = self.rng.random()
        if r < 0.25:
            text = text.lower()
        if self.chance(0.3):
            text = noise.strip_end_punct(text)
        if self.chance(0.04):
            text = noise.abbreviate(text, self.rng)
        return text

    def _r_banking(self, lb: LabelBank, fam: Family) -> str:
        return self._utterance(fam, "banking")

    def _r_travel(self, lb: LabelBank, fam: Family) -> str:
        return self._utterance(fam, "travel")

    def _body(self, lb: LabelBank, fam: Family, register: str, max_context: int) -> list[str]:
        """Paragraphs of an email / ticket body: context, core, detail, secondary, thanks."""
        ctx_n = min(max_context, int(self.rng.random() * (max_context + 1.5)))
        first = self.context(ctx_n)
        first += self.core_pair(fam, register, 0.2)
        if lb.details and self.chance(0.45):
            first.append(self.fill(lb.details))
        if self.chance(0.08 if lb.label != "none" else 0.12):
            first.append(self.secondary(lb.label))
        paragraphs = []
        if len(first) > 3 and self.chance(0.5):
            cut = 1 + int(self.rng.random() * (len(first) - 1))
            paragraphs += [" ".join(first[:cut]), " ".join(first[cut:])]
        else:
            paragraphs.append(" ".join(first))
        if self.chance(0.45):
            paragraphs.append(self.fill(self.frame("thanks_line")))
        return paragraphs

    def _r_email(self, lb: LabelBank, fam: Family) -> str:
        blocks: list[str] = []
        if self.chance(0.35):
            blocks.append("Subject: " + self.subject(lb, fam))
        if self.chance(0.08):
            blocks.append(self.fill(self.frame("resend")))
        if self.chance(0.85):
            blocks.append(self.fill(self.frame("greeting", "email")))
        blocks += self._body(lb, fam, "email", 3)
        if self.chance(0.85):
            blocks.append(self.fill(self.frame("closing", "email")) + "\n" + self.signature())
        if self.chance(0.12):
            blocks.append(self.fill(self.frame("footer")))
        if self.chance(0.06):
            blocks.append(self.fill(self.frame("disclaimer")))
        if self.chance(0.15):
            blocks.append(self._quoted())
        return "\n\n".join(blocks)

    def _quoted(self) -> str:
        header = self.fill(self.frame("quoted_header"))
        body = self.fill(self.frame("quoted_body"))
        lines = (header + "\n" + body).split("\n")
        return "\n".join("> " + line for line in lines)

    def _r_ticket(self, lb: LabelBank, fam: Family) -> str:
        body = self._body(lb, fam, "ticket", 2)
        if self.chance(0.4):
            body.insert(0, self.fill(self.frame("greeting", "email")))
        if self.chance(0.4):
            body.append(self.fill(self.frame("closing", "email")) + "\n" + self.signature())
        r = self.rng.random()
        subject = self.subject(lb, fam)
        if r < 0.5:
            return f"Subject: {subject}\n\n" + "\n\n".join(body)
        if r < 0.75:
            fields = [f"Name: {self.persona.name}", f"Email: {self.persona.email}"]
            if self.chance(0.4):
                fields.append(f"Phone: {self.persona.phone}")
            fields.append("Topic: " + self.fill(self.frame("ticket_topic")))
            if self.chance(0.3):
                fields.append("Order number: " + self._order_no())
            fields.append("Subject: " + subject)
            return "\n".join(fields) + "\nMessage:\n" + "\n\n".join(body)
        return f"[{self.fill(self.frame('ticket_topic'))}] {subject}\n" + "\n".join(body)

    def _r_social(self, lb: LabelBank, fam: Family) -> str:
        text = self.core(fam, "social")
        if self.chance(0.2):
            text = self.fill(self.frame("context_chat")) + ", " + text[:1].lower() + text[1:]
        handle = self._dynamic["handle_co"]()
        r = self.rng.random()
        if r < 0.7:
            text = f"{handle} {text}"
        elif r < 0.85:
            text = f"{text} {handle}"
        tags: list[str] = []
        if lb.label != "none" and self.chance(0.35):
            tags.append(self.fill(self.frame("hashtags_privacy")))
        if self.chance(0.3):
            tags.append(self.fill(self.frame("hashtags_general")))
        if lb.label == "none" and fam.domain and self.chance(0.3):
            tags.append(self.fill(self.frame("hashtags_domain", fam.domain)))
        if tags:
            text += " " + " ".join(tags)
        if self.chance(0.4):
            text += " " + self.fill(self.frame("emoji"))
        if self.chance(0.3):
            text = text.lower()
        return text[:280]

    def _r_dev_post(self, lb: LabelBank, fam: Family) -> str:
        title = self.subject(lb, fam)
        blocks: list[str] = []
        if self.chance(0.4):
            blocks.append(self.fill(self.frame("dev_section")))
        if self.chance(0.5):
            blocks.append(self.fill(self.frame("greeting", "dev")))
        body = self.core_pair(fam, "dev_post", 0.3)
        if lb.details and self.chance(0.35):
            body.append(self.fill(lb.details))
        blocks.append(" ".join(body))
        if lb.label == "none" and fam.domain in ("dev", "tech") and self.chance(0.5):
            blocks.append(self.fill(self.frame("dev_env")))
        if lb.label != "none" and self.chance(0.4):
            blocks.append(self._choice((
                f"Account: `{self.persona.username}` ({self.persona.email})",
                f"Username: {self.persona.username}",
                f"My account email is {self.persona.email}.",
                f"GitHub: @{self.persona.username}",
            )))
        if self.chance(0.4):
            blocks.append(self._choice(("Thanks!", "Thanks in advance.", "Cheers", "Thank you.",
                                        "Thanks", "Regards")))
        return title + "\n\n" + "\n\n".join(blocks)

    def _r_formal_letter(self, lb: LabelBank, fam: Family) -> str:
        blocks: list[str] = []
        p = self.persona
        if self.chance(0.45):
            blocks.append(f"{p.name}\n{p.address.replace(', ', chr(10))}\n{p.email}")
            blocks.append(self._date())
            key = "recipient" if lb.label != "none" else "recipient_none"
            blocks.append(self.fill(self.frame("letter", key)))
        if self.chance(0.75):
            prefix = self._choice(("Re: ", "Subject: ", "RE: ", "Ref: "))
            blocks.append(prefix + self.subject(lb, fam))
        salutation = "formal" if lb.label != "none" else "email"
        blocks.append(self.fill(self.frame("greeting", salutation)))
        if lb.label == "none":
            return self._none_letter(blocks, lb, fam)
        verbose = self.chance(0.3)  # the long, belt-and-braces letters (often > 2,000 chars)
        opening = [self.fill(lb.formal_opening)] if lb.formal_opening else []
        legal = lb.formal_legal.get(self.regime) or lb.formal_legal.get("generic") or ()
        opening += self.fill_distinct(legal, 1 + (self.rng.random() < (0.8 if verbose else 0.35)))
        blocks.append(" ".join(opening))
        if verbose or self.chance(0.4):  # background: who I am, how I dealt with the company
            blocks.append(" ".join(self.context(2 + int(self.rng.random() * 3))))
        body = self.core_pair(fam, "formal_letter", 0.5)
        if lb.details and (verbose or self.chance(0.5)):
            body += self.fill_distinct(lb.details, 1 + (self.rng.random() < 0.3))
        blocks.append(" ".join(body))
        if lb.items and (verbose or self.chance(0.5)):
            blocks.append(self._item_list(lb, verbose))
        if verbose:
            extra = self.frame("letter", "legal_extra")
            blocks.append(" ".join(self.fill_distinct(
                extra.get(self.regime) or extra["generic"], 2 + int(self.rng.random() * 2))))
            blocks.append(self.fill(self.frame("letter", "prior_contact")))
        if verbose or self.chance(0.65):
            blocks.append(self._id_block())
        tail = []
        if lb.label in ("access_request", "portability_request") and self.chance(0.5):
            tail.append(self.fill(self.frame("letter", "no_fee")))
        if self.chance(0.5):
            tail.append(self.fill(self.frame("letter", "id_evidence")))
        if self.chance(0.8):
            deadline = self.frame("letter", "deadline")
            tail.append(self.fill(deadline.get(self.regime) or deadline["generic"]))
        if self.chance(0.35 if lb.label != "privacy_complaint" else 0.7):
            tail.append(self.fill(self.frame("letter", "escalation")))
        if self.chance(0.4):
            tail.append(self.fill(self.frame("letter", "contact_pref")))
        if tail:
            blocks.append(" ".join(tail))
        if self.chance(0.4):
            blocks.append(self.fill(self.frame("thanks_line")))
        blocks.append(self.fill(self.frame("closing", "formal")) + "\n\n" + self._choice(
            (p.name, p.name, f"{p.name}\n{p.email}", f"{p.name}\n{p.phone}")))
        return "\n\n".join(b for b in blocks if b)

    def _item_list(self, lb: LabelBank, verbose: bool = False) -> str:
        """An enumerated list (what to provide, what to erase ...) in one of four layouts."""
        if lb.label == "correction_request":
            lo, hi = 1, 3
        else:
            lo, hi = (5, 10) if verbose else (3, 6)
        n = lo + int(self.rng.random() * (hi - lo + 1))
        picked = sorted(self.rng.sample(range(len(lb.items)), min(n, len(lb.items))))
        style = self._choice(("- ", "• ", "num", "(a) "))
        lines = []
        for i, idx in enumerate(picked):
            item = self.fill_seq(lb.items[idx], cap=False)
            if style == "num":
                lines.append(f"{i + 1}. {item};")
            elif style == "(a) ":
                lines.append(f"({chr(97 + i)}) {item};")
            else:
                lines.append(f"{style}{item}")
        if lines[-1].endswith(";"):
            lines[-1] = lines[-1][:-1] + "."
        return self.fill(lb.items_intro) + "\n" + "\n".join(lines)

    def _id_block(self) -> str:
        p = self.persona
        fields = [("Full name", p.name)]
        opts = [("Address", p.address), ("Email address", p.email), ("Email", p.email),
                ("Telephone", p.phone), ("Phone", p.phone), ("Date of birth", p.dob),
                ("Customer number", p.account_no), ("Account number", p.account_no),
                ("Username", p.username),
                ("Previous address", make_address(self.rng, p.country)[0])]
        if p.iban and self.chance(0.3):
            opts.append(("IBAN", p.iban))
        if self.chance(0.15):
            opts.append(("Card used for purchases", p.card))
        if self.chance(0.2):
            opts.append(("IP address used to log in", p.ip))
        seen: set[str] = set()
        for label, value in self.rng.sample(opts, min(len(opts), 2 + int(self.rng.random() * 4))):
            if value not in seen:
                fields.append((label, value))
                seen.add(value)
        intro = self.fill(self.frame("letter", "id_intro"))
        if self.chance(0.5):
            return intro + "\n\n" + "\n".join(f"{k}: {v}" for k, v in fields)
        return intro + " " + "; ".join(f"{k.lower()}: {v}" for k, v in fields) + "."

    def _none_letter(self, blocks: list[str], lb: LabelBank, fam: Family) -> str:
        p = self.persona
        body = [self.core(fam, "formal_letter")]
        body += self.context(1 + int(self.rng.random() * 3))
        body.append(self.fill(fam.templates("t")))
        blocks.append(" ".join(body))
        if self.chance(0.5):
            blocks.append(self.fill(self.frame("privacy_aside")))
        blocks.append(self._choice((
            "I look forward to your response within 14 days.",
            "I expect a full refund and a written explanation.",
            "If this is not resolved, I will take the matter to the ombudsman.",
            "Please treat this as a formal complaint and respond in writing.",
        )))
        blocks.append(self.fill(self.frame("closing", "formal")) + "\n\n" + p.name)
        return "\n\n".join(blocks)

    # ------------------------------------------------------------------ noise

    def add_noise(self, text: str, register: str) -> str:
        rate = self.typo_rate * TYPO_SCALE[register]
        return noise.add_typos(text, rate, self.rng) if rate > 0 else text

