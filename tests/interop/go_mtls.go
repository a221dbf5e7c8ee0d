// A mutual-TLS handshake with Go's crypto/tls, as a gRPC-Go server would run
// it: tls.RequireAndVerifyClientCert, ClientCAs and RootCAs from our CA.
//
// usage: go run go_mtls.go CA SERVER_CRT SERVER_KEY CLIENT_CRT CLIENT_KEY HOSTNAME
// Prints "ok" and exits 0 on success; prints the error and exits 1 otherwise.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func fail(side string, err error) {
	fmt.Printf("%s: %v\n", side, err)
	os.Exit(1)
}

func main() {
	a := os.Args[1:]
	caPEM, err := os.ReadFile(a[0])
	if err != nil {
		fail("setup", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		fail("setup", fmt.Errorf("no CA certificate in %s", a[0]))
	}
	srv, err := tls.LoadX509KeyPair(a[1], a[2])
	if err != nil {
		fail("server", err)
	}
	cli, err := tls.LoadX509KeyPair(a[3], a[4])
	if err != nil {
		fail("client", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{srv},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	if err != nil {
		fail("server", err)
	}
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := c.(*tls.Conn).Handshake(); err != nil {
			serverErr <- err
			return
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			serverErr <- err
			return
		}
		_, err = c.Write(buf)
		serverErr <- err
	}()
	clientErr := talk(ln.Addr().String(), &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{cli},
		ServerName:   a[5],
	})
	// Both sides' verdicts are printed: the server's explains a refused
	// client cert, the client's a refused server cert.
	var serverResult error
	select {
	case serverResult = <-serverErr:
	case <-time.After(10 * time.Second):
		serverResult = fmt.Errorf("no answer within 10s")
	}
	if clientErr != nil || serverResult != nil {
		fmt.Printf("client: %v\nserver: %v\n", clientErr, serverResult)
		os.Exit(1)
	}
	fmt.Println("ok")
}

// talk dials, sends "hello" and reads the echo.
func talk(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("hello")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	_, err = io.ReadFull(conn, buf)
	return err
}
