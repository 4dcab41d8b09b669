// Package smpp is Herald's SMPP 3.4 SMS driver (HERALD_SMS_DRIVER=smpp): one transceiver
// bind to an SMSC, built on github.com/linxGnu/gosmpp, that submits each SMS as one
// submit_sm per part and turns the SMSC's delivery receipts into status reports.
//
// Text handling matches the other sms drivers: GSM-7 (data_coding 0, unpacked septets) when
// every character fits, else UCS-2 (data_coding 8); parts of 160/153 septets or 70/67 UTF-16
// units exactly as sms.Analyze counts them, each part of a long text carrying an 8-bit
// reference concatenation UDH. gosmpp's own splitter is not used: it cuts unpacked GSM-7 at
// 134 characters and ignores escape sequences and surrogate pairs, which would disagree
// with the segment count Herald charges and caps.
//
// Send returns *provider.Error for every failure the worker acts on (the submit_sm_resp
// command_status table is documented on Client.Send) and a wrapped ctx.Err() when the
// caller's context ended.
//
// The bind is kept by the Client: when the link drops (read or write error, unbind from the
// SMSC) the sends waiting on it fail at once as Retry and a background loop binds again,
// first immediately, then with a backoff up to 30s. gosmpp's own rebind loop is not used: it
// sleeps with no way to stop it and can leave a link bound during Close running.
package smpp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linxGnu/gosmpp"
	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"

	"github.com/herald-notify/herald/internal/phone"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/status"
)

// Defaults applied by Dial to zero Config fields.
const (
	DefaultEnquireLink     = 30 * time.Second
	DefaultWriteTimeout    = 10 * time.Second
	DefaultResponseTimeout = 10 * time.Second
)

// minBindTimeout is the least time a bind_resp is waited for.
const minBindTimeout = 5 * time.Second

// Rebind backoff: the first attempt after a drop is immediate, then these bounds.
const (
	rebindMinDelay = 250 * time.Millisecond
	rebindMaxDelay = 30 * time.Second
)

// Sentinel errors, wrapped in the Retry *provider.Error Send returns.
var (
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("smpp: client closed")
	// ErrNoLink: the Client is between binds (the link dropped and it is binding again).
	ErrNoLink = errors.New("smpp: not bound to the SMSC")
	// ErrLinkLost: the link dropped while a submit_sm waited for its answer; the SMSC may or
	// may not have taken the part.
	ErrLinkLost = errors.New("smpp: link to the SMSC lost")
)

// Config is an SMPP account: HERALD_SMS_SMPP_ADDR, HERALD_SMS_SMPP_SYSTEM_ID,
// HERALD_SMS_SMPP_PASSWORD and the shared HERALD_SMS_* settings.
type Config struct {
	// Addr is the SMSC's host:port.
	Addr string
	// SystemID, Password and SystemType are the bind credentials; Password is never logged.
	SystemID, Password, SystemType string
	// From is the source address: an alphanumeric sender (TON 5, at most 11 GSM characters),
	// "+<digits>" (TON 1 international) or bare digits such as a short code (TON 0, NPI 1);
	// empty lets the SMSC use the account's default.
	From string
	// MaxSegments is the longest SMS sent, in parts (HERALD_SMS_MAX_SEGMENTS); 0 means
	// sms.DefaultMaxSegments. A longer text is a Job-kind error wrapping
	// sms.ErrTooManySegments.
	MaxSegments int
	// EnquireLink is the keepalive interval; 0 means DefaultEnquireLink.
	EnquireLink time.Duration
	// ReadTimeout is how long the link may stay silent before it counts as dropped; it must
	// exceed EnquireLink (the SMSC answers every enquire_link). 0 means twice EnquireLink.
	ReadTimeout time.Duration
	// WriteTimeout bounds one PDU write; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// ResponseTimeout bounds the wait for a submit_sm_resp, and for a bind_resp with at
	// least 5s (a bind may wait on the SMSC's authentication); 0 means
	// DefaultResponseTimeout. A submit_sm unanswered in time is a Retry with code "timeout".
	ResponseTimeout time.Duration
	// Logger receives link events; nil discards them. Numbers are masked (phone.Mask).
	Logger *slog.Logger
	// OnReport receives final delivery receipts: MessageID "smpp:<SMSC message id>", State
	// status.Delivered or status.Failed (Code "smpp_UNDELIV" and so on). It runs on the
	// link's reader before the deliver_sm is answered, so a receipt is only acknowledged
	// once handled; keep it short. Its ctx ends after ResponseTimeout or at Close. nil asks
	// the SMSC for no receipts.
	OnReport func(ctx context.Context, r status.Report)
}

// withDefaults validates cfg and fills its zero fields.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Addr == "" {
		return cfg, errors.New("smpp: no SMSC address")
	}
	if cfg.MaxSegments <= 0 {
		cfg.MaxSegments = sms.DefaultMaxSegments
	}
	if cfg.MaxSegments > 255 {
		return cfg, fmt.Errorf("smpp: MaxSegments %d exceeds the 255 parts a UDH can number", cfg.MaxSegments)
	}
	if cfg.EnquireLink <= 0 {
		cfg.EnquireLink = DefaultEnquireLink
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 2 * cfg.EnquireLink
	}
	if cfg.ReadTimeout <= cfg.EnquireLink {
		return cfg, fmt.Errorf("smpp: ReadTimeout %s must exceed EnquireLink %s", cfg.ReadTimeout, cfg.EnquireLink)
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.ResponseTimeout <= 0 {
		cfg.ResponseTimeout = DefaultResponseTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Client is a transceiver bind to one SMSC. It is safe for concurrent use.
type Client struct {
	cfg  Config
	src  pdu.Address
	log  *slog.Logger
	refs atomic.Uint32 // concatenation references; the low 8 bits are sent

	mu     sync.Mutex
	cur    *link // the bound link, nil between binds
	last   *link // the latest link, closed before the next bind
	closed bool

	lost chan struct{} // buffered 1: wakes the rebind loop
	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// link is one bound TCP connection.
type link struct {
	sess *gosmpp.Session
	dead bool                  // guarded by Client.mu
	wait map[int32]chan answer // submit_sm sequence number -> waiting Send; guarded by Client.mu
}

// answer is what a waiting submit gets: the SMSC's reply or the link's end.
type answer struct {
	status data.CommandStatusType
	nack   bool
	msgID  string
	err    error
}

var _ interface {
	Send(context.Context, sms.Message) (provider.Result, error)
} = (*Client)(nil)

// Dial binds a transceiver to cfg.Addr and keeps it bound until Close. ctx bounds the first
// bind only; a bind the SMSC refuses (wrong password, ...) or cannot be reached is an error
// here, while later drops are rebound in the background.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	src, err := sourceAddr(cfg.From)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:  cfg,
		src:  src,
		log:  cfg.Logger.With("smsc", cfg.Addr, "system_id", cfg.SystemID),
		lost: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	c.refs.Store(uint32(time.Now().UnixNano())) // a restart does not reuse the last references
	if err := c.bind(ctx); err != nil {
		return nil, err
	}
	c.log.Info("smpp: bound as transceiver")
	c.wg.Add(1)
	go c.rebindLoop()
	return c, nil
}

// bind opens and binds one link and makes it current.
func (c *Client) bind(ctx context.Context) error {
	l := &link{wait: make(map[int32]chan answer)}
	timeout := max(c.cfg.ResponseTimeout, minBindTimeout)
	var stop func() bool
	dialer := func(addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		// gosmpp waits for the bind_resp with no deadline and no context: bound it here.
		// Once bound, gosmpp sets its own read and write deadline before every I/O.
		_ = conn.SetDeadline(time.Now().Add(timeout))
		stop = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
		return conn, nil
	}
	auth := gosmpp.Auth{SMSC: c.cfg.Addr, SystemID: c.cfg.SystemID, Password: c.cfg.Password, SystemType: c.cfg.SystemType}
	settings := gosmpp.Settings{
		EnquireLink:  c.cfg.EnquireLink,
		ReadTimeout:  c.cfg.ReadTimeout,
		WriteTimeout: c.cfg.WriteTimeout,
		OnAllPDU:     func(p pdu.PDU) (pdu.PDU, bool) { return c.handle(l, p) },
		OnReceivingError: func(err error) {
			c.log.Debug("smpp: read failed", "err", err)
		},
		OnSubmitError: func(_ pdu.PDU, err error) {
			c.log.Warn("smpp: write failed", "err", err)
		},
		OnClosed: func(s gosmpp.State) { c.linkLost(l, s) },
	}
	sess, err := gosmpp.NewSession(gosmpp.TRXConnector(dialer, auth), settings, 0) // 0: we rebind
	if stop != nil && !stop() {
		// ctx ended during the bind and broke the connection.
		if sess != nil {
			_ = sess.Close()
		}
		return fmt.Errorf("smpp: bind to %s: %w", c.cfg.Addr, ctx.Err())
	}
	if err != nil {
		// gosmpp's errors carry the command_status or the network error, never the password.
		return fmt.Errorf("smpp: bind to %s as %q: %w", c.cfg.Addr, c.cfg.SystemID, err)
	}
	c.mu.Lock()
	l.sess = sess
	if c.closed {
		c.mu.Unlock()
		_ = sess.Close()
		return ErrClosed
	}
	c.last = l
	if !l.dead {
		c.cur = l
	}
	c.mu.Unlock()
	return nil
}

// linkLost fails every submit waiting on l and wakes the rebind loop; it runs once per link
// (gosmpp may report both halves of a connection closing).
func (c *Client) linkLost(l *link, s gosmpp.State) {
	c.mu.Lock()
	if l.dead {
		c.mu.Unlock()
		return
	}
	l.dead = true
	if c.cur == l {
		c.cur = nil
	}
	err := ErrLinkLost
	if c.closed {
		err = ErrClosed
	}
	for seq, ch := range l.wait {
		delete(l.wait, seq)
		ch <- answer{err: err}
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	c.log.Warn("smpp: link lost, binding again", "state", s.String())
	select {
	case c.lost <- struct{}{}:
	default:
	}
}

// rebindLoop binds again whenever the current link is lost, until Close.
func (c *Client) rebindLoop() {
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // a bind in progress ends at Close
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-c.done:
			return
		case <-c.lost:
		}
		c.rebind(ctx)
	}
}

// rebind binds until a link is current or the Client is closed.
func (c *Client) rebind(ctx context.Context) {
	var delay time.Duration
	for attempt := 1; ; attempt++ {
		c.mu.Lock()
		if c.closed || c.cur != nil {
			c.mu.Unlock()
			return
		}
		old := c.last
		c.last = nil
		c.mu.Unlock()
		if old != nil {
			_ = old.sess.Close() // its connection is already broken; release gosmpp's side
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if err := c.bind(ctx); err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			delay = min(max(2*delay, rebindMinDelay), rebindMaxDelay)
			c.log.Warn("smpp: bind failed", "attempt", attempt, "retry_in", delay, "err", err)
			continue
		}
		c.log.Info("smpp: bound again", "attempt", attempt)
		delay = 0
	}
}

// Close unbinds and stops rebinding. Sends waiting on the link fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	l := c.last
	c.cur, c.last = nil, nil
	close(c.done)
	c.mu.Unlock()
	var err error
	if l != nil {
		err = l.sess.Close()
	}
	c.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil // the link had already dropped
	}
	return err
}

// Send submits m, one submit_sm per part, each waiting for its submit_sm_resp. A receipt is
// asked for on the last part only (when OnReport is set), so it names Result.MessageID:
// "smpp:<message_id of the last part>". Result.Segments is the part count.
//
// A part refused or unanswered fails the whole Send; parts already accepted stay sent, so a
// retry may show the recipient a first part twice, as with any SMS gateway. Failures:
//
//	Job      invalid_message (empty or invalid text, not an E.164 number),
//	         too_many_segments (wraps sms.ErrTooManySegments), ESME_RINVMSGLEN
//	Channel  ESME_RINVDSTADR: the SMSC cannot route this number
//	Sender   ESME_RINVSRCADR/SRCTON/SRCNPI (From refused), ESME_RINVDSTTON/DSTNPI,
//	         ESME_RINVESMCLASS, ESME_RINVREGDLVFLG, ESME_RINVSERTYP, ESME_RINVSYSTYP,
//	         ESME_RINVDFTMSGID, ESME_RPROVNOTALLWD: the account or our addressing is wrong
//	Retry    ESME_RTHROTTLED (After 1s), ESME_RMSGQFUL (After 5s), ESME_RSYSERR,
//	         ESME_RSUBMITFAIL, ESME_RINVBNDSTS, ESME_RALYBND, ESME_RUNKNOWNERR, any status
//	         not listed (Code "ESME_0x%08X" when unnamed), generic_nack, "timeout" (no
//	         submit_sm_resp within ResponseTimeout), "connection" (ErrLinkLost), "no_link"
//	         (ErrNoLink, rebinding), "closed" (ErrClosed)
//
// Codes of command_status failures are the SMPP names ("ESME_RTHROTTLED").
func (c *Client) Send(ctx context.Context, m sms.Message) (provider.Result, error) {
	to, ok := e164(m.To)
	if !ok {
		return provider.Result{}, invalid("recipient is not an E.164 number")
	}
	enc, parts, err := checkText(m, c.cfg.MaxSegments)
	if err != nil {
		return provider.Result{}, err
	}
	dst, err := pdu.NewAddressWithTonNpiAddr(tonInternational, npiISDN, to)
	if err != nil {
		return provider.Result{}, invalid("recipient is not an E.164 number")
	}
	ref := byte(c.refs.Add(1))
	var id string
	for i, part := range parts {
		sm, err := c.submitSM(dst, part, enc, ref, i+1, len(parts))
		if err != nil {
			return provider.Result{}, err
		}
		if id, err = c.submit(ctx, sm); err != nil {
			var pe *provider.Error
			if errors.As(err, &pe) && len(parts) > 1 {
				pe.Reason = fmt.Sprintf("part %d of %d: %s", i+1, len(parts), pe.Reason)
			}
			c.log.Debug("smpp: submit failed", "to", phone.Mask("+"+to), "part", i+1, "parts", len(parts), "err", err)
			return provider.Result{}, err
		}
	}
	c.log.Debug("smpp: submitted", "to", phone.Mask("+"+to), "job_id", m.JobID, "message_id", id, "parts", len(parts), "encoding", enc.String())
	return provider.Result{MessageID: "smpp:" + id, Segments: len(parts)}, nil
}

// submitSM builds part seq (1-based) of total.
func (c *Client) submitSM(dst pdu.Address, part string, enc sms.Encoding, ref byte, seq, total int) (*pdu.SubmitSM, error) {
	b, coding, err := encodePart(part, enc, total > 1)
	if err != nil {
		return nil, err
	}
	sm := pdu.NewSubmitSM().(*pdu.SubmitSM) // a fresh sequence number per part
	sm.SourceAddr = c.src
	sm.DestAddr = dst
	if err := sm.Message.SetMessageDataWithEncoding(b, coding); err != nil {
		return nil, invalid(fmt.Sprintf("SMS part: %v", err))
	}
	if total > 1 {
		sm.Message.SetUDH(pdu.UDH{pdu.NewIEConcatMessage(byte(total), byte(seq), ref)})
		sm.EsmClass |= data.SM_UDH_GSM
	}
	if c.cfg.OnReport != nil && seq == total {
		sm.RegisteredDelivery = data.SM_SMSC_RECEIPT_REQUESTED
	}
	return sm, nil
}

// submit writes sm on the current link and waits for its answer; it returns the SMSC's
// message id.
func (c *Client) submit(ctx context.Context, sm *pdu.SubmitSM) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("smpp: %w", err)
	}
	seq := sm.GetSequenceNumber()
	ch := make(chan answer, 1) // one sender: whoever removes seq from wait
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", &provider.Error{Kind: provider.Retry, Code: "closed", Reason: "SMPP client closed", Err: ErrClosed}
	}
	l := c.cur
	if l == nil {
		c.mu.Unlock()
		return "", &provider.Error{Kind: provider.Retry, Code: "no_link", Reason: "not bound to the SMSC, binding again", Err: ErrNoLink}
	}
	l.wait[seq] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(l.wait, seq)
		c.mu.Unlock()
	}()

	if err := l.sess.Transceiver().Submit(sm); err != nil {
		return "", &provider.Error{Kind: provider.Retry, Code: "connection", Reason: "SMPP link closing", Err: fmt.Errorf("%w: %w", ErrLinkLost, err)}
	}
	t := time.NewTimer(c.cfg.ResponseTimeout)
	defer t.Stop()
	select {
	case a := <-ch:
		if a.err != nil {
			code := "connection"
			if errors.Is(a.err, ErrClosed) {
				code = "closed"
			}
			return "", &provider.Error{Kind: provider.Retry, Code: code, Reason: a.err.Error(), Err: a.err}
		}
		if pe := classifyStatus(a.status, a.nack); pe != nil {
			return "", pe
		}
		if a.msgID == "" {
			// Accepted, but a receipt could never be matched: count it sent all the same.
			c.log.Warn("smpp: submit_sm_resp without message_id")
		}
		return a.msgID, nil
	case <-t.C:
		return "", &provider.Error{Kind: provider.Retry, Code: "timeout",
			Reason: fmt.Sprintf("no submit_sm_resp from the SMSC within %s", c.cfg.ResponseTimeout)}
	case <-ctx.Done():
		return "", fmt.Errorf("smpp: %w", ctx.Err())
	}
}

// handle is gosmpp's OnAllPDU: it runs on l's reader for every PDU the SMSC sends, and the
// PDU it returns is written back as the answer.
func (c *Client) handle(l *link, p pdu.PDU) (pdu.PDU, bool) {
	switch pd := p.(type) {
	case *pdu.SubmitSMResp:
		c.answer(l, pd.SequenceNumber, answer{status: pd.CommandStatus, msgID: pd.MessageID})
	case *pdu.GenericNack:
		c.answer(l, pd.SequenceNumber, answer{status: pd.CommandStatus, nack: true})
	case *pdu.DeliverSM:
		c.deliver(pd)
		return pd.GetResponse(), false
	case *pdu.DataSM:
		return pd.GetResponse(), false // no mobile-originated traffic is expected
	case *pdu.EnquireLink:
		return pd.GetResponse(), false
	case *pdu.Unbind:
		// gosmpp closes the link a moment after answering; send nothing more on it.
		c.mu.Lock()
		if c.cur == l {
			c.cur = nil
		}
		c.mu.Unlock()
		c.log.Warn("smpp: the SMSC unbound")
		return pd.GetResponse(), true
	}
	return nil, false
}

// answer hands a reply to the submit waiting on seq, if any (it may have timed out).
func (c *Client) answer(l *link, seq int32, a answer) {
	c.mu.Lock()
	ch, ok := l.wait[seq]
	delete(l.wait, seq)
	c.mu.Unlock()
	if ok {
		ch <- a
		return
	}
	c.log.Debug("smpp: answer for no waiting submit", "sequence", seq, "status", a.status.String())
}

// deliver handles a deliver_sm: a delivery receipt becomes a status report; anything else
// (a mobile-originated SMS) is acknowledged and dropped.
func (c *Client) deliver(d *pdu.DeliverSM) {
	if d.EsmClass&data.SM_SMSC_DLV_RCPT_TYPE == 0 {
		c.log.Debug("smpp: ignoring a mobile-originated deliver_sm")
		return
	}
	r, err := receiptOf(d)
	if err != nil {
		c.log.Warn("smpp: unreadable delivery receipt", "err", err)
		return
	}
	rep, final := r.report()
	if !final || c.cfg.OnReport == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ResponseTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	c.cfg.OnReport(ctx, rep)
}

// receiptOf reads the receipt a deliver_sm carries: its text (short_message, or the
// message_payload TLV), with the receipted_message_id and message_state TLVs taking
// precedence when present, as they do not depend on the SMSC's text format.
func receiptOf(d *pdu.DeliverSM) (Receipt, error) {
	raw, _ := d.Message.GetMessageData()
	if len(raw) == 0 {
		if f, ok := d.OptionalParameters[pdu.TagMessagePayload]; ok {
			raw = f.Data
		}
	}
	text := string(raw) // receipts are ASCII whatever the data_coding says, except UCS-2
	if enc := d.Message.Encoding(); enc != nil && enc.DataCoding() == data.UCS2Coding {
		if s, err := data.UCS2.Decode(raw); err == nil {
			text = s
		}
	}
	r, err := ParseReceipt(text)
	if f, ok := d.OptionalParameters[pdu.TagReceiptedMessageID]; ok && f.String() != "" {
		r.ID = f.String()
	}
	if f, ok := d.OptionalParameters[pdu.TagMessageStateOption]; ok && len(f.Data) == 1 {
		if s, ok := messageStates[f.Data[0]]; ok {
			r.Stat = s
		}
	}
	if r.ID == "" || r.Stat == "" {
		return r, err
	}
	return r, nil
}
