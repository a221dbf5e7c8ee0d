// An HTTPS GET with Java's JSSE: the TCP connection goes to 127.0.0.1, the
// certificate is verified for HOST, as HttpsURLConnection would verify it
// (endpoint identification "HTTPS", SNI HOST) by the default TrustManager:
// -Djavax.net.ssl.trustStore=..., else the JDK's cacerts.
//
// usage: java HttpsGet HOST PORT
// Prints the response and exits 0; prints the error and exits 1.
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

public class HttpsGet {
    public static void main(String[] args) {
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        try (Socket raw = new Socket()) {
            raw.connect(new InetSocketAddress("127.0.0.1", port), 10000);
            raw.setSoTimeout(10000);
            SSLSocket tls = (SSLSocket) SSLContext.getDefault().getSocketFactory().createSocket(raw, host, port, true);
            SSLParameters params = tls.getSSLParameters();
            params.setEndpointIdentificationAlgorithm("HTTPS");
            params.setServerNames(List.of(new SNIHostName(host)));
            tls.setSSLParameters(params);
            tls.startHandshake();
            OutputStream out = tls.getOutputStream();
            out.write(("GET / HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.flush();
            System.out.print(new String(tls.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
        } catch (Exception e) {
            System.out.println(e);
            System.exit(1);
        }
    }
}
