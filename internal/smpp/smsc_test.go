package smpp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	fpdu "github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"
	"github.com/fiorix/go-smpp/smpp/smpptest"

	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/testutil"
)

const (
	testUser     = "herald"
	testPassword = "s3cr3t-pw"
)

// smsc is a real SMPP server (go-smpp's smpptest) with a handler that records every
// submit_sm and answers it as the test configured for its destination.
type smsc struct {
	srv *smpptest.Server

	// Behaviour by destination digits, set before the first Send and read-only after.
	status   map[string]fpdu.Status // submit_sm_resp command_status; absent is ESME_ROK
	nack     map[string]fpdu.Status // answer generic_nack with this status
	silent   map[string]bool        // never answer
	drop     map[string]bool        // close the connection instead of answering
	unbind   map[string]bool        // answer, then unbind the client
	receipts map[string][]receipt   // deliver_sm receipts sent after the submit_sm_resp

	mu           sync.Mutex
	conns        []smpptest.Conn
	submits      []submitted
	deliverResps []fpdu.Header
	enquireLinks int
	unbindResps  int
	ids          int
}

// receipt is a delivery receipt the server sends for the submit it follows.
type receipt struct {
	stat string
	tlv  bool // receipted_message_id TLV carries the id; the text has a different one
}

// submitted is one submit_sm as the server decoded it.
type submitted struct {
	conn                                             int // 0-based, in the order connections sent a PDU
	seq                                              uint32
	src, dst                                         string
	srcTON, srcNPI, dstTON, dstNPI, esm, reg, coding byte
	sm                                               []byte // short_message, UDH included
	id                                               string // message_id answered
}

func startSMSC(t *testing.T, configure func(s *smsc)) *smsc {
	t.Helper()
	s := &smsc{
		status:   map[string]fpdu.Status{},
		nack:     map[string]fpdu.Status{},
		silent:   map[string]bool{},
		drop:     map[string]bool{},
		unbind:   map[string]bool{},
		receipts: map[string][]receipt{},
	}
	if configure != nil {
		configure(s)
	}
	s.srv = smpptest.NewUnstartedServer()
	s.srv.User, s.srv.Passwd = testUser, testPassword
	s.srv.Handler = s.handle
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *smsc) connIndex(c smpptest.Conn) int {
	for i, x := range s.conns {
		if x == c {
			return i
		}
	}
	s.conns = append(s.conns, c)
	return len(s.conns) - 1
}

// handle runs on the connection's goroutine; every write to c happens here, so writes on
// one connection never interleave.
func (s *smsc) handle(c smpptest.Conn, p fpdu.Body) {
	h := p.Header()
	s.mu.Lock()
	conn := s.connIndex(c)
	s.mu.Unlock()
	switch h.ID {
	case fpdu.SubmitSMID:
		f := p.Fields()
		b := func(n pdufield.Name) byte { return f[n].Bytes()[0] }
		sub := submitted{conn: conn, seq: h.Seq, src: f[pdufield.SourceAddr].String(), dst: f[pdufield.DestinationAddr].String(),
			srcTON: b(pdufield.SourceAddrTON), srcNPI: b(pdufield.SourceAddrNPI), dstTON: b(pdufield.DestAddrTON),
			dstNPI: b(pdufield.DestAddrNPI), esm: b(pdufield.ESMClass), reg: b(pdufield.RegisteredDelivery),
			coding: b(pdufield.DataCoding), sm: append([]byte(nil), f[pdufield.ShortMessage].Bytes()...)}
		s.mu.Lock()
		s.ids++
		sub.id = fmt.Sprintf("A%04X", s.ids)
		s.submits = append(s.submits, sub)
		s.mu.Unlock()
		switch {
		case s.drop[sub.dst]:
			_ = c.Close()
			return
		case s.silent[sub.dst]:
			return
		}
		if st, ok := s.nack[sub.dst]; ok {
			_ = c.Write(&nackBody{h: fpdu.Header{ID: fpdu.GenericNACKID, Status: st, Seq: h.Seq}})
			return
		}
		resp := fpdu.NewSubmitSMResp()
		resp.Header().Seq = h.Seq
		resp.Header().Status = s.status[sub.dst]
		_ = resp.Fields().Set(pdufield.MessageID, sub.id)
		_ = c.Write(resp)
		if s.unbind[sub.dst] {
			_ = c.Write(fpdu.NewUnbind())
			return
		}
		if sub.reg&1 == 0 {
			return
		}
		for i, r := range s.receipts[sub.dst] {
			_ = c.Write(receiptPDU(uint32(1000+i), sub, r))
		}
	case fpdu.DeliverSMRespID:
		s.mu.Lock()
		s.deliverResps = append(s.deliverResps, *h)
		s.mu.Unlock()
	case fpdu.EnquireLinkID:
		s.mu.Lock()
		s.enquireLinks++
		s.mu.Unlock()
		_ = c.Write(fpdu.NewEnquireLinkRespSeq(h.Seq))
	case fpdu.UnbindRespID:
		s.mu.Lock()
		s.unbindResps++
		s.mu.Unlock()
	case fpdu.UnbindID:
		resp := fpdu.NewUnbindResp()
		resp.Header().Seq = h.Seq
		_ = c.Write(resp)
	}
}

// receiptPDU builds a receipt deliver_sm. go-smpp's DeliverSM codec always writes a UDH
// length octet, so the body is a SubmitSM codec (the same SMPP 3.4 field layout) with the
// deliver_sm command id.
func receiptPDU(seq uint32, sub submitted, r receipt) fpdu.Body {
	p := fpdu.NewSubmitSM(nil)
	p.Header().ID = fpdu.DeliverSMID
	p.Header().Seq = seq
	f := p.Fields()
	_ = f.Set(pdufield.SourceAddrTON, 1)
	_ = f.Set(pdufield.SourceAddrNPI, 1)
	_ = f.Set(pdufield.SourceAddr, sub.dst)
	_ = f.Set(pdufield.DestinationAddr, sub.src)
	_ = f.Set(pdufield.ESMClass, 0x04)
	id := sub.id
	if r.tlv {
		_ = p.TLVFields().Set(pdutlv.TagReceiptedMessageID, pdutlv.CString(sub.id))
		id = "4242" // some SMSCs put a decimal id in the text: the TLV must win
	}
	text := fmt.Sprintf("id:%s sub:001 dlvrd:001 submit date:2601021504 done date:2601021505 stat:%s err:000 text:Hello", id, r.stat)
	_ = f.Set(pdufield.ShortMessage, pdutext.Raw(text))
	return p
}

// nackBody is a generic_nack: a bare header (go-smpp's GenericNACK codec has no public
// constructor with a status).
type nackBody struct{ h fpdu.Header }

func (n *nackBody) Header() *fpdu.Header     { return &n.h }
func (n *nackBody) Len() int                 { return fpdu.HeaderLen }
func (n *nackBody) FieldList() pdufield.List { return nil }
func (n *nackBody) Fields() pdufield.Map     { return pdufield.Map{} }
func (n *nackBody) TLVFields() pdutlv.Map    { return pdutlv.Map{} }
func (n *nackBody) SerializeTo(w io.Writer) error {
	n.h.Len = fpdu.HeaderLen
	return n.h.SerializeTo(w)
}

func (s *smsc) submitted() []submitted {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]submitted(nil), s.submits...)
}

func (s *smsc) deliverResponses() []fpdu.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fpdu.Header(nil), s.deliverResps...)
}

func (s *smsc) enquireLinkCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enquireLinks
}

func (s *smsc) unbindResponses() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unbindResps
}

// dropConnections closes every connection the server has seen, as a network failure would.
func (s *smsc) dropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
}

// reports collects what OnReport receives.
type reports struct {
	mu  sync.Mutex
	got []status.Report
}

func (r *reports) add(_ context.Context, rep status.Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rep)
}

func (r *reports) list() []status.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]status.Report(nil), r.got...)
}

type logBuffer = testutil.LogBuffer

// dial binds a client to s with short timeouts; cfg fields set by the test win.
func dial(t *testing.T, s *smsc, cfg Config) (*Client, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg.Addr = s.srv.Addr()
	cfg.SystemID, cfg.Password = testUser, testPassword
	if cfg.From == "" {
		cfg.From = "Herald"
	}
	if cfg.ResponseTimeout == 0 {
		cfg.ResponseTimeout = 2 * time.Second
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c, logs
}
