#!/usr/bin/python3
"""check_dsn.py FILE - read a delivery status notification made by
queue/bounce.c with Python's own MIME parser and check its structure
(RFC 3464, RFC 6522, RFC 6533, RFC 3834).  On success print what was
found as JSON (stable: sorted keys, nothing random) and exit 0; on a
problem print it to stderr and exit 1.

tests/unit/test_bounce.c runs this on every report it builds and compares
the JSON with tests/unit/golden/bounce_<row>.json.
"""
import email
import email.parser
import email.policy
import email.utils
import json
import re
import sys

ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}
STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
MSGID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")


class Bad(Exception):
    pass


def need(cond, what):
    if not cond:
        raise Bad(what)


def fields(msg):
    """the header fields of msg as (name, value) pairs, values unfolded"""
    return [(k, str(v)) for k, v in msg.items()]


def block_dict(pairs, where):
    d = {}
    for k, v in pairs:
        need(k not in d, "%s: %s twice" % (where, k))
        d[k] = v
    return d


def status_blocks(part):
    """the per-message block and the per-recipient blocks of a
    message/delivery-status or message/global-delivery-status part"""
    payload = part.get_payload()
    need(isinstance(payload, list) and payload, "status part: no blocks")
    if part.get_content_type() == "message/delivery-status":
        blocks = [fields(b) for b in payload]
        for b in payload:
            need(not b.defects, "status block defects: %r" % b.defects)
        return blocks[0], blocks[1:]
    # message/global-delivery-status is parsed as one message/*: its
    # "headers" are the per-message fields and its "body" the rest
    first = payload[0]
    need(not first.defects, "status block defects: %r" % first.defects)
    # the raw octets (get_payload() without decode replaces 8-bit ones)
    rest = first.get_payload(decode=True) or b""
    try:
        rest = rest.decode("utf-8")
    except UnicodeDecodeError:
        raise Bad("global-delivery-status: not UTF-8")
    blocks = []
    parser = email.parser.Parser(policy=email.policy.default)
    for text in re.split(r"\n[ \t]*\n", rest.strip("\n")):
        if text.strip():
            b = parser.parsestr(text + "\n", headersonly=True)
            need(not b.defects, "status block defects: %r" % b.defects)
            need(not b.get_payload(), "status block: text that is no field")
            blocks.append(fields(b))
    return fields(first), blocks


def addr_of(value, where, eightbit_ok):
    need(";" in value, "%s: no address type" % where)
    typ, addr = (x.strip() for x in value.split(";", 1))
    ascii_addr = addr.isascii()
    if typ.lower() == "rfc822":
        need(ascii_addr, "%s: rfc822 type with a UTF-8 address" % where)
    elif typ.lower() == "utf-8":
        need(eightbit_ok, "%s: utf-8 address outside a global part" % where)
        need(not ascii_addr, "%s: utf-8 type for an ASCII address" % where)
    else:
        raise Bad("%s: address type %s" % (where, typ))
    need("@" in addr, "%s: no @" % where)
    return addr


def check(raw):
    need(b"\r" not in raw, "CR in an LF-form report")
    for n, line in enumerate(raw.split(b"\n"), 1):
        need(len(line) <= 998, "line %d has %d octets" % (n, len(line)))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for p in msg.walk():
        need(not p.defects, "%s: defects %r" % (p.get_content_type(), p.defects))
    out = {}

    # the report's own header
    for name in ("Date", "From", "To", "Subject", "Message-ID",
                 "Auto-Submitted", "MIME-Version", "Content-Type"):
        need(len(msg.get_all(name) or []) == 1, "%s: not exactly once" % name)
    need(email.utils.parsedate_to_datetime(str(msg["Date"])) is not None,
         "Date does not parse")
    need(MSGID.match(str(msg["Message-ID"])), "Message-ID %s" % msg["Message-ID"])
    need(str(msg["Auto-Submitted"]) == "auto-replied", "Auto-Submitted")
    need(str(msg["MIME-Version"]) == "1.0", "MIME-Version")
    out["from"] = str(msg["From"])
    out["to"] = str(msg["To"])
    out["subject"] = str(msg["Subject"])
    out["date"] = str(msg["Date"])
    out["cte"] = str(msg.get("Content-Transfer-Encoding", "7bit"))
    need(out["cte"] == ("7bit" if raw.isascii() else "8bit"),
         "Content-Transfer-Encoding %s" % out["cte"])

    need(msg.is_multipart(), "not multipart")
    need(msg.get_content_type() == "multipart/report", msg.get_content_type())
    need(msg.get_param("report-type") == "delivery-status", "report-type")
    boundary = msg.get_boundary()
    need(boundary and len(boundary) <= 70, "boundary")
    parts = list(msg.iter_parts())
    out["parts"] = [p.get_content_type() for p in parts]
    need(len(parts) == 3, "%d parts" % len(parts))
    text, status, headers = parts
    need(text.get_content_type() == "text/plain", "part 1 type")
    need(status.get_content_type() in ("message/delivery-status",
                                        "message/global-delivery-status"),
         "part 2 type")
    # the header section, or (RET=FULL, RFC 3461 4.3) the whole message
    need(headers.get_content_type() in ("text/rfc822-headers",
                                         "message/global-headers",
                                         "message/rfc822", "message/global"),
         "part 3 type")
    for p in parts:
        cte = p.get("Content-Transfer-Encoding", "7bit")
        need(cte in ("7bit", "8bit"), "part CTE %s" % cte)
        need(cte == "8bit" or p.as_bytes().isascii(), "8-bit data in a 7bit part")
    out["text"] = text.get_content()

    # the machine-readable part
    glob = status.get_content_type() == "message/global-delivery-status"
    per_msg, per_rcpt = status_blocks(status)
    per_msg = block_dict(per_msg, "per-message")
    need("Reporting-MTA" in per_msg, "no Reporting-MTA")
    need(per_msg["Reporting-MTA"].lower().startswith("dns;"), "Reporting-MTA type")
    if "Arrival-Date" in per_msg:
        need(email.utils.parsedate_to_datetime(per_msg["Arrival-Date"]),
             "Arrival-Date")
    out["per_message"] = per_msg
    need(per_rcpt, "no recipient")
    rcpts = []
    for i, pairs in enumerate(per_rcpt):
        where = "recipient %d" % i
        r = block_dict(pairs, where)
        for name in ("Final-Recipient", "Action", "Status"):
            need(name in r, "%s: no %s" % (where, name))
        addr = addr_of(r["Final-Recipient"], where, glob)
        if "Original-Recipient" in r:
            addr_of(r["Original-Recipient"], where, glob)
        need(r["Action"] in ACTIONS, "%s: Action %s" % (where, r["Action"]))
        need(STATUS.match(r["Status"]), "%s: Status %s" % (where, r["Status"]))
        for d in ("Last-Attempt-Date", "Will-Retry-Until"):
            if d in r:
                need(email.utils.parsedate_to_datetime(r[d]), "%s: %s" % (where, d))
        need("<%s>" % addr in out["text"], "%s not named in the text" % addr)
        rcpts.append(r)
    need(len({r["Action"] for r in rcpts}) == 1, "mixed actions")
    out["recipients"] = rcpts
    out["global"] = glob

    # the original header section
    if headers.get_content_type() in ("message/rfc822", "message/global"):
        inner = headers.get_payload()
        need(isinstance(inner, list) and len(inner) == 1, "returned message")
        out["headers"] = ["%s: %s" % kv for kv in fields(inner[0])]
        out["returned_body"] = inner[0].get_payload()
    elif headers.get_content_type() == "message/global-headers":
        inner = headers.get_payload()
        need(isinstance(inner, list) and len(inner) == 1, "global-headers")
        need(not inner[0].get_payload(), "global-headers: a body")
        out["headers"] = ["%s: %s" % kv for kv in fields(inner[0])]
    else:
        body = headers.get_content()
        h = email.parser.Parser(policy=email.policy.default).parsestr(
            body, headersonly=True)
        need(not h.get_payload(), "rfc822-headers: a body")
        out["headers"] = ["%s: %s" % kv for kv in fields(h)]
    return out


def main():
    if len(sys.argv) != 2:
        print("usage: check_dsn.py FILE", file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        raw = f.read()
    try:
        out = check(raw)
    except Bad as e:
        print("check_dsn: %s: %s" % (sys.argv[1], e), file=sys.stderr)
        return 1
    text = json.dumps(out, ensure_ascii=False, indent=1, sort_keys=True)
    sys.stdout.buffer.write(text.encode("utf-8") + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
