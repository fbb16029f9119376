package stats

import (
	"errors"
	"fmt"
	"time"
)

// Defaults applied by Config.withDefaults when a field is zero.
const (
	DefaultDataDir         = "data"
	DefaultFlushInterval   = 5 * time.Second
	DefaultMinuteRetention = 7 * 24 * time.Hour
	DefaultHourRetention   = 365 * 24 * time.Hour
	DefaultTopN            = 20
)

// MaxKeyLen is the longest path, in bytes, that the top-N sketches keep. Longer
// paths are truncated to this length (and end in "…" in the API), so a sketch
// slot is a fixed-size array and entering the sketch never allocates.
const MaxKeyLen = 256

// Config is the [stats] section of config.toml. The zero value is valid and
// means every default.
type Config struct {
	// DataDir is the directory holding the durable store, DataDir/stats.db
	// (a bbolt file). It is created if missing. Default "data".
	DataDir string `toml:"data_dir"`

	// FlushInterval is how often in-memory rollups are written to the store; a
	// crash (kill -9) loses at most this much history. Default "5s"; minimum 100ms.
	FlushInterval time.Duration `toml:"flush_interval"`

	// MinuteRetention is how long per-minute rollups are kept. Default "168h" (7 days).
	MinuteRetention time.Duration `toml:"minute_retention"`

	// HourRetention is how long hourly rollups are kept; it must be at least
	// MinuteRetention. Default "8760h" (365 days).
	HourRetention time.Duration `toml:"hour_retention"`

	// TopN is how many paths, client IPs and IP+path pairs are kept per minute
	// and hour (1..1000). Each sketch shard monitors 4×TopN keys, so memory is
	// fixed whatever the number of distinct clients: 4 minutes × shards
	// (GOMAXPROCS rounded up to a power of two, 4..16) × 3 sketches × 4×TopN × ~300
	// bytes; measured at TopN 20: 1.46 MiB of heap with 4 shards, 2.94 MiB with 8.
	// Default 20.
	TopN int `toml:"top_n"`
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MinuteRetention == 0 {
		c.MinuteRetention = DefaultMinuteRetention
	}
	if c.HourRetention == 0 {
		c.HourRetention = DefaultHourRetention
	}
	if c.TopN == 0 {
		c.TopN = DefaultTopN
	}
	return c
}

// Validate reports the first invalid key of the [stats] section, naming it.
// Zero values are valid (they mean the default).
func (c *Config) Validate() error {
	d := c.withDefaults()
	switch {
	case d.FlushInterval < 100*time.Millisecond:
		return fmt.Errorf("stats.flush_interval %q: must be at least 100ms", c.FlushInterval)
	case d.FlushInterval > 10*time.Minute:
		return fmt.Errorf("stats.flush_interval %q: must be at most 10m (a crash loses up to one interval)", c.FlushInterval)
	case d.MinuteRetention < time.Hour:
		return fmt.Errorf("stats.minute_retention %q: must be at least 1h", c.MinuteRetention)
	case d.HourRetention < d.MinuteRetention:
		return fmt.Errorf("stats.hour_retention %q: must be at least minute_retention (%s)", c.HourRetention, d.MinuteRetention)
	case d.TopN < 1 || d.TopN > 1000:
		return fmt.Errorf("stats.top_n %d: must be between 1 and 1000", c.TopN)
	}
	return nil
}

// ErrStoreOpen is returned by New when the store file cannot be opened or
// created; check that stats.data_dir exists, is writable and is not used by
// another meliproxy process (bbolt takes an exclusive file lock).
var ErrStoreOpen = errors.New("stats: cannot open store")
