package kanneltest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"
	"github.com/fiorix/go-smpp/smpp/smpptest"
)

// Submit is one submit_sm that reached the test SMSC.
type Submit struct {
	// MessageID is the id the SMSC answered with; the delivery receipt carries it.
	MessageID string
	// From is the source_addr, To the destination_addr as sent (no "+").
	From, To string
	// ToTON is the destination's type of number (1: international).
	ToTON byte
	// DataCoding is the SMPP data_coding: 0 the SMSC default alphabet (GSM 03.38), 8 UCS-2.
	DataCoding byte
	// ESMClass is the esm_class; bit 0x40 marks a user data header (a part of a long SMS).
	ESMClass byte
	// RegisteredDelivery asks for a delivery receipt when its low bits are set.
	RegisteredDelivery byte
	// UDH is the user data header of a part, without its length byte; nil for a single SMS.
	UDH []byte
	// Text is the decoded short_message without the UDH: GSM 03.38 (unpacked) for data
	// coding 0, UCS-2 for 8, the raw bytes otherwise.
	Text string
	// At is when the SMSC got it.
	At time.Time
}

// smsc is the SMPP server standing in for the operator: it records every submit_sm,
// answers with a message id and sends the delivery receipt Options.Receipt asks for.
type smsc struct {
	srv     *smpptest.Server
	receipt func(Submit) string

	seq    atomic.Uint32
	nextID atomic.Uint64

	mu      sync.Mutex
	submits []Submit
}

func newSMSC(user, password string, receipt func(Submit) string) *smsc {
	s := &smsc{srv: smpptest.NewUnstartedServer(), receipt: receipt}
	s.srv.User, s.srv.Passwd = user, password
	s.srv.Handler = s.handle
	s.nextID.Store(100000)
	s.srv.Start()
	return s
}

func (s *smsc) snapshot() []Submit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Submit(nil), s.submits...)
}

// handle runs on the connection's reading goroutine, the only one writing to it.
func (s *smsc) handle(c smpptest.Conn, p pdu.Body) {
	seq := p.Header().Seq
	switch p.Header().ID {
	case pdu.SubmitSMID:
		sub := decodeSubmit(p.Fields())
		sub.MessageID = strconv.FormatUint(s.nextID.Add(1), 10)
		s.mu.Lock()
		s.submits = append(s.submits, sub)
		s.mu.Unlock()

		resp := pdu.NewSubmitSMResp()
		resp.Header().Seq = seq
		_ = resp.Fields().Set(pdufield.MessageID, sub.MessageID)
		if err := c.Write(resp); err != nil {
			return
		}
		if sub.RegisteredDelivery&0x03 == 0 {
			return
		}
		if stat := s.receipt(sub); stat != "" {
			_ = c.Write(s.deliveryReceipt(sub, stat))
		}
	case pdu.EnquireLinkID:
		_ = c.Write(pdu.NewEnquireLinkRespSeq(seq))
	case pdu.UnbindID:
		resp := pdu.NewUnbindResp()
		resp.Header().Seq = seq
		_ = c.Write(resp)
	}
	// deliver_sm_resp and generic_nack need no answer.
}

func decodeSubmit(f pdufield.Map) Submit {
	sub := Submit{
		From:               str(f, pdufield.SourceAddr),
		To:                 str(f, pdufield.DestinationAddr),
		ToTON:              octet(f, pdufield.DestAddrTON),
		DataCoding:         octet(f, pdufield.DataCoding),
		ESMClass:           octet(f, pdufield.ESMClass),
		RegisteredDelivery: octet(f, pdufield.RegisteredDelivery),
		At:                 time.Now(),
	}
	var sm []byte
	if b := f[pdufield.ShortMessage]; b != nil {
		sm = b.Bytes()
	}
	if sub.ESMClass&0x40 != 0 && len(sm) > 0 && int(sm[0]) < len(sm) {
		sub.UDH = append([]byte(nil), sm[1:1+int(sm[0])]...)
		sm = sm[1+int(sm[0]):]
	}
	switch sub.DataCoding {
	case 0:
		sub.Text = string(pdutext.GSM7(sm).Decode())
	case 8:
		u := make([]uint16, len(sm)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(sm[2*i:])
		}
		sub.Text = string(utf16.Decode(u))
	default:
		sub.Text = string(sm)
	}
	return sub
}

func str(f pdufield.Map, n pdufield.Name) string {
	if b := f[n]; b != nil {
		return string(bytes.TrimRight(b.Bytes(), "\x00"))
	}
	return ""
}

func octet(f pdufield.Map, n pdufield.Name) byte {
	if b := f[n]; b != nil && len(b.Bytes()) > 0 {
		return b.Bytes()[0]
	}
	return 0
}

// ReceiptText is the SMPP 3.4 Appendix B receipt text for sub with status stat ("DELIVRD",
// "UNDELIV", "REJECTD", "EXPIRED", ...).
func ReceiptText(sub Submit, stat string) string {
	dlvrd, errCode := "000", "001"
	if stat == "DELIVRD" {
		dlvrd, errCode = "001", "000"
	}
	date := sub.At.Format("0601021504")
	text := []rune(sub.Text)
	if len(text) > 20 {
		text = text[:20]
	}
	for i, r := range text { // the receipt is ASCII: the SMSC default alphabet would mangle the rest
		if r > 0x7e || r < 0x20 {
			text[i] = '?'
		}
	}
	return fmt.Sprintf("id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%s text:%s",
		sub.MessageID, dlvrd, date, time.Now().Format("0601021504"), stat, errCode, string(text))
}

// deliveryReceipt is the deliver_sm carrying the receipt for sub. It is encoded by hand:
// go-smpp's DeliverSM serialises a UDH length octet even without a UDH, which corrupts it.
func (s *smsc) deliveryReceipt(sub Submit, stat string) pdu.Body {
	text := ReceiptText(sub, stat)
	var b bytes.Buffer
	cstr := func(v string) { b.WriteString(v); b.WriteByte(0) }
	cstr("")              // service_type
	b.Write([]byte{1, 1}) // source TON international, NPI ISDN
	cstr(sub.To)          // the receipt comes from the recipient...
	b.Write([]byte{5, 0}) // ...to the (alphanumeric) sender
	cstr(sub.From)
	b.Write([]byte{0x04, 0, 0}) // esm_class: SMSC delivery receipt; protocol_id; priority
	cstr("")                    // schedule_delivery_time
	cstr("")                    // validity_period
	b.Write([]byte{0, 0, 0, 0, byte(len(text))})
	b.WriteString(text)
	// receipted_message_id and message_state, as SMPP 3.4 SMSCs add them.
	tlv := func(tag uint16, v []byte) {
		_ = binary.Write(&b, binary.BigEndian, tag)
		_ = binary.Write(&b, binary.BigEndian, uint16(len(v)))
		b.Write(v)
	}
	tlv(uint16(pdutlv.TagReceiptedMessageID), append([]byte(sub.MessageID), 0))
	tlv(uint16(pdutlv.TagMessageStateOption), []byte{messageState(stat)})
	return &rawPDU{h: &pdu.Header{ID: pdu.DeliverSMID, Seq: s.seq.Add(1)}, body: b.Bytes()}
}

// messageState is the SMPP message_state of a receipt status.
func messageState(stat string) byte {
	switch stat {
	case "ENROUTE":
		return 1
	case "DELIVRD":
		return 2
	case "EXPIRED":
		return 3
	case "DELETED":
		return 4
	case "UNDELIV":
		return 5
	case "ACCEPTD":
		return 6
	case "REJECTD":
		return 8
	}
	return 7 // UNKNOWN
}

// rawPDU is a PDU whose body is already encoded.
type rawPDU struct {
	h    *pdu.Header
	body []byte
}

func (r *rawPDU) Header() *pdu.Header      { return r.h }
func (r *rawPDU) Len() int                 { return pdu.HeaderLen + len(r.body) }
func (r *rawPDU) FieldList() pdufield.List { return nil }
func (r *rawPDU) Fields() pdufield.Map     { return nil }
func (r *rawPDU) TLVFields() pdutlv.Map    { return nil }
func (r *rawPDU) SerializeTo(w io.Writer) error {
	r.h.Len = uint32(r.Len())
	if err := r.h.SerializeTo(w); err != nil {
		return err
	}
	_, err := w.Write(r.body)
	return err
}
