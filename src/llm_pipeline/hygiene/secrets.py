"""Secrets in text: API keys and tokens, private key blocks, JSON web tokens, credentials in URLs,
and high-entropy values named by a word such as key, token, secret or password.

The shapes of provider tokens come from detect-secrets (Yelp), a maintained detector library: its
plug-ins' regexes (``denylist``) and checks (the JWT's, the entropy) are used as they are. They
are tried only where a literal anchor, found by ``str.find`` at memory speed, says a token may
start, and the plug-ins are imported on the first such hit: text without anchors costs a few
substring searches, and ``import`` of this module stays cheap.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import cache
from importlib import import_module
from typing import NamedTuple

# Characters of a token: a match glued to one of these on its left is part of a longer word.
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# A base64 token may start with "+" or "/", and end in padding.
_TOKEN_START_CHARS = TOKEN_CHARS | {"+", "/"}
_TOKEN_END_CHARS = TOKEN_CHARS | {"="}
SECRET_TYPES = frozenset(("secret", "private_key", "jwt", "credentials"))


class _Anchor(NamedTuple):
    """Where ``text.find(anchor)`` hits, a token may start ``back`` characters earlier (None: the
    patterns are searched in the anchor's line). ``patterns`` names the detect-secrets plug-in
    ("module:Class") whose denylist is tried, or holds our own regexes."""

    anchor: str
    back: int | None
    kind: str
    patterns: str | tuple[re.Pattern[str], ...]


# Today's own anchored patterns, kept beside the library's: they are fast and cover shapes the
# library does not (GitHub fine-grained tokens, Google API keys, any "sk-" key).
_OWN = (
    _Anchor("AKIA", 0, "secret", (re.compile(r"AKIA[0-9A-Z]{16}(?![0-9A-Za-z])"),)),
    _Anchor("gh", 0, "secret", (re.compile(r"gh[opsur]_[A-Za-z0-9]{36}"),)),
    _Anchor("github_pat_", 0, "secret", (re.compile(r"github_pat_[A-Za-z0-9_]{22,}"),)),
    _Anchor("sk-", 0, "secret", (re.compile(r"sk-[A-Za-z0-9_-]{20,}"),)),
    _Anchor("xox", 0, "secret", (re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}"),)),
    _Anchor("AIza", 0, "secret", (re.compile(r"AIza[0-9A-Za-z_-]{35}"),)),
    _Anchor("npm_", 0, "secret", (re.compile(r"npm_[A-Za-z0-9]{36}"),)),
)
_PLUGINS = "detect_secrets.plugins."
_LIBRARY = (
    _Anchor("sk_live_", 0, "secret", _PLUGINS + "stripe:StripeDetector"),
    _Anchor("rk_live_", 0, "secret", _PLUGINS + "stripe:StripeDetector"),
    _Anchor("gl", 0, "secret", _PLUGINS + "gitlab_token:GitLabTokenDetector"),
    _Anchor("GR1348941", 0, "secret", _PLUGINS + "gitlab_token:GitLabTokenDetector"),
    _Anchor("xox", 0, "secret", _PLUGINS + "slack:SlackDetector"),
    _Anchor("https://hooks.slack.com/", 0, "secret", _PLUGINS + "slack:SlackDetector"),
    *(
        _Anchor(prefix, 0, "secret", _PLUGINS + "aws:AWSKeyDetector")
        for prefix in ("AKIA", "ASIA", "ABIA", "ACCA", "A3T")
    ),
    _Anchor("AccountKey=", 0, "secret", _PLUGINS + "azure_storage_key:AzureStorageKeyDetector"),
    # A Discord bot token starts with the base64 of the bot's numeric id: "1" is "MT", ...
    *(
        _Anchor(prefix, 0, "secret", _PLUGINS + "discord:DiscordBotTokenDetector")
        for prefix in ("MT", "Mj", "Mz", "ND", "NT", "Nj", "Nz", "OD", "OT")
    ),
    _Anchor("-us", None, "secret", _PLUGINS + "mailchimp:MailchimpDetector"),
    _Anchor("_authToken=", None, "secret", _PLUGINS + "npm:NpmDetector"),
    _Anchor("sk-", 0, "secret", _PLUGINS + "openai:OpenAIDetector"),
    _Anchor("pypi-Ag", 0, "secret", _PLUGINS + "pypi_token:PypiTokenDetector"),
    _Anchor("SG.", 0, "secret", _PLUGINS + "sendgrid:SendGridDetector"),
    _Anchor("sq0csp-", 0, "secret", _PLUGINS + "square_oauth:SquareOAuthDetector"),
    _Anchor("AC", 0, "secret", _PLUGINS + "twilio:TwilioKeyDetector"),
    _Anchor("SK", 0, "secret", _PLUGINS + "twilio:TwilioKeyDetector"),
    _Anchor("AKC", 1, "secret", _PLUGINS + "artifactory:ArtifactoryDetector"),
    _Anchor("AP", 1, "secret", _PLUGINS + "artifactory:ArtifactoryDetector"),
    _Anchor("eyJ", 0, "jwt", _PLUGINS + "jwt:JwtTokenDetector"),
)
_CREDENTIALS = _Anchor("://", 0, "credentials", _PLUGINS + "basic_auth:BasicAuthDetector")
# Anchors inside or after a run rather than at its start: looked for with str.find.
_LOOSE = tuple(
    anchor
    for anchor in _LIBRARY
    if anchor.anchor in ("https://hooks.slack.com/", "AccountKey=", "SG.", "-us", "_authToken=")
)
_BY_PREFIX: dict[str, tuple[_Anchor, ...]] = {}
for _anchor in _OWN + _LIBRARY:
    if _anchor not in _LOOSE:
        _BY_PREFIX[_anchor.anchor[:2]] = (*_BY_PREFIX.get(_anchor.anchor[:2], ()), _anchor)
# The patterns a Telegram bot token (digits, a colon, 35 characters) is found with, where a run of
# digits ends in a colon (see pii._find_numbers).
TELEGRAM = _PLUGINS + "telegram_token:TelegramBotTokenDetector"


@cache
def plugin(name: str) -> type:
    """The detect-secrets plug-in class named "module:Class", imported on first use."""
    module, _, cls = name.partition(":")
    return getattr(import_module(module), cls)


def patterns_of(source: str | tuple[re.Pattern[str], ...]) -> tuple[re.Pattern[str], ...]:
    return source if isinstance(source, tuple) else tuple(plugin(source).denylist)


def token_runs(ascii_text: bytes) -> bytes:
    """``ascii_text`` (the text as ASCII bytes) with token characters as "a", all else " ": a
    token starts where a run of "a" as long as the shortest token does, and words of prose are
    shorter, so most texts are done after two C calls."""
    return ascii_text.translate(_RUN_TABLE)


_RUN_TABLE = bytes(ord("a") if chr(byte) in TOKEN_CHARS else ord(" ") for byte in range(256))
# The shortest shapes: an "xoxb-" Slack token (15), a keyword's random value in prose (16), an
# "AKC" Artifactory key (13 of which, in practice 73). URL credentials and private key blocks
# have anchors of their own.
SHORTEST_TOKEN = b"a" * 15


def find_secrets(
    text: str, runs: bytes, first_run: int, wanted: tuple[str, ...]
) -> list[tuple[int, int, str]]:
    """Tokens, JWTs, URL credentials and private key blocks, where an anchor marks them.
    ``runs`` is ``token_runs`` of the text, ``first_run`` where it has its first long run."""
    spans: list[tuple[int, int, str]] = []
    if "private_key" in wanted and ("BEGIN" in text or "PuTTY-User-Key-File" in text):
        spans += _private_key_spans(text)
    if "credentials" in wanted and "://" in text and "@" in text:
        spans += _anchored_spans(text, _CREDENTIALS)
    if first_run == -1:
        return spans
    for anchor in _LOOSE:
        if anchor.kind in wanted and anchor.anchor in text:
            spans += _anchored_spans(text, anchor)
    # Most tokens start a run: the run's first two characters say which anchors may start it.
    start = first_run
    while start != -1:
        for anchor in _BY_PREFIX.get(text[start : start + 2], ()):
            if anchor.kind in wanted and text.startswith(anchor.anchor, start):
                for pattern in patterns_of(anchor.patterns):
                    span = _span_at(text, start, anchor, pattern)
                    if span:
                        spans.append(span)
        end = runs.find(b" ", start)
        start = -1 if end == -1 else runs.find(SHORTEST_TOKEN, end)
    return spans


def _anchored_spans(text: str, anchor: _Anchor) -> list[tuple[int, int, str]]:
    spans = []
    patterns = patterns_of(anchor.patterns)
    position = text.find(anchor.anchor)
    while position != -1:
        for pattern in patterns:
            span = _span_at(text, position, anchor, pattern)
            if span:
                spans.append(span)
        # A token starting later in this run of token characters would be glued to the run:
        # skipping it keeps the work linear ("AccountKey=AccountKey=...").
        position = text.find(anchor.anchor, max(position + 1, _token_end(text, position)))
    return spans


def _span_at(
    text: str, position: int, anchor: _Anchor, pattern: re.Pattern[str]
) -> tuple[int, int, str] | None:
    if anchor.back is None:
        # The anchor's line, within a bound that keeps a long line from being read again and
        # again for each anchor on it.
        line_start = text.rfind("\n", max(0, position - _AROUND), position) + 1
        line_end = text.find("\n", position, position + _AROUND)
        line_start = max(line_start, position - _AROUND)
        match = pattern.search(
            text, line_start, min(len(text), position + _AROUND) if line_end == -1 else line_end
        )
        if not match or not match.start() <= position < match.end():
            return None
    else:
        match = pattern.match(text, max(0, position - anchor.back))
        if not match:
            return None
    if anchor.kind == "credentials":
        # ://user:password@ : the user and the password, not the scheme nor the host
        return (match.start() + 3, match.end(1), "credentials")
    if anchor.kind == "jwt":
        return _jwt_span(text, match)
    # A plug-in's group is the token where its pattern also reads what surrounds it (npm's
    # registry line); the edges that are not token characters (quotes, "=", a space) are left.
    start, end = match.span(1) if match.re.groups and anchor.back is None else match.span()
    if anchor.anchor.endswith("="):
        start = max(start, position + len(anchor.anchor))  # "AccountKey=": the value alone
    while start < end and text[start] not in _TOKEN_START_CHARS:
        start += 1
    end = _WORD.match(text, start, _token_end(text, end)).end()
    while end > start and text[end - 1] not in _TOKEN_END_CHARS:
        end -= 1
    if start == end or (start and text[start - 1] in TOKEN_CHARS):
        return None  # the end of a longer word
    return (start, end, anchor.kind)


_AROUND = 128
_WORD = re.compile(r"[^\s\"'`]*")


def _token_end(text: str, end: int) -> int:
    """A token the pattern read only the first characters of is replaced whole."""
    while end < len(text) and text[end] in TOKEN_CHARS:
        end += 1
    return end


def _jwt_span(text: str, match: re.Match[str]) -> tuple[int, int, str] | None:
    """The library reads header.payload (a lazy tail); its check decodes both as JSON. The
    signature after them belongs to the token too."""
    start, end = match.span()
    if start and text[start - 1] in TOKEN_CHARS:
        return None
    end = _token_end(text, end)
    if end < len(text) and text[end] == "." and text[end - 1] != ".":
        end = _token_end(text, end + 1)
    token = text[start:end].rstrip(".")
    if token.count(".") < 1 or not plugin(_LIBRARY_JWT).is_formally_valid(token):
        return None
    return (start, start + len(token), "jwt")


_LIBRARY_JWT = _PLUGINS + "jwt:JwtTokenDetector"

# --- private key blocks ------------------------------------------------------------------------

_KEY_LABEL = r"[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?"
_PEM_BLOCK = re.compile(
    rf"-{{4,5}} ?BEGIN {_KEY_LABEL} ?-{{4,5}}"
    # The body never crosses "----", so each block is read once; a block cut before its END line
    # still loses its base64 body.
    rf"(?:(?:[^-]|-(?!---))*+-{{4,5}} ?END {_KEY_LABEL} ?-{{4,5}}"
    r"|(?:\s*[A-Za-z0-9+/=]{16,})*)"
)
_OWN_KEY_HEADER = re.compile(rf"BEGIN {_KEY_LABEL}")
# A PuTTY key file runs to its "Private-MAC:" line.
_PUTTY_BLOCK = re.compile(
    r"PuTTY-User-Key-File-\d+:[^\n]*(?:\n(?!\s*\n)[^\n]*){0,60}?\nPrivate-MAC: *[0-9a-fA-F]+"
    r"|PuTTY-User-Key-File-\d+:[^\n]*"
)


def _private_key_spans(text: str) -> list[tuple[int, int, str]]:
    """Blocks whose header detect-secrets' PrivateKeyDetector (or our own, broader, label:
    "ENCRYPTED PRIVATE KEY") recognises, from the dashes before BEGIN to the END line."""
    headers = (*plugin(_PLUGINS + "private_key:PrivateKeyDetector").denylist, _OWN_KEY_HEADER)
    spans = []
    done = 0
    position = text.find("BEGIN")
    while position != -1:
        if position >= done and any(header.match(text, position) for header in headers):
            start = position - (text[position - 1 : position] == " ")
            while start and text[start - 1] == "-" and position - start < 7:
                start -= 1
            block = _PEM_BLOCK.match(text, start)
            if block:
                spans.append((block.start(), block.end(), "private_key"))
                done = block.end()
        position = text.find("BEGIN", position + 5)
    position = text.find("PuTTY-User-Key-File")
    while position != -1:
        block = _PUTTY_BLOCK.match(text, position)
        if block:
            spans.append((position, block.end(), "private_key"))
        position = text.find("PuTTY-User-Key-File", position + 1)
    return spans


# --- values named by a keyword -----------------------------------------------------------------

# An assignment of a long value somewhere, before looking for the keywords.
_COLON_VALUE = re.compile(r":=?[ \t]*[\"']?[^\s\"'`<>,;]{8}")
_EQUALS_VALUE = re.compile(r"=>?[ \t]*[\"']?[^\s\"'`<>,;]{8}")
# Searched in the folded text, so any case; "key" alone is too common in prose and counts only
# after api, secret, private, access or an underscore or dash. detect-secrets' KeywordDetector
# names the same words (its "pwd", "contraseña" as well).
_SECRET_KEYWORDS = ("key", "secret", "token", "passw", "pwd", "contrase")
# (In the folded text a space is "0".)
_KEY_QUALIFIERS = ("api", "secret", "private", "access", "_", "api0", "secret0", "access0")
_NAME_REST = r"(?:[a-z0-9_.-]{0,40}|[ _-]access[ _-]key)[\"']?"
# After the keyword: the rest of an identifier (or " access key"), an assignment, the value.
_ASSIGNED_VALUE = re.compile(
    _NAME_REST + r"[ \t]*(?::=|=>|[:=])[ \t]*[\"']?([^\s\"'`<>,;]{8,})",
    re.IGNORECASE | re.ASCII,
)
# In prose ("the API token is 9f8e..."): a single word in between at most, then a value that
# must look random (below).
_NAMED_VALUE = re.compile(
    _NAME_REST + r"(?:[ \t]+(?:is|was|of|for|to|here))?[ \t]+[\"'`(]?([A-Za-z0-9+/_~-]{16,}=*)",
    re.IGNORECASE | re.ASCII,
)


def has_assigned_value(text: str) -> bool:
    """Somewhere a long value follows "=" or ":"; else no assignment needs looking for."""
    return bool(
        ("=" in text and _EQUALS_VALUE.search(text)) or (":" in text and _COLON_VALUE.search(text))
    )


def find_named_secrets(text: str, folded: str, assigned: bool) -> list[tuple[int, int, str]]:
    """Values assigned to a secret-sounding name (``assigned``: the text has an assignment), or
    written after one in prose when they have high entropy."""
    spans = []
    for keyword in _SECRET_KEYWORDS:
        position = folded.find(keyword)
        while position != -1:
            if (
                keyword != "key"
                or folded.endswith(_KEY_QUALIFIERS, 0, position)
                or text[position - 1 : position] == "-"
            ):
                after = position + len(keyword)
                assignment = assigned and _ASSIGNED_VALUE.match(text, after)
                end = _assigned_end(assignment, keyword) if assignment else None
                if end:
                    spans.append((assignment.start(1), end, "secret"))
                else:
                    prose = _NAMED_VALUE.match(text, after)
                    if prose and looks_random(prose.group(1)):
                        spans.append((prose.start(1), prose.end(1), "secret"))
                        end = prose.end(1)
                if end:
                    # what the value covers names nothing: read once ("token=token=...")
                    position = end - len(keyword)
            position = folded.find(keyword, position + len(keyword))
    return spans


_QUERY_PARAMETER = re.compile(r"&\w+=")


def _assigned_end(value: re.Match[str], keyword: str) -> int | None:
    """Where an assigned value ends (before "&name=" of a query string); None when it is too
    short: 12 characters, or 8 for a password that is not a plain word."""
    start, end = value.span(1)
    following = _QUERY_PARAMETER.search(value.string, start, end)
    end = following.start() if following else end
    if end - start >= 12:
        return end
    plain_word = value.string[start:end].rstrip(".!?").isalpha()
    if keyword in _PASSWORD_WORDS and end - start >= 8 and not plain_word:
        return end
    return None


_PASSWORD_WORDS = ("passw", "pwd", "contrase")


def looks_random(value: str) -> bool:
    """A value with letters and digits whose Shannon entropy (detect-secrets' own measure, over
    the base64 or hex alphabet) is near that of random characters of its length: random tokens
    pass, words, dates and version strings do not."""
    if not (any(char.isdigit() for char in value) and any(char.isalpha() for char in value)):
        return False
    hexadecimal = all(char in "0123456789abcdefABCDEF" for char in value)
    entropy = _entropy_of("HexHighEntropyString" if hexadecimal else "Base64HighEntropyString")
    # Random draws of n characters from an alphabet far larger than n repeat few of them: their
    # entropy approaches log2(n). Hex (16 symbols) saturates sooner.
    limit = (
        min(3.0, 0.7 * math.log2(len(value)))
        if hexadecimal
        else min(4.5, 0.8 * math.log2(len(value)))
    )
    return entropy(value) > limit


@cache
def _entropy_of(plugin_name: str) -> Callable[[str], float]:
    return plugin(_PLUGINS + "high_entropy_strings:" + plugin_name)().calculate_shannon_entropy
