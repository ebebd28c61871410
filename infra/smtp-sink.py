#!/usr/bin/env python3
"""A loopback SMTP server for the email tests (aiosmtpd; Debian's python3-aiosmtpd).

    smtp-sink.py --port PORT --dir DIR

Every message it accepts is written to DIR as one .eml file (written aside, then
renamed, so a reader never sees half a message). A recipient whose local part
starts with "refused" is answered 550 (a permanent refusal), one starting with
"busy" 451 (try again later). It runs until killed.
"""

import argparse
import os
import threading
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("refused"):
            return "550 5.1.1 No such mailbox here"
        if local.startswith("busy"):
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            name = "%019d-%06d.eml" % (time.time_ns(), self.count)
        partial = os.path.join(self.directory, name + ".part")
        with open(partial, "wb") as out:
            out.write(envelope.original_content or envelope.content)
        os.rename(partial, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
