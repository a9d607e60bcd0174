#!/usr/bin/env python3
"""A token service for a test registry (distribution's docs/spec/auth/token.md, jwt.md).

    token_server.py PORT FOLDER

Listens on 127.0.0.1:PORT. GET /token?service=S&scope=repository:NAME:ACTIONS answers
{"token": JWT}: a JSON Web Token signed RS256 whose claims grant every scope asked for, for
60 seconds, issuer "isolation-token-server", audience S. The header carries the signing
certificate (x5c); docker-registry trusts it when it is in its `rootcertbundle`.

FOLDER holds key.pem and cert.pem (the trusted pair), wrong-key.pem and wrong-cert.pem (a
pair the registry does not trust), and `mode`, read on every request:
  good       sign with the trusted key
  wrong-key  sign with the other key
  no-token   answer 200 with no token in the body
  refuse     answer 403
Every request is appended to FOLDER/requests (path and query), one a line.
Signing is `openssl dgst -sha256 -sign` (RSASSA-PKCS1-v1_5 with SHA-256 is RS256), so no
Python package is needed beyond the standard library.
"""
import base64
import http.server
import json
import os
import subprocess
import sys
import time
import urllib.parse

ISSUER = "isolation-token-server"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def certificate_der_base64(path: str) -> str:
    # A PEM certificate's body is the base64 of its DER form, which is what x5c holds.
    lines = open(path).read().strip().splitlines()
    return "".join(line for line in lines if not line.startswith("-----"))


def token(folder: str, key: str, cert: str, service: str, scopes: list) -> str:
    access = []
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) >= 3:
            access.append({"type": parts[0], "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")})
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [certificate_der_base64(os.path.join(folder, cert))]}
    claims = {"iss": ISSUER, "sub": "", "aud": service, "exp": now + 60, "nbf": now - 10, "iat": now,
              "jti": b64url(os.urandom(12)), "access": access}
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
    signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", os.path.join(folder, key)],
                               input=signing_input, stdout=subprocess.PIPE, check=True).stdout
    return signing_input.decode() + "." + b64url(signature)


class Handler(http.server.BaseHTTPRequestHandler):
    folder = "."

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        with open(os.path.join(self.folder, "requests"), "a") as log:
            log.write(self.path + "\n")
        mode = open(os.path.join(self.folder, "mode")).read().strip()
        if url.path != "/token" or mode == "refuse":
            self.answer(403 if mode == "refuse" else 404, {"errors": [{"message": "no token for you"}]})
            return
        query = urllib.parse.parse_qs(url.query)
        service = query.get("service", [""])[0]
        scopes = query.get("scope", [])
        if mode == "no-token":
            self.answer(200, {"expires_in": 60})
        elif mode == "wrong-key":
            self.answer(200, {"token": token(self.folder, "wrong-key.pem", "wrong-cert.pem", service, scopes)})
        else:
            self.answer(200, {"token": token(self.folder, "key.pem", "cert.pem", service, scopes)})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *arguments):
        pass


def main():
    port, Handler.folder = int(sys.argv[1]), sys.argv[2]
    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
