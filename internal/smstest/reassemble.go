package smstest

import (
	"strings"

	"github.com/herald-notify/herald/internal/sms"
)

// Part is one submit_sm as an SMSC decoded it: a whole SMS, or one part of a long one. The
// Kannel and SMPP harnesses turn what their SMSC recorded into Parts so that Reassemble,
// not each harness, decides what a handset would show.
type Part struct {
	// To is the destination as the SMSC shows it: "+<digits>" when it came as an
	// international number (TON 1), the bare digits otherwise, so a wrong TON fails the
	// recipient check.
	To string
	// From is the source address.
	From string
	// Encoding is what the data_coding says: sms.GSM7 for 0, sms.UCS2 for 8; BadEncoding for
	// anything else.
	Encoding sms.Encoding
	// UDH is the user data header without its length octet; nil for a single SMS.
	UDH []byte
	// Text is this part's short_message decoded on its own, as a handset decodes it.
	Text string
}

// BadEncoding is the Delivery.Encoding of a data coding that is neither GSM-7 nor UCS-2: no
// driver promises one, so it never equals what the suite expects.
const BadEncoding sms.Encoding = -1

// concat reads the concatenation information element of a UDH (8-bit reference, IEI 0x00,
// or 16-bit, IEI 0x08); ok is false when there is none.
func concat(udh []byte) (ref, total, seq int, ok bool) {
	for i := 0; i+1 < len(udh); {
		iei, n := udh[i], int(udh[i+1])
		v := udh[i+2 : min(i+2+n, len(udh))]
		switch {
		case iei == 0x00 && len(v) == 3:
			return int(v[0]), int(v[1]), int(v[2]), true
		case iei == 0x08 && len(v) == 4:
			return int(v[0])<<8 | int(v[1]), int(v[2]), int(v[3]), true
		}
		i += 2 + n
	}
	return 0, 0, 0, false
}

// Reassemble joins parts into the messages a handset would show, in the order of each
// message's first part. A single SMS is a message of its own; parts of a long one are joined
// by recipient, sender and concatenation reference, in their sequence order. A long message
// still missing a part is left out: an SMSC behind a gateway may not have got it yet, and a
// part that never comes shows as a message that never arrives. A part seen twice starts a
// second copy of its message, so a duplicate send shows as a duplicate Delivery. A part
// whose header numbers it outside its total is a message of its own with Segments 0, which
// no check accepts.
func Reassemble(parts []Part) []Delivery {
	type key struct {
		to, from   string
		ref, total int
	}
	type message struct {
		d     Delivery // all but Text; Segments is the total the header announced
		texts []string // by sequence number - 1
		seen  []bool
		got   int
	}
	var order []*message // by first part
	open := map[key][]*message{}
	for _, p := range parts {
		ref, total, seq, ok := concat(p.UDH)
		if !ok || total < 1 || seq < 1 || seq > total {
			segments := 1
			if ok {
				segments = 0 // numbered outside its total
			}
			d := Delivery{To: p.To, From: p.From, Encoding: p.Encoding, Segments: segments}
			order = append(order, &message{d: d, texts: []string{p.Text}, seen: []bool{true}, got: 1})
			continue
		}
		k := key{p.To, p.From, ref, total}
		var m *message
		for _, c := range open[k] {
			if !c.seen[seq-1] {
				m = c
				break
			}
		}
		if m == nil {
			d := Delivery{To: p.To, From: p.From, Encoding: p.Encoding, Segments: total}
			m = &message{d: d, texts: make([]string, total), seen: make([]bool, total)}
			open[k] = append(open[k], m)
			order = append(order, m)
		}
		if p.Encoding != m.d.Encoding {
			m.d.Encoding = BadEncoding // parts of one message in different codings
		}
		m.texts[seq-1], m.seen[seq-1] = p.Text, true
		m.got++
	}
	var out []Delivery
	for _, m := range order {
		if m.got == len(m.texts) {
			m.d.Text = strings.Join(m.texts, "")
			out = append(out, m.d)
		}
	}
	return out
}
