package stats

import (
	"bytes"
	_ "embed"
	"html/template"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

//go:embed page.html
var pageHTML string

// pageTmpl renders the numbers server-side (the page is readable without
// JavaScript) and embeds the same PageData as JSON for the charts.
var pageTmpl = template.Must(template.New("stats").Funcs(template.FuncMap{
	"pct": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"num": func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	// ms keeps two significant digits below 1 ms: cache hits answer in tens of microseconds.
	"ms": func(f float64) string {
		if f > 0 && f < 1 {
			return strconv.FormatFloat(f, 'g', 2, 64)
		}
		return strconv.FormatFloat(f, 'f', 1, 64)
	},
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
}).Parse(pageHTML))

// PageData is what /stats shows and /stats.json returns: the last hour.
type PageData struct {
	Generated time.Time  `json:"generated"`
	Version   string     `json:"version"`
	Started   time.Time  `json:"started"`
	Info      PageInfo   `json:"info"`
	Summary   *Summary   `json:"summary"`
	Series    *Series    `json:"series"` // per minute
	TopPairs  []TopEntry `json:"top_ip_paths"`
}

// Page returns the data of the /stats page: the last hour at minute resolution.
func (s *Stats) Page() (*PageData, error) {
	now := s.clock()
	from := now.Add(-time.Hour)
	sm, err := s.Summary(from, now, s.cfg.TopN)
	if err != nil {
		return nil, err
	}
	sr, err := s.Series("minute", from, now)
	if err != nil {
		return nil, err
	}
	top, err := s.Top("ip_path", from, now, min(10, s.cfg.TopN))
	if err != nil {
		return nil, err
	}
	p := &PageData{Generated: now.UTC(), Version: s.opts.Version, Started: s.start.UTC(),
		Summary: sm, Series: sr, TopPairs: top.Items, Info: PageInfo{Rules: []RuleInfo{}}}
	if s.opts.Info != nil {
		p.Info = s.opts.Info()
		if p.Info.Rules == nil {
			p.Info.Rules = []RuleInfo{}
		}
	}
	return p, nil
}

func (s *Stats) handlePageJSON(ctx *fasthttp.RequestCtx) {
	p, err := s.Page()
	respond(ctx, p, err)
}

func (s *Stats) handlePage(ctx *fasthttp.RequestCtx) {
	p, err := s.Page()
	if err != nil {
		writeErr(ctx, err)
		return
	}
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, p); err != nil {
		writeErr(ctx, err)
		return
	}
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	// The page loads nothing from elsewhere; say so to the browser too.
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
	ctx.SetBody(buf.Bytes())
}
