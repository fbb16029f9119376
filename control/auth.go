package control

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Scope is what a token may do.
type Scope uint8

const (
	// Read allows GET and HEAD on every route: stats, metrics, rules, deny list, limits, config.
	Read Scope = iota + 1
	// Admin allows every route, changes included.
	Admin
)

// ParseScope parses "read" or "admin".
func ParseScope(s string) (Scope, error) {
	switch s {
	case "read":
		return Read, nil
	case "admin":
		return Admin, nil
	}
	return 0, fmt.Errorf("control: scope %q: want \"read\" or \"admin\"", s)
}

// String returns "read" or "admin".
func (s Scope) String() string {
	switch s {
	case Read:
		return "read"
	case Admin:
		return "admin"
	}
	return "none"
}

// Token is one accepted bearer token. Secret is never logged nor returned by the API.
type Token struct {
	Name   string
	Secret string
	Scope  Scope
}

// token is a Token as checked: the secret is kept only as its SHA-256 digest.
type token struct {
	name   string
	digest [sha256.Size]byte
	scope  Scope
}

func compileTokens(ts []Token) ([]token, error) {
	out := make([]token, 0, len(ts))
	seen := make(map[[sha256.Size]byte]string, len(ts))
	for _, t := range ts {
		if t.Name == "" || t.Secret == "" || (t.Scope != Read && t.Scope != Admin) {
			return nil, fmt.Errorf("control: token %q: name, secret and scope are required", t.Name)
		}
		d := sha256.Sum256([]byte(t.Secret))
		if other, dup := seen[d]; dup {
			return nil, fmt.Errorf("control: tokens %q and %q have the same secret", other, t.Name)
		}
		seen[d] = t.Name
		out = append(out, token{name: t.Name, digest: d, scope: t.Scope})
	}
	return out, nil
}

// match returns the token whose secret was presented. It compares the presented value's SHA-256
// digest with every configured digest using subtle.ConstantTimeCompare and never stops early, so
// the time taken depends neither on how many leading bytes matched, nor on the presented length
// (hashed first), nor on which token matched.
func (c *Control) match(presented []byte) (token, bool) {
	d := sha256.Sum256(presented)
	var found token
	ok := 0
	for i := range c.tokens {
		eq := subtle.ConstantTimeCompare(d[:], c.tokens[i].digest[:])
		if eq == 1 {
			found = c.tokens[i]
		}
		ok |= eq
	}
	return found, ok == 1
}

// whoKey is the user value under which Protect stores the caller's token name for audit lines.
const whoKey = "control.who"

// cookieName is the /stats browser session cookie; see login.
const cookieName = "meliproxy_admin"

// cookieTTL bounds a browser session.
const cookieTTL = 12 * time.Hour

// Protect wraps the admin router's handler with authentication:
//
//   - /healthz and /readyz are always open (load balancers probe them);
//   - GET and HEAD need a read or admin token, every other method an admin token;
//   - credentials are "Authorization: Bearer <token>", or for GET and HEAD only, the session cookie
//     set by visiting /stats?token=<token> (browsers cannot add headers to the page's refreshes);
//   - without tokens configured every route is open, but only to requests naming a loopback Host;
//   - changes (not GET/HEAD) sent cross-site by a browser are refused.
//
// 401 (with WWW-Authenticate) means no or an unknown token, 403 a token of the wrong scope.
func (c *Control) Protect(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		path := string(ctx.Path())
		if path == "/healthz" || path == "/readyz" {
			next(ctx)
			return
		}
		safe := ctx.IsGet() || ctx.IsHead()
		if !safe && crossSite(ctx) {
			writeError(ctx, fasthttp.StatusForbidden, "", "cross-site request refused: changes must come from curl or the same origin")
			return
		}
		if len(c.tokens) == 0 {
			if !loopbackHost(string(ctx.Host())) {
				writeError(ctx, fasthttp.StatusForbidden, "", "the admin API has no tokens: it answers only requests whose Host is a loopback address or localhost")
				return
			}
			ctx.SetUserValue(whoKey, "open")
			next(ctx)
			return
		}
		if path == "/stats" && ctx.IsGet() && ctx.QueryArgs().Has("token") {
			c.login(ctx)
			return
		}
		t, status, msg := c.authenticate(ctx, safe)
		if status != 0 {
			challenge(ctx, status, msg)
			return
		}
		ctx.SetUserValue(whoKey, t.name)
		next(ctx)
	}
}

// authenticate finds the caller's token and checks its scope against the method. It returns a
// status (401, 403) and a message when the request must be refused.
func (c *Control) authenticate(ctx *fasthttp.RequestCtx, safe bool) (token, int, string) {
	need := Admin
	if safe {
		need = Read
	}
	var t token
	auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	switch {
	case len(auth) > 0:
		scheme, secret, _ := strings.Cut(string(auth), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return t, fasthttp.StatusUnauthorized, "want Authorization: Bearer <token>"
		}
		var ok bool
		if t, ok = c.match([]byte(strings.TrimSpace(secret))); !ok {
			return t, fasthttp.StatusUnauthorized, "unknown token"
		}
	case safe && len(ctx.Request.Header.Cookie(cookieName)) > 0:
		var ok bool
		if t, ok = c.session(string(ctx.Request.Header.Cookie(cookieName))); !ok {
			return t, fasthttp.StatusUnauthorized, "session expired: visit /stats?token=<token> again"
		}
	default:
		return t, fasthttp.StatusUnauthorized, "missing token: send Authorization: Bearer <token>"
	}
	if t.scope < need {
		return t, fasthttp.StatusForbidden, fmt.Sprintf("token %q has scope %s; %s %s needs %s",
			t.name, t.scope, ctx.Method(), ctx.Path(), need)
	}
	return t, 0, ""
}

// challenge answers 401 or 403 with the RFC 6750 WWW-Authenticate header.
func challenge(ctx *fasthttp.RequestCtx, status int, msg string) {
	h := `Bearer realm="meliproxy-admin"`
	switch {
	case status == fasthttp.StatusForbidden:
		h += `, error="insufficient_scope", scope="admin"`
	case msg == "unknown token" || strings.HasPrefix(msg, "session"):
		h += `, error="invalid_token"`
	}
	ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, h)
	writeError(ctx, status, "", msg)
}

// login turns /stats?token=<token> into a session cookie and redirects to /stats, so the token
// leaves the address bar and history at once. The cookie is HttpOnly and SameSite=Strict, holds an
// HMAC-signed token name and expiry (never the token), and grants read scope only, whatever the
// token's scope: it cannot change anything even if a page could make the browser send it.
func (c *Control) login(ctx *fasthttp.RequestCtx) {
	t, ok := c.match(ctx.QueryArgs().Peek("token"))
	if !ok {
		challenge(ctx, fasthttp.StatusUnauthorized, "unknown token")
		return
	}
	exp := c.o.Clock().Add(cookieTTL).Unix()
	var ck fasthttp.Cookie
	ck.SetKey(cookieName)
	ck.SetValue(c.sign(t.name, exp))
	ck.SetPath("/")
	ck.SetHTTPOnly(true)
	ck.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	ck.SetMaxAge(int(cookieTTL / time.Second))
	ctx.Response.Header.SetCookie(&ck)
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.Redirect("/stats", fasthttp.StatusSeeOther)
}

// sign returns the cookie value for a session of token name until exp (unix seconds).
func (c *Control) sign(name string, exp int64) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(name)) + "." + strconv.FormatInt(exp, 10)
	m := hmac.New(sha256.New, c.cookieKey[:])
	m.Write([]byte(payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// session checks a cookie value and returns its token, with read scope.
func (c *Control) session(v string) (token, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 || !hmac.Equal([]byte(c.sign(sessionFields(v[:i]))), []byte(v)) {
		return token{}, false
	}
	name, exp := sessionFields(v[:i])
	if c.o.Clock().Unix() >= exp {
		return token{}, false
	}
	for _, t := range c.tokens {
		if t.name == name {
			return token{name: t.name, scope: Read}, true
		}
	}
	return token{}, false
}

// sessionFields parses "base64(name).exp"; malformed input yields values no signature matches.
func sessionFields(payload string) (string, int64) {
	enc, expStr, _ := strings.Cut(payload, ".")
	name, err := base64.RawURLEncoding.DecodeString(enc)
	exp, err2 := strconv.ParseInt(expStr, 10, 64)
	if err != nil || err2 != nil {
		return "\x00invalid", 0
	}
	return string(name), exp
}

// crossSite reports whether a browser sent the request from another site: Sec-Fetch-Site says so,
// or Origin names another host than Host. curl sends neither. (The approach of Go's
// net/http.CrossOriginProtection, for fasthttp.)
func crossSite(ctx *fasthttp.RequestCtx) bool {
	switch string(ctx.Request.Header.Peek("Sec-Fetch-Site")) {
	case "", "same-origin", "none":
	default:
		return true
	}
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		return false
	}
	u, err := url.Parse(string(origin))
	return err != nil || u.Host != string(ctx.Host())
}

// loopbackHost reports whether a Host header names the local machine. An open admin API refuses
// other names so that a web page whose DNS name was rebound to 127.0.0.1 cannot reach it.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
