"""Synthetic people and the PII the later stages must find and redact.

Each user gets a :class:`Persona` (name, e-mail, phone, street address, date of birth, account,
IBAN, Luhn-valid card, IP, username) drawn from one country, so a user's messages repeat the same
details the way real customers do, and the regulation a formal letter cites follows the country
(GDPR / UK GDPR in Europe, CCPA in California ...). Formats vary on purpose: phone numbers in
national and international forms, cards with and without separators, dates in local order.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from random import Random

FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley",
    "Steven", "Emily", "Andrew", "Michelle", "Joshua", "Amanda", "Kevin", "Melissa", "Brian",
    "Stephanie", "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Mia", "Noah",
    "Sophie", "Leo", "Grace", "Oscar", "Freya", "Liam", "Chloe", "Lukas", "Hannah", "Felix", "Lena",
    "Jonas", "Lea", "Maximilian", "Anna", "Paul", "Marie", "Louis", "Camille", "Hugo", "Manon",
    "Lucas", "Chloé", "Pierre", "Juliette", "Sean", "Aoife", "Conor", "Niamh", "Ciarán", "Saoirse",
    "Daan", "Sanne", "Bram", "Fleur", "Javier", "Lucía", "Alejandro", "Carmen", "Mateo", "Sofía",
    "Marco", "Giulia", "Luca", "Chiara", "Alessandro", "Francesca", "Priya", "Arjun", "Ananya",
    "Rohan", "Aisha", "Omar", "Fatima", "Yusuf", "Mei", "Wei", "Hiroshi", "Yuki", "Min-jun",
    "Ji-woo", "Olusegun", "Chiamaka", "Kwame", "Amara", "Tomasz", "Agnieszka", "Piotr", "Katarzyna",
    "Mateus", "Beatriz", "Thiago", "Larissa", "Dmitri", "Olga", "Ahmed", "Leila", "Carlos",
    "Gabriela", "Nguyen", "Linh", "Sven", "Ingrid", "Erik", "Astrid",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Hill", "Green", "Adams", "Baker",
    "Nelson", "Evans", "Hughes", "Roberts", "Edwards", "Wood", "Turner", "Patel", "Khan", "Murphy",
    "Kelly", "O'Brien", "O'Sullivan", "Walsh", "Byrne", "Ryan", "Doyle", "Müller", "Schmidt",
    "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Schulz", "Dubois",
    "Durand", "Lefebvre", "Moreau", "Laurent", "Girard", "Bonnet", "Rousseau", "de Vries",
    "van Dijk", "Bakker", "Jansen", "Visser", "Fernández", "Sánchez", "Pérez", "Gómez", "Díaz",
    "Rossi",
    "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Sharma", "Singh", "Gupta", "Iyer",
    "Reddy", "Chen", "Wang", "Li", "Zhang", "Liu", "Tanaka", "Suzuki", "Kim", "Park", "Nguyen",
    "Tran", "Okafor", "Adeyemi", "Mensah", "Kowalski", "Nowak", "Wiśniewski", "Silva", "Santos",
    "Oliveira", "Ivanov", "Petrov", "Hassan", "Ali", "Ahmed", "Costa", "Andersson", "Johansson",
    "Nielsen", "Hansen", "Novak", "Horvat",
)

_EMAIL_DOMAINS = {
    "us": ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com", "hotmail.com",
           "proton.me", "comcast.net"),
    "uk": ("gmail.com", "hotmail.co.uk", "btinternet.com", "outlook.com", "yahoo.co.uk",
           "sky.com", "icloud.com"),
    "de": ("gmx.de", "web.de", "gmail.com", "t-online.de", "posteo.de", "outlook.de"),
    "fr": ("orange.fr", "gmail.com", "free.fr", "laposte.net", "hotmail.fr"),
    "ie": ("gmail.com", "eircom.net", "outlook.ie", "hotmail.com", "icloud.com"),
    "nl": ("gmail.com", "ziggo.nl", "kpnmail.nl", "hotmail.nl", "outlook.com"),
    "es": ("gmail.com", "hotmail.es", "yahoo.es", "telefonica.net"),
    "it": ("gmail.com", "libero.it", "virgilio.it", "hotmail.it"),
    "ca": ("gmail.com", "rogers.com", "shaw.ca", "outlook.com", "yahoo.ca"),
    "au": ("gmail.com", "bigpond.com", "outlook.com.au", "icloud.com"),
    "in": ("gmail.com", "yahoo.co.in", "rediffmail.com", "outlook.com"),
}
_WORK_DOMAINS = ("acmecorp.com", "fabrikam.io", "contoso.co.uk", "initech.com", "globex.net",
                 "umbrella-labs.de", "hooli.xyz", "piedpiper.dev", "wayneent.com", "stark.io")

# (weight, country) - the US share is mostly California so CCPA letters have a home.
_COUNTRIES = (
    (0.22, "us_ca"), (0.14, "us"), (0.2, "uk"), (0.08, "de"), (0.05, "ie"), (0.06, "fr"),
    (0.04, "nl"), (0.04, "es"), (0.03, "it"), (0.06, "ca"), (0.05, "au"), (0.03, "in"),
)

_US_PLACES = {
    "us_ca": (("San Francisco", "CA", "941"), ("Los Angeles", "CA", "900"),
              ("San Diego", "CA", "921"), ("Sacramento", "CA", "958"), ("San Jose", "CA", "951"),
              ("Oakland", "CA", "946"), ("Fresno", "CA", "937"), ("Irvine", "CA", "926")),
    "us": (("Austin", "TX", "787"), ("Seattle", "WA", "981"), ("Chicago", "IL", "606"),
           ("New York", "NY", "100"), ("Brooklyn", "NY", "112"), ("Denver", "CO", "802"),
           ("Boston", "MA", "021"), ("Miami", "FL", "331"), ("Atlanta", "GA", "303"),
           ("Portland", "OR", "972"), ("Phoenix", "AZ", "850"), ("Richmond", "VA", "232")),
}
_US_STREETS = ("Main", "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill",
               "Sunset", "Park", "Valencia", "Mission", "Broadway", "Lincoln", "Jefferson",
               "Willow", "Madison", "Franklin", "Highland")
_US_SUFFIX = ("St", "Street", "Ave", "Avenue", "Blvd", "Rd", "Road", "Dr", "Drive", "Ln",
              "Way", "Ct")
_UK_PLACES = (("London", ("SW1A", "NW1", "E14", "SE15", "N7", "W2", "EC1V")),
              ("Manchester", ("M1", "M14", "M20")), ("Birmingham", ("B1", "B15", "B29")),
              ("Leeds", ("LS1", "LS6")), ("Bristol", ("BS1", "BS8")), ("Glasgow", ("G1", "G12")),
              ("Edinburgh", ("EH1", "EH10")), ("Cardiff", ("CF10", "CF24")),
              ("Brighton", ("BN1", "BN2")), ("Leicester", ("LE1", "LE2")))
_UK_STREETS = ("High", "Station", "Church", "Victoria", "Queen's", "King", "Mill", "Park",
               "Baker", "Albert", "Green", "Manor", "Kingsway", "York")
_UK_SUFFIX = ("Street", "Road", "Lane", "Avenue", "Close", "Gardens", "Crescent", "Terrace")
_DE_PLACES = (("Berlin", "10"), ("Hamburg", "20"), ("München", "80"), ("Köln", "50"),
              ("Frankfurt am Main", "60"), ("Stuttgart", "70"), ("Leipzig", "04"))
_DE_STREETS = ("Hauptstraße", "Bahnhofstraße", "Gartenstraße", "Schillerstraße", "Goethestraße",
               "Lindenallee", "Berliner Straße", "Am Markt", "Kirchweg")
_FR_PLACES = (("Paris", "750"), ("Lyon", "6900"), ("Marseille", "130"), ("Toulouse", "3100"),
              ("Bordeaux", "3300"), ("Lille", "5900"), ("Nantes", "4400"))
_FR_STREETS = ("rue de la République", "avenue Victor Hugo", "rue Pasteur", "boulevard Voltaire",
               "rue du Général de Gaulle", "place de la Mairie", "rue des Lilas")
_IE_PLACES = (("Dublin", "D0"), ("Cork", "T12"), ("Galway", "H91"), ("Limerick", "V94"))
_IE_STREETS = ("Main Street", "Grafton Street", "Dame Street", "Patrick Street", "Shop Street",
               "Church Road", "Strand Road")
_NL_PLACES = (("Amsterdam", "10"), ("Rotterdam", "30"), ("Utrecht", "35"), ("Den Haag", "25"))
_NL_STREETS = ("Keizersgracht", "Prinsengracht", "Damstraat", "Kerkstraat", "Stationsweg")
_ES_PLACES = (("Madrid", "280"), ("Barcelona", "080"), ("Valencia", "460"), ("Sevilla", "410"))
_ES_STREETS = ("Calle Mayor", "Calle de Alcalá", "Avenida de la Constitución", "Calle Real")
_IT_PLACES = (("Roma", "001"), ("Milano", "201"), ("Torino", "101"), ("Napoli", "801"))
_IT_STREETS = ("Via Roma", "Via Garibaldi", "Corso Vittorio Emanuele", "Via Mazzini")
_CA_PLACES = (("Toronto", "ON", "M5V"), ("Vancouver", "BC", "V6B"), ("Montréal", "QC", "H2X"),
              ("Calgary", "AB", "T2P"), ("Ottawa", "ON", "K1P"))
_AU_PLACES = (("Sydney", "NSW", "2000"), ("Melbourne", "VIC", "3000"), ("Brisbane", "QLD", "4000"),
              ("Perth", "WA", "6000"), ("Adelaide", "SA", "5000"))
_IN_PLACES = (("Bengaluru", "5600"), ("Mumbai", "4000"), ("New Delhi", "1100"), ("Pune", "4110"),
              ("Chennai", "6000"))

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")

#: Country -> (regime used by the letter templates, law name, supervisory authority).
REGIMES = {
    "us_ca": ("ccpa", "the California Consumer Privacy Act (CCPA)",
              "the California Privacy Protection Agency"),
    "us": ("ccpa", "the CCPA and applicable state privacy law", "my state Attorney General"),
    "uk": ("gdpr", "the UK GDPR and the Data Protection Act 2018",
           "the Information Commissioner's Office (ICO)"),
    "de": ("gdpr", "the General Data Protection Regulation (GDPR)",
           "the competent data protection authority"),
    "ie": ("gdpr", "the GDPR", "the Data Protection Commission"),
    "fr": ("gdpr", "the GDPR (RGPD)", "the CNIL"),
    "nl": ("gdpr", "the GDPR (AVG)", "the Autoriteit Persoonsgegevens"),
    "es": ("gdpr", "the GDPR and the LOPDGDD", "the AEPD"),
    "it": ("gdpr", "the GDPR", "the Garante per la protezione dei dati personali"),
    "ca": ("generic", "PIPEDA", "the Office of the Privacy Commissioner of Canada"),
    "au": ("generic", "the Privacy Act 1988", "the OAIC"),
    "in": ("generic", "the Digital Personal Data Protection Act, 2023",
           "the Data Protection Board of India"),
}


def luhn_check_digit(digits: str) -> str:
    """The digit that makes ``digits + check`` pass the Luhn test."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _digits(rng: Random, n: int) -> str:
    """``n`` random decimal digits (leading zeros kept); 12 digits per float draw."""
    out = ""
    while n > 0:
        k = min(n, 12)
        out += str(int(rng.random() * 10**k)).zfill(k)
        n -= k
    return out


def _letters(rng: Random, n: int) -> str:
    return "".join(chr(65 + int(rng.random() * 26)) for _ in range(n))


def make_card(rng: Random) -> str:
    """A Luhn-valid Visa / Mastercard / Amex / Discover number, in one of several layouts."""
    r = rng.random()
    if r < 0.45:
        body, length = "4" + _digits(rng, 14), 16
    elif r < 0.8:
        body, length = str(51 + int(rng.random() * 5)) + _digits(rng, 13), 16
    elif r < 0.92:
        body, length = rng.choice(("34", "37")) + _digits(rng, 12), 15
    else:
        body, length = "6011" + _digits(rng, 11), 16
    number = body + luhn_check_digit(body)
    style = rng.random()
    if style < 0.4:
        sep = " "
    elif style < 0.6:
        sep = "-"
    else:
        return number
    groups = (4, 6, 5) if length == 15 else (4, 4, 4, 4)
    out, pos = [], 0
    for g in groups:
        out.append(number[pos : pos + g])
        pos += g
    return sep.join(out)


def make_iban(rng: Random, country: str) -> str:
    """A checksum-valid IBAN for the persona's country (GB for the UK, DE, FR, NL, ES, IT, IE)."""
    cc = {"uk": "GB", "de": "DE", "fr": "FR", "nl": "NL", "es": "ES", "it": "IT",
          "ie": "IE"}.get(country, "DE")
    if cc in ("GB", "IE"):
        bban = rng.choice(("NWBK", "BARC", "HBUK", "LOYD", "AIBK", "BOFI")) + _digits(rng, 14)
    elif cc == "NL":
        bban = rng.choice(("ABNA", "INGB", "RABO", "TRIO")) + _digits(rng, 10)
    elif cc == "DE":
        bban = _digits(rng, 18)
    elif cc == "FR":
        bban = _digits(rng, 23)
    elif cc == "ES":
        bban = _digits(rng, 20)
    else:  # IT
        bban = _letters(rng, 1) + _digits(rng, 22)
    numeric = "".join(str(int(c, 36)) for c in bban + cc + "00")
    check = 98 - int(numeric) % 97
    iban = f"{cc}{check:02d}{bban}"
    if rng.random() < 0.6:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def make_ip(rng: Random) -> str:
    """A public-looking IPv4 address, or now and then an IPv6 one."""
    if rng.random() < 0.12:
        groups = [f"{int(rng.random() * 65536):x}" for _ in range(8)]
        groups[0] = rng.choice(("2a02", "2001", "2600", "2a01", "2c0f"))
        if rng.random() < 0.5:
            return ":".join(groups[:4]) + "::" + ":".join(groups[6:])
        return ":".join(groups)
    first = rng.choice((23, 31, 37, 46, 62, 73, 81, 86, 92, 98, 104, 109, 151, 176, 185, 203, 212))
    b, c, d = int(rng.random() * 256), int(rng.random() * 256), 1 + int(rng.random() * 254)
    return f"{first}.{b}.{c}.{d}"


def make_phone(rng: Random, country: str) -> str:
    """A phone number in one of the layouts people actually type for that country."""
    c = "us" if country == "us_ca" else country
    r = rng.random()
    if c in ("us", "ca"):
        area = rng.choice(("415", "510", "213", "310", "619", "408", "916", "512", "206", "312",
                           "212", "718", "303", "617", "305", "404", "503", "416", "604", "647"))
        ex, line = str(200 + int(rng.random() * 800)), _digits(rng, 4)
        forms = (f"({area}) {ex}-{line}", f"{area}-{ex}-{line}", f"+1 {area} {ex} {line}",
                 f"{area}.{ex}.{line}", f"+1{area}{ex}{line}", f"1-{area}-{ex}-{line}",
                 f"{area}{ex}{line}")
    elif c == "uk":
        mob = "7" + _digits(rng, 3)
        rest = _digits(rng, 6)
        land = _digits(rng, 4)
        forms = (f"+44 {mob} {rest}", f"0{mob} {rest}", f"0{mob}{rest}", f"+44{mob}{rest}",
                 f"020 {_digits(rng, 4)} {land}", f"+44 (0)20 {_digits(rng, 4)} {land}",
                 f"0161 {_digits(rng, 3)} {land}")
    elif c == "de":
        pre = rng.choice(("151", "152", "160", "170", "176", "30", "40", "89"))
        num = _digits(rng, 8 if len(pre) == 3 else 7)
        forms = (f"+49 {pre} {num}", f"0{pre} {num}", f"+49 (0){pre} {num}", f"0{pre}/{num}",
                 f"+49{pre}{num}")
    elif c == "fr":
        d = [_digits(rng, 2) for _ in range(4)]
        lead = rng.choice(("6", "7", "1", "4"))
        forms = (f"+33 {lead} {' '.join(d)}", f"0{lead} {' '.join(d)}", f"0{lead}{''.join(d)}",
                 f"0{lead}.{'.'.join(d)}")
    elif c == "ie":
        pre = rng.choice(("83", "85", "86", "87", "89"))
        a, b = _digits(rng, 3), _digits(rng, 4)
        forms = (f"+353 {pre} {a} {b}", f"0{pre} {a} {b}", f"0{pre}{a}{b}", f"+353{pre}{a}{b}")
    elif c == "nl":
        num = _digits(rng, 8)
        forms = (f"+31 6 {num}", f"06-{num}", f"06 {num[:2]} {num[2:5]} {num[5:]}")
    elif c == "es":
        num = "6" + _digits(rng, 8)
        forms = (f"+34 {num[:3]} {num[3:6]} {num[6:]}", f"{num}", f"+34{num}")
    elif c == "it":
        num = "3" + _digits(rng, 9)
        forms = (f"+39 {num[:3]} {num[3:6]} {num[6:]}", f"{num}", f"+39 {num}")
    elif c == "au":
        num = "4" + _digits(rng, 8)
        forms = (f"+61 {num[:3]} {num[3:6]} {num[6:]}", f"0{num[:3]} {num[3:6]} {num[6:]}",
                 f"0{num}")
    else:  # in
        num = rng.choice(("98", "99", "97", "91", "88")) + _digits(rng, 8)
        forms = (f"+91 {num[:5]} {num[5:]}", f"+91-{num}", f"0{num}", f"{num}")
    return forms[int(r * len(forms))]


def make_address(rng: Random, country: str) -> tuple[str, str, str]:
    """(one-line street address, postcode, city) in the country's usual layout."""
    num = str(1 + int(rng.random() * (2400 if country.startswith("us") else 180)))
    if country in ("us", "us_ca"):
        city, state, zip3 = rng.choice(_US_PLACES[country])
        zipc = zip3 + _digits(rng, 2)
        street = f"{num} {rng.choice(_US_STREETS)} {rng.choice(_US_SUFFIX)}"
        if rng.random() < 0.3:
            street += rng.choice((", Apt ", " Apt ", ", Unit ", " #", ", Suite ")) + str(
                1 + int(rng.random() * 40)) + rng.choice(("", "", "A", "B"))
        return f"{street}, {city}, {state} {zipc}", zipc, city
    if country == "uk":
        city, outs = rng.choice(_UK_PLACES)
        pc = f"{rng.choice(outs)} {int(rng.random() * 10)}{_letters(rng, 2)}"
        flat = f"Flat {1 + int(rng.random() * 12)}, " if rng.random() < 0.2 else ""
        return (f"{flat}{num} {rng.choice(_UK_STREETS)} {rng.choice(_UK_SUFFIX)}, {city} {pc}",
                pc, city)
    if country == "de":
        city, plz2 = rng.choice(_DE_PLACES)
        plz = plz2 + _digits(rng, 3)
        return f"{rng.choice(_DE_STREETS)} {num}, {plz} {city}", plz, city
    if country == "fr":
        city, pre = rng.choice(_FR_PLACES)
        cp = (pre + _digits(rng, 5))[:5]
        return f"{num} {rng.choice(_FR_STREETS)}, {cp} {city}", cp, city
    if country == "ie":
        city, pre = rng.choice(_IE_PLACES)
        code = (pre + str(1 + int(rng.random() * 9)) if pre == "D0" else pre)
        eir = f"{code} {_letters(rng, 1)}{_digits(rng, 2)}{_letters(rng, 1)}"
        return f"{num} {rng.choice(_IE_STREETS)}, {city}, {eir}", eir, city
    if country == "nl":
        city, pre = rng.choice(_NL_PLACES)
        pc = f"{pre}{_digits(rng, 2)} {_letters(rng, 2)}"
        return f"{rng.choice(_NL_STREETS)} {num}, {pc} {city}", pc, city
    if country == "es":
        city, pre = rng.choice(_ES_PLACES)
        cp = pre + _digits(rng, 2)
        floor = int(rng.random() * 6) + 1
        return f"{rng.choice(_ES_STREETS)} {num}, {floor}º, {cp} {city}", cp, city
    if country == "it":
        city, pre = rng.choice(_IT_PLACES)
        cap = pre + _digits(rng, 2)
        return f"{rng.choice(_IT_STREETS)} {num}, {cap} {city}", cap, city
    if country == "ca":
        city, prov, fsa = rng.choice(_CA_PLACES)
        pc = f"{fsa} {int(rng.random() * 10)}{_letters(rng, 1)}{int(rng.random() * 10)}"
        return (f"{num} {rng.choice(('King', 'Queen', 'Bay', 'Yonge', 'Granville'))} St, "
                f"{city}, {prov} {pc}"), pc, city
    if country == "au":
        city, st, pc = rng.choice(_AU_PLACES)
        street = rng.choice(('George', 'Collins', 'Queen', 'Hay'))
        return f"{num} {street} St, {city} {st} {pc}", pc, city
    city, pre = rng.choice(_IN_PLACES)
    pin = pre + _digits(rng, 2)
    street = rng.choice(('MG Road', 'Linking Road', 'Anna Salai'))
    return f"Flat {num}, {street}, {city} {pin}", pin, city


def make_dob(rng: Random, country: str) -> str:
    """A date of birth written the way people in ``country`` write dates."""
    y, m, d = 1945 + int(rng.random() * 62), 1 + int(rng.random() * 12), 1 + int(rng.random() * 28)
    r = rng.random()
    if country in ("us", "us_ca"):
        forms = (f"{m:02d}/{d:02d}/{y}", f"{_MONTHS[m - 1]} {d}, {y}", f"{m}/{d}/{y}",
                 f"{y}-{m:02d}-{d:02d}")
    elif country == "de":
        forms = (f"{d:02d}.{m:02d}.{y}", f"{d}. {_MONTHS[m - 1]} {y}", f"{y}-{m:02d}-{d:02d}")
    else:
        forms = (f"{d:02d}/{m:02d}/{y}", f"{d} {_MONTHS[m - 1]} {y}", f"{y}-{m:02d}-{d:02d}",
                 f"{d}/{m}/{y}")
    return forms[int(r * len(forms))]


_ASCII_EXTRA = str.maketrans({"ß": "ss", "ø": "o", "ł": "l", "ı": "i", "'": "", " ": "",
                               "-": "", "œ": "oe"})


def _ascii(s: str) -> str:
    """E-mail-safe form of a name: accents stripped, spaces and apostrophes dropped."""
    s = s.lower().translate(_ASCII_EXTRA)
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


@dataclass(frozen=True)
class Persona:
    """One synthetic customer; every message of the user draws its PII from here."""

    first: str
    last: str
    email: str
    phone: str
    address: str
    postcode: str
    city: str
    country: str
    dob: str
    username: str
    account_no: str
    iban: str
    card: str
    ip: str
    regime: str
    law: str
    authority: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def card_last4(self) -> str:
        return "".join(c for c in self.card if c.isdigit())[-4:]


def make_persona(rng: Random) -> Persona:
    """Draw one persona; all its fields come from ``rng`` so a seed reproduces it."""
    r, acc = rng.random(), 0.0
    country = _COUNTRIES[-1][1]
    for weight, cc in _COUNTRIES:
        acc += weight
        if r < acc:
            country = cc
            break
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    f, lname = _ascii(first), _ascii(last)
    yy = str(70 + int(rng.random() * 35))[-2:]
    local = rng.choice((f"{f}.{lname}", f"{f}{lname}", f"{f[0]}{lname}", f"{f}_{lname}",
                        f"{f}.{lname}{yy}", f"{f}{yy}", f"{lname}.{f}",
                        f"{f}{lname}{int(rng.random() * 999)}"))
    dkey = "us" if country == "us_ca" else country
    domain = rng.choice(_WORK_DOMAINS) if rng.random() < 0.12 else rng.choice(_EMAIL_DOMAINS[dkey])
    address, postcode, city = make_address(rng, country)
    if country in ("uk", "ie"):
        account_no = _digits(rng, 8)
    elif country in ("us", "us_ca", "ca"):
        account_no = _digits(rng, rng.choice((9, 10, 12)))
    else:
        account_no = rng.choice(("", "KD-", "ACC-", "")) + _digits(rng, rng.choice((8, 10)))
    username = rng.choice((f"{f}{lname[:1]}{yy}", f"{f[0]}{lname}", f"{f}_{lname}", f"{lname}{yy}",
                           f"{f}-{lname}", f"{f}{int(rng.random() * 9999)}", f"the{f}"))
    regime, law, authority = REGIMES[country]
    return Persona(
        first=first, last=last, email=f"{local}@{domain}", phone=make_phone(rng, country),
        address=address, postcode=postcode, city=city, country=country, dob=make_dob(rng, country),
        username=username, account_no=account_no,
        iban=make_iban(rng, country) if regime == "gdpr" else "",
        card=make_card(rng), ip=make_ip(rng), regime=regime, law=law, authority=authority,
    )
