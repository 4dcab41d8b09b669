package sim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// Sign returns the X-Hub-Signature-256 header value Meta sends with a webhook:
// "sha256=" and the hex HMAC-SHA256 of the raw body keyed with the app secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Delivery tuning. Batches follow Meta, which also packs several statuses into one POST.
const (
	maxBatch    = 100
	batchWindow = 20 * time.Millisecond
	stageQueue  = 1 << 15 // events waiting for their next status, per stage
	shardQueue  = 1 << 12 // statuses or callbacks waiting for their POST, per shard
	numShards   = 4
	maxAttempts = 5
	// maxSlowAttempts bounds the tries of a call that timed out: a receiver too busy to answer
	// in time (herald dev under a large batch) is not one that refuses, so it gets more of
	// them before a report is dropped, as Meta keeps retrying a slow endpoint.
	maxSlowAttempts = 20
	firstBackoff    = 50 * time.Millisecond
	maxBackoff      = time.Second
	dropLogEvery    = time.Second
	errorCodesHref  = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
)

// Event kinds: what an accepted send reports back, and how.
const (
	kindWhite uint8 = iota // Cloud API status webhooks, batched and signed
	kindSMS                // Kannel dlr-url GETs
	kindGrey               // GREEN-API outgoingMessageStatus POSTs
)

// step is one report of an accepted send: a status name (white, grey) or a Kannel DLR type.
type step struct {
	status string
	dlr    int
}

// stepTable holds the report sequences, computed once: index 0 is success, 1 an Async
// rule's failure.
type stepTable struct {
	white [2][]step
	sms   [2][32][]step // by dlr-mask
	max   int
}

func newStepTable(statuses []string) stepTable {
	var t stepTable
	hasSent := false
	for _, st := range statuses {
		t.white[0] = append(t.white[0], step{status: st})
		hasSent = hasSent || st == "sent"
	}
	if hasSent {
		t.white[1] = append(t.white[1], step{status: "sent"})
	}
	t.white[1] = append(t.white[1], step{status: "failed"})
	for mask := range 32 {
		for fail := range 2 {
			var steps []step
			if mask&8 != 0 {
				steps = append(steps, step{dlr: 8})
			}
			switch {
			case fail == 0 && mask&1 != 0:
				steps = append(steps, step{dlr: 1})
			case fail == 1 && mask&2 != 0:
				steps = append(steps, step{dlr: 2})
			case fail == 1 && mask&16 != 0:
				steps = append(steps, step{dlr: 16})
			}
			t.sms[fail][mask] = steps
		}
	}
	t.max = max(len(t.white[0]), len(t.white[1]), 2)
	return t
}

// event is an accepted send whose reports are pending.
type event struct {
	kind  uint8
	shard uint32
	steps []step
	due   time.Time
	code  int // failure code of an Async rule, 0 on success

	msgID, to, jobID  string
	phoneID, category string // white
	instance          string // grey
	dlrURL, from      string // sms
	text              string // sms: the start of the text, for %A
}

// pendingStatus is one Cloud API status waiting for its batch.
type pendingStatus struct {
	phoneID, msgID, status, to, jobID, category string
	ts                                          int64
	code                                        int
}

// callback is one DLR GET, grey POST, or Cloud API quality or account update POST.
type callback struct {
	method, url string
	body        []byte
	// sig is the X-Hub-Signature-256 of a Cloud API webhook, bearer the token of a grey
	// notification ("": none).
	sig, bearer string
	// event counts the call among Cloud API webhook events, not callbacks.
	event bool
}

func (s *Sim) initQueues() {
	s.stages = make([]chan *event, s.steps.max)
	for i := range s.stages {
		s.stages[i] = make(chan *event, stageQueue)
	}
	s.whShards = make([]chan pendingStatus, numShards)
	s.cbShards = make([]chan callback, numShards)
	for i := range numShards {
		s.whShards[i] = make(chan pendingStatus, shardQueue)
		s.cbShards[i] = make(chan callback, shardQueue)
	}
}

// enqueue hands an accepted send's reports to the background pipeline without blocking the
// request: when the queue is full the reports are dropped, counted and logged.
func (s *Sim) enqueue(ev *event) {
	if len(ev.steps) == 0 {
		return
	}
	ev.shard = s.shardSeq.Add(1) % numShards
	ev.due = time.Now().Add(s.cfg.StatusDelay)
	select {
	case s.stages[0] <- ev:
	default:
		s.dropped(ev, 0, "queue full")
	}
}

// dropped counts the reports of ev from step i on as lost and warns, at most once a second.
func (s *Sim) dropped(ev *event, from int, why string) {
	n := int64(len(ev.steps) - from)
	if ev.kind == kindWhite {
		s.deliver.webhookDropped.Add(n)
	} else {
		s.deliver.callbackDropped.Add(n)
	}
	s.warnDrop(n, why)
}

func (s *Sim) warnDrop(n int64, why string) {
	total := s.dropCount.Add(n)
	now := time.Now().UnixNano()
	last := s.lastDrop.Load()
	if now-last < int64(dropLogEvery) || !s.lastDrop.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("sim: dropping status reports", "reason", why, "dropped_total", total)
}

// Start runs the goroutines that deliver status webhooks, Kannel delivery reports and grey
// callbacks. They stop when ctx is done; what is still queued then is counted as dropped.
// Only the first call has an effect.
func (s *Sim) Start(ctx context.Context) {
	if !s.started.CompareAndSwap(false, true) {
		return
	}
	if s.cfg.StatusDelay > 0 {
		for k := range s.stages {
			go s.runStage(ctx, k)
		}
	} else {
		go s.runStage(ctx, 0)
	}
	for i := range numShards {
		go s.runWebhookShard(ctx, s.whShards[i])
		go s.runCallbackShard(ctx, s.cbShards[i])
	}
}

// runStage emits step k of each event once it is due and passes the event on to stage k+1.
// Due times within a stage grow with arrival order, so waiting for the head is enough.
// Without a StatusDelay, stage 0 emits every step at once.
func (s *Sim) runStage(ctx context.Context, k int) {
	in := s.stages[k]
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var ev *event
		select {
		case <-ctx.Done():
			s.drainStage(k)
			return
		case ev = <-in:
		}
		if k >= len(ev.steps) {
			continue
		}
		if d := time.Until(ev.due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				timer.Stop()
				s.dropped(ev, k, "shutting down")
				s.drainStage(k)
				return
			case <-timer.C:
			}
		}
		if s.cfg.StatusDelay <= 0 {
			for i := k; i < len(ev.steps); i++ {
				if !s.emit(ctx, ev, i) {
					s.drainStage(k)
					return
				}
			}
			continue
		}
		if !s.emit(ctx, ev, k) {
			s.drainStage(k)
			return
		}
		if k+1 < len(ev.steps) {
			ev.due = ev.due.Add(s.cfg.StatusDelay)
			select {
			case s.stages[k+1] <- ev:
			case <-ctx.Done():
				s.dropped(ev, k+1, "shutting down")
				s.drainStage(k)
				return
			}
		}
	}
}

func (s *Sim) drainStage(k int) {
	for {
		select {
		case ev := <-s.stages[k]:
			if k < len(ev.steps) {
				s.dropped(ev, k, "shutting down")
			}
		default:
			return
		}
	}
}

// emit queues step i of ev for delivery; it reports false when ctx ended first.
func (s *Sim) emit(ctx context.Context, ev *event, i int) bool {
	st := ev.steps[i]
	now := time.Now()
	switch ev.kind {
	case kindWhite:
		p := pendingStatus{
			phoneID: ev.phoneID, msgID: ev.msgID, status: st.status, to: ev.to,
			jobID: ev.jobID, category: ev.category, ts: now.Unix(),
		}
		if st.status == "failed" {
			p.code = ev.code
		}
		select {
		case s.whShards[ev.shard] <- p:
			return true
		case <-ctx.Done():
			s.dropped(ev, i, "shutting down")
			return false
		}
	case kindSMS:
		return s.emitCallback(ctx, ev, i, callback{method: http.MethodGet, url: expandDLR(ev, st.dlr, now)})
	default:
		return s.emitCallback(ctx, ev, i, callback{
			method: http.MethodPost, url: s.cfg.GreyWebhookURL, body: s.greyStatus(ev, st.status, now),
			bearer: s.greyWebhookTokenOf(ev.instance),
		})
	}
}

func (s *Sim) emitCallback(ctx context.Context, ev *event, i int, cb callback) bool {
	select {
	case s.cbShards[ev.shard] <- cb:
		return true
	case <-ctx.Done():
		s.dropped(ev, i, "shutting down")
		return false
	}
}

// runWebhookShard batches the statuses of its shard: a POST carries up to maxBatch statuses
// and leaves at most batchWindow after its first one. One shard posts serially, and a message
// always maps to one shard, so its statuses arrive in order.
func (s *Sim) runWebhookShard(ctx context.Context, in chan pendingStatus) {
	batch := make([]pendingStatus, 0, maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		timer.Stop()
		if len(batch) > 0 {
			s.postStatuses(ctx, batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case <-ctx.Done():
			n := int64(len(batch) + len(in))
			for len(in) > 0 {
				<-in
			}
			if n > 0 {
				s.deliver.webhookDropped.Add(n)
				s.warnDrop(n, "shutting down")
			}
			return
		case p := <-in:
			batch = append(batch, p)
			if len(batch) == 1 {
				timer.Reset(batchWindow)
			}
			if len(batch) >= maxBatch {
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

// Webhook payload, shaped like Meta's (fixtures/whatsapp/webhooks/message_status.json).
type (
	whEnvelope struct {
		Object string    `json:"object"`
		Entry  []whEntry `json:"entry"`
	}
	whEntry struct {
		ID      string     `json:"id"`
		Changes []whChange `json:"changes"`
	}
	whChange struct {
		Value whValue `json:"value"`
		Field string  `json:"field"`
	}
	whValue struct {
		MessagingProduct string     `json:"messaging_product"`
		Metadata         whMetadata `json:"metadata"`
		Statuses         []whStatus `json:"statuses"`
	}
	whMetadata struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	}
	whStatus struct {
		ID                    string          `json:"id"`
		Status                string          `json:"status"`
		Timestamp             string          `json:"timestamp"`
		RecipientID           string          `json:"recipient_id"`
		BizOpaqueCallbackData string          `json:"biz_opaque_callback_data,omitempty"`
		Conversation          *whConversation `json:"conversation,omitempty"`
		Pricing               *whPricing      `json:"pricing,omitempty"`
		Errors                []whError       `json:"errors,omitempty"`
	}
	whConversation struct {
		ID                  string `json:"id"`
		ExpirationTimestamp string `json:"expiration_timestamp,omitempty"`
		Origin              struct {
			Type string `json:"type"`
		} `json:"origin"`
	}
	whPricing struct {
		Billable     bool   `json:"billable"`
		PricingModel string `json:"pricing_model"`
		Category     string `json:"category"`
	}
	whError struct {
		Code      int    `json:"code"`
		Title     string `json:"title"`
		Message   string `json:"message"`
		ErrorData struct {
			Details string `json:"details"`
		} `json:"error_data"`
		Href string `json:"href"`
	}
)

func (p pendingStatus) toWebhook() whStatus {
	ts := strconv.FormatInt(p.ts, 10)
	st := whStatus{ID: p.msgID, Status: p.status, Timestamp: ts, RecipientID: p.to, BizOpaqueCallbackData: p.jobID}
	if p.status == "failed" {
		info := CodeInfo(p.code)
		e := whError{Code: p.code, Title: info.Title, Message: info.Title, Href: errorCodesHref}
		e.ErrorData.Details = info.Details
		st.Errors = []whError{e}
		return st
	}
	conv := &whConversation{ID: conversationID(p.msgID)}
	conv.Origin.Type = p.category
	if p.status == "sent" {
		conv.ExpirationTimestamp = strconv.FormatInt(p.ts+24*3600, 10)
	}
	st.Conversation = conv
	st.Pricing = &whPricing{Billable: true, PricingModel: "CBP", Category: p.category}
	return st
}

// conversationID derives a stable conversation id from the message id.
func conversationID(msgID string) string {
	sum := sha256.Sum256([]byte(msgID))
	return hex.EncodeToString(sum[:15])
}

// postStatuses sends one batch: one POST per app secret (numbers of different apps never
// share one), an entry per WABA, a change per business phone number; signed, with retries.
// A message's statuses are all in one group, so they still arrive in order.
func (s *Sim) postStatuses(ctx context.Context, batch []pendingStatus) {
	type post struct {
		secret   string
		entries  []whEntry
		statuses int
	}
	var posts []*post
	for _, p := range batch {
		secret, waba := s.appSecretOf(p.phoneID), s.wabaOf(p.phoneID)
		i := slices.IndexFunc(posts, func(x *post) bool { return x.secret == secret })
		if i < 0 {
			posts = append(posts, &post{secret: secret})
			i = len(posts) - 1
		}
		ps := posts[i]
		ps.statuses++
		e := slices.IndexFunc(ps.entries, func(x whEntry) bool { return x.ID == waba })
		if e < 0 {
			ps.entries = append(ps.entries, whEntry{ID: waba})
			e = len(ps.entries) - 1
		}
		entry := &ps.entries[e]
		c := slices.IndexFunc(entry.Changes, func(x whChange) bool { return x.Value.Metadata.PhoneNumberID == p.phoneID })
		if c < 0 {
			entry.Changes = append(entry.Changes, whChange{Field: "messages", Value: whValue{
				MessagingProduct: "whatsapp",
				Metadata:         whMetadata{DisplayPhoneNumber: s.displayOf(p.phoneID), PhoneNumberID: p.phoneID},
				Statuses:         make([]whStatus, 0, len(batch)),
			}})
			c = len(entry.Changes) - 1
		}
		entry.Changes[c].Value.Statuses = append(entry.Changes[c].Value.Statuses, p.toWebhook())
	}
	for _, ps := range posts {
		s.postSigned(ctx, ps.secret, whEnvelope{Object: "whatsapp_business_account", Entry: ps.entries}, ps.statuses)
	}
}

// postSigned POSTs one status webhook body signed with secret, counting its n statuses.
func (s *Sim) postSigned(ctx context.Context, secret string, env whEnvelope, n int) {
	body, err := json.Marshal(env)
	if err != nil { // cannot happen: every field is a plain string or number
		s.log.Error("sim: encoding a status webhook", "error", err)
		return
	}
	sig := Sign(secret, body)
	err = s.retry(ctx, &s.deliver.webhookRetries, func() error {
		return s.do(ctx, http.MethodPost, s.cfg.WebhookURL, body, sig, "")
	})
	if err != nil {
		s.deliver.webhookDropped.Add(int64(n))
		s.log.Error("sim: status webhook not delivered", "statuses", n, "attempts", maxAttempts, "error", err)
		return
	}
	s.deliver.webhookPosts.Add(1)
	s.deliver.webhookStatuses.Add(int64(n))
}

// runCallbackShard makes the DLR and grey calls of its shard, one at a time, in order.
func (s *Sim) runCallbackShard(ctx context.Context, in chan callback) {
	for {
		select {
		case <-ctx.Done():
			n := int64(len(in))
			for len(in) > 0 {
				<-in
			}
			if n > 0 {
				s.deliver.callbackDropped.Add(n)
				s.warnDrop(n, "shutting down")
			}
			return
		case cb := <-in:
			retries, dropped, done := &s.deliver.callbackRetries, &s.deliver.callbackDropped, &s.deliver.callbackCalls
			if cb.event {
				retries, dropped, done = &s.deliver.webhookRetries, &s.deliver.webhookDropped, &s.deliver.webhookEvents
			}
			err := s.retry(ctx, retries, func() error {
				return s.do(ctx, cb.method, cb.url, cb.body, cb.sig, cb.bearer)
			})
			if err != nil {
				dropped.Add(1)
				s.log.Error("sim: callback not delivered", "method", cb.method, "attempts", maxAttempts, "error", err)
				continue
			}
			done.Add(1)
		}
	}
}

// timedOut tells whether a call failed because the receiver did not answer in time.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// retry runs call with exponential backoff until it succeeds, maxAttempts calls have failed
// otherwise than by a timeout, or maxSlowAttempts have timed out.
func (s *Sim) retry(ctx context.Context, retries *atomic.Int64, call func() error) error {
	backoff := firstBackoff
	var err error
	slow := 0 // attempts that timed out
	for attempt := 1; ; attempt++ {
		if err = call(); err == nil {
			return nil
		}
		if timedOut(err) {
			slow++
		}
		if attempt-slow >= maxAttempts || slow >= maxSlowAttempts || ctx.Err() != nil {
			return err
		}
		retries.Add(1)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after: %w)", ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// do makes one call and treats any non-2xx answer as a failure. sig is sent as
// X-Hub-Signature-256, bearer as the Authorization token; "" sends neither.
func (s *Sim) do(ctx context.Context, method, target string, body []byte, sig, bearer string) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return fmt.Errorf("building request: %w", stripURL(err))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("calling the receiver: %w", stripURL(err))
	}
	// Drain so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

// stripURL drops the URL from a *url.Error: a DLR URL can carry the recipient's number (%p),
// and numbers stay out of errors and logs.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
