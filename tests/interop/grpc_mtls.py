"""A gRPC call over mutual TLS with Python grpcio (BoringSSL), the stack of
the gRPC question, guide and blog this tool is built for. The server is
grpc_server.py's.

usage: grpc_mtls.py CA SERVER_CRT SERVER_KEY CLIENT_CRT CLIENT_KEY TARGET_NAME
Prints "ok" and exits 0 on success; prints the error and exits 1 otherwise.
"""
import sys

import grpc

from grpc_server import read, start

ca, srv_crt, srv_key, cli_crt, cli_key, target_name = sys.argv[1:7]
server, port = start(ca, srv_crt, srv_key)
try:
    channel = grpc.secure_channel(
        f"127.0.0.1:{port}",
        grpc.ssl_channel_credentials(read(ca), read(cli_key), read(cli_crt)),
        options=[("grpc.ssl_target_name_override", target_name)],
    )
    reply = channel.unary_unary("/certforge.Echo/Say")(b"hello", timeout=10)
    assert reply == b"hello", reply
    print("ok")
except grpc.RpcError as e:
    print(f"client: {e.code()} {e.details()}")
    sys.exit(1)
finally:
    server.stop(0)
