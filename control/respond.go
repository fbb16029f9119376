package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/valyala/fasthttp"
)

// apiError is a refusal with its HTTP status and, when one field of the request is to blame, the
// field's name. All handlers report errors through it, and writeError is the one place that turns
// them into responses.
type apiError struct {
	Status int
	Field  string
	Msg    string
	// Errors lists every problem when there are several (a refused reload).
	Errors []string
}

func (e *apiError) Error() string { return e.Msg }

func badRequest(field, format string, args ...any) *apiError {
	return &apiError{Status: fasthttp.StatusBadRequest, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// writeJSON answers status with v as indented JSON.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = fasthttp.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, "{\"error\":%q,\"status\":500}\n", err.Error())
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.SetBody(buf.Bytes())
}

// writeError answers {"error": msg, "field": field, "status": status}.
func writeError(ctx *fasthttp.RequestCtx, status int, field, msg string) {
	writeErr(ctx, &apiError{Status: status, Field: field, Msg: msg})
}

// writeErr answers err: an *apiError as it says, anything else as a 500.
func writeErr(ctx *fasthttp.RequestCtx, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{Status: fasthttp.StatusInternalServerError, Msg: err.Error()}
	}
	body := struct {
		Error  string   `json:"error"`
		Field  string   `json:"field,omitempty"`
		Errors []string `json:"errors,omitempty"`
		Status int      `json:"status"`
	}{ae.Msg, ae.Field, ae.Errors, ae.Status}
	writeJSON(ctx, ae.Status, body)
}

// decodeJSON strictly decodes the request body into v: unknown fields and trailing data are
// errors naming the field.
func decodeJSON(ctx *fasthttp.RequestCtx, v any) error {
	body := ctx.PostBody()
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "empty body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("", "trailing data after the JSON object")
	}
	return nil
}

// jsonError turns a decoding error into a 400 that names the field when JSON says which.
func jsonError(err error) *apiError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return badRequest(te.Field, "%s: got JSON %s, want %s", te.Field, te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return badRequest("", "invalid JSON at byte %d: %v", se.Offset, err)
	}
	msg := err.Error()
	var field string
	if n, _ := fmt.Sscanf(msg, "json: unknown field %q", &field); n == 1 {
		return badRequest(field, "unknown field %q", field)
	}
	return badRequest("", "invalid JSON: %v", err)
}

// audit logs one change: who (token name), from where, what, and the values before and after.
func (c *Control) audit(ctx *fasthttp.RequestCtx, action, target string, old, cur any) {
	who, _ := ctx.UserValue(whoKey).(string)
	remote := ""
	if addr, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		remote = addr.IP.String()
	}
	c.o.Logger.Info("audit", "token", who, "remote", remote, "action", action, "target", target,
		"old", auditValue(old), "new", auditValue(cur))
}

// auditValue renders a value as compact JSON for the log line ("" for nil).
func auditValue(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
