package proxy

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// ServerConfig is the [server] section: the public listener that clients call.
// Zero values mean the documented defaults.
type ServerConfig struct {
	// Listen is the TCP address of the proxy listener. Default ":8080".
	Listen string `toml:"listen"`
	// ReadTimeout bounds reading one request, headers and body; slow clients are cut. Default 10s.
	ReadTimeout time.Duration `toml:"read_timeout"`
	// WriteTimeout bounds writing one response. Default 30s.
	WriteTimeout time.Duration `toml:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle for this long. Default 60s.
	IdleTimeout time.Duration `toml:"idle_timeout"`
	// MaxHeaderBytes is the largest request head accepted; larger gets 431. Default 8192.
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// MaxBodyBytes is the largest request body accepted; larger gets 413. Default 4 MiB.
	MaxBodyBytes int `toml:"max_body_bytes"`
	// MaxConns caps concurrent client connections; more are refused. Default 10000.
	MaxConns int `toml:"max_conns"`
	// DrainTimeout bounds how long SIGTERM waits for in-flight requests. Default 15s.
	DrainTimeout time.Duration `toml:"drain_timeout"`
}

// UpstreamConfig is the [upstream] section: the one API every request is sent to.
type UpstreamConfig struct {
	// URL is the upstream origin, scheme and host only, e.g. "https://api.mercadolibre.com". Required.
	URL string `toml:"url"`
	// PreserveHost sends the client's Host header upstream instead of the upstream's host. Default false.
	PreserveHost bool `toml:"preserve_host"`
	// DialTimeout bounds opening a connection to the upstream. Default 2s.
	DialTimeout time.Duration `toml:"dial_timeout"`
	// Timeout bounds one whole upstream exchange; past it the client gets 504. Default 10s.
	Timeout time.Duration `toml:"timeout"`
	// MaxConns caps pooled upstream connections. Default 1024.
	MaxConns int `toml:"max_conns"`
	// MaxConnWait is how long a request waits for a free pooled connection before 503. Default 100ms.
	MaxConnWait time.Duration `toml:"max_conn_wait"`
	// IdleConnTimeout closes pooled connections unused for this long. Default 30s.
	IdleConnTimeout time.Duration `toml:"idle_conn_timeout"`
	// MaxResponseBytes caps an upstream response body; a larger one becomes 502. Default 32 MiB.
	MaxResponseBytes int `toml:"max_response_bytes"`
	// Retry allows one retry of an idempotent request (GET, HEAD, PUT) after a connection error. Default true.
	Retry *bool `toml:"retry"`
	// CAFile is a PEM file of certificate authorities trusted for an https upstream instead of the
	// system's. Default "": the system roots.
	CAFile string `toml:"ca_file"`
	// InsecureSkipVerify disables TLS certificate checks toward the upstream. Only for tests. Default false.
	InsecureSkipVerify bool `toml:"insecure_skip_verify"`
}

// LogConfig is the [log] section.
type LogConfig struct {
	// Level is one of debug, info, warn, error. Default info.
	Level string `toml:"level"`
	// Format is text or json. Default text.
	Format string `toml:"format"`
	// AccessLog is where JSON access lines go: "" (off, default), "stdout", "stderr" or a file path.
	AccessLog string `toml:"access_log"`
}

// SetDefaults fills zero fields with their documented defaults.
func (c *ServerConfig) SetDefaults() {
	setDefault(&c.Listen, ":8080")
	setDefault(&c.ReadTimeout, 10*time.Second)
	setDefault(&c.WriteTimeout, 30*time.Second)
	setDefault(&c.IdleTimeout, 60*time.Second)
	setDefault(&c.MaxHeaderBytes, 8192)
	setDefault(&c.MaxBodyBytes, 4<<20)
	setDefault(&c.MaxConns, 10000)
	setDefault(&c.DrainTimeout, 15*time.Second)
}

// Validate reports every problem in the section, each naming its key.
func (c *ServerConfig) Validate() error {
	var errs []error
	if err := checkAddr(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("server.listen: %w", err))
	}
	errs = appendPositive(errs, "server.read_timeout", c.ReadTimeout)
	errs = appendPositive(errs, "server.write_timeout", c.WriteTimeout)
	errs = appendPositive(errs, "server.idle_timeout", c.IdleTimeout)
	errs = appendPositive(errs, "server.drain_timeout", c.DrainTimeout)
	if c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("server.max_header_bytes: %d: want 1024..1048576", c.MaxHeaderBytes))
	}
	errs = appendPositive(errs, "server.max_body_bytes", c.MaxBodyBytes)
	errs = appendPositive(errs, "server.max_conns", c.MaxConns)
	return errors.Join(errs...)
}

// SetDefaults fills zero fields with their documented defaults.
func (c *UpstreamConfig) SetDefaults() {
	setDefault(&c.DialTimeout, 2*time.Second)
	setDefault(&c.Timeout, 10*time.Second)
	setDefault(&c.MaxConns, 1024)
	setDefault(&c.MaxConnWait, 100*time.Millisecond)
	setDefault(&c.IdleConnTimeout, 30*time.Second)
	setDefault(&c.MaxResponseBytes, 32<<20)
	if c.Retry == nil {
		t := true
		c.Retry = &t
	}
}

// Validate reports every problem in the section, each naming its key.
func (c *UpstreamConfig) Validate() error {
	var errs []error
	if _, err := parseUpstreamURL(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("upstream.url: %w", err))
	}
	errs = appendPositive(errs, "upstream.dial_timeout", c.DialTimeout)
	errs = appendPositive(errs, "upstream.timeout", c.Timeout)
	errs = appendPositive(errs, "upstream.max_conns", c.MaxConns)
	errs = appendPositive(errs, "upstream.max_conn_wait", c.MaxConnWait)
	errs = appendPositive(errs, "upstream.idle_conn_timeout", c.IdleConnTimeout)
	errs = appendPositive(errs, "upstream.max_response_bytes", c.MaxResponseBytes)
	if c.CAFile != "" {
		if _, err := loadCAFile(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("upstream.ca_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// SetDefaults fills zero fields with their documented defaults.
func (c *LogConfig) SetDefaults() {
	setDefault(&c.Level, "info")
	setDefault(&c.Format, "text")
}

// Validate reports every problem in the section, each naming its key.
func (c *LogConfig) Validate() error {
	var errs []error
	switch c.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q: want debug, info, warn or error", c.Level))
	}
	switch c.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q: want text or json", c.Format))
	}
	return errors.Join(errs...)
}

// upstreamTarget is a validated upstream URL split into what HostClient needs.
type upstreamTarget struct {
	scheme string // "http" or "https"
	host   string // Host header value: host[:port] as written, default port omitted
	addr   string // dial address, always host:port
}

func parseUpstreamURL(raw string) (upstreamTarget, error) {
	if raw == "" {
		return upstreamTarget{}, errors.New("required, e.g. \"https://api.mercadolibre.com\"")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return upstreamTarget{}, fmt.Errorf("%q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return upstreamTarget{}, fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return upstreamTarget{}, fmt.Errorf("%q: missing host", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return upstreamTarget{}, fmt.Errorf("%q: only scheme://host[:port] is supported (no path, query or user info)", raw)
	}
	t := upstreamTarget{scheme: u.Scheme, host: u.Host, addr: u.Host}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		t.addr = net.JoinHostPort(u.Hostname(), port)
	}
	return t, nil
}

// loadCAFile reads a PEM bundle of certificate authorities.
func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}

func checkAddr(addr string) error {
	if addr == "" {
		return errors.New("required, e.g. \"127.0.0.1:8080\" or \":8080\"")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q: want host:port: %w", addr, err)
	}
	return nil
}

// isLoopback reports whether a listen address binds only to a loopback interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func appendPositive[T int | int64 | time.Duration](errs []error, key string, v T) []error {
	if v <= 0 {
		return append(errs, fmt.Errorf("%s: %v: must be positive", key, v))
	}
	return errs
}
