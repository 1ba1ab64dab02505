"""Each app's credential for writing to the media hosts (WebDAV, HTTP Basic
with the app's name as user), derived from the app's Django secret key: no
secret of its own to add, and a new secret key rotates it.

token = urlsafe base64 of HMAC-SHA256(secret key, "media-write:<app>"). The
app hosts get the token (the app's env file); the media hosts only a hash of
it for nginx's auth_basic_user_file, and never the secret key. The hash is
nginx's "{SSHA}": base64(SHA1(token + salt) + salt). A salted SHA-1 is not
the weak point here: the token holds 256 random-looking bits, so guessing it
from the hash is out of reach however fast SHA-1 is. The salt is derived from
the token too, so every render gives the very same line and a re-apply
changes nothing. Stdlib only; no `crypt` module (gone in Python 3.13).
"""
import base64
import hashlib
import hmac


def write_token(secret_key, app):
    """The app's write password: 43 characters of urlsafe base64 (no ':', no padding)."""
    digest = hmac.new(secret_key.encode(), f"media-write:{app}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def password_hash(token):
    """nginx's {SSHA} hash of ``token``, with a salt derived from it."""
    salt = hmac.new(token.encode(), b"media-write-salt", hashlib.sha256).digest()[:16]
    return "{SSHA}" + base64.b64encode(hashlib.sha1(token.encode() + salt).digest() + salt).decode()
