"""A real mutual-TLS handshake through Python's ssl module (OpenSSL), with
VERIFY_X509_STRICT on both sides as Python 3.13 sets by default.

usage: py_mtls.py CA SERVER_CRT SERVER_KEY CLIENT_CRT CLIENT_KEY HOSTNAME
Exits 0 when the handshake and one echo succeed; 1 with the error otherwise.
"""
import socket
import ssl
import sys
import threading

ca, srv_crt, srv_key, cli_crt, cli_key, host = sys.argv[1:7]


def strict(ctx):
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_verify_locations(ca)
    return ctx


server_ctx = strict(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
server_ctx.verify_mode = ssl.CERT_REQUIRED
server_ctx.load_cert_chain(srv_crt, srv_key)
client_ctx = strict(ssl.create_default_context(ssl.Purpose.SERVER_AUTH))
client_ctx.load_cert_chain(cli_crt, cli_key)

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
listener.settimeout(10)
port = listener.getsockname()[1]
server_error = []


def serve():
    try:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(tls.recv(5))
    except Exception as e:  # reported below
        server_error.append(e)


t = threading.Thread(target=serve)
t.start()
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"hello")
            assert tls.recv(5) == b"hello"
except Exception as e:
    print(f"client: {e}")
    t.join()
    sys.exit(1)
t.join()
if server_error:
    print(f"server: {server_error[0]}")
    sys.exit(1)
print("ok")
