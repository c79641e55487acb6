#!/usr/bin/env python3
"""One call through a callgate node's widget signalling, with aiortc.

An independent WebRTC client of the same contract the browser widget uses:
GET the widget's config, POST an offer (aiortc gathers its host candidates
before the offer is final; the node is ICE-lite and needs none of them),
connect the events WebSocket, play a WAV file as the microphone (then
silence), record what arrives, hang up over the WebSocket after N seconds of
answered time and wait for the `ended` event. --hangup-at hangs up at another
moment (before the answer, say), --hangup-by by DELETE instead, as the widget
does when its page goes away.

stdout: each server event as one JSON line, in arrival order; for a non-201
answer to the POST, the error body as one JSON line (with the status added).
The client's own hang-up and its receipt of `ended` are lines too, of type
`local` with `at` (seconds on one monotonic clock), so their gap can be read.
stderr: diagnostics.
--record writes 16-bit mono WAV at 8 kHz, whatever the codec.

Exit codes: 0 the call ended (`ended` received, any reason); 2 the POST was
not answered 201 (or the config GET failed); 1 anything else (the socket
closed without `ended`, no `ended` within --timeout, a network error).
"""

import argparse
import asyncio
import fractions
import json
import sys
import time
import urllib.error
import urllib.request
import wave

import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from websockets.asyncio.client import connect

PTIME = 0.02
RECORD_RATE = 8000
CODEC_MIME = {"pcmu": "audio/pcmu", "pcma": "audio/pcma", "opus": "audio/opus"}


def log(*parts):
    print("aiortc_call:", *parts, file=sys.stderr, flush=True)


def emit(event):
    print(json.dumps(event, separators=(",", ":")), flush=True)


class Failure(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class WavTrack(MediaStreamTrack):
    """A microphone that plays a 16-bit WAV file once, then silence, paced
    in real time in 20 ms frames."""

    kind = "audio"

    def __init__(self, path):
        super().__init__()
        with wave.open(path, "rb") as wav:
            if wav.getsampwidth() != 2:
                raise Failure(1, f"{path}: only 16-bit PCM WAV can be played")
            self.rate = wav.getframerate()
            channels = wav.getnchannels()
            raw = wav.readframes(wav.getnframes())
        # First channel only.
        self.pcm = raw if channels == 1 else b"".join(
            raw[i : i + 2] for i in range(0, len(raw) - 2 * channels + 1, 2 * channels)
        )
        self.samples = int(self.rate * PTIME)
        self.offset = 0
        self.pts = 0
        self.start = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.time()
        else:
            self.pts += self.samples
            await asyncio.sleep(self.start + self.pts / self.rate - time.time())
        size = 2 * self.samples
        chunk = self.pcm[self.offset : self.offset + size]
        self.offset += size
        chunk += bytes(size - len(chunk))
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.samples)
        frame.planes[0].update(chunk)
        frame.pts = self.pts
        frame.sample_rate = self.rate
        frame.time_base = fractions.Fraction(1, self.rate)
        return frame


class Recorder:
    """Collects a received audio track as 8 kHz mono 16-bit samples."""

    def __init__(self, path):
        self.path = path
        self.pcm = bytearray()
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=RECORD_RATE)
        self.task = None

    def attach(self, track):
        self.task = asyncio.ensure_future(self.run(track))

    async def run(self, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            for out in self.resampler.resample(frame):
                self.pcm += bytes(out.planes[0])[: 2 * out.samples]

    async def close(self):
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, MediaStreamError):
                pass
        with wave.open(self.path, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RECORD_RATE)
            wav.writeframes(bytes(self.pcm))


def http_json(method, url, origin, body=None, forwarded_for=None):
    """(status, parsed JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Origin", origin)
    if forwarded_for:
        request.add_header("X-Forwarded-For", forwarded_for)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        raise Failure(1, f"{method} {url}: {error}") from error
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, {"error": raw.decode("utf-8", "replace")}


def ice_servers(config):
    servers = []
    for server in (config or {}).get("ice_servers") or []:
        servers.append(
            RTCIceServer(
                urls=server.get("urls"),
                username=server.get("username"),
                credential=server.get("credential"),
            )
        )
    return servers


def prefer_codec(transceiver, name):
    mime = CODEC_MIME[name]
    codecs = [
        c
        for c in RTCRtpSender.getCapabilities("audio").codecs
        if c.mimeType.lower() in (mime, "audio/telephone-event")
    ]
    transceiver.setCodecPreferences(codecs)


async def post_offer(args, pc):
    url = f"{args.base}/v1/widgets/{args.widget}/calls"
    body = {"offer": pc.localDescription.sdp, "consent": args.consent}
    status, answer = await asyncio.to_thread(
        http_json, "POST", url, args.origin, body, args.forwarded_for
    )
    if status != 201 or not isinstance(answer, dict):
        error = answer if isinstance(answer, dict) else {"error": str(answer)}
        emit({**error, "status": status})
        raise Failure(2, f"POST answered {status}")
    log("call", answer.get("call_id"))
    return answer


def emit_local(event, **fields):
    emit({"type": "local", "event": event, "at": time.monotonic(), **fields})


async def follow_events(args, ws, placed):
    """Prints events; hangs up at --hangup-at (by default --seconds after the
    answer); returns on `ended`."""
    when, delay = args.hangup_at or ("answered", args.seconds)
    tasks = []
    if when == "connected":
        tasks.append(asyncio.ensure_future(hang_up_after(delay, args, ws, placed)))
    try:
        async for message in ws:
            try:
                event = json.loads(message)
            except ValueError:
                log("not JSON:", message[:200])
                continue
            emit(event)
            if event.get("type") != "state":
                continue
            state = event.get("state")
            if state == "ended":
                emit_local("ended")
                return
            if state == "answered":
                tasks.append(asyncio.ensure_future(in_call(args, ws)))
            if state == when:
                tasks.append(asyncio.ensure_future(hang_up_after(delay, args, ws, placed)))
    finally:
        for task in tasks:
            task.cancel()
    raise Failure(1, "events socket closed without an ended event")


async def hang_up_after(delay, args, ws, placed):
    await asyncio.sleep(delay)
    emit_local("hangup", by=args.hangup_by)
    if args.hangup_by == "socket":
        await ws.send(json.dumps({"type": "hangup"}))
        return
    url = f"{args.base}/v1/calls/{placed['call_id']}?token={placed['token']}"
    status, body = await asyncio.to_thread(http_json, "DELETE", url, args.origin)
    if status != 204:
        log(f"DELETE answered {status}: {body}")


async def in_call(args, ws):
    """DTMF and consent changes, timed from the answer."""

    async def change_consent(at, value):
        await asyncio.sleep(at)
        await ws.send(json.dumps({"type": "consent", "value": value}))

    changes = [asyncio.ensure_future(change_consent(at, value)) for at, value in args.consent_change]
    try:
        if args.dtmf:
            await asyncio.sleep(min(1.0, args.seconds / 2))
            await ws.send(json.dumps({"type": "dtmf", "digits": args.dtmf}))
        await asyncio.Event().wait()
    finally:
        for change in changes:
            change.cancel()


def hangup_at(text):
    """connected|ringing|answered:SECONDS, e.g. ringing:0.5."""
    when, _, at = text.partition(":")
    if when not in ("connected", "ringing", "answered"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected connected, ringing or answered:SECONDS")
    try:
        return when, float(at)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {at!r} is not a number of seconds") from error


def consent_change(text):
    """SECONDS:granted|revoked, e.g. 3:granted."""
    at, _, value = text.partition(":")
    if value not in ("granted", "revoked"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected SECONDS:granted or SECONDS:revoked")
    try:
        return float(at), value
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {at!r} is not a number of seconds") from error


async def call(args):
    status, config = await asyncio.to_thread(
        http_json, "GET", f"{args.base}/v1/widgets/{args.widget}/config", args.origin
    )
    if status != 200:
        emit({**(config if isinstance(config, dict) else {}), "status": status})
        raise Failure(2, f"config answered {status}")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(config)))
    recorder = Recorder(args.record) if args.record else None
    try:
        if recorder:
            pc.on("track", lambda track: track.kind == "audio" and recorder.attach(track))
        transceiver = pc.addTransceiver(WavTrack(args.play), direction="sendrecv")
        if args.codec:
            prefer_codec(transceiver, args.codec)
        await pc.setLocalDescription(await pc.createOffer())
        answer = await post_offer(args, pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["answer"], type="answer"))
        async with connect(answer["events"], origin=args.origin, open_timeout=20) as ws:
            await asyncio.wait_for(follow_events(args, ws, answer), args.timeout)
    except asyncio.TimeoutError as error:
        raise Failure(1, f"no ended event within {args.timeout} s") from error
    finally:
        await pc.close()
        if recorder:
            await recorder.close()


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Place one call through a callgate node's widget signalling with aiortc."
    )
    parser.add_argument("--base", required=True, help="node base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--widget", required=True, help="widget id")
    parser.add_argument("--origin", required=True, help="Origin header sent on the POST and the WebSocket")
    parser.add_argument("--play", required=True, help="16-bit WAV file played as the microphone")
    parser.add_argument("--record", help="write the received audio here (8 kHz mono WAV)")
    parser.add_argument("--seconds", type=float, default=5.0, help="answered time before hanging up")
    parser.add_argument("--dtmf", help="digits sent over the WebSocket once answered")
    parser.add_argument("--codec", choices=sorted(CODEC_MIME), help="offer only this codec")
    parser.add_argument(
        "--forwarded-for", help="X-Forwarded-For sent on the POST, as a proxy in front of the node would"
    )
    parser.add_argument("--consent", choices=["granted", "declined"], help="consent sent with the offer")
    parser.add_argument(
        "--consent-change",
        type=consent_change,
        action="append",
        default=[],
        metavar="SECONDS:VALUE",
        help="send a consent change this long after the answer (granted or revoked); repeatable",
    )
    parser.add_argument(
        "--hangup-at",
        type=hangup_at,
        metavar="WHEN:SECONDS",
        help="hang up this long after the events socket connected, or after the state ringing or answered "
        "(default answered:--seconds)",
    )
    parser.add_argument(
        "--hangup-by",
        choices=["socket", "delete"],
        default="socket",
        help="hang up over the events socket, or by DELETE as the widget does when its page goes away",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="give up without ended after this")
    args = parser.parse_args(argv)
    args.base = args.base.rstrip("/")
    return args


def main(argv):
    args = parse_args(argv)
    try:
        asyncio.run(call(args))
    except Failure as failure:
        log(str(failure))
        return failure.code
    except Exception as error:  # a crash is a failed call, with its reason
        log(f"{type(error).__name__}: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
