"""Independent reference for the `*.expected.json` payloads: the launchpad
source's rules (guests/launchpad-mail, module `notification`) applied with
Python's `email` package instead of the Rust code.

    python3 tests/data/launchpad/reference.py           # check: exit 1 on a difference
    python3 tests/data/launchpad/reference.py --write   # (re)write the expected files

Mails that are not Launchpad's or are broken get no expected file.
"""

import email
import email.policy
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def header(msg, name):
    value = msg.get(name)
    return None if value is None else str(value).strip()


def payload(raw: bytes):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    generated_by = header(msg, "X-Generated-By")
    if not generated_by or "Launchpad" not in generated_by:
        return None
    body = msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    kind = header(msg, "X-Launchpad-Notification-Type")
    fields = {}
    if kind == "bug":
        number = re.search(r"\[Bug (\d+)\]", header(msg, "Subject") or "")
        if not number:
            return None
        project = None
        for part in str(msg.get_all("X-Launchpad-Bug")[0]).split(";"):
            if part.strip():
                key, value = (s.strip() for s in part.split("=", 1))
                if key == "product":
                    project = project or value
                else:
                    fields[key] = value
        fields.update({
            "event-type": "bug",
            "bug-number": number.group(1),
            "project": project or fields.get("distribution"),
            "tags": (header(msg, "X-Launchpad-Bug-Tags") or "").split(),
            "bug-reporter": header(msg, "X-Launchpad-Bug-Reporter"),
            "bug-modifier": header(msg, "X-Launchpad-Bug-Modifier"),
            "commenters": (header(msg, "X-Launchpad-Bug-Commenters") or "").split(),
            "body": body,
        })
    else:
        for name, value in msg.items():
            if name.lower().startswith("x-launchpad-"):
                key, value = name.lower()[len("x-launchpad-"):], str(value).strip()
                if key in fields:
                    previous = fields[key]
                    fields[key] = (previous if isinstance(previous, list) else [previous]) + [value]
                else:
                    fields[key] = value
        if kind:
            fields["event-type"] = kind
        fields["body"] = body
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def main() -> int:
    write = "--write" in sys.argv[1:]
    differ = 0
    for eml in sorted(HERE.glob("*.eml")):
        try:
            expected = payload(eml.read_bytes())
        except Exception:  # broken mail: the Rust side reports an error
            expected = None
        target = eml.with_suffix(".expected.json")
        if expected is None:
            continue
        if write:
            target.write_text(expected)
        elif not target.exists() or target.read_text() != expected:
            print(f"{target.name}: differs from the reference")
            differ += 1
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
