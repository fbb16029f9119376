package proxy

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// upstream is the pooled connection to the one configured origin. It is safe for concurrent use.
type upstream struct {
	client       *fasthttp.HostClient
	target       upstreamTarget
	timeout      time.Duration
	preserveHost bool
}

func newUpstream(cfg UpstreamConfig) (*upstream, error) {
	target, err := parseUpstreamURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	dialer := &fasthttp.TCPDialer{Concurrency: 0, DNSCacheDuration: time.Minute}
	dialTimeout := cfg.DialTimeout
	attempts := 1
	if cfg.Retry != nil && *cfg.Retry {
		// fasthttp retries only idempotent methods (GET, HEAD, PUT); 2 attempts = at most one retry,
		// so a dead upstream costs two fast dials, not the default five.
		attempts = 2
	}
	hc := &fasthttp.HostClient{
		Addr:  target.addr,
		IsTLS: target.scheme == "https",
		Dial: func(addr string) (net.Conn, error) {
			return dialer.DialTimeout(addr, dialTimeout)
		},
		// The client's own User-Agent is forwarded; none is invented when it sent none.
		NoDefaultUserAgentHeader: true,
		MaxConns:                 cfg.MaxConns,
		MaxConnWaitTimeout:       cfg.MaxConnWait,
		MaxIdleConnDuration:      cfg.IdleConnTimeout,
		// No Read/WriteTimeout: DoTimeout's one deadline bounds the whole exchange, and a second
		// per-operation deadline would only cost two clock reads per request.
		MaxResponseBodySize:       cfg.MaxResponseBytes,
		MaxIdemponentCallAttempts: attempts,
		// The client's Content-Length was already checked by the server; the response's is checked
		// against MaxResponseBodySize.
		DisableHeaderNamesNormalizing: false,
	}
	if hc.IsTLS {
		host, _, _ := net.SplitHostPort(target.addr)
		hc.TLSConfig = &tls.Config{
			ServerName:         host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // opt-in, documented as test-only
			ClientSessionCache: tls.NewLRUClientSessionCache(0),
		}
		if cfg.CAFile != "" {
			if hc.TLSConfig.RootCAs, err = loadCAFile(cfg.CAFile); err != nil {
				return nil, fmt.Errorf("ca_file: %w", err)
			}
		}
	}
	return &upstream{client: hc, target: target, timeout: cfg.Timeout, preserveHost: cfg.PreserveHost}, nil
}

// do sends req to the upstream and reads its answer into resp, within the configured timeout.
//
// Whatever target the client wrote, the request goes to the configured address: HostClient dials
// its fixed Addr, and the URI's host is overwritten so an absolute-form target ("GET http://x/")
// cannot choose the Host header either (FIELD-NOTES: fasthttp takes the host from such targets).
func (u *upstream) do(req *fasthttp.Request, resp *fasthttp.Response) error {
	uri := req.URI()
	uri.SetScheme(u.target.scheme)
	if u.preserveHost {
		req.UseHostHeader = true
	} else {
		req.UseHostHeader = false
		uri.SetHost(u.target.host)
	}
	return u.client.DoTimeout(req, resp, u.timeout)
}

// close drops idle pooled connections.
func (u *upstream) close() {
	u.client.CloseIdleConnections()
}
