// An HTTPS GET with Go's net/http and crypto/tls, the way any Go program
// fetches a URL, except that the TCP connection always goes to 127.0.0.1:
// the certificate is verified for HOST, as it would be for the real site.
//
// usage: https_get HOST PORT [CA_FILE]   (without CA_FILE: the system roots)
// Prints the body and exits 0; prints the error and exits 1.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func fail(err error) {
	fmt.Println(err)
	os.Exit(1)
}

func main() {
	host, port := os.Args[1], os.Args[2]
	config := &tls.Config{}
	if len(os.Args) > 3 {
		pem, err := os.ReadFile(os.Args[3])
		if err != nil {
			fail(err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			fail(fmt.Errorf("no certificate in %s", os.Args[3]))
		}
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	client := &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: config,
			// No proxy from the environment: the connection must reach us.
			Proxy: nil,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
			},
		},
	}
	resp, err := client.Get("https://" + net.JoinHostPort(host, port) + "/")
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail(err)
	}
	fmt.Print(string(body))
}
