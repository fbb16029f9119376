package stats

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names in the bbolt file. Keys are 8-byte big-endian unix seconds of
// the minute or hour start, so a cursor walks them in time order; values are
// JSON rollups (a few KiB each: about 60 MB for a week of busy minutes).
var (
	bucketMinutes = []byte("minutes")
	bucketHours   = []byte("hours")
)

// store is the durable bbolt file. Its methods are safe for concurrent use
// (bbolt serialises writers and lets readers run alongside).
type store struct {
	db *bolt.DB
}

// openStore opens or creates dir/stats.db.
func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStoreOpen, err)
	}
	path := filepath.Join(dir, "stats.db")
	// Timeout: a second process on the same file waits for bbolt's flock
	// forever without it.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrStoreOpen, path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMinutes, bucketHours} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w %s: %w", ErrStoreOpen, path, err)
	}
	return &store{db: db}, nil
}

func (st *store) close() error { return st.db.Close() }

func timeKey(sec int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(sec))
}

// write adds each minute's delta to its stored minute and hour rollups, then
// prunes keys older than the retention cutoffs, all in one transaction: a
// crash leaves either all of it or none.
func (st *store) write(deltas map[int64]*agg, keep int, minuteCut, hourCut int64) error {
	return st.db.Update(func(tx *bolt.Tx) error {
		mb, hb := tx.Bucket(bucketMinutes), tx.Bucket(bucketHours)
		for minute, a := range deltas {
			start := minute * 60
			if err := mergeInto(mb, start, a, keep); err != nil {
				return err
			}
			if err := mergeInto(hb, start-start%3600, a, keep); err != nil {
				return err
			}
		}
		if err := prune(mb, minuteCut); err != nil {
			return err
		}
		return prune(hb, hourCut)
	})
}

// mergeInto adds a to the rollup stored at start (if any) and stores the sum.
func mergeInto(b *bolt.Bucket, start int64, a *agg, keep int) error {
	k := timeKey(start)
	sum := newAgg()
	if v := b.Get(k); v != nil {
		var old rollup
		if err := json.Unmarshal(v, &old); err == nil {
			sum.addRollup(&old)
		} // a corrupt value is replaced rather than blocking every later flush
	}
	sum.addRollup(a.rollup(start, keep))
	v, err := json.Marshal(sum.rollup(start, keep))
	if err != nil {
		return err
	}
	return b.Put(k, v)
}

// prune deletes keys before cut (unix seconds), at most 10000 per call so a
// first run after long downtime does not make one huge transaction.
func prune(b *bolt.Bucket, cut int64) error {
	var old [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(old) < 10000; k, _ = c.Next() {
		if int64(binary.BigEndian.Uint64(k)) >= cut {
			break
		}
		old = append(old, append([]byte(nil), k...)) // k lives in the mmap; copy before deleting
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// read calls f for each rollup of bucket whose start lies in [from, to).
func (st *store) read(bucket []byte, from, to int64, f func(r *rollup)) error {
	return st.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(timeKey(max(from, 0))); k != nil; k, v = c.Next() {
			if int64(binary.BigEndian.Uint64(k)) >= to {
				break
			}
			var r rollup
			if err := json.Unmarshal(v, &r); err != nil {
				continue // skip a corrupt value, keep the rest readable
			}
			f(&r)
		}
		return nil
	})
}

// first returns the start of the oldest rollup in bucket, or -1 when empty.
func (st *store) first(bucket []byte) int64 {
	first := int64(-1)
	st.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucket).Cursor().First(); k != nil {
			first = int64(binary.BigEndian.Uint64(k))
		}
		return nil
	})
	return first
}
