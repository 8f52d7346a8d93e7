#!/usr/bin/env python3
"""Writes `src/slm_swap/data/sample/xlam_sample.json`: a synthetic dataset in the exact format of
Salesforce's xlam-function-calling-60k file, written by us (nothing is downloaded).

The file is a JSON array of rows `{"id", "query", "answers", "tools"}` where `answers` and `tools` are
JSON-encoded strings; tool parameters are a flat map `{param: {description, type[, default]}}` with
Python-style type strings (`str`, `List[int]`, `str, optional`, `Optional[str]`, `Tuple[int, int]`, `Any`).

Deterministic: `random.Random(42)` drives everything, so two runs write byte-identical files. Standard
library only. Every row is checked before writing (answers name offered tools, pass declared parameters
of the declared types, give every required parameter, and the query states the values used).

    python scripts/make_xlam_sample.py [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

SEED = 42
N_ROWS = 600
OUT = Path(__file__).resolve().parents[1] / "src" / "slm_swap" / "data" / "sample" / "xlam_sample.json"

# --------------------------------------------------------------------------------------------------
# Value pools
# --------------------------------------------------------------------------------------------------

CITIES = [
    "Paris",
    "London",
    "New York",
    "Tokyo",
    "Berlin",
    "Zürich",
    "São Paulo",
    "Kraków",
    "Montréal",
    "Reykjavík",
    "Málaga",
    "Göteborg",
    "東京",
    "Seoul",
    "Mumbai",
    "Cairo",
    "Sydney",
    "Toronto",
    "Chicago",
    "Austin",
    "Lagos",
    "Nairobi",
    "Buenos Aires",
    "Lisbon",
    "İstanbul",
    "Düsseldorf",
    "Bogotá",
    "Hà Nội",
    "Dubai",
    "Singapore",
    "Oslo",
    "Helsinki",
    "Prague",
    "Vienna",
    "Madrid",
    "Rome",
    "Amsterdam",
    "Cape Town",
    "Lima",
    "Denver",
    "Seattle",
    "Wrocław",
    "Köln",
    "Genève",
    "Córdoba",
    "北京",
    "Mexico City",
]

# (name, latitude, longitude)
PLACES = [
    ("Paris", 48.8566, 2.3522),
    ("Tokyo", 35.6762, 139.6503),
    ("Zürich", 47.3769, 8.5417),
    ("São Paulo", -23.5505, -46.6333),
    ("Kraków", 50.0647, 19.945),
    ("New York", 40.7128, -74.006),
    ("Sydney", -33.8688, 151.2093),
    ("Cape Town", -33.9249, 18.4241),
    ("Reykjavík", 64.1466, -21.9426),
    ("Berlin", 52.52, 13.405),
    ("Mumbai", 19.076, 72.8777),
    ("Buenos Aires", -34.6037, -58.3816),
    ("Toronto", 43.6532, -79.3832),
    ("Nairobi", -1.2921, 36.8219),
    ("Seoul", 37.5665, 126.978),
    ("Lisbon", 38.7223, -9.1393),
    ("Denver", 39.7392, -104.9903),
    ("Hà Nội", 21.0278, 105.8342),
]

AIRPORTS = [
    ("Zürich", "ZRH"),
    ("São Paulo", "GRU"),
    ("New York", "JFK"),
    ("London", "LHR"),
    ("Paris", "CDG"),
    ("Tokyo", "HND"),
    ("Kraków", "KRK"),
    ("Lisbon", "LIS"),
    ("Madrid", "MAD"),
    ("Frankfurt", "FRA"),
    ("Dubai", "DXB"),
    ("Singapore", "SIN"),
    ("Los Angeles", "LAX"),
    ("Chicago", "ORD"),
    ("Toronto", "YYZ"),
    ("Reykjavík", "KEF"),
    ("Istanbul", "IST"),
    ("Mexico City", "MEX"),
    ("Sydney", "SYD"),
    ("Seoul", "ICN"),
    ("Amsterdam", "AMS"),
    ("Bogotá", "BOG"),
    ("Montréal", "YUL"),
    ("Vienna", "VIE"),
]

TICKERS = [
    "AAPL",
    "MSFT",
    "GOOGL",
    "AMZN",
    "TSLA",
    "NVDA",
    "META",
    "NFLX",
    "JPM",
    "V",
    "KO",
    "DIS",
    "BABA",
    "TSM",
    "SAP",
    "ASML",
    "SHOP",
    "UBER",
    "INTC",
    "AMD",
    "ORCL",
    "IBM",
    "PYPL",
    "NKE",
]
EXCHANGES = ["NASDAQ", "NYSE", "LSE", "XETRA", "TSE", "Euronext"]
CURRENCIES = [
    "USD",
    "EUR",
    "GBP",
    "JPY",
    "CHF",
    "CAD",
    "AUD",
    "INR",
    "BRL",
    "PLN",
    "SEK",
    "MXN",
    "CNY",
    "KRW",
    "ZAR",
    "NOK",
]
COINS = [
    "bitcoin",
    "ethereum",
    "solana",
    "cardano",
    "dogecoin",
    "polkadot",
    "ripple",
    "litecoin",
    "chainlink",
    "avalanche-2",
    "tron",
    "stellar",
]

LANGS = [
    ("es", "Spanish"),
    ("fr", "French"),
    ("de", "German"),
    ("ja", "Japanese"),
    ("pt", "Portuguese"),
    ("it", "Italian"),
    ("pl", "Polish"),
    ("ko", "Korean"),
    ("zh", "Chinese"),
    ("nl", "Dutch"),
    ("tr", "Turkish"),
    ("sv", "Swedish"),
]
COUNTRIES = [
    ("US", "the United States"),
    ("DE", "Germany"),
    ("FR", "France"),
    ("JP", "Japan"),
    ("BR", "Brazil"),
    ("PL", "Poland"),
    ("CH", "Switzerland"),
    ("GB", "the United Kingdom"),
    ("IN", "India"),
    ("MX", "Mexico"),
    ("CA", "Canada"),
    ("ES", "Spain"),
    ("IT", "Italy"),
    ("KR", "South Korea"),
    ("AU", "Australia"),
    ("NO", "Norway"),
    ("TR", "Türkiye"),
]
COUNTRY_NAMES = [
    "Germany",
    "France",
    "Japan",
    "Brazil",
    "Poland",
    "Switzerland",
    "India",
    "Mexico",
    "Canada",
    "Spain",
    "Italy",
    "South Korea",
    "Australia",
    "Norway",
    "Türkiye",
    "Vietnam",
    "Kenya",
    "Egypt",
    "Iceland",
    "Colombia",
    "United States",
    "United Kingdom",
    "China",
]

PLAYERS_BY_SPORT = {
    "football": [
        "Lionel Messi",
        "Erling Haaland",
        "Kylian Mbappé",
        "Son Heung-min",
        "Robert Lewandowski",
        "Martin Ødegaard",
        "Vinícius Júnior",
        "Aitana Bonmatí",
    ],
    "basketball": [
        "Luka Dončić",
        "Nikola Jokić",
        "Giannis Antetokounmpo",
        "LeBron James",
        "Stephen Curry",
        "Victor Wembanyama",
    ],
    "tennis": ["Iga Świątek", "Novak Đoković", "Rafael Nadal", "Carlos Alcaraz"],
    "baseball": ["Shohei Ohtani", "Aaron Judge"],
}
STATS_BY_SPORT = {
    "football": ["goals", "assists", "minutes", "yellow cards", "shots on target"],
    "basketball": ["points", "rebounds", "assists", "blocks", "steals"],
    "tennis": ["aces", "double faults", "match wins", "break points saved"],
    "baseball": ["home runs", "RBIs", "batting average", "strikeouts"],
}
TEAMS = [
    "Real Madrid",
    "FC Barcelona",
    "Bayern München",
    "Arsenal",
    "Manchester City",
    "Liverpool",
    "Juventus",
    "Paris Saint-Germain",
    "Boston Celtics",
    "LA Lakers",
    "Golden State Warriors",
    "New York Yankees",
    "Borussia Dortmund",
    "Atlético Madrid",
    "Beşiktaş",
    "Fenerbahçe",
    "Ajax",
]
COMPETITIONS = {
    "Real Madrid": ["Champions League", "Copa del Rey"],
    "FC Barcelona": ["Champions League", "Copa del Rey"],
    "Atlético Madrid": ["Copa del Rey", "Champions League"],
    "Arsenal": ["FA Cup", "Champions League"],
    "Manchester City": ["FA Cup", "Champions League"],
    "Liverpool": ["FA Cup", "Europa League"],
    "Bayern München": ["DFB-Pokal", "Champions League"],
    "Borussia Dortmund": ["DFB-Pokal", "Champions League"],
    "Juventus": ["Coppa Italia", "Champions League"],
    "Paris Saint-Germain": ["Coupe de France", "Champions League"],
    "Beşiktaş": ["Türkiye Kupası", "Europa League"],
    "Fenerbahçe": ["Türkiye Kupası", "Conference League"],
    "Ajax": ["KNVB Beker", "Europa League"],
    "Boston Celtics": ["NBA Playoffs", "NBA Cup"],
    "LA Lakers": ["NBA Playoffs", "NBA Cup"],
    "Golden State Warriors": ["NBA Playoffs", "NBA Cup"],
    "New York Yankees": ["World Series", "ALCS"],
}
LEAGUES = [
    "Premier League",
    "La Liga",
    "Bundesliga",
    "Serie A",
    "Ligue 1",
    "NBA",
    "MLB",
    "NHL",
    "Eredivisie",
    "MLS",
    "Süper Lig",
]
LEAGUES_BY_SPORT = {
    "football": [
        "Premier League",
        "La Liga",
        "Bundesliga",
        "Serie A",
        "Ligue 1",
        "Eredivisie",
        "MLS",
        "Süper Lig",
    ],
    "basketball": ["NBA", "EuroLeague"],
    "baseball": ["MLB"],
    "hockey": ["NHL"],
    "cricket": ["IPL"],
}
SPORTS = ["football", "basketball", "tennis", "baseball", "hockey", "cricket"]

MOVIES = [
    "Inception",
    "Parasite",
    "Amélie",
    "Spirited Away",
    "The Matrix",
    "Interstellar",
    "Roma",
    "Pan's Labyrinth",
    "Oldboy",
    "Dune",
    "Everything Everywhere All at Once",
    "Cidade de Deus",
    "Le Fabuleux Destin",
    "Blade Runner 2049",
    "Whiplash",
    "Coco",
    "El laberinto del fauno",
]
GENRES = [
    "action",
    "comedy",
    "drama",
    "thriller",
    "sci-fi",
    "horror",
    "romance",
    "animation",
    "documentary",
    "fantasy",
]
ARTISTS = [
    "Bad Bunny",
    "Beyoncé",
    "Björk",
    "Sigur Rós",
    "Rosalía",
    "Taylor Swift",
    "The Weeknd",
    "BTS",
    "Daft Punk",
    "Mötley Crüe",
    "Stromae",
    "Adele",
    "Kendrick Lamar",
    "Céline Dion",
    "Måneskin",
]
# (title, artist)
SONGS = [
    ("Despacito", "Luis Fonsi"),
    ("Hyperballad", "Björk"),
    ("Bohemian Rhapsody", "Queen"),
    ("Blinding Lights", "The Weeknd"),
    ("Dynamite", "BTS"),
    ("Malamente", "Rosalía"),
    ("Alors on danse", "Stromae"),
    ("Hoppípolla", "Sigur Rós"),
    ("Get Lucky", "Daft Punk"),
    ("Rolling in the Deep", "Adele"),
    ("Shake It Off", "Taylor Swift"),
    ("HUMBLE.", "Kendrick Lamar"),
    ("Dákiti", "Bad Bunny"),
    ("Zitti e buoni", "Måneskin"),
    ("La Vie en rose", "Édith Piaf"),
    ("Kickstart My Heart", "Mötley Crüe"),
    ("My Heart Will Go On", "Céline Dion"),
    ("Halo", "Beyoncé"),
]

FOODS = [
    "banana",
    "quinoa",
    "avocado",
    "salmon",
    "brown rice",
    "greek yogurt",
    "almonds",
    "broccoli",
    "chicken breast",
    "lentils",
    "tofu",
    "oatmeal",
    "crème fraîche",
    "jalapeño",
    "sweet potato",
]
INGREDIENTS = [
    "chicken",
    "garlic",
    "tomatoes",
    "spinach",
    "chickpeas",
    "rice",
    "eggs",
    "mushrooms",
    "basil",
    "lemon",
    "feta",
    "potatoes",
    "coconut milk",
    "ginger",
    "tofu",
    "jalapeños",
    "paprika",
]
DIETS = ["vegetarian", "vegan", "gluten-free", "keto", "paleo", "dairy-free"]
ACTIVITIES = ["running", "cycling", "swimming", "yoga", "rowing", "hiking", "weightlifting", "HIIT"]

PRODUCT_QUERIES = [
    "wireless headphones",
    "running shoes",
    "espresso machine",
    "4K monitor",
    "yoga mat",
    "mechanical keyboard",
    "standing desk",
    "air fryer",
    "backpack",
    "smartwatch",
    "electric toothbrush",
    "winter jacket",
    "café table",
    "crème brûlée torch",
]
BRANDS = [
    "acme",
    "Sony",
    "Nike",
    "Bose",
    "Logitech",
    "De'Longhi",
    "Philips",
    "Asics",
    "Lululemon",
    "Bosch",
    "Müller",
    "Samsung",
]
COLORS = ["black", "white", "navy", "red", "olive", "silver"]

FIRST = [
    "María",
    "José",
    "Zoë",
    "François",
    "Søren",
    "Aiko",
    "Chloé",
    "Mateus",
    "Łukasz",
    "Priya",
    "Jürgen",
    "Ana",
    "Noah",
    "Olivia",
    "Kenji",
    "Amara",
    "Björn",
    "Inés",
]
LAST = [
    "García",
    "Álvarez",
    "Clarke",
    "Dubois",
    "Nielsen",
    "Tanaka",
    "Martin",
    "Silva",
    "Nowak",
    "Patel",
    "Schröder",
    "Kim",
    "Smith",
    "Johnson",
    "Okafor",
    "Larsson",
    "Müller",
    "Fernández",
]
USERNAMES = [
    "techguru",
    "foodie_paris",
    "natgeo",
    "elonmusk",
    "nasa",
    "travel.with.ana",
    "jürgen_codes",
    "sakura_photo",
    "coffee_addict",
    "nba",
    "dev_marta",
    "chef.inés",
    "bbcnews",
    "runner_łukasz",
]
PLATFORMS = ["twitter", "instagram", "linkedin", "facebook", "mastodon", "threads"]
POSTS = [
    "Just landed in Lisbon! ☀️🇵🇹",
    "Our new blog post is live 🚀 Check it out!",
    "Coffee first ☕, code later.",
    "Happy Friday everyone 🎉",
    "Our café opens at 8 — come say hi! 🥐",
    "We hit 10k followers. Thank you all ❤️",
    "Sunset over Zürich tonight 🌅",
    "New recipe: crème brûlée in 20 minutes 🍮",
    "Big news coming on Monday… stay tuned 👀",
    "Registration for the Kraków meetup is open 🎟️",
    "Merci Montréal! What a show 🎶",
    "Training for the São Paulo marathon 🏃‍♀️💪",
]
HASHTAGS = [
    "AI",
    "WorldCup",
    "travel",
    "foodie",
    "climate",
    "NBAFinals",
    "photography",
    "München",
    "東京",
    "fitness",
    "startup",
    "café",
]
# (text, language code, language name)
TEXTS = [
    ("I absolutely loved the new update, everything feels faster!", "en", "English"),
    ("The delivery was late and the package was damaged.", "en", "English"),
    ("El servicio fue excelente y la comida deliciosa.", "es", "Spanish"),
    ("Das Hotel war leider sehr laut und schmutzig.", "de", "German"),
    ("Ce film était magnifique, je le recommande.", "fr", "French"),
    ("このレストランは最高でした。", "ja", "Japanese"),
    ("The battery life is okay, but the screen is stunning.", "en", "English"),
    ("Customer support never answered my emails.", "en", "English"),
    ("What a fantastic concert, the crowd was amazing!", "en", "English"),
    ("The café in Kraków had the best pierogi I've ever tasted.", "en", "English"),
    ("Obsługa była bardzo miła, ale czekaliśmy godzinę.", "pl", "Polish"),
    ("O atendimento foi péssimo e a comida chegou fria.", "pt", "Portuguese"),
]
LONG_TEXTS = [
    "Machine learning models need clean data. Data cleaning takes time, but clean data makes models better.",
    "The quick brown fox jumps over the lazy dog. The dog sleeps while the fox runs.",
    "Climate change affects ocean temperatures, and ocean temperatures affect weather patterns worldwide.",
    "Renewable energy such as solar and wind energy is growing fast; solar panels are cheaper every year.",
    "Python is popular for data science because Python has great libraries for data analysis.",
    "São Paulo and Rio de Janeiro are the largest cities in Brazil; São Paulo is the financial center.",
    "Remote work changed how teams communicate. Teams now rely on chat, video calls and shared documents.",
]
PHRASES = [
    "A man, a plan, a canal: Panama",
    "racecar",
    "hello world",
    "Was it a car or a cat I saw",
    "No lemon, no melon",
    "OpenAI",
    "level",
    "Never odd or even",
    "palindrome",
    "Step on no pets",
    "Madam, in Eden, I'm Adam",
    "python",
]
SENTENCES = [
    "the quick brown fox",
    "hello from Zürich",
    "data science is fun",
    "keep calm and carry on",
    "all that glitters is not gold",
    "see you tomorrow at the café",
]
TIMEZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Europe/London",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/Los_Angeles",
    "Europe/Warsaw",
    "Africa/Nairobi",
]
EVENT_TITLES = [
    "Team standup",
    "Quarterly review",
    "Dentist appointment",
    "Lunch with Zoë",
    "Product launch sync",
    "Yoga class",
    "Réunion budget",
    "1:1 with María",
]
DOMAINS = ["example.com", "mail.de", "correo.es", "outlook.com", "uni-wroclaw.pl", "proton.me"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

# Value -> other ways a query may state it (the mention check accepts any of them).
ALIASES: dict[str, list[str]] = {}
for _code, _name in LANGS:
    ALIASES.setdefault(_code, []).append(_name)
for _code, _name in COUNTRIES:
    ALIASES.setdefault(_code, []).append(_name)

# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------

_NO = object()


def p(description: str, type_: str, default: Any = _NO) -> dict[str, Any]:
    spec: dict[str, Any] = {"description": description, "type": type_}
    if default is not _NO:
        spec["default"] = default
    return spec


def Do(text: str) -> tuple[str, str]:  # an imperative clause: "get the weather in Paris"
    return ("I", text)


def Ask(text: str) -> tuple[str, str]:  # a question without its mark: "what's the weather in Paris"
    return ("Q", text)


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def and_list(items: list[str]) -> str:
    items = [str(i) for i in items]
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def extras(parts: list[str]) -> str:
    return (" " + ", ".join(parts)) if parts else ""


def num(x: Any) -> str:
    """A number as the query states it (what JSON would print, without a trailing .0)."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def rand_date(r: random.Random, y0: int = 2021, y1: int = 2025) -> str:
    return f"{r.randint(y0, y1)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"


def shift_date(iso: str, days: int) -> str:
    y, m, d = (int(x) for x in iso.split("-"))
    d += days
    while d > 28:
        d -= 28
        m += 1
        if m > 12:
            m, y = 1, y + 1
    return f"{y}-{m:02d}-{d:02d}"


def natural_date(iso: str) -> str:
    y, m, d = (int(x) for x in iso.split("-"))
    return f"{MONTHS[m - 1]} {d}, {y}"


def say_date(r: random.Random, iso: str) -> str:
    return iso if r.random() < 0.6 else natural_date(iso)


def opt(r: random.Random, has_default: bool = True, p_omit: float = 0.45, p_default: float = 0.2) -> str:
    """How a generator treats an optional parameter: 'omit', 'default' (pass its default) or 'value'."""
    x = r.random()
    if x < p_omit:
        return "omit"
    if has_default and x < p_omit + p_default:
        return "default"
    return "value"


def other(r: random.Random, pool: list[Any], not_this: Any) -> Any:
    return r.choice([v for v in pool if v != not_this])


def person(r: random.Random) -> str:
    return f"{r.choice(FIRST)} {r.choice(LAST)}"


def email_of(r: random.Random) -> str:
    first = r.choice(
        [
            "maria",
            "jose",
            "zoe",
            "francois",
            "soren",
            "aiko",
            "chloe",
            "lukasz",
            "priya",
            "noah",
            "olivia",
            "kenji",
            "amara",
            "ines",
            "dev",
            "sales",
            "support",
        ]
    )
    last = r.choice(
        [
            "garcia",
            "alvarez",
            "clarke",
            "dubois",
            "tanaka",
            "silva",
            "nowak",
            "patel",
            "kim",
            "smith",
            "okafor",
            "team",
            "office",
        ]
    )
    return f"{first}.{last}@{r.choice(DOMAINS)}"


def sku(r: random.Random) -> str:
    return f"{r.choice('ABCDEFGHKMNPRSTX')}{r.randint(1, 999)}"


Gen = Callable[[random.Random], tuple[dict[str, Any], list[tuple[str, str]]]]
Multi = Callable[[random.Random, int], tuple[list[dict[str, Any]], list[tuple[str, str]]]]

TOOLS: dict[str, dict[str, Any]] = {}
GENS: dict[str, Gen] = {}
MULTIS: dict[str, Multi] = {}
DOMAIN: dict[str, str] = {}


def tool(name: str, domain: str, description: str, params: dict[str, dict[str, Any]]):
    def deco(fn: Gen) -> Gen:
        assert name not in TOOLS, name
        TOOLS[name] = {"name": name, "description": description, "parameters": params}
        GENS[name] = fn
        DOMAIN[name] = domain
        return fn

    return deco


def multi(name: str):
    def deco(fn: Multi) -> Multi:
        MULTIS[name] = fn
        return fn

    return deco


# --------------------------------------------------------------------------------------------------
# Weather
# --------------------------------------------------------------------------------------------------


@tool(
    "get_current_weather",
    "weather",
    "Get the current weather conditions for a city or location.",
    {
        "location": p("City name or 'city, country' string.", "str"),
        "units": p("Unit system, 'metric' or 'imperial'.", "str", "metric"),
        "include_air_quality": p("Whether to include air quality data in the response.", "bool", False),
    },
)
def _(r):
    city = r.choice(CITIES)
    a: dict[str, Any] = {"location": city}
    x = []
    m = opt(r)
    if m == "default":
        a["units"] = "metric"
        x.append("in metric units")
    elif m == "value":
        a["units"] = "imperial"
        x.append(r.choice(["in imperial units", "using imperial units"]))
    m = opt(r)
    if m == "default":
        a["include_air_quality"] = False
        x.append("without air quality data")
    elif m == "value":
        a["include_air_quality"] = True
        x.append(r.choice(["including air quality data", "with the air quality included"]))
    e = extras(x)
    return a, [
        Do(f"get the current weather in {city}{e}"),
        Ask(f"what's the weather like in {city} right now{e}"),
        Do(f"check the current conditions in {city}{e}"),
    ]


@multi("get_current_weather")
def _(r, n):
    cities = r.sample(CITIES, n)
    units = r.choice([None, "imperial", "metric"])
    args = [{"location": c, **({"units": units} if units else {})} for c in cities]
    e = f" in {units} units" if units else ""
    return args, r.choice(
        [
            [Do(f"get the current weather for {and_list(cities)}{e}")],
            [Ask(f"what's the weather like right now in {and_list(cities)}{e}")],
            [Do(f"compare the current weather in {and_list(cities)}{e}")],
        ]
    )


@tool(
    "get_weather_forecast",
    "weather",
    "Fetches a multi-day weather forecast for a city.",
    {
        "city": p("Name of the city.", "str"),
        "days": p("Number of forecast days (1-14).", "int", 3),
        "lang": p("Language code for the textual descriptions, e.g. 'es'.", "str, optional"),
    },
)
def _(r):
    city = r.choice(CITIES)
    a: dict[str, Any] = {"city": city}
    m = opt(r)
    days = None
    if m == "default":
        days = 3
    elif m == "value":
        days = r.choice([1, 5, 7, 10, 14])
    if days is not None:
        a["days"] = days
    x = []
    if opt(r, False) == "value":
        code, lname = r.choice(LANGS)
        a["lang"] = code
        x.append(r.choice([f"with descriptions in {lname}", f"in language '{code}'"]))
    e = extras(x)
    if days is None:
        return a, [Do(f"get the weather forecast for {city}{e}"), Ask(f"what's the forecast for {city}{e}")]
    return a, [
        Do(f"get the {days}-day forecast for {city}{e}"),
        Ask(f"what will the weather be in {city} over the next {days} days{e}"),
        Do(f"show me a {days} day weather forecast for {city}{e}"),
    ]


@tool(
    "get_historical_weather",
    "weather",
    "Retrieves historical weather observations for coordinates and a date.",
    {
        "latitude": p("Latitude in decimal degrees.", "float"),
        "longitude": p("Longitude in decimal degrees.", "float"),
        "date": p("Date in YYYY-MM-DD format.", "str"),
    },
)
def _(r):
    name, lat, lon = r.choice(PLACES)
    d = rand_date(r, 2015, 2024)
    sd = say_date(r, d)
    return {"latitude": lat, "longitude": lon, "date": d}, [
        Do(f"get the historical weather at latitude {lat}, longitude {lon} on {sd}"),
        Ask(f"what was the weather at coordinates ({lat}, {lon}) on {sd}"),
        Do(f"look up the weather in {name} ({lat}, {lon}) for {sd}"),
    ]


@tool(
    "get_air_quality",
    "weather",
    "Returns the air quality index and pollutant levels for a city.",
    {
        "city": p("City name.", "str"),
        "pollutants": p(
            "Pollutants to report, e.g. ['PM2.5', 'NO2']. All if omitted.", "List[str], optional"
        ),
    },
)
def _(r):
    city = r.choice(CITIES)
    a: dict[str, Any] = {"city": city}
    if r.random() < 0.6:
        pol = r.sample(["PM2.5", "PM10", "O3", "NO2", "SO2", "CO"], r.randint(1, 3))
        a["pollutants"] = pol
        return a, [
            Do(f"get the {and_list(pol)} levels in {city}"),
            Ask(f"how bad are {and_list(pol)} in {city} today"),
        ]
    return a, [Do(f"check the air quality in {city}"), Ask(f"what's the air quality index in {city}")]


# --------------------------------------------------------------------------------------------------
# Finance
# --------------------------------------------------------------------------------------------------


@tool(
    "get_stock_quote",
    "finance",
    "Gets the latest quote (price, change, volume) for a stock symbol.",
    {
        "symbol": p("Ticker symbol, e.g. 'AAPL'.", "str"),
        "exchange": p("Exchange code, e.g. 'NASDAQ'.", "Optional[str]"),
    },
)
def _(r):
    t = r.choice(TICKERS)
    a: dict[str, Any] = {"symbol": t}
    if r.random() < 0.35:
        ex = r.choice(EXCHANGES)
        a["exchange"] = ex
        return a, [Do(f"get the latest quote for {t} on {ex}"), Ask(f"what is {t} trading at on the {ex}")]
    return a, [
        Do(f"get the current stock price of {t}"),
        Ask(f"how is {t} doing today"),
        Do(f"fetch a quote for {t}"),
    ]


@multi("get_stock_quote")
def _(r, n):
    ts = r.sample(TICKERS, n)
    return [{"symbol": t} for t in ts], r.choice(
        [
            [Do(f"get the current stock prices for {and_list(ts)}")],
            [Ask(f"what are {and_list(ts)} trading at right now")],
            [Do(f"pull quotes for {and_list(ts)}")],
        ]
    )


@tool(
    "get_stock_history",
    "finance",
    "Historical OHLC prices for a stock between two dates.",
    {
        "symbol": p("Ticker symbol.", "str"),
        "start_date": p("Start date, YYYY-MM-DD.", "str"),
        "end_date": p("End date, YYYY-MM-DD.", "str"),
        "interval": p("Bar interval: '1d', '1wk' or '1mo'.", "str", "1d"),
    },
)
def _(r):
    t = r.choice(TICKERS)
    s = rand_date(r, 2019, 2024)
    e_ = shift_date(s, r.randint(20, 200))
    a: dict[str, Any] = {"symbol": t, "start_date": s, "end_date": e_}
    x = []
    m = opt(r)
    if m == "default":
        a["interval"] = "1d"
        x.append("with daily '1d' bars")
    elif m == "value":
        iv = r.choice(["1wk", "1mo"])
        a["interval"] = iv
        x.append(f"using the '{iv}' interval")
    e = extras(x)
    return a, [
        Do(f"get {t} price history from {say_date(r, s)} to {say_date(r, e_)}{e}"),
        Do(f"pull historical prices for {t} between {s} and {e_}{e}"),
    ]


@tool(
    "convert_currency",
    "finance",
    "Converts an amount from one currency to another at the latest rate.",
    {
        "amount": p("Amount to convert.", "float"),
        "from_currency": p("ISO 4217 code of the source currency.", "str"),
        "to_currency": p("ISO 4217 code of the target currency.", "str"),
    },
)
def _(r):
    amt = r.choice([round(r.uniform(5, 5000), 2), float(r.choice([50, 100, 250, 1000, 1500]))])
    f, t = r.sample(CURRENCIES, 2)
    return {"amount": amt, "from_currency": f, "to_currency": t}, [
        Do(f"convert {num(amt)} {f} to {t}"),
        Ask(f"how much is {num(amt)} {f} in {t}"),
        Do(f"tell me what {num(amt)} {f} is worth in {t}"),
    ]


@multi("convert_currency")
def _(r, n):
    amt = round(r.uniform(10, 3000), 2)
    f = r.choice(CURRENCIES)
    ts = r.sample([c for c in CURRENCIES if c != f], n)
    return [{"amount": amt, "from_currency": f, "to_currency": t} for t in ts], r.choice(
        [
            [Do(f"convert {num(amt)} {f} into {and_list(ts)}")],
            [Ask(f"how much is {num(amt)} {f} in {and_list(ts)}")],
        ]
    )


@tool(
    "get_crypto_prices",
    "finance",
    "Current prices for one or more cryptocurrencies.",
    {
        "coin_ids": p("CoinGecko coin ids, e.g. ['bitcoin', 'ethereum'].", "List[str]"),
        "vs_currency": p("Quote currency code (lowercase).", "str", "usd"),
    },
)
def _(r):
    coins = r.sample(COINS, r.randint(1, 4))
    a: dict[str, Any] = {"coin_ids": coins}
    x = []
    m = opt(r)
    if m == "default":
        a["vs_currency"] = "usd"
        x.append("in usd")
    elif m == "value":
        c = r.choice(["eur", "gbp", "jpy", "chf", "brl"])
        a["vs_currency"] = c
        x.append(f"in {c}")
    e = extras(x)
    verb = "is" if len(coins) == 1 else "are"
    return a, [
        Do(f"get the current price of {and_list(coins)}{e}"),
        Ask(f"what {verb} {and_list(coins)} worth right now{e}"),
    ]


@tool(
    "calculate_loan_payment",
    "finance",
    "Monthly payment of a fixed-rate amortizing loan.",
    {
        "principal": p("Loan amount.", "float"),
        "annual_rate": p("Annual interest rate in percent, e.g. 4.5.", "float"),
        "years": p("Loan term in years.", "int"),
    },
)
def _(r):
    pr = r.choice([15000.0, 24999.99, 180000.0, 250000.0, 320000.0, 475000.0, 8500.5, 39990.0])
    rate = r.choice([3.25, 4.5, 5.75, 6.1, 7.25, 2.9])
    y = r.choice([5, 10, 15, 20, 25, 30])
    return {"principal": pr, "annual_rate": rate, "years": y}, [
        Do(f"calculate the monthly payment on a {num(pr)} loan at {rate}% over {y} years"),
        Ask(
            f"what would my monthly payment be for {num(pr)} borrowed at {rate}% annual interest "
            f"for {y} years"
        ),
    ]


@tool(
    "compound_interest",
    "finance",
    "Final amount of an investment with compound interest.",
    {
        "principal": p("Initial investment.", "float"),
        "rate": p("Annual interest rate as a decimal (0.05 = 5%).", "float"),
        "time": p("Number of years.", "int"),
        "n": p("Compounding periods per year.", "int", 1),
    },
)
def _(r):
    pr = float(r.choice([1000, 2500, 5000, 10000, 750])) + r.choice([0.0, 0.25])
    rate = r.choice([0.03, 0.045, 0.05, 0.065, 0.07, 0.0825])
    t = r.randint(2, 30)
    a: dict[str, Any] = {"principal": pr, "rate": rate, "time": t}
    x = []
    m = opt(r)
    if m == "default":
        a["n"] = 1
        x.append("compounded once per year (n=1)")
    elif m == "value":
        nn = r.choice([4, 12, 365])
        a["n"] = nn
        x.append(f"compounded {nn} times a year")
    e = extras(x)
    return a, [
        Do(f"compute the compound interest on {num(pr)} at a rate of {rate} for {t} years{e}"),
        Ask(f"how much will {num(pr)} grow to after {t} years at an annual rate of {rate}{e}"),
    ]


@tool(
    "calculate_portfolio_value",
    "finance",
    "Values a stock portfolio at current market prices.",
    {
        "holdings": p(
            "Positions, each {'symbol': str, 'shares': int, 'cost_basis': float (optional)}.",
            "List[Dict[str, Any]]",
        ),
        "currency": p("Currency to report the value in.", "str", "USD"),
    },
)
def _(r):
    ts = r.sample(TICKERS, r.randint(2, 4))
    hold = []
    bits = []
    for t in ts:
        h: dict[str, Any] = {"symbol": t, "shares": r.randint(1, 200)}
        if r.random() < 0.4:
            h["cost_basis"] = round(r.uniform(20, 600), 2)
            bits.append(f"{h['shares']} shares of {t} bought at {h['cost_basis']}")
        else:
            bits.append(f"{h['shares']} shares of {t}")
        hold.append(h)
    a: dict[str, Any] = {"holdings": hold}
    x = []
    m = opt(r)
    if m == "default":
        a["currency"] = "USD"
        x.append("in USD")
    elif m == "value":
        c = r.choice(["EUR", "GBP", "CHF", "JPY"])
        a["currency"] = c
        x.append(f"in {c}")
    e = extras(x)
    return a, [
        Do(f"value my portfolio{e}: {and_list(bits)}"),
        Ask(f"I own {and_list(bits)}; what's the total worth{e}"),
    ]


@tool(
    "create_invoice",
    "finance",
    "Creates an invoice for a customer from line items.",
    {
        "customer_name": p("Customer's full name.", "str"),
        "line_items": p(
            "Items, each {'description': str, 'quantity': int, 'unit_price': float}.", "List[Dict[str, Any]]"
        ),
        "currency": p("Invoice currency.", "str", "USD"),
        "due_date": p("Due date, YYYY-MM-DD.", "str, optional"),
    },
)
def _(r):
    who = person(r)
    pool = [
        "logo design",
        "consulting hour",
        "website hosting",
        "translation (pages)",
        "photo shoot",
        "café catering",
        "SEO audit",
        "workshop seat",
    ]
    items = []
    bits = []
    for d in r.sample(pool, r.randint(1, 3)):
        it = {"description": d, "quantity": r.randint(1, 12), "unit_price": round(r.uniform(15, 400), 2)}
        items.append(it)
        bits.append(f"{it['quantity']} x {d} at {it['unit_price']} each")
    a: dict[str, Any] = {"customer_name": who, "line_items": items}
    x = []
    m = opt(r)
    if m == "default":
        a["currency"] = "USD"
        x.append("in USD")
    elif m == "value":
        c = r.choice(["EUR", "GBP", "PLN", "CHF"])
        a["currency"] = c
        x.append(f"in {c}")
    if r.random() < 0.5:
        d = rand_date(r, 2025, 2026)
        a["due_date"] = d
        x.append(f"due {d}")
    e = extras(x)
    return a, [
        Do(f"create an invoice for {who}{e} with {and_list(bits)}"),
        Do(f"bill {who} for {and_list(bits)}{e}"),
    ]


# --------------------------------------------------------------------------------------------------
# Maps / geocoding
# --------------------------------------------------------------------------------------------------

ADDRESSES = [
    "1600 Amphitheatre Parkway, Mountain View",
    "Bahnhofstrasse 1, Zürich",
    "Rua Augusta 1200, São Paulo",
    "Rynek Główny 1, Kraków",
    "10 Downing Street, London",
    "5 Avenue Anatole France, Paris",
    "1-1 Chiyoda, Tokyo",
    "Plaça de Catalunya, Barcelona",
    "221B Baker Street, London",
    "Karl-Marx-Allee 90, Berlin",
    "Calle de Alcalá 50, Madrid",
    "350 Fifth Avenue, New York",
]


@tool(
    "geocode_address",
    "maps",
    "Converts a street address into latitude/longitude coordinates.",
    {
        "address": p("Free-form address.", "str"),
        "country_code": p("ISO 3166 alpha-2 code to bias results.", "str, optional"),
    },
)
def _(r):
    ad = r.choice(ADDRESSES)
    a: dict[str, Any] = {"address": ad}
    if r.random() < 0.35:
        code, cname = r.choice(COUNTRIES)
        a["country_code"] = code
        return a, [
            Do(f"geocode '{ad}' restricted to country code {code}"),
            Ask(f"what are the coordinates of {ad} in {cname}"),
        ]
    return a, [Do(f"get the coordinates for {ad}"), Ask(f"what's the latitude and longitude of {ad}")]


@multi("geocode_address")
def _(r, n):
    ads = r.sample(ADDRESSES, n)
    q = "; ".join(ads)
    return [{"address": x} for x in ads], [Do(f"geocode these addresses: {q}")]


@tool(
    "reverse_geocode",
    "maps",
    "Finds the address closest to a coordinate pair.",
    {
        "lat": p("Latitude.", "float"),
        "lon": p("Longitude.", "float"),
        "language": p("Language of the returned address.", "str", "en"),
    },
)
def _(r):
    _n, lat, lon = r.choice(PLACES)
    lat = round(lat + r.uniform(-0.05, 0.05), 4)
    lon = round(lon + r.uniform(-0.05, 0.05), 4)
    a: dict[str, Any] = {"lat": lat, "lon": lon}
    x = []
    m = opt(r)
    if m == "default":
        a["language"] = "en"
        x.append("in English (en)")
    elif m == "value":
        code, lname = r.choice(LANGS)
        a["language"] = code
        x.append(f"in {lname}")
    e = extras(x)
    return a, [
        Do(f"reverse geocode {lat}, {lon}{e}"),
        Ask(f"what address is at latitude {lat} and longitude {lon}{e}"),
    ]


@tool(
    "search_nearby_places",
    "maps",
    "Searches points of interest around a coordinate.",
    {
        "latitude": p("Latitude of the search center.", "float"),
        "longitude": p("Longitude of the search center.", "float"),
        "keyword": p("What to look for, e.g. 'pharmacy'.", "str"),
        "radius_m": p("Search radius in meters.", "int", 1000),
        "open_now": p("Only return places open right now.", "bool, optional"),
    },
)
def _(r):
    name, lat, lon = r.choice(PLACES)
    kw = r.choice(
        [
            "pharmacy",
            "coffee shop",
            "vegan restaurant",
            "ATM",
            "gas station",
            "bookstore",
            "gym",
            "pizzería",
            "EV charging station",
        ]
    )
    a: dict[str, Any] = {"latitude": lat, "longitude": lon, "keyword": kw}
    x = []
    m = opt(r)
    if m == "default":
        a["radius_m"] = 1000
        x.append("within 1000 meters")
    elif m == "value":
        rad = r.choice([250, 500, 2000, 5000])
        a["radius_m"] = rad
        x.append(f"within {rad} m")
    m = opt(r, False)
    if m == "value":
        v = r.random() < 0.7
        a["open_now"] = v
        x.append("that are open now" if v else "whether or not they're open right now (open_now false)")
    e = extras(x)
    art = "an" if kw[0] in "AEIOUaeiou" else "a"
    return a, [
        Do(f"find {art} {kw} near {lat}, {lon}{e}"),
        Do(f"look for {art} {kw} around {name} ({lat}, {lon}){e}"),
    ]


@tool(
    "get_directions",
    "maps",
    "Route and travel time between two places.",
    {
        "origin": p("Start address or place.", "str"),
        "destination": p("End address or place.", "str"),
        "mode": p("Travel mode: driving, walking, cycling or transit.", "str", "driving"),
        "avoid": p("Features to avoid, e.g. ['tolls', 'highways'].", "List[str], optional"),
    },
)
def _(r):
    o, d = r.sample(CITIES[:40], 2)
    a: dict[str, Any] = {"origin": o, "destination": d}
    x = []
    m = opt(r)
    if m == "default":
        a["mode"] = "driving"
        x.append("for driving")
    elif m == "value":
        md = r.choice(["walking", "cycling", "transit"])
        a["mode"] = md
        x.append(f"by {md}")
    if r.random() < 0.35:
        av = r.sample(["tolls", "highways", "ferries"], r.randint(1, 2))
        a["avoid"] = av
        x.append(f"avoiding {and_list(av)}")
    e = extras(x)
    return a, [Do(f"get directions from {o} to {d}{e}"), Ask(f"how do I get from {o} to {d}{e}")]


@tool(
    "calculate_manhattan_distance",
    "math",
    "Manhattan (L1) distance between two grid points.",
    {
        "point_a": p("First point as (x, y).", "Tuple[int, int]"),
        "point_b": p("Second point as (x, y).", "Tuple[int, int]"),
    },
)
def _(r):
    pa = [r.randint(-20, 20), r.randint(-20, 20)]
    pb = [r.randint(-20, 20), r.randint(-20, 20)]
    return {"point_a": pa, "point_b": pb}, [
        Do(f"compute the Manhattan distance between ({pa[0]}, {pa[1]}) and ({pb[0]}, {pb[1]})"),
        Ask(f"what's the L1 distance from point ({pa[0]}, {pa[1]}) to point ({pb[0]}, {pb[1]})"),
    ]


# --------------------------------------------------------------------------------------------------
# E-commerce
# --------------------------------------------------------------------------------------------------


@tool(
    "search_products",
    "ecommerce",
    "Searches the product catalog with optional filters.",
    {
        "query": p("Search terms.", "str"),
        "filters": p(
            "Filters such as {'min_price': 10, 'max_price': 99.99, 'brand': 'acme', 'in_stock': true, "
            "'min_rating': 4.0, 'color': 'black'}.",
            "Dict[str, Any], optional",
        ),
        "sort_by": p("Sort order: relevance, price, rating or newest.", "str", "relevance"),
        "page": p("Result page number.", "int", 1),
    },
)
def _(r):
    q = r.choice(PRODUCT_QUERIES)
    a: dict[str, Any] = {"query": q}
    x = []
    if r.random() < 0.65:
        f: dict[str, Any] = {}
        keys = r.sample(
            ["min_price", "max_price", "brand", "in_stock", "min_rating", "color"], r.randint(1, 3)
        )
        for k in ["min_price", "max_price", "brand", "in_stock", "min_rating", "color"]:
            if k not in keys:
                continue
            if k == "min_price":
                f[k] = r.choice([10, 20, 50, 100])
                x.append(f"priced at least {f[k]}")
            elif k == "max_price":
                f[k] = r.choice([49.99, 99.99, 150.0, 299.5, 500])
                x.append(f"under {num(f[k])}")
            elif k == "brand":
                f[k] = r.choice(BRANDS)
                x.append(f"from the brand {f[k]}")
            elif k == "in_stock":
                f[k] = True
                x.append("only items in stock")
            elif k == "min_rating":
                f[k] = r.choice([3.5, 4.0, 4.5])
                x.append(f"rated {num(f[k])} or higher")
            else:
                f[k] = r.choice(COLORS)
                x.append(f"in {f[k]}")
        a["filters"] = f
    m = opt(r)
    if m == "default":
        a["sort_by"] = "relevance"
        x.append("sorted by relevance")
    elif m == "value":
        s = r.choice(["price", "rating", "newest"])
        a["sort_by"] = s
        x.append(f"sorted by {s}" if s != "newest" else "newest first")
    m = opt(r, p_omit=0.6)
    if m == "default":
        a["page"] = 1
        x.append("page 1")
    elif m == "value":
        pg = r.randint(2, 5)
        a["page"] = pg
        x.append(f"showing page {pg}")
    e = extras(x)
    return a, [
        Do(f"search for {q}{e}"),
        Do(f"search the catalog for {q}{e}"),
        Ask(f"which {q} options can I buy{e}"),
    ]


@tool(
    "get_product_details",
    "ecommerce",
    "Full details of a product by its id.",
    {
        "product_id": p("Product identifier.", "str"),
        "include_reviews": p("Also return customer reviews.", "bool", False),
    },
)
def _(r):
    pid = f"{r.choice(['B0', 'P-', 'SKU'])}{r.randint(10000, 99999)}"
    a: dict[str, Any] = {"product_id": pid}
    m = opt(r)
    if m == "default":
        a["include_reviews"] = False
        return a, [Do(f"get details for product {pid} without the reviews")]
    if m == "value":
        a["include_reviews"] = True
        return a, [
            Do(f"get details and customer reviews for product {pid}"),
            Ask(f"what do people say about product {pid}? Include the reviews with the details"),
        ]
    return a, [Do(f"look up product {pid}"), Ask(f"what are the specs of product {pid}")]


@multi("get_product_details")
def _(r, n):
    ids = [f"B0{r.randint(10000, 99999)}" for _ in range(n)]
    if len(set(ids)) < n:
        ids = [f"B0{10000 + i * 7}" for i in range(n)]
    rev = r.random() < 0.4
    args = [{"product_id": i, **({"include_reviews": True} if rev else {})} for i in ids]
    e = " including customer reviews" if rev else ""
    return args, [Do(f"get the details of products {and_list(ids)}{e}")]


@tool(
    "create_order",
    "ecommerce",
    "Places an order for a customer.",
    {
        "customer_id": p("Customer identifier.", "str"),
        "items": p("Order lines, each {'sku': str, 'qty': int}.", "List[Dict[str, Any]]"),
        "shipping_address": p(
            "Address object {'street', 'city', 'postal_code', 'country'}.", "Dict[str, Any]"
        ),
        "express_shipping": p("Use express shipping.", "bool", False),
    },
)
def _(r):
    cid = f"C{r.randint(1000, 9999)}"
    items = []
    bits = []
    skus = []
    for _i in range(r.randint(1, 3)):
        s = sku(r)
        while s in skus:
            s = sku(r)
        skus.append(s)
        qn = r.randint(1, 5)
        items.append({"sku": s, "qty": qn})
        bits.append(f"{qn} of {s}")
    addr = r.choice(
        [
            {"street": "Rua Augusta 1200", "city": "São Paulo", "postal_code": "01304-001", "country": "BR"},
            {"street": "ul. Floriańska 15", "city": "Kraków", "postal_code": "31-019", "country": "PL"},
            {"street": "Bahnhofstrasse 21", "city": "Zürich", "postal_code": "8001", "country": "CH"},
            {
                "street": "742 Evergreen Terrace",
                "city": "Springfield",
                "postal_code": "49007",
                "country": "US",
            },
            {"street": "12 Rue de Rivoli", "city": "Paris", "postal_code": "75004", "country": "FR"},
            {"street": "Königsallee 60", "city": "Düsseldorf", "postal_code": "40212", "country": "DE"},
        ]
    )
    addr_s = f"{addr['street']}, {addr['postal_code']} {addr['city']}, {addr['country']}"
    a: dict[str, Any] = {"customer_id": cid, "items": items, "shipping_address": addr}
    x = []
    m = opt(r)
    if m == "default":
        a["express_shipping"] = False
        x.append("with standard (non-express) shipping")
    elif m == "value":
        a["express_shipping"] = True
        x.append("with express shipping")
    e = extras(x)
    return a, [
        Do(f"place an order for customer {cid}: {and_list(bits)}, shipped to {addr_s}{e}"),
        Do(f"order {and_list(bits)} for customer {cid} and ship it to {addr_s}{e}"),
    ]


@tool(
    "calculate_shipping_cost",
    "ecommerce",
    "Estimates the shipping cost of a parcel.",
    {
        "weight_kg": p("Parcel weight in kilograms.", "float"),
        "destination_country": p("Destination country name.", "str"),
        "dimensions_cm": p("Length, width and height in centimeters.", "List[float]"),
    },
)
def _(r):
    w = round(r.uniform(0.2, 25), 1)
    c = r.choice(COUNTRY_NAMES)
    dims = [round(r.uniform(10, 80), 1) for _ in range(3)]
    ds = " x ".join(num(d) for d in dims)
    return {"weight_kg": w, "destination_country": c, "dimensions_cm": dims}, [
        Do(f"estimate shipping for a {w} kg parcel of {ds} cm to {c}"),
        Ask(f"how much does it cost to ship a {ds} cm box weighing {w} kg to {c}"),
    ]


@tool(
    "apply_discount_code",
    "ecommerce",
    "Applies a coupon code to a cart total.",
    {
        "cart_total": p("Cart total before discount.", "float"),
        "code": p("Coupon code.", "str"),
    },
)
def _(r):
    t = round(r.uniform(15, 900), 2)
    c = r.choice(["SAVE10", "WELCOME20", "BLACKFRIDAY", "FREESHIP", "SUMMER25", "ÉTÉ15"])
    return {"cart_total": t, "code": c}, [
        Do(f"apply the coupon {c} to my cart of {t}"),
        Ask(f"what do I pay for a {t} cart with code {c}"),
    ]


# --------------------------------------------------------------------------------------------------
# Sports
# --------------------------------------------------------------------------------------------------


@tool(
    "get_league_standings",
    "sports",
    "Current or past standings table of a league.",
    {
        "league": p("League name, e.g. 'Premier League'.", "str"),
        "season": p("Season start year, e.g. 2023.", "int"),
    },
)
def _(r):
    lg = r.choice(LEAGUES)
    s = r.randint(2015, 2024)
    return {"league": lg, "season": s}, [
        Do(f"get the {lg} standings for the {s} season"),
        Ask(f"who was top of the {lg} table in {s}"),
        Do(f"show the {s} {lg} table"),
    ]


@tool(
    "get_match_results",
    "sports",
    "Results of a team's matches on a given date.",
    {
        "team": p("Team name.", "str"),
        "date": p("Match date, YYYY-MM-DD.", "str"),
        "competition": p("Restrict to one competition.", "str, optional"),
    },
)
def _(r):
    tm = r.choice(TEAMS)
    d = rand_date(r, 2020, 2024)
    a: dict[str, Any] = {"team": tm, "date": d}
    sd = say_date(r, d)
    if r.random() < 0.4:
        c = r.choice(COMPETITIONS.get(tm, ["Champions League", "Europa League"]))
        a["competition"] = c
        return a, [Do(f"get {tm}'s {c} result on {sd}"), Ask(f"how did {tm} do in the {c} on {sd}")]
    return a, [Do(f"get the match result for {tm} on {sd}"), Ask(f"did {tm} win on {sd}")]


@tool(
    "get_player_stats",
    "sports",
    "Season statistics of a player.",
    {
        "player_name": p("Full player name.", "str"),
        "season": p("Season year.", "int"),
        "stats": p("Which stats to return, e.g. ['goals', 'assists'].", "List[str], optional"),
    },
)
def _(r):
    sport = r.choice(list(PLAYERS_BY_SPORT))
    pl = r.choice(PLAYERS_BY_SPORT[sport])
    s = r.randint(2019, 2024)
    a: dict[str, Any] = {"player_name": pl, "season": s}
    if r.random() < 0.5:
        st = r.sample(STATS_BY_SPORT[sport], r.randint(1, 3))
        a["stats"] = st
        return a, [
            Do(f"get {pl}'s {and_list(st)} for the {s} season"),
            Ask(f"how many {and_list(st)} did {pl} have in {s}"),
        ]
    return a, [Do(f"get {pl}'s stats for {s}"), Ask(f"what were {pl}'s numbers in the {s} season")]


@tool(
    "get_live_scores",
    "sports",
    "Live scores of matches in progress.",
    {
        "sport": p("Sport name.", "str", "football"),
        "league": p("League to filter on.", "Optional[str]", None),
    },
)
def _(r):
    a: dict[str, Any] = {}
    x = []
    m = opt(r, p_omit=0.3)
    sp = "football"
    if m == "default":
        a["sport"] = "football"
    elif m == "value":
        sp = other(r, SPORTS, "football")
        a["sport"] = sp
    if sp in LEAGUES_BY_SPORT and r.random() < 0.5:
        lg = r.choice(LEAGUES_BY_SPORT[sp])
        a["league"] = lg
        x.append(f"in {lg}" if lg in ("La Liga", "Serie A", "Ligue 1") else f"in the {lg}")
    e = extras(x)
    if m == "omit":
        return a, [Do(f"get the live scores{e}"), Ask(f"what are the live scores right now{e}")]
    return a, [Do(f"get live {sp} scores{e}"), Ask(f"what's the score in the {sp} games going on now{e}")]


# --------------------------------------------------------------------------------------------------
# Movies / music
# --------------------------------------------------------------------------------------------------


@tool(
    "search_movies",
    "entertainment",
    "Searches movies by keywords with optional year and genres.",
    {
        "query": p("Title or keywords.", "str"),
        "year": p("Release year.", "int, optional"),
        "genres": p("Genres to filter on.", "List[str], optional"),
    },
)
def _(r):
    q = r.choice([*MOVIES, "space", "heist", "time travel", "vampires", "road trip"])
    a: dict[str, Any] = {"query": q}
    x = []
    if r.random() < 0.4:
        y = r.randint(1990, 2024)
        a["year"] = y
        x.append(f"released in {y}")
    if r.random() < 0.45:
        g = r.sample(GENRES, r.randint(1, 3))
        a["genres"] = g
        x.append(f"in the {and_list(g)} genres" if len(g) > 1 else f"in the {g[0]} genre")
    e = extras(x)
    return a, [Do(f"search for movies matching '{q}'{e}"), Ask(f"can you find films about '{q}'{e}")]


@tool(
    "get_movie_recommendations",
    "entertainment",
    "Recommends movies similar to the given ones.",
    {
        "seed_movie_ids": p("TMDB ids of movies the user liked.", "List[int]"),
        "limit": p("How many recommendations.", "int", 10),
        "exclude_watched": p("Skip movies the user already watched.", "bool", True),
    },
)
def _(r):
    ids = [r.randint(100, 99999) for _ in range(r.randint(1, 4))]
    a: dict[str, Any] = {"seed_movie_ids": ids}
    x = []
    m = opt(r)
    if m == "default":
        a["limit"] = 10
        x.append("give me 10")
    elif m == "value":
        lm = r.choice([3, 5, 15, 20])
        a["limit"] = lm
        x.append(f"limit it to {lm}")
    m = opt(r)
    if m == "default":
        a["exclude_watched"] = True
        x.append("excluding movies I've watched")
    elif m == "value":
        a["exclude_watched"] = False
        x.append("including ones I've already watched")
    e = ("; " + ", ".join(x)) if x else ""
    return a, [
        Do(f"recommend movies similar to ids {and_list([str(i) for i in ids])}{e}"),
        Do(f"suggest films based on movie ids {', '.join(str(i) for i in ids)}{e}"),
    ]


@tool(
    "search_songs",
    "entertainment",
    "Searches the music catalog for tracks.",
    {
        "query": p("Song title or keywords.", "str"),
        "artist": p("Restrict to an artist.", "Optional[str]"),
        "limit": p("Maximum results.", "int", 20),
    },
)
def _(r):
    s, ar = r.choice(SONGS)
    a: dict[str, Any] = {"query": s}
    x = []
    if r.random() < 0.5:
        a["artist"] = ar
        x.append(f"by {ar}")
    m = opt(r, p_omit=0.55)
    if m == "default":
        a["limit"] = 20
        x.append("(up to 20 results)")
    elif m == "value":
        lm = r.choice([1, 5, 10, 50])
        a["limit"] = lm
        x.append(f"(max {lm} results)")
    e = (" " + " ".join(x)) if x else ""
    return a, [Do(f"search for the song '{s}'{e}"), Do(f"find tracks called '{s}'{e}")]


@multi("search_songs")
def _(r, n):
    ss = [t for t, _a in r.sample(SONGS, n)]
    return [{"query": s} for s in ss], [Do(f"search for these songs: {and_list(repr(s) for s in ss)}")]


@tool(
    "create_playlist",
    "entertainment",
    "Creates a playlist from track ids.",
    {
        "name": p("Playlist name.", "str"),
        "track_ids": p("Track ids to add.", "List[str]"),
        "public": p("Whether the playlist is public.", "bool", True),
        "description": p("Playlist description.", "str", ""),
    },
)
def _(r):
    nm = r.choice(
        [
            "Road trip 🚗",
            "Focus mode",
            "Sommer 2024",
            "Café du matin",
            "Gym bangers 💪",
            "Música para cocinar",
            "Late night chill",
            "Sunday ☕",
        ]
    )
    ids = [f"trk_{r.randint(1000, 9999)}" for _ in range(r.randint(2, 5))]
    a: dict[str, Any] = {"name": nm, "track_ids": ids}
    x = []
    m = opt(r)
    if m == "default":
        a["public"] = True
        x.append("public")
    elif m == "value":
        a["public"] = False
        x.append("private")
    if r.random() < 0.35:
        ds = r.choice(["songs for long drives", "no lyrics, just beats", "mes chansons préférées"])
        a["description"] = ds
        desc = f" with the description '{ds}'"
    else:
        desc = ""
    vis = (" " + x[0]) if x else ""
    return a, [
        Do(f"create a{vis} playlist named '{nm}' with tracks {', '.join(ids)}{desc}"),
        Do(f"make a{vis} playlist '{nm}'{desc} containing {and_list(ids)}"),
    ]


@tool(
    "get_artist_top_tracks",
    "entertainment",
    "Most popular tracks of an artist in a market.",
    {
        "artist": p("Artist name.", "str"),
        "country": p("Market as ISO country code.", "str", "US"),
    },
)
def _(r):
    ar = r.choice(ARTISTS)
    a: dict[str, Any] = {"artist": ar}
    m = opt(r)
    e = ""
    if m == "default":
        a["country"] = "US"
        e = " in the US market"
    elif m == "value":
        code, cname = r.choice(COUNTRIES[1:])
        a["country"] = code
        e = f" in {cname}"
    return a, [Do(f"get {ar}'s top tracks{e}"), Ask(f"what are the most popular songs by {ar}{e}")]


# --------------------------------------------------------------------------------------------------
# Math / statistics
# --------------------------------------------------------------------------------------------------


def floats(r, n, lo=0.0, hi=100.0, nd=1):
    return [round(r.uniform(lo, hi), nd) for _ in range(n)]


@tool(
    "calculate_mean",
    "math",
    "Arithmetic mean of a list of numbers.",
    {
        "numbers": p("The numbers.", "List[float]"),
    },
)
def _(r):
    xs = floats(r, r.randint(3, 8), 0, 100, r.choice([1, 2]))
    s = ", ".join(num(x) for x in xs)
    return {"numbers": xs}, [Do(f"calculate the average of {s}"), Ask(f"what's the mean of [{s}]")]


@tool(
    "calculate_std_deviation",
    "math",
    "Standard deviation of a list of numbers.",
    {
        "numbers": p("The numbers.", "List[float]"),
        "sample": p("Use the sample (n-1) formula instead of the population one.", "bool", True),
    },
)
def _(r):
    xs = floats(r, r.randint(4, 9), 1, 50, 2)
    s = ", ".join(num(x) for x in xs)
    a: dict[str, Any] = {"numbers": xs}
    m = opt(r)
    e = ""
    if m == "default":
        a["sample"] = True
        e = " using the sample formula"
    elif m == "value":
        a["sample"] = False
        e = " as a population standard deviation (not sample)"
    return a, [
        Do(f"compute the standard deviation of {s}{e}"),
        Ask(f"how spread out are these values: {s}{e}"),
    ]


@tool(
    "is_prime",
    "math",
    "Checks whether an integer is prime.",
    {
        "num": p("The integer to check.", "int"),
    },
)
def _(r):
    n = r.randint(2, 100000)
    return {"num": n}, [Ask(f"is {n} a prime number"), Do(f"check whether {n} is prime")]


@multi("is_prime")
def _(r, n):
    ns = r.sample(range(2, 5000), n)
    return [{"num": k} for k in ns], r.choice(
        [[Ask(f"are {and_list(ns)} prime")], [Do(f"check which of {and_list(ns)} are prime numbers")]]
    )


@tool(
    "solve_quadratic",
    "math",
    "Real or complex roots of ax^2 + bx + c = 0.",
    {
        "a": p("Coefficient of x^2.", "float"),
        "b": p("Coefficient of x.", "float"),
        "c": p("Constant term.", "float"),
    },
)
def _(r):
    a_ = r.choice([1.0, 2.0, -1.0, 0.5, 3.0, 1.5])
    b = round(r.uniform(-10, 10), 1)
    c = round(r.uniform(-10, 10), 2)
    return {"a": a_, "b": b, "c": c}, [
        Do(f"solve the quadratic with a={num(a_)}, b={num(b)}, c={num(c)}"),
        Ask(f"what are the roots of {num(a_)}x^2 + ({num(b)})x + ({num(c)}) = 0"),
    ]


@tool(
    "matrix_multiply",
    "math",
    "Multiplies two matrices.",
    {
        "matrix_a": p("First matrix (rows of numbers).", "List[List[int]]"),
        "matrix_b": p("Second matrix.", "List[List[int]]"),
    },
)
def _(r):
    n, k, m = r.randint(2, 3), r.randint(2, 3), r.randint(2, 3)
    ma = [[r.randint(-9, 9) for _ in range(k)] for _ in range(n)]
    mb = [[r.randint(-9, 9) for _ in range(m)] for _ in range(k)]
    return {"matrix_a": ma, "matrix_b": mb}, [
        Do(f"multiply the matrices {ma} and {mb}"),
        Ask(f"what's {ma} times {mb}"),
    ]


@tool(
    "max_subarray_sum",
    "math",
    "Largest sum of a contiguous subarray (Kadane).",
    {
        "nums": p("Input integers.", "List[int]"),
    },
)
def _(r):
    xs = [r.randint(-20, 20) for _ in range(r.randint(5, 10))]
    return {"nums": xs}, [
        Do(f"find the maximum subarray sum of {xs}"),
        Ask(f"what's the largest contiguous sum in {xs}"),
    ]


@tool(
    "linear_regression_predict",
    "math",
    "Fits y = ax + b and predicts y at a target x.",
    {
        "x_values": p("Observed x values.", "List[float]"),
        "y_values": p("Observed y values.", "List[float]"),
        "target_x": p("Where to predict.", "float"),
    },
)
def _(r):
    n = r.randint(3, 6)
    xs = [float(i) + r.choice([0.0, 0.5]) for i in range(1, n + 1)]
    slope = round(r.uniform(0.5, 3), 1)
    ys = [round(slope * x + r.uniform(-1, 1), 1) for x in xs]
    t = round(xs[-1] + r.uniform(1, 5), 1)
    xs_s = ", ".join(num(x) for x in xs)
    ys_s = ", ".join(num(y) for y in ys)
    return {"x_values": xs, "y_values": ys, "target_x": t}, [
        Do(f"fit a line to x = [{xs_s}] and y = [{ys_s}] and predict y at x = {num(t)}"),
        Ask(f"given x values {xs_s} and y values {ys_s}, what's the predicted y for x={num(t)}"),
    ]


@tool(
    "binomial_probability",
    "math",
    "Probability of exactly k successes in n Bernoulli trials.",
    {
        "n": p("Number of trials.", "int"),
        "k": p("Number of successes.", "int"),
        "p": p("Success probability per trial.", "float"),
    },
)
def _(r):
    n = r.randint(5, 50)
    k = r.randint(0, n)
    pp = r.choice([0.1, 0.25, 0.3, 0.5, 0.6, 0.75, 0.9])
    return {"n": n, "k": k, "p": pp}, [
        Ask(f"what's the probability of exactly {k} successes in {n} trials with p = {pp}"),
        Do(f"compute the binomial probability for n={n}, k={k}, p={pp}"),
    ]


@multi("binomial_probability")
def _(r, n):
    trials = r.randint(10, 30)
    pp = r.choice([0.2, 0.5, 0.35, 0.8])
    ks = sorted(r.sample(range(0, trials + 1), n))
    return [{"n": trials, "k": k, "p": pp} for k in ks], [
        Ask(
            f"with {trials} trials and success probability {pp}, what's the probability of exactly "
            f"{and_list([str(k) for k in ks])} successes"
        )
    ]


@tool(
    "fibonacci_numbers",
    "math",
    "The first n Fibonacci numbers.",
    {
        "n": p("How many numbers.", "int"),
    },
)
def _(r):
    n = r.randint(5, 40)
    return {"n": n}, [
        Do(f"list the first {n} Fibonacci numbers"),
        Ask(f"what are the first {n} Fibonacci numbers"),
    ]


@multi("fibonacci_numbers")
def _(r, n):
    ns = r.sample(range(3, 30), n)
    return [{"n": k} for k in ns], [
        Do(f"generate the first {and_list([str(k) for k in ns])} Fibonacci numbers as separate lists")
    ]


@tool(
    "calculate_factorial",
    "math",
    "Factorial of a non-negative integer.",
    {
        "n": p("The integer.", "int"),
    },
)
def _(r):
    n = r.randint(0, 25)
    return {"n": n}, [Ask(f"what is {n} factorial"), Do(f"compute {n}!")]


# --------------------------------------------------------------------------------------------------
# Unit conversion
# --------------------------------------------------------------------------------------------------

UNIT_PAIRS = [
    ("kilometers", "miles"),
    ("miles", "kilometers"),
    ("kilograms", "pounds"),
    ("pounds", "kilograms"),
    ("meters", "feet"),
    ("feet", "meters"),
    ("liters", "gallons"),
    ("centimeters", "inches"),
    ("square meters", "square feet"),
    ("ounces", "grams"),
]


@tool(
    "convert_units",
    "conversion",
    "Converts a value between length, mass, volume or area units.",
    {
        "value": p("Value to convert.", "float"),
        "from_unit": p("Source unit.", "str"),
        "to_unit": p("Target unit.", "str"),
    },
)
def _(r):
    f, t = r.choice(UNIT_PAIRS)
    v = round(r.uniform(0.5, 500), r.choice([1, 2]))
    return {"value": v, "from_unit": f, "to_unit": t}, [
        Do(f"convert {num(v)} {f} to {t}"),
        Ask(f"how many {t} is {num(v)} {f}"),
    ]


@tool(
    "convert_temperature",
    "conversion",
    "Converts a temperature between scales.",
    {
        "temperature": p("Temperature value.", "float"),
        "from_scale": p("celsius, fahrenheit or kelvin.", "str"),
        "to_scale": p("celsius, fahrenheit or kelvin.", "str"),
    },
)
def _(r):
    f, t = r.sample(["celsius", "fahrenheit", "kelvin"], 2)
    v = round(r.uniform(-40, 120), 1)
    return {"temperature": v, "from_scale": f, "to_scale": t}, [
        Do(f"convert {num(v)} degrees {f} to {t}"),
        Ask(f"what is {num(v)} {f} in {t}"),
    ]


@tool(
    "convert_cooking_measurement",
    "conversion",
    "Converts a cooking quantity between units for an ingredient.",
    {
        "quantity": p("Amount in the source unit.", "float"),
        "from_unit": p("e.g. cups, grams, tablespoons, ounces.", "str"),
        "to_unit": p("Target unit.", "str"),
        "item": p("Ingredient, since density matters.", "str"),
    },
)
def _(r):
    f, t = r.sample(["cups", "grams", "tablespoons", "ounces", "teaspoons", "milliliters"], 2)
    q = r.choice([0.25, 0.5, 0.75, 1.5, 2.0, 3.0, 250.0, 125.5])
    it = r.choice(["flour", "sugar", "butter", "rice", "honey", "crème fraîche", "cocoa powder"])
    return {"quantity": q, "from_unit": f, "to_unit": t, "item": it}, [
        Do(f"convert {num(q)} {f} of {it} to {t}"),
        Ask(f"how many {t} are {num(q)} {f} of {it}"),
    ]


# --------------------------------------------------------------------------------------------------
# Travel
# --------------------------------------------------------------------------------------------------


@tool(
    "search_flights",
    "travel",
    "Searches flights between two airports.",
    {
        "origin": p("Origin IATA airport code.", "str"),
        "destination": p("Destination IATA airport code.", "str"),
        "departure_date": p("Departure date, YYYY-MM-DD.", "str"),
        "return_date": p("Return date for round trips.", "str, optional"),
        "passengers": p("Number of passengers.", "int", 1),
        "cabin_class": p("economy, premium_economy, business or first.", "str", "economy"),
        "nonstop_only": p("Only nonstop flights.", "bool", False),
    },
)
def _(r):
    (oc, o), (dc, d) = r.sample(AIRPORTS, 2)
    dep = rand_date(r, 2025, 2026)
    a: dict[str, Any] = {"origin": o, "destination": d, "departure_date": dep}
    x = []
    if r.random() < 0.45:
        ret = shift_date(dep, r.randint(3, 20))
        a["return_date"] = ret
        x.append(f"returning {say_date(r, ret)}")
    m = opt(r)
    if m == "default":
        a["passengers"] = 1
        x.append("for 1 passenger")
    elif m == "value":
        pn = r.randint(2, 6)
        a["passengers"] = pn
        x.append(f"for {pn} passengers")
    m = opt(r)
    if m == "default":
        a["cabin_class"] = "economy"
        x.append("in economy")
    elif m == "value":
        cc = r.choice(["business", "first", "premium_economy"])
        a["cabin_class"] = cc
        x.append(f"in {cc} class")
    m = opt(r, p_omit=0.55)
    if m == "default":
        a["nonstop_only"] = False
        x.append("connections are fine")
    elif m == "value":
        a["nonstop_only"] = True
        x.append("nonstop only")
    e = extras(x)
    sd = say_date(r, dep)
    return a, [
        Do(f"find flights from {oc} ({o}) to {dc} ({d}) on {sd}{e}"),
        Do(f"search flights {o} to {d} departing {sd}{e}"),
        Ask(f"are there any flights from {o} to {d} leaving {sd}{e}"),
    ]


@tool(
    "search_hotels",
    "travel",
    "Finds hotels in a city for given dates.",
    {
        "city": p("City name.", "str"),
        "check_in": p("Check-in date, YYYY-MM-DD.", "str"),
        "check_out": p("Check-out date, YYYY-MM-DD.", "str"),
        "guests": p("Number of guests.", "int", 2),
        "filters": p(
            "Filters like {'min_stars': 4, 'max_price_per_night': 180.0, 'amenities': ['pool'], "
            "'free_cancellation': true}.",
            "Dict[str, Any], optional",
        ),
    },
)
def _(r):
    city = r.choice(CITIES)
    ci = rand_date(r, 2025, 2026)
    co = shift_date(ci, r.randint(1, 10))
    a: dict[str, Any] = {"city": city, "check_in": ci, "check_out": co}
    x = []
    m = opt(r)
    if m == "default":
        a["guests"] = 2
        x.append("for 2 guests")
    elif m == "value":
        g = r.choice([1, 3, 4, 5])
        a["guests"] = g
        x.append(f"for {g} guest" + ("s" if g > 1 else ""))
    if r.random() < 0.6:
        f: dict[str, Any] = {}
        keys = r.sample(
            ["min_stars", "max_price_per_night", "amenities", "free_cancellation"], r.randint(1, 3)
        )
        for k in ["min_stars", "max_price_per_night", "amenities", "free_cancellation"]:
            if k not in keys:
                continue
            if k == "min_stars":
                f[k] = r.choice([3, 4, 5])
                x.append(f"at least {f[k]} stars")
            elif k == "max_price_per_night":
                f[k] = r.choice([90.0, 120.5, 180.0, 250.0, 75.5])
                x.append(f"max {num(f[k])} per night")
            elif k == "amenities":
                f[k] = r.sample(["pool", "wifi", "parking", "gym", "spa", "breakfast"], r.randint(1, 3))
                x.append(f"with {and_list(f[k])}")
            else:
                f[k] = True
                x.append("free cancellation")
        a["filters"] = f
    e = extras(x)
    return a, [
        Do(f"find hotels in {city} from {say_date(r, ci)} to {say_date(r, co)}{e}"),
        Do(f"search for a hotel in {city}, checking in {ci} and out {co}{e}"),
    ]


@tool(
    "get_flight_status",
    "travel",
    "Real-time status of a flight.",
    {
        "flight_number": p("IATA flight number, e.g. 'LH400'.", "str"),
        "date": p("Flight date, YYYY-MM-DD.", "str"),
    },
)
def _(r):
    fn = (
        f"{r.choice(['LH', 'BA', 'AF', 'LX', 'LO', 'UA', 'DL', 'JL', 'LA', 'TK', 'EK'])}{r.randint(10, 9999)}"
    )
    d = rand_date(r, 2024, 2025)
    sd = say_date(r, d)
    return {"flight_number": fn, "date": d}, [
        Ask(f"is flight {fn} on {sd} on time"),
        Do(f"check the status of {fn} on {sd}"),
    ]


@multi("get_flight_status")
def _(r, n):
    d = rand_date(r, 2024, 2025)
    fns = [f"{c}{r.randint(10, 999)}" for c in r.sample(["LH", "BA", "AF", "LX", "LO", "UA", "TK"], n)]
    return [{"flight_number": f, "date": d} for f in fns], [
        Do(f"check the status of flights {and_list(fns)} on {say_date(r, d)}")
    ]


@tool(
    "get_visa_requirements",
    "travel",
    "Visa rules for a passport holder visiting a country.",
    {
        "passport_country": p("Country that issued the passport.", "str"),
        "destination_country": p("Country to visit.", "str"),
    },
)
def _(r):
    a_, b = r.sample(COUNTRY_NAMES, 2)
    return {"passport_country": a_, "destination_country": b}, [
        Ask(f"do I need a visa for {b} with a {a_} passport"),
        Do(f"check visa requirements for {a_} citizens traveling to {b}"),
    ]


@tool(
    "find_car_rentals",
    "travel",
    "Available rental cars at a location.",
    {
        "pickup_location": p("City or airport.", "str"),
        "pickup_date": p("YYYY-MM-DD.", "str"),
        "dropoff_date": p("YYYY-MM-DD.", "str"),
        "car_type": p("compact, suv, van, convertible...", "Optional[str]", None),
    },
)
def _(r):
    loc = r.choice(CITIES)
    pd = rand_date(r, 2025, 2026)
    dd = shift_date(pd, r.randint(2, 14))
    a: dict[str, Any] = {"pickup_location": loc, "pickup_date": pd, "dropoff_date": dd}
    e = ""
    if r.random() < 0.5:
        ct = r.choice(["compact", "suv", "van", "convertible"])
        a["car_type"] = ct
        e = f", a {ct}"
    return a, [
        Do(f"find rental cars in {loc} from {pd} to {dd}{e}"),
        Do(
            f"find me a rental car{e} in {loc}, picking up on {say_date(r, pd)} and dropping off on "
            f"{say_date(r, dd)}"
        ),
    ]


# --------------------------------------------------------------------------------------------------
# Social media
# --------------------------------------------------------------------------------------------------


@tool(
    "create_social_post",
    "social",
    "Publishes or schedules a post on a social platform.",
    {
        "platform": p("twitter, instagram, linkedin, facebook, mastodon or threads.", "str"),
        "content": p("Text of the post.", "str"),
        "media_urls": p("Images or videos to attach.", "List[str], optional"),
        "schedule_time": p("ISO 8601 time to publish; now if omitted.", "Optional[str]"),
    },
)
def _(r):
    pl = r.choice(PLATFORMS)
    c = r.choice(POSTS)
    a: dict[str, Any] = {"platform": pl, "content": c}
    x = []
    if r.random() < 0.35:
        urls = [f"https://cdn.example.com/img/{r.randint(100, 999)}.jpg" for _ in range(r.randint(1, 2))]
        a["media_urls"] = urls
        x.append(f"attach {and_list(urls)}")
    if r.random() < 0.35:
        t = f"{rand_date(r, 2025, 2025)}T{r.randint(6, 21):02d}:{r.choice(['00', '15', '30', '45'])}:00"
        a["schedule_time"] = t
        x.append(f"schedule it for {t}")
    e = ("; " + " and ".join(x)) if x else ""
    return a, [Do(f'post "{c}" on {pl}{e}'), Do(f'share this on {pl}: "{c}"{e}')]


@tool(
    "get_user_profile",
    "social",
    "Public profile information for a username.",
    {
        "username": p("Handle without the @.", "str"),
        "platform": p("Social network.", "str", "twitter"),
    },
)
def _(r):
    u = r.choice(USERNAMES)
    a: dict[str, Any] = {"username": u}
    m = opt(r)
    e = ""
    if m == "default":
        a["platform"] = "twitter"
        e = " on twitter"
    elif m == "value":
        pl = other(r, PLATFORMS, "twitter")
        a["platform"] = pl
        e = f" on {pl}"
    return a, [Do(f"get the profile of @{u}{e}"), Ask(f"who is {u}{e}? Pull up their profile")]


@multi("get_user_profile")
def _(r, n):
    us = r.sample(USERNAMES, n)
    pl = r.choice(PLATFORMS)
    return [{"username": u, "platform": pl} for u in us], [
        Do(f"pull the {pl} profiles of {and_list(['@' + u for u in us])}")
    ]


@tool(
    "search_hashtag",
    "social",
    "Recent posts that use a hashtag.",
    {
        "hashtag": p("Hashtag without '#'.", "str"),
        "limit": p("Maximum posts.", "int", 50),
        "language": p("ISO language code filter.", "str, optional"),
    },
)
def _(r):
    h = r.choice(HASHTAGS)
    a: dict[str, Any] = {"hashtag": h}
    x = []
    m = opt(r)
    if m == "default":
        a["limit"] = 50
        x.append("the latest 50 posts")
    elif m == "value":
        lm = r.choice([10, 25, 100])
        a["limit"] = lm
        x.append(f"the latest {lm} posts")
    if r.random() < 0.35:
        code, lname = r.choice(LANGS)
        a["language"] = code
        x.append(f"in {lname}")
    e = extras(x)
    return a, [Do(f"search #{h}{e}"), Do(f"get posts tagged #{h}{e}")]


@tool(
    "get_post_comments",
    "social",
    "Comments under a post.",
    {
        "post_id": p("Post identifier.", "str"),
        "sort": p("top or newest.", "str", "top"),
        "max_results": p("Maximum comments.", "int", 20),
    },
)
def _(r):
    pid = str(r.randint(10**9, 10**10))
    a: dict[str, Any] = {"post_id": pid}
    x = []
    m = opt(r)
    if m == "default":
        a["sort"] = "top"
        x.append("top comments first")
    elif m == "value":
        a["sort"] = "newest"
        x.append("newest first")
    m = opt(r)
    if m == "default":
        a["max_results"] = 20
        x.append("20 of them")
    elif m == "value":
        mr = r.choice([5, 10, 50, 100])
        a["max_results"] = mr
        x.append(f"up to {mr}")
    e = (" (" + ", ".join(x) + ")") if x else ""
    return a, [Do(f"get the comments on post {pid}{e}"), Ask(f"what are people saying under post {pid}{e}")]


# --------------------------------------------------------------------------------------------------
# Health / nutrition
# --------------------------------------------------------------------------------------------------


@tool(
    "calculate_bmi",
    "health",
    "Body mass index from weight and height.",
    {
        "weight_kg": p("Weight in kilograms.", "float"),
        "height_m": p("Height in meters.", "float"),
    },
)
def _(r):
    w = round(r.uniform(45, 120), 1)
    h = round(r.uniform(1.5, 2.0), 2)
    return {"weight_kg": w, "height_m": h}, [
        Do(f"calculate the BMI for {num(w)} kg and {num(h)} m"),
        Ask(f"I'm {num(h)} m tall and weigh {num(w)} kg, what's my BMI"),
    ]


@tool(
    "get_nutrition_info",
    "health",
    "Calories and macros for a food.",
    {
        "food_item": p("Food name.", "str"),
        "quantity_g": p("Portion in grams.", "float", 100),
    },
)
def _(r):
    f = r.choice(FOODS)
    a: dict[str, Any] = {"food_item": f}
    m = opt(r)
    if m == "default":
        a["quantity_g"] = 100
        return a, [
            Do(f"get nutrition facts for 100 g of {f}"),
            Ask(f"how many calories are in 100 grams of {f}"),
        ]
    if m == "value":
        qn = r.choice([30.0, 45.5, 150.0, 200.0, 250.0, 80.0])
        a["quantity_g"] = qn
        return a, [
            Do(f"get nutrition facts for {num(qn)} g of {f}"),
            Ask(f"how many calories are in {num(qn)} g of {f}"),
        ]
    return a, [Do(f"get the nutrition info for {f}"), Ask(f"what are the macros of {f}")]


@multi("get_nutrition_info")
def _(r, n):
    fs = r.sample(FOODS, n)
    return [{"food_item": f} for f in fs], [Do(f"compare the nutrition info of {and_list(fs)}")]


@tool(
    "calculate_daily_calories",
    "health",
    "Daily calorie needs (Mifflin-St Jeor).",
    {
        "weight_kg": p("Weight in kg.", "float"),
        "height_cm": p("Height in cm.", "float"),
        "age": p("Age in years.", "int"),
        "sex": p("'male' or 'female'.", "str"),
        "activity_level": p("sedentary, light, moderate, active or very_active.", "str"),
    },
)
def _(r):
    w = round(r.uniform(50, 110), 1)
    h = float(r.randint(150, 200))
    ag = r.randint(18, 75)
    sx = r.choice(["male", "female"])
    al = r.choice(["sedentary", "light", "moderate", "active", "very_active"])
    return {"weight_kg": w, "height_cm": h, "age": ag, "sex": sx, "activity_level": al}, [
        Do(
            f"estimate daily calories for a {ag}-year-old {sx}, {num(w)} kg, {num(h)} cm, activity level {al}"
        ),
        Ask(
            f"how many calories per day does a {sx} aged {ag} weighing {num(w)} kg at {num(h)} cm "
            f"need with a {al} activity level"
        ),
    ]


@tool(
    "log_workout",
    "health",
    "Saves a workout to the user's fitness log.",
    {
        "activity": p("Type of workout.", "str"),
        "duration_min": p("Duration in minutes.", "int"),
        "calories_burned": p("Calories burned.", "int, optional"),
        "details": p(
            "Extra data such as {'distance_km': 5.2, 'avg_heart_rate': 142, 'location': 'Parque'}.",
            "Dict[str, Any], optional",
        ),
    },
)
def _(r):
    ac = r.choice(ACTIVITIES)
    dm = r.randint(15, 120)
    a: dict[str, Any] = {"activity": ac, "duration_min": dm}
    x = []
    if r.random() < 0.5:
        cb = r.randint(100, 900)
        a["calories_burned"] = cb
        x.append(f"{cb} calories burned")
    if r.random() < 0.5:
        d: dict[str, Any] = {}
        for k in r.sample(["distance_km", "avg_heart_rate", "location"], r.randint(1, 3)):
            if k == "distance_km":
                d[k] = round(r.uniform(1, 42), 1)
                x.append(f"distance {num(d[k])} km")
            elif k == "avg_heart_rate":
                d[k] = r.randint(95, 175)
                x.append(f"average heart rate {d[k]}")
            else:
                d[k] = r.choice(
                    ["Central Park", "Parque Ibirapuera", "Englischer Garten", "Błonia", "Bondi Beach"]
                )
                x.append(f"location {d[k]}")
        a["details"] = d
    e = (" (" + ", ".join(x) + ")") if x else ""
    return a, [Do(f"log a {dm}-minute {ac} workout{e}"), Do(f"record {dm} minutes of {ac}{e}")]


# --------------------------------------------------------------------------------------------------
# Text / NLP
# --------------------------------------------------------------------------------------------------


@tool(
    "translate_text",
    "text",
    "Translates text into another language.",
    {
        "text": p("Text to translate.", "str"),
        "target_language": p("Target language code, e.g. 'de'.", "str"),
        "source_language": p("Source language code or 'auto'.", "str", "auto"),
    },
)
def _(r):
    t, scode, sname = r.choice(TEXTS + [(x, "en", "English") for x in SENTENCES])
    code, lname = r.choice([lg for lg in LANGS if lg[0] != scode])
    a: dict[str, Any] = {"text": t, "target_language": code}
    m = opt(r)
    e = ""
    if m == "default":
        a["source_language"] = "auto"
        e = " (auto-detect the source language)"
    elif m == "value":
        a["source_language"] = scode
        e = f" from {sname} ({scode})"
    tgt = r.choice([lname, f"'{code}'"])
    return a, [Do(f'translate "{t}" into {tgt}{e}'), Ask(f'how do you say "{t}" in {tgt}{e}')]


@multi("translate_text")
def _(r, n):
    t = r.choice(SENTENCES + [x for x, c, _n in TEXTS if c == "en"])
    langs = r.sample(LANGS, n)
    return [{"text": t, "target_language": c} for c, _nm in langs], [
        Do(f'translate "{t}" into {and_list([nm for _c, nm in langs])}')
    ]


@tool(
    "analyze_sentiment",
    "text",
    "Sentiment (positive/negative/neutral) of a text.",
    {
        "text": p("Text to analyze.", "str"),
        "language": p("Language code of the text.", "str", "en"),
    },
)
def _(r):
    m = opt(r)
    if m == "default":
        t, code, lname = r.choice([x for x in TEXTS if x[1] == "en"])
    elif m == "value":
        t, code, lname = r.choice([x for x in TEXTS if x[1] != "en"])
    else:
        t, code, lname = r.choice(TEXTS)
    a: dict[str, Any] = {"text": t}
    e = ""
    if m == "default":
        a["language"] = "en"
        e = " (language en)"
    elif m == "value":
        a["language"] = code
        e = r.choice([f" (it's in {lname})", f" (language code {code})"])
    return a, [
        Do(f'analyze the sentiment of "{t}"{e}'),
        Ask(f'is this review positive or negative: "{t}"{e}'),
    ]


@tool(
    "word_frequency",
    "text",
    "Most frequent words of a text.",
    {
        "text": p("Input text.", "str"),
        "top_n": p("How many words to return.", "int", 10),
        "ignore_case": p("Treat upper and lower case the same.", "bool", True),
    },
)
def _(r):
    t = r.choice(LONG_TEXTS)
    a: dict[str, Any] = {"text": t}
    x = []
    m = opt(r)
    if m == "default":
        a["top_n"] = 10
        x.append("top 10")
    elif m == "value":
        tn = r.choice([3, 5, 15])
        a["top_n"] = tn
        x.append(f"top {tn}")
    m = opt(r)
    if m == "default":
        a["ignore_case"] = True
        x.append("ignoring case")
    elif m == "value":
        a["ignore_case"] = False
        x.append("case-sensitive")
    e = (" (" + ", ".join(x) + ")") if x else ""
    return a, [Do(f'count the most frequent words{e} in: "{t}"'), Do(f'get word frequencies{e} for "{t}"')]


@tool(
    "is_palindrome",
    "text",
    "Checks whether a string is a palindrome (ignoring punctuation).",
    {
        "text": p("The string.", "str"),
    },
)
def _(r):
    s = r.choice(PHRASES)
    return {"text": s}, [Ask(f"is '{s}' a palindrome"), Do(f"check if '{s}' reads the same backwards")]


@multi("is_palindrome")
def _(r, n):
    ss = r.sample(PHRASES, n)
    return [{"text": s} for s in ss], [
        Ask(f"which of these are palindromes: {'; '.join(repr(s) for s in ss)}")
    ]


@tool(
    "extract_keywords",
    "text",
    "Key phrases of a document.",
    {
        "text": p("Document text.", "str"),
        "max_keywords": p("Maximum keywords.", "int", 5),
    },
)
def _(r):
    t = r.choice(LONG_TEXTS)
    a: dict[str, Any] = {"text": t}
    m = opt(r)
    e = ""
    if m == "default":
        a["max_keywords"] = 5
        e = " (5 keywords)"
    elif m == "value":
        mk = r.choice([3, 8, 10])
        a["max_keywords"] = mk
        e = f" (at most {mk})"
    return a, [Do(f'extract keywords{e} from "{t}"'), Ask(f'what are the key topics{e} of "{t}"')]


@tool(
    "reverse_words",
    "text",
    "Reverses the order of words in a sentence.",
    {
        "sentence": p("Input sentence.", "str"),
    },
)
def _(r):
    s = r.choice(SENTENCES)
    return {"sentence": s}, [
        Do(f"reverse the word order of '{s}'"),
        Ask(f"what is '{s}' with its words reversed"),
    ]


# --------------------------------------------------------------------------------------------------
# Dates / calendars
# --------------------------------------------------------------------------------------------------


@tool(
    "days_between_dates",
    "dates",
    "Number of days between two dates.",
    {
        "start_date": p("YYYY-MM-DD.", "str"),
        "end_date": p("YYYY-MM-DD.", "str"),
        "inclusive": p("Count both endpoints.", "bool", False),
    },
)
def _(r):
    s = rand_date(r, 2000, 2025)
    e_ = rand_date(r, 2000, 2025)
    while e_ == s:
        e_ = rand_date(r, 2000, 2025)
    a: dict[str, Any] = {"start_date": s, "end_date": e_}
    m = opt(r)
    e = ""
    if m == "default":
        a["inclusive"] = False
        e = ", not counting the end date (exclusive)"
    elif m == "value":
        a["inclusive"] = True
        e = ", counting both days (inclusive)"
    return a, [
        Ask(f"how many days are there between {say_date(r, s)} and {say_date(r, e_)}{e}"),
        Do(f"count the days from {s} to {e_}{e}"),
    ]


@tool(
    "get_public_holidays",
    "dates",
    "Public holidays of a country in a year.",
    {
        "country_code": p("ISO 3166 alpha-2 code.", "str"),
        "year": p("Calendar year.", "int"),
    },
)
def _(r):
    code, cname = r.choice(COUNTRIES)
    y = r.randint(2020, 2027)
    c = r.choice([cname, code])
    return {"country_code": code, "year": y}, [
        Do(f"list the public holidays in {c} for {y}"),
        Ask(f"what are the bank holidays in {c} in {y}"),
    ]


@multi("get_public_holidays")
def _(r, n):
    cs = r.sample(COUNTRIES, n)
    y = r.randint(2023, 2027)
    return [{"country_code": c, "year": y} for c, _nm in cs], [
        Do(f"get the {y} public holidays for {and_list([nm for _c, nm in cs])}")
    ]


@tool(
    "convert_timezone",
    "dates",
    "Converts a local date-time between IANA time zones.",
    {
        "datetime": p("Local date-time, 'YYYY-MM-DDTHH:MM'.", "str"),
        "from_tz": p("IANA zone of the input.", "str"),
        "to_tz": p("IANA zone to convert to.", "str"),
    },
)
def _(r):
    dt = f"{rand_date(r, 2024, 2025)}T{r.randint(0, 23):02d}:{r.choice(['00', '15', '30', '45'])}"
    f, t = r.sample(TIMEZONES, 2)
    return {"datetime": dt, "from_tz": f, "to_tz": t}, [
        Do(f"convert {dt} from {f} to {t}"),
        Ask(f"what time is {dt} {f} in {t}"),
    ]


@tool(
    "is_leap_year",
    "dates",
    "Whether a year is a leap year.",
    {
        "year": p("The year.", "int"),
    },
)
def _(r):
    y = r.randint(1600, 2400)
    return {"year": y}, [Ask(f"is {y} a leap year"), Do(f"check whether {y} is a leap year")]


@multi("is_leap_year")
def _(r, n):
    ys = r.sample(range(1800, 2200), n)
    return [{"year": y} for y in ys], [Ask(f"which of {and_list([str(y) for y in ys])} are leap years")]


@tool(
    "create_calendar_event",
    "dates",
    "Creates an event in the user's calendar.",
    {
        "title": p("Event title.", "str"),
        "start_time": p("Start, 'YYYY-MM-DDTHH:MM'.", "str"),
        "duration_minutes": p("Length in minutes.", "int"),
        "attendees": p("Attendee emails.", "List[str], optional"),
        "reminder_minutes": p("Reminders, in minutes before the start.", "List[int], optional"),
    },
)
def _(r):
    ti = r.choice(EVENT_TITLES)
    st = f"{rand_date(r, 2025, 2025)}T{r.randint(8, 18):02d}:{r.choice(['00', '30'])}"
    du = r.choice([15, 30, 45, 60, 90])
    a: dict[str, Any] = {"title": ti, "start_time": st, "duration_minutes": du}
    x = []
    if r.random() < 0.5:
        at = [email_of(r) for _ in range(r.randint(1, 3))]
        a["attendees"] = at
        x.append(f"invite {and_list(at)}")
    if r.random() < 0.45:
        rm = sorted(r.sample([5, 10, 15, 30, 60, 1440], r.randint(1, 2)))
        a["reminder_minutes"] = rm
        x.append(f"remind me {and_list([str(v) for v in rm])} minutes before")
    e = ("; " + "; ".join(x)) if x else ""
    return a, [
        Do(f"create a calendar event '{ti}' starting {st} for {du} minutes{e}"),
        Do(f"schedule '{ti}' at {st}, {du} minutes long{e}"),
    ]


# --------------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------------


@tool(
    "search_recipes",
    "recipes",
    "Recipes that use the given ingredients.",
    {
        "ingredients": p("Ingredients on hand.", "List[str]"),
        "diet": p("Diet restriction, e.g. 'vegan'.", "Optional[str]"),
        "max_time_minutes": p("Maximum total cooking time.", "int, optional"),
    },
)
def _(r):
    ing = r.sample(INGREDIENTS, r.randint(2, 4))
    a: dict[str, Any] = {"ingredients": ing}
    x = []
    if r.random() < 0.4:
        d = r.choice(DIETS)
        a["diet"] = d
        x.append(f"{d}")
    tm = ""
    if r.random() < 0.4:
        mt = r.choice([15, 20, 30, 45, 60])
        a["max_time_minutes"] = mt
        tm = f" that take at most {mt} minutes"
    kind = (x[0] + " ") if x else ""
    return a, [
        Do(f"find {kind}recipes with {and_list(ing)}{tm}"),
        Ask(f"what {kind}dishes can I make with {and_list(ing)}{tm}"),
    ]


@tool(
    "get_recipe_details",
    "recipes",
    "Full recipe (ingredients and steps) by id.",
    {
        "recipe_id": p("Recipe identifier.", "int"),
    },
)
def _(r):
    rid = r.randint(1000, 999999)
    return {"recipe_id": rid}, [
        Do(f"get the full recipe for id {rid}"),
        Ask(f"what are the steps for recipe {rid}"),
    ]


@multi("get_recipe_details")
def _(r, n):
    ids = r.sample(range(1000, 99999), n)
    return [{"recipe_id": i} for i in ids], [Do(f"fetch recipes {and_list([str(i) for i in ids])}")]


@tool(
    "scale_recipe",
    "recipes",
    "Scales ingredient amounts by a factor.",
    {
        "ingredients": p("Each {'name': str, 'amount': float, 'unit': str}.", "List[Dict[str, Any]]"),
        "factor": p("Scaling factor, e.g. 1.5.", "float"),
    },
)
def _(r):
    ing = []
    bits = []
    for nm in r.sample(
        ["flour", "sugar", "butter", "milk", "eggs", "olive oil", "crème fraîche", "jalapeños"],
        r.randint(2, 4),
    ):
        unit = {"eggs": "pcs", "jalapeños": "pcs"}.get(nm, r.choice(["g", "ml", "cups"]))
        amt = float(r.randint(1, 4)) if unit == "pcs" else r.choice([0.5, 0.75, 1.5, 2.0, 100.0, 250.0])
        ing.append({"name": nm, "amount": amt, "unit": unit})
        bits.append(f"{num(amt)} {unit} {nm}")
    f = r.choice([0.5, 1.5, 2.0, 2.5, 3.0, 0.75])
    return {"ingredients": ing, "factor": f}, [
        Do(f"scale this recipe by {num(f)}: {and_list(bits)}"),
        Ask(f"if I multiply {and_list(bits)} by {num(f)}, what do I get"),
    ]


# --------------------------------------------------------------------------------------------------
# Images / grids (tuples)
# --------------------------------------------------------------------------------------------------


def img_url(r):
    return (
        f"https://images.example.com/{r.choice(['beach', 'cat', 'logo', 'zürich-night', 'team', 'product'])}"
        f"_{r.randint(1, 99)}.{r.choice(['jpg', 'png'])}"
    )


@tool(
    "resize_image",
    "images",
    "Resizes an image to the given width and height.",
    {
        "image_url": p("URL of the image.", "str"),
        "size": p("Target (width, height) in pixels.", "Tuple[int, int]"),
        "keep_aspect_ratio": p("Fit inside the size, keeping proportions.", "bool", True),
    },
)
def _(r):
    u = img_url(r)
    w, h = r.choice([(800, 600), (1920, 1080), (256, 256), (1280, 720), (640, 480), (1080, 1350)])
    a: dict[str, Any] = {"image_url": u, "size": [w, h]}
    m = opt(r)
    e = ""
    if m == "default":
        a["keep_aspect_ratio"] = True
        e = " keeping the aspect ratio"
    elif m == "value":
        a["keep_aspect_ratio"] = False
        e = " and stretch it, don't keep the aspect ratio"
    return a, [Do(f"resize {u} to {w}x{h}{e}"), Do(f"make {u} {w} by {h} pixels{e}")]


@tool(
    "crop_image",
    "images",
    "Crops an image to a rectangle.",
    {
        "image_url": p("URL of the image.", "str"),
        "top_left": p("(x, y) of the top-left corner.", "Tuple[int, int]"),
        "bottom_right": p("(x, y) of the bottom-right corner.", "Tuple[int, int]"),
    },
)
def _(r):
    u = img_url(r)
    x0, y0 = r.randint(0, 300), r.randint(0, 300)
    x1, y1 = x0 + r.randint(50, 800), y0 + r.randint(50, 600)
    return {"image_url": u, "top_left": [x0, y0], "bottom_right": [x1, y1]}, [
        Do(f"crop {u} from ({x0}, {y0}) to ({x1}, {y1})"),
        Do(f"cut out the region with top-left ({x0}, {y0}) and bottom-right ({x1}, {y1}) from {u}"),
    ]


@tool(
    "shortest_path_grid",
    "math",
    "Shortest path length on a grid with blocked cells (BFS).",
    {
        "rows": p("Grid rows.", "int"),
        "cols": p("Grid columns.", "int"),
        "start": p("Start cell (row, col).", "Tuple[int, int]"),
        "end": p("Target cell (row, col).", "Tuple[int, int]"),
        "obstacles": p("Blocked cells.", "List[Tuple[int, int]], optional"),
    },
)
def _(r):
    rows, cols = r.randint(4, 12), r.randint(4, 12)
    s = [0, 0] if r.random() < 0.5 else [r.randint(0, rows - 1), r.randint(0, cols - 1)]
    e_ = [rows - 1, cols - 1]
    a: dict[str, Any] = {"rows": rows, "cols": cols, "start": s, "end": e_}
    x = ""
    if r.random() < 0.5:
        obs = []
        while len(obs) < r.randint(1, 4):
            c = [r.randint(0, rows - 1), r.randint(0, cols - 1)]
            if c not in obs and c != s and c != e_:
                obs.append(c)
        a["obstacles"] = obs
        x = " with obstacles at " + ", ".join(f"({c[0]}, {c[1]})" for c in obs)
    return a, [
        Do(f"find the shortest path on a {rows}x{cols} grid from ({s[0]}, {s[1]}) to ({e_[0]}, {e_[1]}){x}"),
        Ask(
            f"how many steps from ({s[0]}, {s[1]}) to ({e_[0]}, {e_[1]}) in a grid of {rows} rows and {cols} "
            f"columns{x}"
        ),
    ]


# --------------------------------------------------------------------------------------------------
# Utilities (Any, dict, list)
# --------------------------------------------------------------------------------------------------


def show(v):
    """How a query spells a value of any JSON type."""
    if isinstance(v, str):
        return f"'{v}'"
    return json.dumps(v, ensure_ascii=False)


# Preference / cache keys with plausible values of varied JSON types (for the `Any` parameters).
PREFERENCES = {
    "theme": ["dark", "light", "solarized"],
    "language": ["es-MX", "pt-BR", "de-CH", "ja-JP"],
    "notifications": [["email", "push"], ["sms"], ["email", "slack", "push"]],
    "font_scale": [1.25, 0.9, 1.5],
    "timezone": ["Europe/Zürich", "America/Sao_Paulo", "Asia/Tokyo"],
    "newsletter": [True, False],
    "layout": [{"sidebar": "left", "density": "compact"}, {"sidebar": "right", "density": "comfortable"}],
    "results_per_page": [10, 25, 50],
}
CACHE_VALUES = {
    "session:42": ["active", {"user": "ana", "expires_in": 900}],
    "user:ana:cart": [[{"sku": "A1", "qty": 2}, {"sku": "B7", "qty": 1}], []],
    "rates:EURUSD": [1.0842, 1.0915],
    "weather:zürich": [{"temp_c": 18.5, "condition": "sunny"}, {"temp_c": -2.0, "condition": "snow"}],
    "feature_flags": [{"dark_mode": True, "beta": False}, {"new_checkout": True}],
    "top10": [["Kraków", "Lisbon", "Tokyo"], [3, 1, 4, 1, 5]],
    "counter:visits": [1024, 77],
    "maintenance_mode": [True, False],
}
RECORD_FIELDS = {
    "customers": [("city", "Wrocław"), ("verified", True), ("name", "Zoë Dubois"), ("tags", ["vip", "eu"])],
    "orders": [("status", "shipped"), ("express", False), ("total", 149.5), ("items_count", 3)],
    "products": [("price", 19.99), ("stock", 42), ("active", False), ("tags", ["sale", "new"])],
    "employees": [("department", "R&D"), ("salary", 72000), ("remote", True), ("manager_id", 118)],
}


@tool(
    "set_user_preference",
    "utilities",
    "Stores a preference value for a user.",
    {
        "user_id": p("User identifier.", "str"),
        "key": p("Preference name.", "str"),
        "value": p("Preference value of any JSON type.", "Any"),
    },
)
def _(r):
    uid = f"u_{r.randint(100, 99999)}"
    key = r.choice(list(PREFERENCES))
    v = r.choice(PREFERENCES[key])
    vs = show(v)
    return {"user_id": uid, "key": key, "value": v}, [
        Do(f"set preference '{key}' to {vs} for user {uid}"),
        Do(f"for user {uid}, save {key} = {vs}"),
    ]


@tool(
    "find_element_index",
    "utilities",
    "Index of the first occurrence of a value in a list, or -1.",
    {
        "items": p("The list to search.", "list"),
        "target": p("Value to find.", "Any"),
    },
)
def _(r):
    kind = r.randrange(3)
    if kind == 0:
        items: list[Any] = r.sample(range(1, 60), r.randint(4, 8))
        t: Any = r.choice([*items, 99])
    elif kind == 1:
        items = r.sample(["apple", "kiwi", "mango", "açaí", "pear", "fig", "lime"], r.randint(3, 6))
        t = r.choice(items)
    else:
        items = [r.choice([1, "two", 3.5, True, "x"]) for _ in range(4)]
        t = items[r.randrange(4)]
    js = json.dumps(items, ensure_ascii=False)
    ts = json.dumps(t, ensure_ascii=False)
    return {"items": items, "target": t}, [
        Do(f"find the index of {ts} in {js}"),
        Ask(f"where does {ts} first appear in the list {js}"),
    ]


@tool(
    "cache_set",
    "utilities",
    "Stores a value in the cache under a key.",
    {
        "key": p("Cache key.", "str"),
        "value": p("Value to store.", "Any"),
        "ttl_seconds": p("Time to live in seconds.", "int", 3600),
    },
)
def _(r):
    key = r.choice(list(CACHE_VALUES))
    v = r.choice(CACHE_VALUES[key])
    vs = show(v)
    a: dict[str, Any] = {"key": key, "value": v}
    m = opt(r)
    e = ""
    if m == "default":
        a["ttl_seconds"] = 3600
        e = " with a TTL of 3600 seconds"
    elif m == "value":
        ttl = r.choice([60, 300, 86400])
        a["ttl_seconds"] = ttl
        e = f" for {ttl} seconds"
    return a, [Do(f"cache {vs} under the key '{key}'{e}"), Do(f"store {vs} at '{key}' in the cache{e}")]


@tool(
    "update_record_field",
    "utilities",
    "Updates one field of a database record.",
    {
        "table": p("Table name.", "str"),
        "record_id": p("Primary key.", "int"),
        "field": p("Column to update.", "str"),
        "value": p("New value.", "Any"),
    },
)
def _(r):
    tb = r.choice(list(RECORD_FIELDS))
    rid = r.randint(1, 99999)
    fl, v = r.choice(RECORD_FIELDS[tb])
    vs = show(v)
    return {"table": tb, "record_id": rid, "field": fl, "value": v}, [
        Do(f"update {tb} record {rid}: set {fl} to {vs}"),
        Do(f"in the {tb} table, change {fl} of record {rid} to {vs}"),
    ]


@tool(
    "merge_dictionaries",
    "utilities",
    "Merges two dictionaries; keys of the second win.",
    {
        "dict1": p("First dictionary.", "dict"),
        "dict2": p("Second dictionary.", "dict"),
    },
)
def _(r):
    keys = ["a", "b", "c", "name", "age", "city", "x", "y"]
    d1 = {k: r.randint(1, 50) for k in r.sample(keys, r.randint(1, 3))}
    d2 = {k: r.choice([r.randint(1, 50), r.choice(CITIES[:20])]) for k in r.sample(keys, r.randint(1, 3))}
    s1, s2 = json.dumps(d1, ensure_ascii=False), json.dumps(d2, ensure_ascii=False)
    return {"dict1": d1, "dict2": d2}, [
        Do(f"merge {s1} with {s2}"),
        Ask(f"what do you get merging {s1} and {s2}"),
    ]


@tool(
    "flatten_list",
    "utilities",
    "Flattens a nested list.",
    {
        "nested_list": p("Possibly nested list.", "list"),
    },
)
def _(r):
    v = [r.randint(1, 9), [r.randint(1, 9), [r.randint(1, 9), r.randint(1, 9)]], r.randint(1, 9)]
    if r.random() < 0.5:
        v = [[1, 2], [3, [4, 5]], [r.randint(6, 20)]]
    s = json.dumps(v)
    return {"nested_list": v}, [Do(f"flatten {s}"), Ask(f"what is {s} flattened")]


@tool(
    "generate_password",
    "utilities",
    "Random password of a given length.",
    {
        "length": p("Number of characters.", "int"),
        "include_symbols": p("Include punctuation symbols.", "bool", True),
    },
)
def _(r):
    ln = r.choice([8, 12, 16, 20, 24, 32])
    a: dict[str, Any] = {"length": ln}
    m = opt(r)
    e = ""
    if m == "default":
        a["include_symbols"] = True
        e = " with symbols"
    elif m == "value":
        a["include_symbols"] = False
        e = " without any symbols"
    return a, [
        Do(f"generate a {ln}-character password{e}"),
        Do(f"create a random password of length {ln}{e}"),
    ]


@tool(
    "validate_email",
    "utilities",
    "Checks an email address's syntax and domain.",
    {
        "email": p("Address to check.", "str"),
    },
)
def _(r):
    e = email_of(r)
    return {"email": e}, [Ask(f"is {e} a valid email address"), Do(f"validate the email {e}")]


@multi("validate_email")
def _(r, n):
    es = []
    while len(es) < n:
        e = email_of(r)
        if e not in es:
            es.append(e)
    return [{"email": e} for e in es], [Do(f"validate these emails: {', '.join(es)}")]


@tool(
    "shorten_url",
    "utilities",
    "Creates a short link.",
    {
        "url": p("Long URL.", "str"),
        "custom_alias": p("Desired alias.", "str, optional", ""),
    },
)
def _(r):
    u = (
        f"https://www.example.com/{r.choice(['blog', 'shop', 'events'])}/{r.randint(2020, 2025)}/"
        f"{r.choice(['summer-sale', 'kraków-meetup', 'launch', 'recipes/crème-brûlée'])}"
    )
    a: dict[str, Any] = {"url": u}
    if r.random() < 0.4:
        al = r.choice(["sale24", "meetup", "launch-day", "brulee"])
        a["custom_alias"] = al
        return a, [Do(f"shorten {u} with the alias '{al}'")]
    return a, [Do(f"shorten {u}"), Do(f"make a short link for {u}")]


# --------------------------------------------------------------------------------------------------
# Row assembly
# --------------------------------------------------------------------------------------------------

SINGLE_I = [
    "{C}.",
    "Please {c}.",
    "Can you {c}?",
    "Could you {c}?",
    "I need you to {c}.",
    "Would you {c}, please?",
    "I'd like you to {c}.",
    "Hey, can you {c}?",
    "{C}, please.",
]
FOLLOW_I = ["Also, please {c}.", "And {c}, too.", "After that, {c}.", "Additionally, {c}.", "Then {c}."]
FOLLOW_Q = ["Also, {q}?", "And {q}?", "Additionally, {q}?", "One more thing: {q}?"]


def render_single(r, part):
    kind, text = part
    if kind == "Q":
        return cap(text) + "?"
    return r.choice(SINGLE_I).replace("{C}", cap(text)).replace("{c}", text)


def render(r, parts):
    if len(parts) == 1:
        return render_single(r, parts[0])
    if all(k == "I" for k, _ in parts) and r.random() < 0.6:
        cs = [t for _, t in parts]
        style = r.randrange(4)
        if style == 0:
            return "Please " + and_list(cs) + "."
        if style == 1:
            return "Can you " + and_list(cs) + "?"
        if style == 2:
            return "I need a few things: " + "; ".join(cs[:-1]) + "; and " + cs[-1] + "."
        return (
            "First, "
            + cs[0]
            + ". "
            + " ".join(cap(r.choice(["then", "next,", "after that,"])) + " " + c + "." for c in cs[1:])
        )
    out = [render_single(r, parts[0])]
    for kind, text in parts[1:]:
        if kind == "Q":
            out.append(r.choice(FOLLOW_Q).replace("{q}", text))
        else:
            out.append(r.choice(FOLLOW_I).replace("{c}", text))
    return " ".join(out)


def key(args):
    return json.dumps(args, sort_keys=True, ensure_ascii=False)


def gen_call(r, name, avoid):
    for _ in range(50):
        args, parts = GENS[name](r)
        if key(args) not in avoid:
            return args, r.choice(parts)
    raise RuntimeError(f"could not draw distinct arguments for {name}")


def build_row(r, primary):
    names = list(TOOLS)
    x = r.random()
    calls: list[tuple[str, dict[str, Any]]] = []
    parts: list[tuple[str, str]] = []
    if x < 0.5:  # one call
        args, part = gen_call(r, primary, set())
        calls.append((primary, args))
        parts.append(part)
    elif x < 0.72:  # the same tool several times (maybe plus one other tool)
        n = r.choices([2, 3, 4], [6, 3, 1])[0]
        if primary in MULTIS and r.random() < 0.7:
            arg_list, mparts = MULTIS[primary](r, n)
            assert len({key(a) for a in arg_list}) == len(arg_list), primary
            calls.extend((primary, a) for a in arg_list)
            parts.append(r.choice(mparts))
        else:
            seen: set[str] = set()
            for _ in range(n):
                args, part = gen_call(r, primary, seen)
                seen.add(key(args))
                calls.append((primary, args))
                parts.append(part)
        if len(calls) < 4 and r.random() < 0.25:
            o = r.choice([t for t in names if t != primary])
            args, part = gen_call(r, o, set())
            calls.append((o, args))
            parts.append(part)
    else:  # different tools
        n = r.choices([2, 3, 4], [6, 3, 1])[0]
        chosen = [primary]
        same = [t for t in names if DOMAIN[t] == DOMAIN[primary] and t != primary]
        while len(chosen) < n:
            pool = same if (same and r.random() < 0.4) else names
            c = r.choice(pool)
            if c not in chosen:
                chosen.append(c)
        for c in chosen:
            args, part = gen_call(r, c, set())
            calls.append((c, args))
            parts.append(part)
    query = render(r, parts)

    used = []
    for nm, _a in calls:
        if nm not in used:
            used.append(nm)
    if len(used) == 1:
        total = r.choices([1, 2, 3, 4, 5], [30, 25, 22, 14, 9])[0]
    else:
        total = r.randint(len(used), min(5, len(used) + 2))
    offered = list(used)
    same = [t for t in names if DOMAIN[t] == DOMAIN[primary] and t not in offered]
    while len(offered) < total:
        pool = same if (same and r.random() < 0.5) else names
        c = r.choice(pool)
        if c not in offered:
            offered.append(c)
            if c in same:
                same.remove(c)
    r.shuffle(offered)
    answers = [{"name": nm, "arguments": a} for nm, a in calls]
    tools = [TOOLS[t] for t in offered]
    return query, answers, tools


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------


def split_top(text):
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [s.strip() for s in parts]


def parse_type(t):
    """-> (core type, optional)"""
    parts = split_top(t)
    optional = False
    if len(parts) > 1 and parts[-1] == "optional":
        optional = True
        t = ", ".join(parts[:-1])
    t = t.strip()
    if t.startswith("Optional[") and t.endswith("]"):
        optional = True
        t = t[len("Optional[") : -1].strip()
    return t, optional


def value_ok(t, v):
    t = t.strip()
    if t == "Any":
        return True
    if t == "str":
        return isinstance(v, str)
    if t == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "bool":
        return isinstance(v, bool)
    if t in ("dict", "Dict[str, Any]"):
        return isinstance(v, dict) and all(isinstance(k, str) for k in v)
    if t == "list":
        return isinstance(v, list)
    if t.startswith("List[") and t.endswith("]"):
        return isinstance(v, list) and all(value_ok(t[5:-1], e) for e in v)
    if t.startswith("Tuple[") and t.endswith("]"):
        inner = split_top(t[6:-1])
        return (
            isinstance(v, list)
            and len(v) == len(inner)
            and all(value_ok(a, e) for a, e in zip(inner, v, strict=True))
        )
    raise AssertionError(f"unknown type {t!r}")


def scalars(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from scalars(x)
    elif isinstance(v, list):
        for x in v:
            yield from scalars(x)
    else:
        yield v


DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def stated(query, v):
    """Whether the query states scalar value v (bools are conveyed by wording, not checked here)."""
    ql = query.lower()
    if isinstance(v, bool) or v is None:
        return True
    if isinstance(v, (int, float)):
        return num(v) in query
    forms = [v, *ALIASES.get(v, [])]
    if DATE_RE.match(v):
        forms.append(natural_date(v))
    return any(f.lower() in ql for f in forms)


def check_row(row):
    assert list(row) == ["id", "query", "answers", "tools"], row
    assert isinstance(row["query"], str) and row["query"].strip()
    tools = json.loads(row["tools"])
    answers = json.loads(row["answers"])
    assert isinstance(tools, list) and 1 <= len(tools) <= 5, row["id"]
    assert isinstance(answers, list) and answers, row["id"]
    by_name = {}
    for t in tools:
        assert set(t) == {"name", "description", "parameters"}, t
        assert re.fullmatch(r"[a-z][a-z0-9_]*", t["name"]), t["name"]
        assert t["name"] not in by_name, f"row {row['id']}: duplicate tool {t['name']}"
        by_name[t["name"]] = t
        for pn, spec in t["parameters"].items():
            assert set(spec) <= {"description", "type", "default"} and "type" in spec, (t["name"], pn)
            core, optional = parse_type(spec["type"])
            value_ok(core, None if core == "Any" else _sample_for(core))  # type string must be known
            if "default" in spec and spec["default"] not in ("", None):
                assert value_ok(core, spec["default"]), (t["name"], pn)
    for ans in answers:
        assert set(ans) == {"name", "arguments"}, ans
        tool_ = by_name.get(ans["name"])
        assert tool_ is not None, f"row {row['id']}: {ans['name']} not offered"
        params = tool_["parameters"]
        for an, av in ans["arguments"].items():
            assert an in params, f"row {row['id']}: {ans['name']} has no parameter {an}"
            core, _opt = parse_type(params[an]["type"])
            assert value_ok(core, av), f"row {row['id']}: {ans['name']}.{an}={av!r} is not {core}"
            for s in scalars(av):
                assert stated(row["query"], s), f"row {row['id']}: query does not state {s!r}: {row['query']}"
        for pn, spec in params.items():
            core, optional = parse_type(spec["type"])
            if not optional and "default" not in spec:
                assert pn in ans["arguments"], f"row {row['id']}: {ans['name']} misses required {pn}"


def _sample_for(core):
    return {"str": "", "int": 0, "float": 0.0, "bool": False, "dict": {}, "list": []}.get(
        core, {} if core.startswith("Dict") else []
    )


def is_default(value, spec):
    """Whether an argument passes exactly the parameter's (non-empty) default."""
    if "default" not in spec or spec["default"] in ("", None):
        return False
    d = spec["default"]
    return value == d and isinstance(value, bool) == isinstance(d, bool)


def branch_counts(rows):
    c: Counter = Counter()
    for row in rows:
        tools = {t["name"]: t for t in json.loads(row["tools"])}
        answers = json.loads(row["answers"])
        flags = set()
        if len(tools) > 1:
            flags.add("several tools offered")
        if len(tools) > len({a["name"] for a in answers}):
            flags.add("answer uses a subset of the tools")
        if len(answers) > 1:
            flags.add("parallel calls")
            names = [a["name"] for a in answers]
            if len(set(names)) < len(names):
                flags.add("parallel: same tool repeated")
            if len(set(names)) > 1:
                flags.add("parallel: different tools")
        if any(ord(ch) > 127 for ch in row["query"]):
            flags.add("unicode")
        for a in answers:
            params = tools[a["name"]]["parameters"]
            for pn, spec in params.items():
                core, optional = parse_type(spec["type"])
                if optional or "default" in spec:
                    flags.add("optional provided" if pn in a["arguments"] else "optional omitted")
                if pn in a["arguments"] and is_default(a["arguments"][pn], spec):
                    flags.add("default-valued argument")
            for an, av in a["arguments"].items():
                core, _ = parse_type(params[an]["type"])
                if core.startswith("Tuple"):
                    flags.add("tuple")
                if core == "Any":
                    flags.add("Any")
                if isinstance(av, dict):
                    flags.add("nested object")
                if isinstance(av, list) and core.startswith("List["):
                    if av and all(isinstance(e, dict) for e in av):
                        flags.add("list of objects")
                    elif core in ("List[str]", "List[int]", "List[float]"):
                        flags.add("list of scalars")
                for s in scalars(av):
                    if isinstance(s, float):
                        flags.add("float")
                    if isinstance(s, bool):
                        flags.add("bool")
        c.update(flags)
    return c


# --------------------------------------------------------------------------------------------------


def build(seed=SEED, n_rows=N_ROWS):
    r = random.Random(seed)
    names = list(TOOLS)
    schedule: list[str] = []
    while len(schedule) < n_rows:
        block = list(names)
        r.shuffle(block)
        schedule.extend(block)
    rows = []
    for i in range(n_rows):
        query, answers, tools = build_row(r, schedule[i])
        rows.append(
            {
                "id": i,
                "query": query,
                "answers": json.dumps(answers, ensure_ascii=False),
                "tools": json.dumps(tools, ensure_ascii=False),
            }
        )
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    rows = build()
    assert len(rows) == N_ROWS
    assert [row["id"] for row in rows] == list(range(N_ROWS))
    for row in rows:
        check_row(row)
    domains = {DOMAIN[t] for t in TOOLS}
    assert len(TOOLS) >= 40 and len(domains) >= 12, (len(TOOLS), len(domains))
    counts = branch_counts(rows)
    for label in [
        "several tools offered",
        "parallel calls",
        "parallel: same tool repeated",
        "parallel: different tools",
        "nested object",
        "list of scalars",
        "list of objects",
        "float",
        "bool",
        "optional provided",
        "optional omitted",
        "default-valued argument",
        "unicode",
        "tuple",
        "Any",
    ]:
        assert counts[label] >= 30, f"only {counts[label]} rows with {label}"
    text = json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    # Round trip: what we write is what we checked.
    back = json.loads(text)
    assert back == rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    used_tools = Counter(a["name"] for row in rows for a in json.loads(row["answers"]))
    print(
        f"wrote {args.out} ({len(rows)} rows, {len(text.encode('utf-8'))} bytes, "
        f"sha256 {hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]})"
    )
    print(f"{len(TOOLS)} tools in {len(domains)} domains; {len(used_tools)} tools used in answers")
    for label, n in sorted(counts.items()):
        print(f"  {label:<36} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
