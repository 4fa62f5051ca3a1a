"""Mail out over SMTP: the server named by ``SLIPWAY_SMTP_URL``, one message per build.

``smtp://HOST[:PORT]`` upgrades with STARTTLS whenever the server offers it, and refuses to
send a password to one that does not; ``smtps://HOST[:PORT]`` speaks TLS from the start.
Failures are sorted into worth trying again (no answer, a 4xx) and final (a 5xx: a bad
password, a refused address), so that a retry never repeats what cannot work.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

#: How long the mail server may take to answer each command.
SMTP_TIMEOUT_SECONDS = 20
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


class MailUnavailable(RuntimeError):
    """The mail server did not take the message now (no answer, a 4xx); try again later."""


class MailRefused(RuntimeError):
    """The mail server refused the message for good (a 5xx, no TLS for a password)."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    #: TLS from the first byte (``smtps://``) rather than STARTTLS.
    implicit_tls: bool
    user: str | None = None
    password: str | None = None


def parse_smtp_url(url: str) -> SmtpServer:
    """The server ``url`` names; a :class:`ValueError` saying what is wrong otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{_shown(url)!r} is not an SMTP URL; use smtp://HOST:25, "
                         "smtp://USER:PASSWORD@HOST:587 (STARTTLS) or smtps://USER:PASSWORD@HOST:465")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError(f"{_shown(url)!r} has a port that is not a number") from None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return SmtpServer(parts.hostname, port, parts.scheme == "smtps", user, password)


def _shown(url: str) -> str:
    """``url`` without its password, to name it in an error."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def compose(sender: str, recipients: list[str], subject: str, body: str) -> EmailMessage:
    """A plain-text message marked as sent by a machine, so that nobody auto-replies to it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


def send(server: SmtpServer, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
    """Hand ``message`` to ``server``; returns the recipients it refused (the others got it).

    Raises:
        MailUnavailable: worth trying again later.
        MailRefused: trying again would not help.
    """
    try:
        if server.implicit_tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(server.host, server.port,
                                                  timeout=SMTP_TIMEOUT_SECONDS,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT_SECONDS)
        with smtp:
            smtp.ehlo()
            if not server.implicit_tls and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            elif not server.implicit_tls and server.user:
                raise MailRefused(f"{server.host}:{server.port} offers no STARTTLS; the "
                                  "password is not sent in clear (use smtps:// or port 587)")
            if server.user:
                smtp.login(server.user, server.password or "")
            return smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        refused = _codes(exc.recipients)
        if all(code >= 500 for code, _text in exc.recipients.values()):
            raise MailRefused(f"every recipient was refused: {refused}") from None
        raise MailUnavailable(f"recipients were refused for now: {refused}") from None
    except smtplib.SMTPResponseException as exc:
        error = exc.smtp_error
        text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
        if exc.smtp_code >= 500:
            raise MailRefused(f"{server.host} answered {exc.smtp_code}: {text}") from None
        raise MailUnavailable(f"{server.host} answered {exc.smtp_code}: {text}") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailRefused(f"{server.host}: {exc}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise MailUnavailable(f"{server.host}:{server.port} did not take the mail: {exc}") from None


def _codes(refused: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(f"{address} ({code})" for address, (code, _text) in refused.items())
