"""Credentials kept out of what people read. A clone URL may carry them
(``https://user:token@host/owner/repo.git``), and git quotes the URL in its errors.

Here because both sides show such text: the server in its messages, API errors, CLI and
own log, the runners in a job's log, and neither imports the other.
"""

from __future__ import annotations

import re

#: The user information of a URL: from after ``://`` to the ``@`` before the host. It may
#: reach past the URL in free text (a later ``@`` with no ``/`` between), which hides too
#: much rather than too little.
USERINFO = re.compile(r"(?<=://)[^/@]*@")


def without_credentials(text: str) -> str:
    """``text`` with the user information of every URL in it replaced by ``***``
    (``https://***@host/…``): a message may say where, never as whom."""
    return USERINFO.sub("***@", text)
