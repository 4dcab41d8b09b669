package embedded

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// SnapshotFile is the name, under the store's directory, of the embedded store's snapshot.
const SnapshotFile = "redis-snapshot.json"

// SnapshotInterval is how often, at most, the embedded store writes its snapshot while
// commands arrive: what a crash (not a clean stop) of the process can lose.
const SnapshotInterval = time.Second

// ttlTick is how often the embedded store counts its keys' TTLs down. miniredis can do it on
// every command (ClockTTL), but then each command walks and sorts every key: with a few
// thousand status records that is most of the process's CPU. Herald keeps the truth in the
// values (claims, rate-limit times) and uses TTLs to drop old keys, so a coarse tick is
// enough.
const ttlTick = 100 * time.Millisecond

// Store is a Redis-compatible server (miniredis) in this process, on a loopback port, that
// keeps its data in a snapshot file: restored at start, written at most every
// SnapshotInterval while commands arrive and on Close. A clean stop keeps everything; a
// crash loses at most the last interval.
type Store struct {
	m    *miniredis.Miniredis
	path string
	log  *slog.Logger

	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex // serialises snapshots
	lastCmd int        // command count at the last snapshot
	closed  bool
}

// OpenStore starts the embedded store on a free loopback port, with the data of dir's
// snapshot if there is one. A snapshot that cannot be read is an error (naming the file),
// not an empty store: starting empty would forget which jobs were sent.
func OpenStore(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	s := &Store{m: miniredis.NewMiniRedis(), path: filepath.Join(dir, SnapshotFile), log: log,
		stop: make(chan struct{}), done: make(chan struct{})}
	n, err := s.restore()
	if err != nil {
		return nil, err
	}
	if err := s.m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	s.lastCmd = s.m.CommandCount()
	if n > 0 {
		log.Info("embedded store restored", "keys", n, "snapshot", s.path)
	}
	go s.loop()
	return s, nil
}

// Addr is the host:port the store serves on.
func (s *Store) Addr() string { return s.m.Addr() }

// URL is the redis:// URL of the store.
func (s *Store) URL() string { return "redis://" + s.m.Addr() }

// Close writes the snapshot and stops the store. Call it after the last client is done, so
// that the snapshot holds every write.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	err := s.Snapshot()
	s.m.Close()
	return err
}

// loop counts TTLs down and writes the snapshot while commands arrive.
func (s *Store) loop() {
	defer close(s.done)
	tick := time.NewTicker(ttlTick)
	defer tick.Stop()
	last, lastSnap := time.Now(), time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			s.m.FastForward(now.Sub(last))
			last = now
			if now.Sub(lastSnap) < SnapshotInterval {
				continue
			}
			lastSnap = now
			if err := s.snapshotIfChanged(); err != nil {
				s.log.Error("embedded store snapshot not written", "snapshot", s.path, "err", err)
			}
		}
	}
}

func (s *Store) snapshotIfChanged() error {
	if s.m.CommandCount() == s.lastCmd {
		return nil
	}
	return s.Snapshot()
}

// snapshot is the file's content: every key of database 0 with its remaining TTL, as of
// SavedAt.
type snapshot struct {
	SavedAt time.Time `json:"saved_at"`
	Keys    []entry   `json:"keys"`
}

type entry struct {
	Key   string            `json:"k"`
	Type  string            `json:"t"`
	TTLMS int64             `json:"ttl_ms,omitempty"`
	Str   string            `json:"s,omitempty"`
	Hash  map[string]string `json:"h,omitempty"`
	List  []string          `json:"l,omitempty"`
	Set   []string          `json:"m,omitempty"`
	ZSet  []zmember         `json:"z,omitempty"`
}

type zmember struct {
	Member string  `json:"m"`
	Score  float64 `json:"s"`
}

// Snapshot writes every key to the snapshot file now (through a temporary file renamed
// over it, so a crash while writing leaves the previous snapshot whole). Keys are read one
// at a time: a snapshot taken while clients write is consistent per key, and the one Close
// writes, after the last client, is whole.
func (s *Store) Snapshot() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	count := s.m.CommandCount()
	snap := snapshot{SavedAt: time.Now().UTC()}
	for _, k := range s.m.Keys() {
		e, ok, err := s.read(k)
		if err != nil {
			return err
		}
		if ok {
			snap.Keys = append(snap.Keys, e)
		}
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("embedded store snapshot: %w", err)
	}
	if err := writeFileSync(s.path, b); err != nil {
		return fmt.Errorf("embedded store snapshot %s: %w", s.path, err)
	}
	s.lastCmd = count
	return nil
}

// read returns key k as a snapshot entry; ok is false when it went away meanwhile.
func (s *Store) read(k string) (entry, bool, error) {
	m := s.m
	e := entry{Key: k, Type: m.Type(k), TTLMS: m.TTL(k).Milliseconds()}
	var err error
	switch e.Type {
	case "":
		return e, false, nil
	case "string":
		e.Str, err = m.Get(k)
	case "hash":
		var fields []string
		fields, err = m.HKeys(k)
		e.Hash = make(map[string]string, len(fields))
		for _, f := range fields {
			e.Hash[f] = m.HGet(k, f)
		}
	case "list":
		e.List, err = m.List(k)
	case "set":
		e.Set, err = m.Members(k)
	case "zset":
		var members []string
		members, err = m.ZMembers(k)
		for _, mem := range members {
			sc, zerr := m.ZScore(k, mem)
			if zerr != nil {
				err = zerr
				break
			}
			e.ZSet = append(e.ZSet, zmember{Member: mem, Score: sc})
		}
	default:
		// Herald stores none of the other types; saying so beats silently dropping a key.
		return e, false, fmt.Errorf("embedded store snapshot: key %q is a %s, which the snapshot does not keep", k, e.Type)
	}
	if errors.Is(err, miniredis.ErrKeyNotFound) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("embedded store snapshot: key %q: %w", k, err)
	}
	return e, true, nil
}

// restore loads the snapshot file, if any, into the (not yet started) store, counting the
// time since it was saved off every TTL. It returns how many keys it restored.
func (s *Store) restore() (int, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("embedded store snapshot %s: %w", s.path, err)
	}
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return 0, fmt.Errorf("embedded store snapshot %s: not a snapshot (%w); move it away to start empty", s.path, err)
	}
	gone := time.Since(snap.SavedAt)
	n := 0
	for _, e := range snap.Keys {
		ttl := time.Duration(e.TTLMS) * time.Millisecond
		if e.TTLMS > 0 && ttl <= gone {
			continue // expired while the process was stopped
		}
		if err := s.put(e); err != nil {
			return 0, fmt.Errorf("embedded store snapshot %s: key %q: %w", s.path, e.Key, err)
		}
		if e.TTLMS > 0 {
			s.m.SetTTL(e.Key, ttl-gone)
		}
		n++
	}
	return n, nil
}

func (s *Store) put(e entry) error {
	m := s.m
	var err error
	switch e.Type {
	case "string":
		err = m.Set(e.Key, e.Str)
	case "hash":
		fv := make([]string, 0, 2*len(e.Hash))
		for f, v := range e.Hash {
			fv = append(fv, f, v)
		}
		m.HSet(e.Key, fv...)
	case "list":
		_, err = m.RPush(e.Key, e.List...)
	case "set":
		_, err = m.SAdd(e.Key, e.Set...)
	case "zset":
		for _, z := range e.ZSet {
			if _, err = m.ZAdd(e.Key, z.Score, z.Member); err != nil {
				break
			}
		}
	default:
		err = fmt.Errorf("unknown type %q", e.Type)
	}
	return err
}

// writeFileSync replaces path with b durably: a temporary file beside it, synced, renamed
// over it, and the directory synced.
func writeFileSync(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
