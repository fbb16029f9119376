package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"path"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// testdata holds the canned API responses. A file name maps to its route by
// replacing "_" with "/": sites_MLA_categories.json serves /sites/MLA/categories.
//
//go:embed testdata/*.json
var testdata embed.FS

// Cache-Control values the real API sends for each kind of resource. The
// catalog (categories, sites) changes rarely; items and users change often.
var (
	catalogCacheControl  = []byte("max-age=300")
	resourceCacheControl = []byte("max-age=60")
)

// fixture is one precomputed response. Nothing in it changes after load, so
// handlers hand body to fasthttp without copying (Response.SetBodyRaw).
type fixture struct {
	body         []byte
	etag         []byte // quoted strong validator, e.g. "1f0c6e3a9b2d4c57"
	cacheControl []byte
}

// template renders a response for any well-formed id: the body of a fixture
// split around every occurrence of that fixture's own id. Rendering appends
// parts and the id into the response buffer, so it allocates nothing.
type template struct {
	parts        [][]byte
	seed         uint64 // FNV-1a of the whole fixture, mixed into generated ETags
	cacheControl []byte
}

// fixtures is the loaded set of routes with exact bodies, plus the templates
// for /items/{id} and /users/{id}.
type fixtures struct {
	exact map[string]*fixture
	item  *template
	user  *template
}

// The fixtures whose ids become templates.
const (
	itemFixtureID = "MLA1100000001"
	userFixtureID = "123456789"
)

// loadFixtures reads, validates and compacts every embedded JSON file.
func loadFixtures() (*fixtures, error) {
	entries, err := testdata.ReadDir("testdata")
	if err != nil {
		return nil, err
	}
	fx := &fixtures{exact: make(map[string]*fixture, len(entries))}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".json")
		raw, err := testdata.ReadFile(path.Join("testdata", e.Name()))
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, fmt.Errorf("fixture %s: %w", e.Name(), err)
		}
		route := "/" + strings.ReplaceAll(name, "_", "/")
		fx.exact[route] = newFixture(buf.Bytes(), cacheControlFor(route))
	}
	if fx.item, err = fx.template("/items/", itemFixtureID); err != nil {
		return nil, err
	}
	if fx.user, err = fx.template("/users/", userFixtureID); err != nil {
		return nil, err
	}
	return fx, nil
}

func (fx *fixtures) template(prefix, id string) (*template, error) {
	f, ok := fx.exact[prefix+id]
	if !ok {
		return nil, fmt.Errorf("fixture %s%s missing", prefix, id)
	}
	return &template{
		parts:        bytes.Split(f.body, []byte(id)),
		seed:         fnv64(f.body),
		cacheControl: f.cacheControl,
	}, nil
}

func newFixture(body []byte, cacheControl []byte) *fixture {
	return &fixture{body: body, etag: appendETag(nil, fnv64(body)), cacheControl: cacheControl}
}

func cacheControlFor(route string) []byte {
	if strings.HasPrefix(route, "/categories") || strings.HasPrefix(route, "/sites") {
		return catalogCacheControl
	}
	return resourceCacheControl
}

// writeBody appends the template rendered for id to the body of resp; the
// pooled body buffer makes this allocation-free in steady state.
func (t *template) writeBody(resp *fasthttp.Response, id []byte) {
	for i, p := range t.parts {
		if i > 0 {
			resp.AppendBody(id)
		}
		resp.AppendBody(p)
	}
}

// etag returns the ETag hash for the body rendered with id.
func (t *template) etag(id []byte) uint64 {
	h := t.seed
	for _, c := range id {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

const (
	fnvPrime = 1099511628211
)

func fnv64(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// appendETag appends h as a quoted 16-digit hex validator.
func appendETag(dst []byte, h uint64) []byte {
	dst = append(dst, '"')
	dst = appendHex(dst, h, 16)
	return append(dst, '"')
}

// appendHex appends the low 4*digits bits of v as lower-case hex, zero-padded.
func appendHex(dst []byte, v uint64, digits int) []byte {
	const hex = "0123456789abcdef"
	for i := digits - 1; i >= 0; i-- {
		dst = append(dst, hex[(v>>(4*uint(i)))&0xf])
	}
	return dst
}

// validItemID reports whether id looks like a MercadoLibre item id: a
// three-letter site prefix followed by 1 to 19 digits (MLA1100000001).
func validItemID(id []byte) bool {
	if len(id) < 4 || len(id) > 22 {
		return false
	}
	for _, c := range id[:3] {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return allDigits(id[3:])
}

// validUserID reports whether id is a positive decimal user id.
func validUserID(id []byte) bool {
	return len(id) > 0 && len(id) <= 19 && id[0] != '0' && allDigits(id)
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// apiError renders a MercadoLibre-style error body once, at startup.
func apiError(status int, errCode, message string) []byte {
	b, err := json.Marshal(struct {
		Message string   `json:"message"`
		Error   string   `json:"error"`
		Status  int      `json:"status"`
		Cause   []string `json:"cause"`
	}{message, errCode, status, []string{}})
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return b
}

// Precomputed error bodies, shaped like the real API's.
var (
	notFoundCategory = apiError(404, "not_found", "Category not found")
	notFoundSite     = apiError(404, "not_found", "Site not found")
	notFoundItem     = apiError(404, "not_found", "Item not found")
	notFoundUser     = apiError(404, "not_found", "User not found")
	notFoundResource = apiError(404, "not_found", "resource not found")
	methodNotAllowed = apiError(405, "method_not_allowed", "Method Not Allowed")
	unavailable      = apiError(503, "service_unavailable", "Service Unavailable")
)

// statusBody appends the small body /status/{code} answers with.
func statusBody(dst []byte, code int) []byte {
	dst = append(dst, `{"status":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	return append(dst, '}')
}
