"""The mail backend of an app deployed without mail (pillar
``apps:<app>:mail: false``, no DJANGO_EMAIL_HOST in the env file).

Django's default would hand every message to localhost:25, where no server
runs on the stack's hosts, and the message would be lost. This backend
sends nothing and says so: a warning in the journal for each message, and
an error for the caller unless it asked to fail silently.
"""

import logging

from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend

logger = logging.getLogger(__name__)

NO_RELAY = ("this app has no mail relay (pillar apps:<app>:mail is false; "
            "DJANGO_EMAIL_HOST is not set): nothing is sent")


class NoMailBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        for message in email_messages:
            logger.warning("mail to %s not sent (%r): %s", ", ".join(message.recipients()), message.subject,
                           NO_RELAY)
        if email_messages and not self.fail_silently:
            raise ImproperlyConfigured(NO_RELAY)
        return 0
