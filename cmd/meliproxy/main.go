// Command meliproxy is an HTTP API edge proxy: it forwards every request to one upstream API while
// enforcing rate limits, caching what is safe to cache and recording usage statistics.
//
//	meliproxy -config config.toml         run
//	meliproxy -check -config config.toml  validate the config and exit (0 ok, 2 invalid)
//	meliproxy -version                    print the version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "meliproxy:", err)
	var ce *configError
	if errors.As(err, &ce) || errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	os.Exit(1)
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("meliproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "config.toml", "path to the TOML config file")
	check := fs.Bool("check", false, "validate the config file, print every problem and exit (0 valid, 2 invalid)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return &configError{err}
	}
	if fs.NArg() > 0 {
		return &configError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if *showVersion {
		fmt.Fprintln(stdout, "meliproxy", buildVersion())
		return nil
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok (version %s)\n", cfg.Path, cfg.Version)
		return nil
	}
	return serve(cfg, stderr)
}

// buildVersion is the -ldflags version, or the VCS revision the binary was built from.
func buildVersion() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return version
}
