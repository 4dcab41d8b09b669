package smpp

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald/internal/status"
)

// ErrInvalidReceipt is returned (wrapped) by ParseReceipt for a text that is not an SMSC
// delivery receipt: no id or no stat.
var ErrInvalidReceipt = errors.New("smpp: invalid delivery receipt")

// Receipt is an SMSC delivery receipt, as SMPP 3.4 Appendix B suggests SMSCs format the
// short_message of a receipt deliver_sm:
//
//	id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...
type Receipt struct {
	// ID is the message id the SMSC gave in its submit_sm_resp.
	ID string
	// Submitted and Delivered are the sub and dlvrd counts; 0 when absent or unreadable.
	Submitted, Delivered int
	// SubmitDate and DoneDate are read as UTC (the receipt has no zone); zero when absent
	// or unreadable.
	SubmitDate, DoneDate time.Time
	// Stat is the final state, upper case: DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD,
	// UNKNOWN, REJECTD, or ENROUTE for an intermediate notification.
	Stat string
	// Err is the network or SMSC error code, as given ("000").
	Err string
	// Text is the start of the original message the SMSC echoes, possibly empty.
	Text string
}

// receiptKey finds the fields of a receipt. SMSCs differ in case and in "submit date" versus
// "submit_date", so both are accepted.
var receiptKey = regexp.MustCompile(`(?i)(?:^|\s)(id|sub|dlvrd|submit[ _]date|done[ _]date|stat|err|text):`)

// ParseReceipt reads a delivery receipt text. Fields may come in any order and any case;
// text, which may hold spaces and look-alike "key:" words, runs to the end once found. A
// receipt without id or stat is ErrInvalidReceipt; a date or count that does not parse is
// left zero.
func ParseReceipt(text string) (Receipt, error) {
	var r Receipt
	ms := receiptKey.FindAllStringSubmatchIndex(text, -1)
	for i, m := range ms {
		key := strings.ToLower(strings.ReplaceAll(text[m[2]:m[3]], "_", " "))
		end := len(text)
		if key != "text" && i+1 < len(ms) {
			end = ms[i+1][0]
		}
		val := text[m[1]:end]
		if key != "text" {
			val = strings.TrimSpace(val)
		}
		switch key {
		case "id":
			r.ID = val
		case "sub":
			r.Submitted, _ = strconv.Atoi(val)
		case "dlvrd":
			r.Delivered, _ = strconv.Atoi(val)
		case "submit date":
			r.SubmitDate = receiptTime(val)
		case "done date":
			r.DoneDate = receiptTime(val)
		case "stat":
			r.Stat = strings.ToUpper(val)
		case "err":
			r.Err = val
		case "text":
			r.Text = val
		}
		if key == "text" {
			break
		}
	}
	switch {
	case r.ID == "":
		return r, fmt.Errorf("%w: no id", ErrInvalidReceipt)
	case r.Stat == "":
		return r, fmt.Errorf("%w: no stat", ErrInvalidReceipt)
	}
	return r, nil
}

// receiptTime reads YYMMDDhhmm, or YYMMDDhhmmss as many SMSCs send.
func receiptTime(s string) time.Time {
	layout := "0601021504"
	if len(s) == 12 {
		layout = "060102150405"
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// messageStates names the message_state TLV values (SMPP 3.4 section 5.2.28) with the
// receipt stat words, for SMSCs that send the TLV and no readable text.
var messageStates = map[byte]string{
	1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED",
	5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD",
}

// report maps a receipt to a status report; false for a state that is not final for Herald
// (ACCEPTD, ENROUTE, or a stat word it does not know), which is dropped.
//
//	DELIVRD                                     delivered
//	UNDELIV, EXPIRED, REJECTD, DELETED, UNKNOWN failed, Code "smpp_<stat>"
func (r Receipt) report() (status.Report, bool) {
	rep := status.Report{MessageID: "smpp:" + r.ID, Channel: "sms"}
	switch r.Stat {
	case "DELIVRD":
		rep.State = status.Delivered
	case "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN":
		rep.State = status.Failed
		rep.Code = "smpp_" + r.Stat
		rep.Reason = "SMSC delivery receipt stat:" + r.Stat
		if r.Err != "" {
			rep.Reason += " err:" + r.Err
		}
	default:
		return status.Report{}, false
	}
	return rep, true
}
