#!/usr/bin/env python3
"""Writes the seed corpus of the decoder fuzzers (tests/fuzz/corpus/decode_<framing>/) and
of the control-frame fuzzer (tests/fuzz/corpus/control/).

Input layout (see fuzz_decode.c): max_frame byte (255 = 1 MiB), cap byte, flags byte, then
pieces of <length byte><bytes>. Run from anywhere; rewrites the seed files."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def pieces(stream, cuts):
    """Splits stream at the given offsets and adds the length bytes."""
    out, last = b"", 0
    for c in list(cuts) + [len(stream)]:
        part = stream[last:c]
        while len(part) > 255:
            out += bytes([255]) + part[:255]
            part = part[255:]
        out += bytes([len(part)]) + part
        last = c
    return out


def v1(comp, key, payload):
    return struct.pack(">IIQ", 12 + len(payload), comp, key) + payload


def lp(payload):
    return struct.pack(">I", len(payload)) + payload


def seeds(framing):
    s = {}
    if framing == "rill":
        good = v1(1, 7, b"hello") + v1(2, 8, b"") + v1(3, 9, b"x" * 40)
        s["good_whole"] = (bytes([100, 7, 0]), good, [])
        s["good_split"] = (bytes([100, 0, 0]), good, [1, 3, 4, 17, 20, 30])
        s["good_big"] = (bytes([255, 3, 0]), v1(5, 5, b"y" * 600) + v1(6, 6, b"z"), [2, 300])
        s["short"] = (bytes([100, 2, 0]), v1(1, 1, b"a") + struct.pack(">I", 3) + b"abc", [])
        s["long"] = (bytes([20, 2, 0]), v1(1, 1, b"a") + v1(1, 2, b"b" * 30), [5])
        s["midframe"] = (bytes([100, 1, 0]), v1(1, 1, b"abc") + v1(1, 2, b"defg")[:9], [])
    elif framing == "lp":
        good = lp(b"hello") + lp(b"") + lp(b"w" * 40)
        s["good_whole"] = (bytes([100, 7, 0]), good, [])
        s["good_split"] = (bytes([100, 0, 1]), good, [2, 5, 9, 13])
        s["good_big"] = (bytes([255, 3, 0]), lp(b"q" * 700) + lp(b"r"), [3, 400])
        s["long"] = (bytes([10, 2, 0]), lp(b"ok") + lp(b"t" * 11), [6])
        s["midframe"] = (bytes([100, 1, 0]), lp(b"abc") + lp(b"defg")[:6], [])
    else:
        good = b"one\ntwo\r\n\nthree\r\n\r\nfour\n"
        s["good_whole"] = (bytes([100, 7, 0]), good, [])
        s["good_split"] = (bytes([100, 0, 1]), good, [1, 4, 8, 9, 16])
        s["good_big"] = (bytes([255, 3, 0]), b"L" * 700 + b"\n" + b"m\n", [100, 500])
        s["long"] = (bytes([5, 2, 0]), b"abc\nabcdefgh\n", [2])
        s["long_pending"] = (bytes([5, 2, 0]), b"abc\n" + b"x" * 9, [5, 7])
        s["cr_at_limit"] = (bytes([5, 2, 0]), b"abcde\r\nfghij\r", [6])
        s["midframe"] = (bytes([100, 1, 0]), b"abc\ndef", [])
    return s


CONTROL = 0xFFFFFFFF


def control_seeds():
    """Streams of control frames (fuzz_control.c reads the raw bytes as one v1 stream)."""
    hello = v1(CONTROL, 1, struct.pack(">HHQQ", 2, 0, 0x0102030405060708, 42))
    welcome = v1(CONTROL, 2, struct.pack(">IQ", 1 << 20, 7))
    ack = v1(CONTROL, 3, struct.pack(">QI", 99, 65536))
    goaway = v1(CONTROL, 4, struct.pack(">H", 14) + b"127.0.0.1:7701")
    return {
        "hello": hello,
        "welcome": welcome,
        "ack": ack,
        "goaway": goaway,
        "goaway_empty": v1(CONTROL, 4, struct.pack(">H", 0)),
        "hello_then_data": hello + v1(1, 5, b"payload") + ack,
        "hello_extended": v1(CONTROL, 1, struct.pack(">HHQQ", 2, 0x8000, 9, 1) + b"extra"),
        "challenge_then_auth_hello": v1(CONTROL, 5, bytes(range(16)))
        + v1(CONTROL, 1, struct.pack(">HHQQ", 2, 1, 9, 1) + bytes(32)),
        "auth_hello_short_mac": v1(CONTROL, 1, struct.pack(">HHQQ", 2, 1, 9, 1) + bytes(31)),
        "challenge_short": v1(CONTROL, 5, bytes(15)),
        "depth_hello": v1(CONTROL, 1, struct.pack(">HHQQB", 2, 2, 9, 1, 3)),
        "depth_hello_zero": v1(CONTROL, 1, struct.pack(">HHQQB", 2, 2, 9, 1, 0)),
        "depth_hello_missing": v1(CONTROL, 1, struct.pack(">HHQQ", 2, 2, 9, 1)),
        "auth_depth_hello": v1(CONTROL, 1, struct.pack(">HHQQ", 2, 3, 9, 1) + bytes(32) + b"\x02"),
        "hello_bad_version": v1(CONTROL, 1, struct.pack(">HHQQ", 3, 0, 9, 1)),
        "hello_short": v1(CONTROL, 1, struct.pack(">HHQ", 2, 0, 9)),
        "goaway_overlong": v1(CONTROL, 4, struct.pack(">H", 40) + b"x"),
        "unknown_type": v1(CONTROL, 9, b"\0" * 12),
    }


def main():
    d = os.path.join(HERE, "corpus", "control")
    os.makedirs(d, exist_ok=True)
    for name, stream in control_seeds().items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(stream)
    for framing in ("rill", "lp", "line"):
        d = os.path.join(HERE, "corpus", "decode_" + framing)
        os.makedirs(d, exist_ok=True)
        for name, (hdr, stream, cuts) in seeds(framing).items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(hdr + pieces(stream, cuts))


if __name__ == "__main__":
    main()
