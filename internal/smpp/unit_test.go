package smpp

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/linxGnu/gosmpp/data"

	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/status"
)

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status data.CommandStatusType
		nack   bool
		kind   provider.Kind // 0: success
		code   string
		after  time.Duration
	}{
		{data.ESME_ROK, false, 0, "", 0},
		{data.ESME_RTHROTTLED, false, provider.Retry, "ESME_RTHROTTLED", time.Second},
		{data.ESME_RMSGQFUL, false, provider.Retry, "ESME_RMSGQFUL", 5 * time.Second},
		{data.ESME_RSYSERR, false, provider.Retry, "ESME_RSYSERR", 0},
		{data.ESME_RSUBMITFAIL, false, provider.Retry, "ESME_RSUBMITFAIL", 0},
		{data.ESME_RINVBNDSTS, false, provider.Retry, "ESME_RINVBNDSTS", 0},
		{data.ESME_RALYBND, false, provider.Retry, "ESME_RALYBND", 0},
		{data.ESME_RUNKNOWNERR, false, provider.Retry, "ESME_RUNKNOWNERR", 0},
		{data.ESME_RINVDSTADR, false, provider.Channel, "ESME_RINVDSTADR", 0},
		{data.ESME_RINVMSGLEN, false, provider.Job, "ESME_RINVMSGLEN", 0},
		{data.ESME_RINVSRCADR, false, provider.Sender, "ESME_RINVSRCADR", 0},
		{data.ESME_RINVSRCTON, false, provider.Sender, "ESME_RINVSRCTON", 0},
		{data.ESME_RINVSRCNPI, false, provider.Sender, "ESME_RINVSRCNPI", 0},
		{data.ESME_RINVDSTTON, false, provider.Sender, "ESME_RINVDSTTON", 0},
		{data.ESME_RINVDSTNPI, false, provider.Sender, "ESME_RINVDSTNPI", 0},
		{data.ESME_RINVESMCLASS, false, provider.Sender, "ESME_RINVESMCLASS", 0},
		{data.ESME_RINVREGDLVFLG, false, provider.Sender, "ESME_RINVREGDLVFLG", 0},
		{data.ESME_RINVSERTYP, false, provider.Sender, "ESME_RINVSERTYP", 0},
		{data.ESME_RINVSYSTYP, false, provider.Sender, "ESME_RINVSYSTYP", 0},
		{data.ESME_RINVDFTMSGID, false, provider.Sender, "ESME_RINVDFTMSGID", 0},
		{data.ESME_RPROVNOTALLWD, false, provider.Sender, "ESME_RPROVNOTALLWD", 0},
		{0x00000400, false, provider.Retry, "ESME_0x00000400", 0}, // vendor range: safe default
		{data.ESME_RINVCMDID, true, provider.Retry, "ESME_RINVCMDID", 0},
		{data.ESME_ROK, true, provider.Retry, "generic_nack", 0},
	}
	seen := map[data.CommandStatusType]bool{}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			pe := classifyStatus(tt.status, tt.nack)
			if tt.kind == 0 {
				if pe != nil {
					t.Fatalf("classifyStatus(%#x) = %v, want success", uint32(tt.status), pe)
				}
				return
			}
			if pe == nil || pe.Kind != tt.kind || pe.Code != tt.code || pe.After != tt.after {
				t.Fatalf("classifyStatus(%#x, nack %v) = %+v, want %s %q after %s", uint32(tt.status), tt.nack, pe, tt.kind, tt.code, tt.after)
			}
			if pe.Reason == "" {
				t.Error("empty reason")
			}
		})
		seen[tt.status] = true
	}
	for st := range statusOutcomes {
		if !seen[st] {
			t.Errorf("table row %s has no test", st)
		}
	}
}

func TestParseReceipt(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time { tm, _ := time.Parse("2006-01-02 15:04:05", s); return tm }
	tests := []struct {
		name string
		text string
		want Receipt
		err  bool
	}{
		{
			name: "SMPP 3.4 appendix B",
			text: "id:0123456789 sub:001 dlvrd:001 submit date:2601021504 done date:2601021505 stat:DELIVRD err:000 text:Hello world",
			want: Receipt{ID: "0123456789", Submitted: 1, Delivered: 1, SubmitDate: at("2026-01-02 15:04:00"),
				DoneDate: at("2026-01-02 15:05:00"), Stat: "DELIVRD", Err: "000", Text: "Hello world"},
		},
		{
			name: "seconds in dates, lower-case keys and stat",
			text: "id:A1B2 sub:001 dlvrd:000 submit date:260102150405 done date:260102150607 stat:undeliv err:034 Text:x",
			want: Receipt{ID: "A1B2", Submitted: 1, SubmitDate: at("2026-01-02 15:04:05"), DoneDate: at("2026-01-02 15:06:07"),
				Stat: "UNDELIV", Err: "034", Text: "x"},
		},
		{
			name: "underscored date keys, text with look-alike keys",
			text: "id:77 submit_date:2601021504 done_date:2601021505 stat:EXPIRED err:000 text:stat:DELIVRD id:99",
			want: Receipt{ID: "77", SubmitDate: at("2026-01-02 15:04:00"), DoneDate: at("2026-01-02 15:05:00"),
				Stat: "EXPIRED", Err: "000", Text: "stat:DELIVRD id:99"},
		},
		{
			name: "fields in another order, no text, unreadable date",
			text: "stat:REJECTD id:abc-1 err:1 done date:bogus",
			want: Receipt{ID: "abc-1", Stat: "REJECTD", Err: "1"},
		},
		{name: "no id", text: "sub:001 dlvrd:001 stat:DELIVRD err:000", err: true},
		{name: "no stat", text: "id:1 sub:001 dlvrd:001 err:000", err: true},
		{name: "not a receipt", text: "Hello, this is a reply", err: true},
		{name: "empty", text: "", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseReceipt(tt.text)
			if tt.err {
				if !errors.Is(err, ErrInvalidReceipt) {
					t.Fatalf("ParseReceipt(%q) error = %v, want ErrInvalidReceipt", tt.text, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseReceipt(%q): %v", tt.text, err)
			}
			if got != tt.want {
				t.Errorf("ParseReceipt(%q)\n got %+v\nwant %+v", tt.text, got, tt.want)
			}
		})
	}
}

func TestReceiptReport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		stat  string
		final bool
		state string
		code  string
	}{
		{"DELIVRD", true, status.Delivered, ""},
		{"UNDELIV", true, status.Failed, "smpp_UNDELIV"},
		{"EXPIRED", true, status.Failed, "smpp_EXPIRED"},
		{"REJECTD", true, status.Failed, "smpp_REJECTD"},
		{"DELETED", true, status.Failed, "smpp_DELETED"},
		{"UNKNOWN", true, status.Failed, "smpp_UNKNOWN"},
		{"ACCEPTD", false, "", ""},
		{"ENROUTE", false, "", ""},
		{"BUFFRED", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.stat, func(t *testing.T) {
			t.Parallel()
			rep, final := Receipt{ID: "X9", Stat: tt.stat, Err: "005"}.report()
			if final != tt.final {
				t.Fatalf("final = %v, want %v", final, tt.final)
			}
			if !final {
				return
			}
			if rep.MessageID != "smpp:X9" || rep.State != tt.state || rep.Code != tt.code {
				t.Errorf("report = %+v, want smpp:X9 %s %q", rep, tt.state, tt.code)
			}
			if tt.state == status.Failed && rep.Reason != "SMSC delivery receipt stat:"+tt.stat+" err:005" {
				t.Errorf("reason = %q", rep.Reason)
			}
		})
	}
}

func TestSplitMatchesAnalyze(t *testing.T) {
	t.Parallel()
	tests := []string{
		"a",
		strings.Repeat("a", 160),
		strings.Repeat("a", 161),
		strings.Repeat("€", 80),
		strings.Repeat("€", 81),
		strings.Repeat("a", 152) + "{" + strings.Repeat("b", 152) + "}" + "c",
		strings.Repeat("Ж", 70),
		strings.Repeat("Ж", 71),
		strings.Repeat("😀", 35),
		strings.Repeat("😀", 36),
		strings.Repeat("x😀", 60),
		strings.Repeat("Привет, world! ", 40),
	}
	for _, text := range tests {
		enc, _, segments := sms.Analyze(text)
		parts := split(text, enc, segments)
		if len(parts) != segments {
			t.Errorf("%d runes: split gives %d parts, sms.Analyze %d", utf8.RuneCountInString(text), len(parts), segments)
			continue
		}
		if strings.Join(parts, "") != text {
			t.Errorf("%d runes: parts do not rejoin to the text", utf8.RuneCountInString(text))
		}
		for i, p := range parts {
			b, coding, err := encodePart(p, enc, segments > 1)
			if err != nil {
				t.Errorf("%d runes, part %d: %v", utf8.RuneCountInString(text), i+1, err)
				continue
			}
			if (enc == sms.UCS2) != (coding == data.UCS2) {
				t.Errorf("part %d coded %d for %s", i+1, coding.DataCoding(), enc)
			}
			if back, _ := coding.Decode(b); back != p {
				t.Errorf("part %d round trip %q, want %q", i+1, back, p)
			}
		}
	}
}

func TestSourceAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from     string
		ton, npi byte
		addr     string
		err      bool
	}{
		{"", tonUnknown, npiUnknown, "", false},
		{"Herald", tonAlphanumeric, npiUnknown, "Herald", false},
		{"Bank-24 Pay", tonAlphanumeric, npiUnknown, "Bank-24 Pay", false},
		{"+79001234567", tonInternational, npiISDN, "79001234567", false},
		{"7377", tonUnknown, npiISDN, "7377", false},
		{"HeraldNotify", 0, 0, "", true}, // 12 characters
		{"Геральд", 0, 0, "", true},      // not GSM-7
		{"+1234567890123456", 0, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.from, func(t *testing.T) {
			t.Parallel()
			a, err := sourceAddr(tt.from)
			if tt.err {
				if err == nil {
					t.Fatalf("sourceAddr(%q) = %v, want an error", tt.from, a)
				}
				return
			}
			if err != nil || a.Ton() != tt.ton || a.Npi() != tt.npi || a.Address() != tt.addr {
				t.Errorf("sourceAddr(%q) = TON %d NPI %d %q, %v; want TON %d NPI %d %q", tt.from, a.Ton(), a.Npi(), a.Address(), err, tt.ton, tt.npi, tt.addr)
			}
		})
	}
}
