package sim

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Kannel's sendsms answers (gw/smsbox.c).
const (
	kannelAccepted  = "0: Accepted for delivery"
	kannelAuthFail  = "Authorization failed for sendsms"
	kannelWrongArgs = "Wrong sendsms args, rejected"
	kannelEmptyTo   = "Empty receiver number not allowed, rejected"
	kannelSendFail  = "Sending failed."
)

func kannelReply(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}

// serveKannel is Kannel's GET /cgi-bin/sendsms. Each receiver (Kannel takes several,
// separated by spaces) is one Message; a dlr-url is called back per Kannel's dlr-mask.
func (s *Sim) serveKannel(w http.ResponseWriter, r *http.Request) {
	c := counters{channel: &s.counts[chanSMS]}
	if r.Method != http.MethodGet {
		c.reject()
		w.Header().Set("Allow", http.MethodGet)
		kannelReply(w, http.StatusMethodNotAllowed, kannelWrongArgs)
		return
	}
	at := time.Now()
	q := r.URL.Query()
	user, pass := firstOf(q, "username", "user"), firstOf(q, "password", "pass")
	if (s.cfg.KannelUser != "" && user != s.cfg.KannelUser) ||
		(s.cfg.KannelPassword != "" && pass != s.cfg.KannelPassword) {
		c.reject()
		kannelReply(w, http.StatusForbidden, kannelAuthFail)
		return
	}
	if !q.Has("to") || !q.Has("text") {
		c.reject()
		kannelReply(w, http.StatusBadRequest, kannelWrongArgs)
		return
	}
	receivers := strings.Fields(q.Get("to"))
	if len(receivers) == 0 {
		c.reject()
		kannelReply(w, http.StatusBadRequest, kannelEmptyTo)
		return
	}
	tos := make([]string, len(receivers))
	for i, rc := range receivers {
		if tos[i] = digitsOf(rc); tos[i] == "" {
			c.reject()
			kannelReply(w, http.StatusBadRequest, kannelWrongArgs)
			return
		}
	}
	text := decodeKannelText(q.Get("text"), q.Get("coding"), q.Get("charset"))
	from := q.Get("from")
	dlrURL := q.Get("dlr-url")
	mask, _ := strconv.Atoi(q.Get("dlr-mask"))
	tenant, jobID := splitRef(dlrJobID(dlrURL))

	failStatus := 0
	for _, to := range tos {
		m := Message{Channel: channelNames[chanSMS], To: to, From: from, JobID: jobID, Tenant: tenant, Type: "sms", Text: text, At: at}
		rule := s.match(chanSMS, "", to)
		if rule != nil && !rule.Async {
			status := rule.HTTPStatus
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
			s.recordFailure(&m, c, rule.Code, status)
			failStatus = status
			continue
		}
		failCode := s.recordAccepted(&m, c, rule, "", http.StatusAccepted)
		if dlrURL != "" {
			s.enqueue(&event{
				kind: kindSMS, steps: s.steps.sms[boolIndex(failCode != 0)][mask&31], code: failCode,
				msgID: m.MessageID, to: to, from: from, dlrURL: dlrURL, text: firstRunes(text, 20),
			})
		}
	}
	s.sleepLatency(r.Context())
	if failStatus != 0 {
		kannelReply(w, failStatus, kannelSendFail)
		return
	}
	kannelReply(w, http.StatusAccepted, kannelAccepted)
}

func firstOf(q url.Values, keys ...string) string {
	for _, k := range keys {
		if v := q.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// decodeKannelText turns the text parameter into UTF-8: Kannel clients send UCS-2 texts
// (coding=2) as UTF-16BE bytes, and may send Latin-1.
func decodeKannelText(text, coding, charset string) string {
	cs := strings.ToUpper(strings.ReplaceAll(charset, "_", "-"))
	switch {
	case cs == "UTF-16BE" || cs == "UTF-16" || cs == "UCS-2" || cs == "UCS2" || (coding == "2" && cs == "" && !utf8.ValidString(text)):
		b := []byte(text)
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		}
		return string(utf16.Decode(u))
	case cs == "ISO-8859-1" || cs == "LATIN1":
		r := make([]rune, len(text))
		for i := 0; i < len(text); i++ {
			r[i] = rune(text[i])
		}
		return string(r)
	}
	return text
}

func firstRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// dlrJobID returns the id query parameter of a dlr-url. The URL still holds Kannel's
// %-escapes ("%d"), which url.Parse rejects, so the query is split by hand.
func dlrJobID(dlrURL string) string {
	_, query, ok := strings.Cut(dlrURL, "?")
	if !ok {
		return ""
	}
	for kv := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k != "id" {
			continue
		}
		// Kannel turns %% back into % when it calls the dlr-url: so must a reader of the id.
		v = strings.ReplaceAll(v, "%%", "%")
		if u, err := url.QueryUnescape(v); err == nil {
			return u
		}
		return v
	}
	return ""
}

// expandDLR substitutes Kannel's dlr-url escapes for one delivery report: %d type,
// %p receiver, %P sender, %T unix time, %t time, %A the SMSC's reply, %I and %F the message
// id, %i the SMSC id, %k the keyword, %% a percent sign. Values are URL-encoded, as Kannel
// does; unknown escapes stay as they are.
func expandDLR(ev *event, typ int, now time.Time) string {
	tpl := ev.dlrURL
	if !strings.Contains(tpl, "%") {
		return tpl
	}
	var b strings.Builder
	b.Grow(len(tpl) + 64)
	for i := 0; i < len(tpl); i++ {
		if tpl[i] != '%' || i+1 == len(tpl) {
			b.WriteByte(tpl[i])
			continue
		}
		var v string
		switch tpl[i+1] {
		case 'd':
			v = strconv.Itoa(typ)
		case 'p':
			v = ev.to
		case 'P':
			v = ev.from
		case 'T':
			v = strconv.FormatInt(now.Unix(), 10)
		case 't':
			v = now.UTC().Format("2006-01-02 15:04:05")
		case 'A':
			v = dlrReply(ev, typ, now)
		case 'I', 'F':
			v = ev.msgID
		case 'i':
			v = "sim"
		case 'k':
			v, _, _ = strings.Cut(ev.text, " ")
		case '%':
			b.WriteByte('%')
			i++
			continue
		default:
			b.WriteByte('%')
			continue
		}
		b.WriteString(url.QueryEscape(v))
		i++
	}
	return b.String()
}

// dlrReply is the SMSC's text for a report, as an SMPP SMSC words it.
func dlrReply(ev *event, typ int, now time.Time) string {
	switch typ {
	case 8:
		return "ACK/"
	case 16:
		return fmt.Sprintf("NACK/0x%08x/Simulated failure", ev.code)
	}
	stat, dlvrd, errCode := "DELIVRD", "001", 0
	if typ == 2 {
		stat, dlvrd, errCode = "UNDELIV", "000", ev.code%1000
	}
	d := now.UTC().Format("0601021504")
	return fmt.Sprintf("id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%03d text:%s",
		ev.msgID, dlvrd, d, d, stat, errCode, ev.text)
}
