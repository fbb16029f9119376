// Command bench is the end-to-end load harness behind `make bench` (issue 8).
//
// It builds meliproxy and mockmeli (or takes them from -bin), starts mockmeli
// as the upstream, meliproxy with limiter, cache and stats on, and, when
// installed, nginx and HAProxy configured as the equivalent proxy, plus a
// bare fasthttp server (mockmeli -bare) as the ceiling of the machine and
// fasthttp-min, the least a fasthttp reverse proxy can do (this program
// re-executed with -serve-minproxy), as the floor of the Go substrate. It
// drives them with wrk (throughput) and vegeta (latency at a constant rate),
// interleaving targets round by round, and writes
// bench/results/<date>.md and .json with medians and ratios.
//
//	go run ./bench                  # the full run, under 10 minutes
//	go run ./bench -quick           # CI smoke, about 30 seconds, not for numbers
//	go run ./bench -scenarios cache -targets meliproxy,bare -duration 5s
//
// Every process it starts is stopped by its PID (SIGTERM, then SIGKILL after
// a grace period), also on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	bin       string
	duration  time.Duration
	rounds    int
	conns     int
	threads   int
	scenarios []string
	targets   []string
	rate      int
	rateDur   time.Duration
	floodDur  time.Duration
	out       string
	quick     bool
	keep      bool
	cpuProf   string
}

// defaultRate is the constant-rate scenario's default: the highest rate at
// which nginx and meliproxy both ran with 0 errors on the 2-core reference
// machine while sharing it with vegeta and mockmeli (docs/benchmarks.md has
// the measurements). Issue 8's 20000 stays available as -rate 20000.
const defaultRate = 8000

var allScenarios = []string{"passthrough", "cache", "mix", "flood", "rate"}
var allTargets = []string{"meliproxy", "nginx", "haproxy", "fasthttp-min", "bare"}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	var scen, targ string
	fs.StringVar(&o.bin, "bin", "", "directory holding prebuilt meliproxy and mockmeli (default: go build them into a temp dir)")
	fs.DurationVar(&o.duration, "duration", 6*time.Second, "length of each wrk run")
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds per throughput scenario (medians are reported)")
	fs.IntVar(&o.conns, "connections", 128, "wrk connections")
	fs.IntVar(&o.threads, "threads", 2, "wrk threads")
	fs.StringVar(&scen, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ", "))
	fs.StringVar(&targ, "targets", strings.Join(allTargets, ","), "comma-separated targets (missing programs are skipped): "+strings.Join(allTargets, ", "))
	fs.IntVar(&o.rate, "rate", defaultRate, "requests per second of the constant-rate (vegeta) scenario")
	fs.DurationVar(&o.rateDur, "rate-duration", 30*time.Second, "length of the constant-rate run")
	fs.DurationVar(&o.floodDur, "flood-duration", 15*time.Second, "length of the distinct-client flood run")
	fs.StringVar(&o.out, "out", "bench/results", "directory for <date>.md and <date>.json")
	fs.BoolVar(&o.quick, "quick", false, "CI smoke, not for numbers: 1s runs, 1 round, no warm-up, 2s flood, 2s at 2000 rps (~30s in all)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs) after the run")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write the harness's own CPU profile (vegeta runs in-process) to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.quick {
		o.duration, o.rounds, o.rate, o.rateDur, o.floodDur = time.Second, 1, 2000, 2*time.Second, 2*time.Second
	}
	o.scenarios, o.targets = splitList(scen), splitList(targ)
	switch {
	case o.duration < time.Second || o.rateDur < time.Second || o.floodDur < time.Second:
		return o, errors.New("-duration, -rate-duration and -flood-duration must be at least 1s")
	case o.rounds < 1 || o.conns < 1 || o.threads < 1 || o.rate < 1:
		return o, errors.New("-rounds, -connections, -threads and -rate must be positive")
	case o.threads > o.conns:
		return o, errors.New("-threads must not exceed -connections")
	}
	if err := checkNames("scenario", o.scenarios, allScenarios); err != nil {
		return o, err
	}
	return o, checkNames("target", o.targets, allTargets)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func checkNames(kind string, got, valid []string) error {
	for _, g := range got {
		if !contains(valid, g) {
			return fmt.Errorf("unknown %s %q: valid are %s", kind, g, strings.Join(valid, ", "))
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// scenarioDefs lists the scenarios of issue 8 with the targets each compares.
func scenarioDefs(o options) []*scenario {
	defs := []*scenario{
		{Name: "passthrough", Title: "Pass-through (no cache) to mockmeli: GET /users/123456789", Kind: "wrk",
			Path: "/users/123456789", Script: "plain", Targets: []string{"meliproxy", "nginx", "haproxy", "fasthttp-min", "bare"}, Rounds: o.rounds, dur: o.duration},
		{Name: "cache", Title: "Cache hit: GET /categories/MLA97994", Kind: "wrk",
			Path: "/categories/MLA97994", Script: "plain", Targets: []string{"meliproxy", "nginx", "bare"}, Rounds: o.rounds, dur: o.duration},
		{Name: "mix", Title: "Realistic mix: 70% cached catalog, 27% uncached items/users, 3% over-limit clients, 5000 client IPs via X-Forwarded-For", Kind: "wrk",
			Path: "/", Script: "mix", Targets: []string{"meliproxy", "nginx", "bare"}, Rounds: o.rounds, dur: o.duration},
		{Name: "flood", Title: "Limiter under a flood of distinct client IPs (one new X-Forwarded-For address per request)", Kind: "wrk",
			Path: "/categories/MLA97994", Script: "flood", Targets: []string{"meliproxy", "nginx"}, Rounds: 1, dur: o.floodDur, series: true},
		{Name: "rate", Title: fmt.Sprintf("Constant %d rps for %v (vegeta, at most %d requests in flight), mix without over-limit clients", o.rate, o.rateDur, rateWorkers), Kind: "rate",
			Targets: []string{"meliproxy", "nginx"}, Rounds: 1, dur: o.rateDur},
	}
	var out []*scenario
	for _, d := range defs {
		if contains(o.scenarios, d.Name) {
			d.Dur = d.dur.String()
			out = append(out, d)
		}
	}
	return out
}

func run(args []string) error {
	if len(args) > 0 && args[0] == minProxyFlag {
		return serveMinProxy(args)
	}
	opt, err := parseFlags(args)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found: install it with `apt-get install -y wrk`")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if opt.cpuProf != "" {
		f, err := os.Create(opt.cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp("", "meliproxy-bench-")
	if err != nil {
		return err
	}
	if opt.keep {
		fmt.Println("work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	f := &fleet{}
	defer func() {
		if err := f.stopAll(10 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}()
	h, err := setup(ctx, opt, dir, f)
	if err != nil {
		return err
	}
	rep := newReport(opt, h, args)
	for _, sc := range scenarioDefs(opt) {
		fmt.Printf("== %s: %s\n", sc.Name, sc.Title)
		rep.add(sc, h.runScenario(ctx, sc))
		if ctx.Err() != nil {
			break
		}
	}
	rep.finish()
	fmt.Println()
	fmt.Print(rep.table())
	md, js, err := rep.write(opt.out)
	if err != nil {
		return err
	}
	fmt.Printf("\nwrote %s and %s in %v\n", md, js, time.Since(h.started).Round(time.Second))
	return ctx.Err()
}

// setup builds the binaries and starts the upstream and every available target.
func setup(ctx context.Context, opt options, dir string, f *fleet) (*harness, error) {
	h := &harness{opt: opt, targets: map[string]*target{}, progress: os.Stdout, started: time.Now()}
	e := &env{dir: dir, fleet: f}
	var err error
	if e.mockmeli, e.proxyBin, err = binaries(opt.bin, dir); err != nil {
		return nil, err
	}
	if h.scripts, err = writeScripts(dir); err != nil {
		return nil, err
	}
	if h.upstream, err = startUpstream(ctx, e); err != nil {
		return nil, err
	}
	e.upstream = strings.TrimPrefix(h.upstream.base, "http://")
	starters := map[string]func() (*target, error){
		"meliproxy": func() (*target, error) {
			if e.proxyBin == "" {
				return nil, errors.New("binary not built")
			}
			return startMeliproxy(ctx, e)
		},
		"nginx": func() (*target, error) {
			return startWithBin("nginx", func(bin string) (*target, error) { return startNginx(ctx, e, bin) })
		},
		"haproxy": func() (*target, error) {
			return startWithBin("haproxy", func(bin string) (*target, error) { return startHAProxy(ctx, e, bin) })
		},
		"fasthttp-min": func() (*target, error) { return startMinProxy(ctx, e) },
		"bare":         func() (*target, error) { return startBare(ctx, e) },
	}
	for _, name := range opt.targets {
		t, err := starters[name]()
		if err != nil {
			fmt.Printf("-- %s skipped: %v\n", name, err)
			continue
		}
		fmt.Printf("-- %s on %s (%s)\n", name, t.base, strings.Join(append([]string{t.version}, t.notes...), "; "))
		h.targets[name] = t
	}
	if len(h.targets) == 0 {
		return nil, errors.New("no target could be started")
	}
	for _, sc := range scenarioDefs(opt) {
		for _, name := range sc.Targets {
			if _, ok := h.targets[name]; ok {
				h.total += sc.Rounds
				h.planned += time.Duration(sc.Rounds) * sc.dur
			}
		}
	}
	return h, nil
}

// startWithBin starts a third-party server when its program is installed.
func startWithBin(prog string, start func(bin string) (*target, error)) (*target, error) {
	bin, err := exec.LookPath(prog)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, prog)); serr == nil {
				bin, err = filepath.Join(dir, prog), nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s not installed (apt-get install -y %s)", prog, prog)
	}
	return start(bin)
}

// binaries returns the mockmeli and meliproxy programs: from binDir when both
// are there, else built into dir. A meliproxy that does not build yet is
// reported and left out (proxyBin ""), so the harness still measures the rest.
func binaries(binDir, dir string) (mockmeli, proxyBin string, err error) {
	if binDir != "" {
		// Absolute, because targets run with their own working directories.
		if abs, err := filepath.Abs(binDir); err == nil {
			binDir = abs
		}
		m, p := filepath.Join(binDir, "mockmeli"), filepath.Join(binDir, "meliproxy")
		if isFile(m) && isFile(p) {
			return m, p, nil
		}
		fmt.Printf("-- %s lacks mockmeli or meliproxy: building them\n", binDir)
	}
	root, err := moduleRoot()
	if err != nil {
		return "", "", err
	}
	mockmeli, proxyBin = filepath.Join(dir, "mockmeli"), filepath.Join(dir, "meliproxy")
	if out, err := goBuild(root, mockmeli, "./cmd/mockmeli"); err != nil {
		return "", "", fmt.Errorf("build mockmeli: %v\n%s", err, out)
	}
	if out, err := goBuild(root, proxyBin, "./cmd/meliproxy"); err != nil {
		fmt.Printf("-- meliproxy does not build, left out: %v\n%s\n", err, out)
		proxyBin = ""
	}
	return mockmeli, proxyBin, nil
}

func goBuild(root, out, pkg string) ([]byte, error) {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd.CombinedOutput()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run bench from inside the meliproxy module (go run ./bench)")
	}
	return filepath.Dir(mod), nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
