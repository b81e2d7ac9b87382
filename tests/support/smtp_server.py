#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for Herald's tests (driven by herald-tests' `smtp_server` module).

Listens on 127.0.0.1 (--port 0 picks a free port), prints "READY <port>" on stdout once it
accepts connections, and appends one JSON object per line to --out for every event:

  {"event": "auth", "mechanism": "PLAIN", "login": "...", "authzid": "..." | null,
   "success": true}
  {"event": "message", "mail_from": "...", "rcpt_tos": [...], "data": "<raw message>",
   "auth_mechanism": "PLAIN" | null, "auth_authzid": "..." | null, "tls": true, "tls_version": "TLSv1.3",
   "client_cert_subject": "..." | null, "ehlo": "...", "peer_port": 12345,
   "headers": [[name, decoded value], ...], "content_type": "multipart/alternative",
   "parts": [{"content_type": "text/plain", "body": "<decoded>"}, ...]}
  {"event": "rejected_data" | "hung_data", ...same fields as "message"...}

Modes: --tls none | starttls | implicit (with --cert and --key); --auth PLAIN,LOGIN,XOAUTH9 |
none (XOAUTH9 is a mechanism Herald does not know; it always fails); --user/--password the
accepted credentials; --identity an authorization identity PLAIN may also ask for (besides
none, i.e. "", and the login itself; "authzid" records what PLAIN sent, null for LOGIN);
--reject-greeting CODE greets every connection with CODE (then answers only QUIT, as RFC 5321
§3.1 asks); --reject-mail CODE answers MAIL FROM with CODE (recorded as "rejected_mail");
--refuse-rcpt ADDR answers RCPT TO:<ADDR> with 550, --refuse-every-rcpt every RCPT TO (both
recorded as {"event": "refused_rcpt", "rcpt": ADDR}); --greylist-rcpt ADDR answers
RCPT TO:<ADDR> with 450; --reject-data CODE answers the end of DATA with CODE;
--auth-unavailable answers AUTH PLAIN with 454; --reset-first-mail drops the first connection
that sends MAIL FROM without a reply; --reset-second-mail drops the connection that sends the
second MAIL FROM (a connection the client kept between two messages) without a reply; --hang-first-data never answers the end of the first
message's DATA (recorded as "hung_data"); --client-ca asks for (but does not require) a client
certificate signed by that CA.
"""

import argparse
import asyncio
import binascii
import email
import email.policy
import json
import ssl
import sys
from base64 import b64decode

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

KNOWN_MECHANISMS = {"PLAIN", "LOGIN", "XOAUTH9"}


class Handler:
    def __init__(self, args):
        self.args = args
        self.refused = {address.lower() for address in args.refuse_rcpt}
        self.greylisted = {address.lower() for address in args.greylist_rcpt}
        self.reset = False
        self.mails = 0
        self.offered = set() if args.auth == "none" else set(args.auth.split(","))
        self.hung = False

    def record(self, event):
        with open(self.args.out, "a", encoding="utf-8") as out:
            out.write(json.dumps(event) + "\n")
            out.flush()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not self.offered:
            responses = [line for line in responses if not line.startswith("250-AUTH")]
        return responses

    async def handle_NOOP(self, server, session, envelope, arg):
        self.record({"event": "noop"})
        return "250 OK"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.args.reject_mail:
            self.record({"event": "rejected_mail", "mail_from": address})
            return f"{self.args.reject_mail} 5.7.1 <{address}>: Sender address rejected"
        self.mails += 1
        if self.args.reset_second_mail and self.mails == 2:
            self.record({"event": "reset", "mail_from": address})
            server.transport.abort()
            return "421 4.4.2 Connection dropped"
        if self.args.reset_first_mail and not self.reset:
            # Mid-conversation, the connection is gone: no reply, the socket reset.
            self.reset = True
            self.record({"event": "reset", "mail_from": address})
            server.transport.abort()
            return "421 4.4.2 Connection dropped"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.args.refuse_every_rcpt or address.lower() in self.refused:
            self.record({"event": "refused_rcpt", "rcpt": address})
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.lower() in self.greylisted:
            return f"450 4.7.1 <{address}>: Recipient address rejected: Greylisted, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        ssl_object = server.transport.get_extra_info("ssl_object") if server.transport else None
        subject = None
        if ssl_object is not None:
            peer = ssl_object.getpeercert()
            if peer:
                subject = ", ".join(
                    f"{key}={value}" for rdn in peer.get("subject", ()) for key, value in rdn
                )
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        event = {
            "event": "message",
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", errors="replace"),
            "auth_mechanism": getattr(session, "herald_mechanism", None),
            "auth_authzid": getattr(session, "herald_authzid", None),
            "tls": ssl_object is not None,
            "tls_version": ssl_object.version() if ssl_object is not None else None,
            "client_cert_subject": subject,
            "ehlo": session.host_name,
            "peer_port": session.peer[1] if session.peer else None,
            # What a mail client sees: decoded headers, and each leaf part decoded.
            "headers": [[name, str(value)] for name, value in parsed.items()],
            "content_type": parsed.get_content_type(),
            "parts": [
                {
                    "content_type": part.get_content_type(),
                    "body": part.get_content().replace("\r\n", "\n"),
                }
                for part in parsed.walk()
                if not part.is_multipart()
            ],
        }
        if self.args.hang_first_data and not self.hung:
            # Never answer the first message: the client must give up on this connection.
            self.hung = True
            event["event"] = "hung_data"
            self.record(event)
            await asyncio.sleep(3600)
        if self.args.reject_data:
            event["event"] = "rejected_data"
            self.record(event)
            return f"{self.args.reject_data} 4.3.0 Try again later"
        self.record(event)
        return "250 2.0.0 Message accepted for delivery"

    async def auth_XOAUTH9(self, server, args):
        await server.push("535 5.7.8 XOAUTH9 never works")
        return AuthResult(success=False, handled=True)

    async def auth_PLAIN(self, server, args):
        # aiosmtpd's own PLAIN drops the authorization identity; this one records it (RFC 4616:
        # "authzid NUL authcid NUL password", authzid empty for "act as authcid").
        if self.args.auth_unavailable:
            await server.push("454 4.7.0 Temporary authentication failure")
            return AuthResult(success=False, handled=True)
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False)
        else:
            try:
                blob = b64decode(args[1].encode(), validate=True)
            except binascii.Error:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        try:
            authzid, login, password = blob.split(b"\x00")
        except ValueError:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        authzid = authzid.decode("utf-8", errors="replace")
        login = login.decode("utf-8", errors="replace")
        password = password.decode("utf-8", errors="replace")
        allowed = {"", login} | ({self.args.identity} if self.args.identity else set())
        return self.check(server.session, "PLAIN", login, password, authzid, authzid in allowed)

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        # LOGIN (PLAIN is the handler's own auth_PLAIN): no authorization identity.
        login = auth_data.login.decode("utf-8", errors="replace")
        password = auth_data.password.decode("utf-8", errors="replace")
        return self.check(session, mechanism, login, password, None, True)

    def check(self, session, mechanism, login, password, authzid, authzid_allowed):
        success = (
            login == self.args.user and password == self.args.password and authzid_allowed
        )
        self.record(
            {
                "event": "auth",
                "mechanism": mechanism,
                "login": login,
                "authzid": authzid,
                "success": success,
            }
        )
        if success:
            session.herald_mechanism = mechanism
            session.herald_authzid = authzid
        return AuthResult(success=success, handled=False)


class RefusingGreeting(asyncio.Protocol):
    """Greets with a refusal, then waits for QUIT, answering 503 to anything else."""

    def __init__(self, code):
        self.code = code
        self.transport = None
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport
        transport.write(f"{self.code} 5.3.2 herald-test-smtp: no service here\r\n".encode())

    def data_received(self, data):
        self.buffer += data
        while b"\r\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            if line.strip().upper() == b"QUIT":
                self.transport.write(b"221 2.0.0 Bye\r\n")
                self.transport.close()
                return
            self.transport.write(b"503 5.5.1 No service here: only QUIT\r\n")


def tls_context(args):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        context.load_verify_locations(args.client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


async def main(args):
    handler = Handler(args)
    context = tls_context(args) if args.tls != "none" else None
    loop = asyncio.get_running_loop()

    def factory():
        if args.reject_greeting:
            return RefusingGreeting(args.reject_greeting)
        return SMTP(
            handler,
            hostname="herald-test-smtp",
            tls_context=context if args.tls == "starttls" else None,
            authenticator=handler.authenticator,
            auth_require_tls=False,
            auth_exclude_mechanism=sorted(KNOWN_MECHANISMS - handler.offered),
            loop=loop,
        )

    server = await loop.create_server(
        factory,
        host="127.0.0.1",
        port=args.port,
        ssl=context if args.tls == "implicit" else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--client-ca")
    parser.add_argument("--auth", default="none")
    parser.add_argument("--user", default="herald")
    parser.add_argument("--password", default="")
    parser.add_argument("--identity", default="")
    parser.add_argument("--reject-data", default="")
    parser.add_argument("--reject-greeting", default="")
    parser.add_argument("--reject-mail", default="")
    parser.add_argument("--refuse-rcpt", action="append", default=[])
    parser.add_argument("--refuse-every-rcpt", action="store_true")
    parser.add_argument("--greylist-rcpt", action="append", default=[])
    parser.add_argument("--auth-unavailable", action="store_true")
    parser.add_argument("--reset-first-mail", action="store_true")
    parser.add_argument("--reset-second-mail", action="store_true")
    parser.add_argument("--hang-first-data", action="store_true")
    args = parser.parse_args()
    if args.tls != "none" and not (args.cert and args.key):
        parser.error("--tls starttls|implicit needs --cert and --key")
    unknown = set(args.auth.split(",")) - KNOWN_MECHANISMS if args.auth != "none" else set()
    if unknown:
        parser.error(f"unknown mechanisms: {sorted(unknown)}")
    return args


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        sys.exit(0)
