package smpp

import (
	"fmt"
	"time"

	"github.com/linxGnu/gosmpp/data"

	"github.com/herald-notify/herald/internal/provider"
)

// Delays asked for with a throttling answer: the SMSC's rate window is about a second; a
// full queue (often the recipient's own, while the phone is off) takes longer to drain.
const (
	throttleDelay  = time.Second
	queueFullDelay = 5 * time.Second
)

// outcome is how a submit_sm_resp command_status is acted on.
type outcome struct {
	kind  provider.Kind
	after time.Duration
}

// statusOutcomes maps the command_status values an SMSC answers a submit_sm with to an
// outcome. ESME_ROK is success; a status not listed is a Retry (vendor codes 0x400-0x4FF
// included): the worker's attempt cap bounds it and then falls back, the safe side for a
// notification.
//
//	Retry after 1s    ESME_RTHROTTLED 0x58: our submit rate is over the account's limit
//	Retry after 5s    ESME_RMSGQFUL 0x14: the SMSC (or recipient) queue is full
//	Retry             ESME_RSYSERR 0x08, ESME_RSUBMITFAIL 0x45, ESME_RINVBNDSTS 0x04,
//	                  ESME_RALYBND 0x05, ESME_RUNKNOWNERR 0xFF: passing SMSC or bind-state
//	                  trouble
//	Channel           ESME_RINVDSTADR 0x0B: the SMSC cannot route this (already E.164-valid)
//	                  number; another channel may still reach it
//	Job               ESME_RINVMSGLEN 0x01: the text itself is refused, no channel will send
//	                  it as is
//	Sender            ESME_RINVSRCADR 0x0A, ESME_RINVSRCTON 0x48, ESME_RINVSRCNPI 0x49
//	                  (HERALD_SMS_FROM refused), ESME_RINVDSTTON 0x50, ESME_RINVDSTNPI 0x51,
//	                  ESME_RINVESMCLASS 0x43, ESME_RINVREGDLVFLG 0x07, ESME_RINVSERTYP 0x15,
//	                  ESME_RINVSYSTYP 0x53, ESME_RINVDFTMSGID 0x63, ESME_RPROVNOTALLWD 0x59:
//	                  the account or our addressing is wrong for every message, stop and
//	                  alert
var statusOutcomes = map[data.CommandStatusType]outcome{
	data.ESME_RTHROTTLED:    {provider.Retry, throttleDelay},
	data.ESME_RMSGQFUL:      {provider.Retry, queueFullDelay},
	data.ESME_RSYSERR:       {kind: provider.Retry},
	data.ESME_RSUBMITFAIL:   {kind: provider.Retry},
	data.ESME_RINVBNDSTS:    {kind: provider.Retry},
	data.ESME_RALYBND:       {kind: provider.Retry},
	data.ESME_RUNKNOWNERR:   {kind: provider.Retry},
	data.ESME_RINVDSTADR:    {kind: provider.Channel},
	data.ESME_RINVMSGLEN:    {kind: provider.Job},
	data.ESME_RINVSRCADR:    {kind: provider.Sender},
	data.ESME_RINVSRCTON:    {kind: provider.Sender},
	data.ESME_RINVSRCNPI:    {kind: provider.Sender},
	data.ESME_RINVDSTTON:    {kind: provider.Sender},
	data.ESME_RINVDSTNPI:    {kind: provider.Sender},
	data.ESME_RINVESMCLASS:  {kind: provider.Sender},
	data.ESME_RINVREGDLVFLG: {kind: provider.Sender},
	data.ESME_RINVSERTYP:    {kind: provider.Sender},
	data.ESME_RINVSYSTYP:    {kind: provider.Sender},
	data.ESME_RINVDFTMSGID:  {kind: provider.Sender},
	data.ESME_RPROVNOTALLWD: {kind: provider.Sender},
}

// classifyStatus returns the outcome of a submit_sm answer, nil for ESME_ROK. nack tells a
// generic_nack (the SMSC could not even read the PDU) from a submit_sm_resp. Code is the
// SMPP name of the status ("ESME_RTHROTTLED"), or "ESME_0x%08X" for one SMPP 3.4 does not
// name.
func classifyStatus(st data.CommandStatusType, nack bool) *provider.Error {
	if st == data.ESME_ROK {
		if !nack {
			return nil
		}
		// A generic_nack without an error status is still no answer to the submit.
		return &provider.Error{Kind: provider.Retry, Code: "generic_nack", Reason: "the SMSC answered generic_nack"}
	}
	o, ok := statusOutcomes[st]
	if !ok {
		o = outcome{kind: provider.Retry}
	}
	code, desc := statusName(st)
	answer := "submit_sm_resp"
	if nack {
		answer = "generic_nack"
	}
	return &provider.Error{Kind: o.kind, Code: code, After: o.after,
		Reason: fmt.Sprintf("SMSC %s 0x%02X %s: %s", answer, uint32(st), code, desc)}
}

// statusName is the SMPP name and description of st.
func statusName(st data.CommandStatusType) (name, desc string) {
	name, desc = st.String(), st.Desc()
	if len(name) < 5 || name[:5] != "ESME_" {
		name = fmt.Sprintf("ESME_0x%08X", uint32(st))
	}
	if desc == "" {
		desc = "unknown status"
	}
	return name, desc
}
