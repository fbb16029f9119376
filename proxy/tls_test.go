package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// selfSignedUpstream serves h over TLS on loopback with a fresh self-signed certificate for
// 127.0.0.1 and returns its URL and the certificate's PEM file.
func selfSignedUpstream(t *testing.T, h fasthttp.RequestHandler) (url, caFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mock upstream"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "https://" + ln.Addr().String(), caFile
}

// TestTLSUpstream: api.mercadolibre.com is HTTPS; the upstream certificate is verified against the
// system roots or upstream.ca_file, and a failed verification is a 502, never a silent downgrade.
func TestTLSUpstream(t *testing.T) {
	t.Parallel()
	up, caFile := selfSignedUpstream(t, echoUpstream)
	tests := []struct {
		name       string
		tweak      func(*Options)
		wantStatus int
	}{
		{"trusted by ca_file", func(o *Options) { o.Upstream.CAFile = caFile }, 200},
		{"unknown authority", nil, 502},
		{"insecure_skip_verify", func(o *Options) { o.Upstream.InsecureSkipVerify = true }, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := startProxy(t, up, tt.tweak)
			resp := rawExchange(t, addr, "GET /tls?x=1 HTTP/1.1\r\nHost: client\r\n\r\n")
			if resp.StatusCode() != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode(), tt.wantStatus, resp.Body())
			}
			if tt.wantStatus == 200 && !strings.Contains(string(resp.Body()), "uri=/tls?x=1\n") {
				t.Errorf("upstream saw:\n%s", resp.Body())
			}
		})
	}
}

func TestCAFileValidation(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.pem")
	_ = os.WriteFile(bad, []byte("not a certificate"), 0o600)
	for _, path := range []string{bad, filepath.Join(t.TempDir(), "missing.pem")} {
		c := UpstreamConfig{URL: "https://api.mercadolibre.com", CAFile: path}
		c.SetDefaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "upstream.ca_file") {
			t.Errorf("ca_file %s: error %v, want one naming upstream.ca_file", path, err)
		}
	}
}
