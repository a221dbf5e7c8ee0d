"""An HTTPS GET with Python's stdlib ssl: the TCP connection goes to
127.0.0.1, the certificate is verified for HOST (server_hostname), with
ssl.create_default_context's checks (CERT_REQUIRED, check_hostname).

usage: python3 https_get.py HOST PORT [CA_FILE]   (without CA_FILE: the
default verify paths). Prints the body and exits 0; the error and exits 1.
"""
import socket
import ssl
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    cafile = sys.argv[3] if len(sys.argv) > 3 else None
    ctx = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                response = b""
                while chunk := tls.recv(4096):
                    response += chunk
    except (OSError, ssl.SSLError) as e:
        print(e)
        sys.exit(1)
    print(response.decode(errors="replace"))


main()
