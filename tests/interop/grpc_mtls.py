"""A gRPC call over mutual TLS with Python grpcio (BoringSSL), the stack of
the gRPC question, guide and blog this tool is built for. No protoc needed: a generic handler echoes raw bytes.

usage: grpc_mtls.py CA SERVER_CRT SERVER_KEY CLIENT_CRT CLIENT_KEY TARGET_NAME
Prints "ok" and exits 0 on success; prints the error and exits 1 otherwise.
"""
import sys
from concurrent import futures

import grpc

ca, srv_crt, srv_key, cli_crt, cli_key, target_name = sys.argv[1:7]
read = lambda p: open(p, "rb").read()

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
