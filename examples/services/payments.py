#!/usr/bin/env python3
"""payments.py - a small payment service for examples/complex_workflow.yaml.

    payments.py PORT

POST /charge {card, amount, trip} answers 201 {"id": "ch-TRIP", "amount": N}
for any card but "4000-0002" (always declined: 402 {"error": "card declined"})
and "5000-0503" (503 on the first two calls, then 201: shows retries).
Listens on 127.0.0.1 only. Prints "listening PORT" once ready.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

calls = {}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.reply(400, {"error": "body is not JSON"})
        if self.path != "/charge":
            return self.reply(404, {"error": "no such endpoint"})
        card = str(req.get("card", ""))
        calls[card] = calls.get(card, 0) + 1
        if card == "4000-0002":
            return self.reply(402, {"error": "card declined"})
        if card == "5000-0503" and calls[card] <= 2:
            return self.reply(503, {"error": "try again"})
        return self.reply(201, {"id": "ch-%s" % req.get("trip", "?"), "amount": req.get("amount")})


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8089
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("listening %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
