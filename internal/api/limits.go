package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// keyLimit is one API key's share of the server: a request rate and a budget of batch
// bytes in flight, so that one tenant's bulk uploads cannot take the memory and the time
// every other tenant needs.
type keyLimit struct {
	mu  sync.Mutex // rate.Limiter is safe, but Reserve-then-Cancel must not interleave
	lim *rate.Limiter
	// inFlight is the batch bytes this key's requests hold now; max bounds it.
	inFlight atomic.Int64
	max      int64
}

func newKeyLimit(r float64, burst int, maxBytes int64) *keyLimit {
	return &keyLimit{lim: rate.NewLimiter(rate.Limit(r), burst), max: maxBytes}
}

// allow takes one request from the key's rate, or tells how long until one is free.
func (k *keyLimit) allow(now time.Time) (time.Duration, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	res := k.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now) // a refused request must not use up the rate of the next ones
		return d, false
	}
	return 0, true
}

// take reserves n batch bytes; false when they would not fit.
func (k *keyLimit) take(n int64) bool {
	for {
		cur := k.inFlight.Load()
		if cur+n > k.max {
			return false
		}
		if k.inFlight.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

func (k *keyLimit) give(n int64) { k.inFlight.Add(-n) }

// errBatchBytes fails a batch read whose key ran out of batch bytes.
var errBatchBytes = errors.New("the API key's batch bytes in flight are used up")

// budgetReader takes each chunk it reads from the key's budget (a body of unknown length)
// and gives everything back when the request ends.
type budgetReader struct {
	r     io.Reader
	k     *keyLimit
	taken int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		if !b.k.take(int64(n)) {
			return 0, errBatchBytes
		}
		b.taken += int64(n)
	}
	return n, err
}

// batchBody bounds a batch body to MaxBatchBody and to the key's batch bytes in flight: a
// declared length is reserved before a byte is read (413 when it can never fit, 429 with
// Retry-After while other batches of the key hold the budget); an unknown one is reserved
// as it is read. release gives the bytes back.
func (s *Server) batchBody(w http.ResponseWriter, r *http.Request) (io.Reader, func(), bool) {
	k := keyLimitOf(r)
	body := io.Reader(http.MaxBytesReader(w, r.Body, MaxBatchBody))
	if k == nil {
		return body, func() {}, true
	}
	if n := r.ContentLength; n >= 0 {
		if n > k.max {
			writeError(w, http.StatusRequestEntityTooLarge, "body of "+strconv.FormatInt(n, 10)+
				" bytes is more than this API key may have in flight (HERALD_API_MAX_INFLIGHT_BYTES)")
			return nil, nil, false
		}
		if !k.take(n) {
			tooMany(w, time.Second, "this API key has too many batch bytes in flight (HERALD_API_MAX_INFLIGHT_BYTES); retry after Retry-After seconds")
			return nil, nil, false
		}
		return body, func() { k.give(n) }, true
	}
	br := &budgetReader{r: body, k: k}
	return br, func() { k.give(br.taken) }, true
}

// webhookGate bounds the requests of one webhook route in progress (WebhookMaxInFlight):
// their bodies are read before they can be authenticated, so the bound is what an
// anonymous caller can hold. A request beyond it is answered 503 with Retry-After (the
// providers retry), without reading its body.
func (s *Server) webhookGate(source string, h http.HandlerFunc) http.Handler {
	slots := make(chan struct{}, s.cfg.WebhookMaxInFlight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
		default:
			s.webhookMetric(r, source, "busy")
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusServiceUnavailable, "too many webhook requests in progress; retry")
			return
		}
		// A caller that trickles its body holds its slot for HERALD_HTTP_READ_TIMEOUT at most.
		defer func() { <-slots }()
		h(w, r)
	})
}
