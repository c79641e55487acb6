#!/usr/bin/env python3
"""Scans what the integration tests' nodes logged for personal data.

Usage: scripts/scan-logs.py DIR
       scripts/scan-logs.py --self-test

DIR holds the JSON-lines files the tests write when TEST_NODE_LOG_DIR is
set (scripts/test.sh sets it): every event at debug and above of every node
started in-process. A line fails the scan if, outside its timestamp, it holds
a full E.164 number, an IP address (loopback included: in the tests it is the
visitor's and the trunk's), a SIP URI's user part, an SDP line, an API key or
a base64 key of 32 bytes (a KEK, a recording key). Exits 1 naming each hit,
and also when the files hold too little to mean anything.

The node's own listen address, in its start-up line and the demo page's
link, is the one address allowed.
"""

import ipaddress
import json
import pathlib
import re
import sys

# Fewer files or lines than this means the tests did not log where the scan
# looks: that must fail too, not pass unseen.
MIN_FILES = 10
MIN_LINES = 200
MAX_HITS_SHOWN = 40

PATTERNS = {
    "E.164 number": re.compile(r"(?<![\w+])\+[1-9]\d{6,14}(?!\d)"),
    "SIP URI user": re.compile(r"\bsips?:[^\s\"'<>@;]+@"),
    "SDP line": re.compile(
        r"(?:^|[\s\"\\n])(?:v=0\b|o=\S+ \d+ \d+ IN |c=IN IP[46] |m=(?:audio|video|application) \d+"
        r"|a=(?:ice-ufrag|ice-pwd|fingerprint|candidate|crypto|rtpmap):)"
    ),
    "API key": re.compile(r"\bcg_[0-9a-f]{16}_[A-Za-z0-9_-]{16,}"),
    "32-byte base64 key": re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])"),
}

# Lines that name the node's own listen address, never a visitor's or a
# trunk's: the start-up line and the demo page's link.
OWN_ADDRESS_MESSAGES = ("callgate node ", "demo page (call the demo number")

IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f:]*::?[0-9A-Fa-f:.]*(?![\w:])")


def addresses(text):
    """IP addresses in `text` (each checked by the ipaddress module)."""
    for match in IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(match.group())
            yield match.group()
        except ValueError:
            pass
    for match in IPV6_CANDIDATE.finditer(text):
        candidate = match.group()
        if candidate.count(":") < 2:
            continue
        try:
            ipaddress.IPv6Address(candidate)
            yield candidate
        except ValueError:
            pass


def scanned_text(line):
    """The line without its timestamp (times look like addresses)."""
    try:
        event = json.loads(line)
    except ValueError:
        return line
    if isinstance(event, dict):
        event.pop("timestamp", None)
    return json.dumps(event, ensure_ascii=False)


def own_address_line(line):
    try:
        message = json.loads(line).get("fields", {}).get("message", "")
    except (ValueError, AttributeError):
        return False
    return message.startswith(OWN_ADDRESS_MESSAGES)


def hits_in(text):
    for name, pattern in PATTERNS.items():
        for match in pattern.finditer(text):
            yield name, match.group().strip()
    for address in addresses(text):
        yield "IP address", address


# Lines the scan must refuse, and lines it must let through.
SELF_TEST_HITS = [
    '{"fields":{"message":"visitor from 127.0.0.1:5060"}}',
    '{"fields":{"message":"calling +15555550100"}}',
    '{"fields":{"message":"INVITE sip:test@example.com SIP/2.0"}}',
    '{"fields":{"message":"offer v=0\\r\\no=- 1 2 IN IP4"}}',
    '{"fields":{"message":"peer [::1]:80"}}',
    '{"fields":{"message":"key cg_0123456789abcdef_abcdefghijklmnopqrstuv"}}',
    '{"fields":{"message":"kek AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}',
    '{"fields":{"message":"other node listening on 10.0.0.1"}}',
]
SELF_TEST_CLEAN = [
    '{"timestamp":"2026-12-04T17:28:17.123456Z","fields":{"message":"call ended"}}',
    '{"fields":{"message":"version 0.7.14, 12:30:45, 3.5 ms, ratio 1.2.3"}}',
    '{"fields":{"message":"call 4b106b5e-3ace-4a13-a3fa-01b7ff346e73 ended"}}',
    '{"fields":{"message":"callgate node node-1 listening on http://127.0.0.1:8080"}}',
]


def self_test():
    wrong = [line for line in SELF_TEST_HITS if own_address_line(line) or not any(hits_in(scanned_text(line)))]
    wrong += [line for line in SELF_TEST_CLEAN if not own_address_line(line) and any(hits_in(scanned_text(line)))]
    for line in wrong:
        print(f"scan-logs self-test: wrong verdict on {line}")
    return 1 if wrong else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    directory = pathlib.Path(sys.argv[1])
    files = sorted(directory.glob("*.jsonl"))
    lines = debug_lines = 0
    hits = []
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                lines += 1
                text = scanned_text(line.rstrip("\n"))
                debug_lines += '"level":"DEBUG"' in line.replace(" ", "")
                if own_address_line(line):
                    continue
                for name, found in hits_in(text):
                    hits.append((path.name, number, name, found, text))
    print(f"scan-logs: {lines} lines ({debug_lines} at debug) in {len(files)} files")
    if len(files) < MIN_FILES or lines < MIN_LINES:
        print(f"scan-logs: too little was logged to scan (want {MIN_FILES} files, {MIN_LINES} lines)")
        return 1
    for name, number, kind, found, text in hits[:MAX_HITS_SHOWN]:
        print(f"{name}:{number}: {kind} {found!r} in {text[:400]}")
    if hits:
        print(f"scan-logs: {len(hits)} lines hold personal data")
        return 1
    print("scan-logs: no personal data found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
