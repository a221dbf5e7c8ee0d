"""A Python grpcio (BoringSSL) server with mutual TLS on 127.0.0.1: it
demands a client certificate signed by CA, as the gRPC TLS guide's server
does. No protoc needed: a generic handler echoes raw bytes. grpc_mtls.py
calls start(); tests that probe a gRPC port run this file.

usage: grpc_server.py CA SERVER_CRT SERVER_KEY
Prints "port N" once it listens, then serves until stdin is closed (or 120 s
pass, so that it never outlives a test that died).
"""
import sys
import threading
from concurrent import futures

import grpc


def read(path):
    with open(path, "rb") as f:
        return f.read()


def start(ca, srv_crt, srv_key):
    """Starts the server on a free port of 127.0.0.1; returns (server, port)."""
    handler = grpc.method_handlers_generic_handler(
        "certforge.Echo", {"Say": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials(
        [(read(srv_key), read(srv_crt))], root_certificates=read(ca), require_client_auth=True
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    return server, port


if __name__ == "__main__":
    server, port = start(*sys.argv[1:4])
    print(f"port {port}", flush=True)
    stdin_closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stdin_closed.set()), daemon=True).start()
    stdin_closed.wait(120)
    server.stop(0)
