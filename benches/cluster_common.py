"""Shared by the cluster benches' Python halves: waiting for a condition,
and what a node's /readyz and /metrics say."""

import json
import sys
import time
import urllib.error
import urllib.request


def until(condition, what, timeout, work, interval=0.05):
    """Waits for condition() to hold; exits naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(interval)
    sys.exit(f"{what} did not happen in {timeout} s (logs in {work})")


def cluster_state(base):
    """The node's cluster state in its /readyz body."""
    try:
        with urllib.request.urlopen(base + "/readyz") as answer:
            return json.load(answer).get("cluster")
    except urllib.error.HTTPError as refused:
        return json.load(refused).get("cluster")


def metric(base, name):
    """The value of an unlabelled metric of the node (0 when absent)."""
    with urllib.request.urlopen(base + "/metrics") as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0
