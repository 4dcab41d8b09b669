package white

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/herald-notify/herald/internal/provider"
)

// NoCode is the code to pass to Classify when an answer carried no Graph error code (a proxy's
// HTML page, an empty body). It is not 0, because 0 is a real code (AuthException).
const NoCode = -1

// rule is what Herald does with one Graph error code.
type rule struct {
	kind provider.Kind
	// after is the delay to suggest for a Retry; zero lets the worker's backoff decide.
	after   time.Duration
	meaning string
}

// graphCodes classifies Cloud API error codes (Meta: "build your error handling around code
// values"). Meanings follow Meta's WhatsApp Cloud API error-code reference.
var graphCodes = map[int]rule{
	// Retry after a delay: the failure passes by itself.
	1:      {provider.Retry, 0, "API Unknown: invalid request or possible server error"},
	2:      {provider.Retry, 0, "API Service: temporary downtime or overload"},
	4:      {provider.Retry, time.Minute, "API Too Many Calls: the app reached its API call rate limit"},
	80007:  {provider.Retry, time.Minute, "Rate limit issues: the WhatsApp Business Account reached its rate limit"},
	130429: {provider.Retry, 5 * time.Second, "Rate limit hit: Cloud API message throughput reached"},
	131000: {provider.Retry, 0, "Something went wrong: unknown failure while sending"},
	131016: {provider.Retry, 0, "Service unavailable: a temporary Cloud API problem"},
	131056: {provider.Retry, 6 * time.Second, "Pair rate limit hit: too many messages to this recipient in a short time"},
	131057: {provider.Retry, time.Minute, "Account in maintenance mode (e.g. a throughput upgrade in progress)"},
	133004: {provider.Retry, 0, "Server temporarily unavailable"}, // not in the list; plainly passing

	// Permanent for this channel: fall back to the next channel now.
	131026: {provider.Channel, 0, "Message undeliverable: not on WhatsApp, outdated app, or terms not accepted"},
	131047: {provider.Channel, 0, "Re-engagement message: more than 24 hours since the customer last replied"},
	131049: {provider.Channel, 0, "Meta chose not to deliver, to maintain healthy ecosystem engagement"},
	131051: {provider.Channel, 0, "Unsupported message type"},
	131053: {provider.Channel, 0, "Media upload error: the media could not be fetched or processed"},
	130472: {provider.Channel, 0, "User's number is part of a marketing message experiment"},
	130497: {provider.Channel, 0, "Business account is restricted from messaging users in this country"},
	132000: {provider.Channel, 0, "Template parameter count mismatch"},
	132001: {provider.Channel, 0, "Template does not exist in this language or is not approved"},
	132012: {provider.Channel, 0, "Template parameter format mismatch"},
	132015: {provider.Channel, 0, "Template is paused because of low quality"},
	132016: {provider.Channel, 0, "Template is disabled because of low quality"},
	// Not in the list: recipient- or content-specific, so SMS can still deliver.
	131021: {provider.Channel, 0, "Recipient cannot be sender"},
	131052: {provider.Channel, 0, "Media download error"},
	132005: {provider.Channel, 0, "Template hydrated text too long"},
	132007: {provider.Channel, 0, "Template format character policy violated"},

	// The sender is broken: stop this channel for every job, alert, fall back.
	0:      {provider.Sender, 0, "AuthException: unable to authenticate the app user (token expired or invalidated)"},
	190:    {provider.Sender, 0, "Access token has expired"},
	368:    {provider.Sender, 0, "Temporarily blocked for policy violations"},
	131031: {provider.Sender, 0, "Business account has been locked"},
	131042: {provider.Sender, 0, "Business eligibility payment issue"},
	131048: {provider.Sender, 0, "Spam rate limit hit: restrictions on messages from this number"},
	133010: {provider.Sender, 0, "Phone number not registered on the Cloud API"},
	// The business phone number was deleted: no job can go out from it.
	33: {provider.Sender, 0, "This phone number has been deleted"},
	// Not in the list: permission problems hit every job alike.
	3:      {provider.Sender, 0, "API Method: capability or permissions issue"},
	10:     {provider.Sender, 0, "Permission denied"},
	131005: {provider.Sender, 0, "Access denied"},

	// Permanent for the job: no channel will do better.
	100:    {provider.Job, 0, "Invalid parameter"},
	131050: {provider.Job, 0, "User has stopped marketing messages from this business"},
	130403: {provider.Job, 0, "This business has blocked the user"},
	// Not in the list: a malformed request, like 100.
	131008: {provider.Job, 0, "Required parameter is missing"},
	131009: {provider.Job, 0, "Parameter value is not valid"},
}

// subcodeNoObject is Graph's error_subcode 33 under code 100: "Object with ID ... does not
// exist, cannot be loaded due to missing permissions, or does not support this operation".
// Sent to /<phone-number-id>/messages it means the sender's id or token is wrong, which
// fails every job alike: a sender error, not the job's.
const subcodeNoObject = 33

// ClassifySubcode is Classify with the Graph error_subcode (0 when there is none): code 100
// with subcode 33 is a Sender error (the phone number id does not exist or the token may not
// use it); any other subcode changes nothing.
func ClassifySubcode(httpStatus, code, subcode int) provider.Kind {
	if code == 100 && subcode == subcodeNoObject {
		return provider.Sender
	}
	return Classify(httpStatus, code)
}

// Classify maps a Cloud API failure to a provider.Kind. code is the Graph error code (NoCode
// when the answer had none); httpStatus is the HTTP status, or 0 when the code came from a
// status webhook.
//
// Unknown codes take a safe default from the status: 429, 408 and 5xx are Retry (the
// platform is struggling, it passes); 401 is Sender (authentication is broken for every job);
// any other answer is Channel: fall back now rather than hammer Meta with a request it has
// refused, and without dead-lettering a job another channel may still deliver.
func Classify(httpStatus int, code int) provider.Kind {
	if code != NoCode {
		if r, ok := graphCodes[code]; ok {
			return r.kind
		}
		if code >= 200 && code <= 299 { // "API Permission": permission missing or removed
			return provider.Sender
		}
	}
	return classifyStatus(httpStatus)
}

func classifyStatus(status int) provider.Kind {
	switch {
	case status == 429, status == 408, status >= 500:
		return provider.Retry
	case status == 401:
		return provider.Sender
	default:
		return provider.Channel
	}
}

// GraphError is the "error" object of a Graph API error answer:
// {"error":{"message","type","code","error_subcode","error_data":{"details"},"fbtrace_id"}}.
type GraphError struct {
	Message string
	Type    string
	// Code is the Graph error code, NoCode when the object had none.
	Code      int
	Subcode   int
	Details   string
	FBTraceID string
}

// Error returns the code and the sanitised message and details.
func (e *GraphError) Error() string {
	s := "graph error"
	if e.Code != NoCode {
		s += " " + strconv.Itoa(e.Code)
	}
	return s + ": " + e.reason()
}

func (e *GraphError) reason() string {
	r := e.Message
	if e.Details != "" && e.Details != e.Message {
		if r != "" {
			r += ": "
		}
		r += e.Details
	}
	if r == "" && e.Code != NoCode {
		if rl, ok := graphCodes[e.Code]; ok {
			r = rl.meaning
		}
	}
	return sanitize(r, "")
}

// parseGraphError decodes a Graph error answer, or returns nil when body is not one.
func parseGraphError(body []byte) *GraphError {
	if len(body) == 0 {
		return nil
	}
	var env struct {
		Error *struct {
			Message   string `json:"message"`
			Type      string `json:"type"`
			Code      *int   `json:"code"`
			Subcode   int    `json:"error_subcode"`
			FBTraceID string `json:"fbtrace_id"`
			ErrorData struct {
				Details string `json:"details"`
			} `json:"error_data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Error == nil {
		return nil
	}
	e := env.Error
	ge := &GraphError{Message: e.Message, Type: e.Type, Code: NoCode, Subcode: e.Subcode,
		Details: e.ErrorData.Details, FBTraceID: e.FBTraceID}
	if e.Code != nil {
		ge.Code = *e.Code
	}
	return ge
}

// FromGraphError classifies a Graph error answered with httpStatus: Code is the error code
// as text ("131026"), Reason the sanitised message and details (with the fbtrace_id Meta
// support asks for), Kind from Classify, After the per-code delay for rate limits. Err is ge.
func FromGraphError(httpStatus int, ge *GraphError) *provider.Error {
	code := "http_" + strconv.Itoa(httpStatus)
	var after time.Duration
	if ge.Code != NoCode {
		code = strconv.Itoa(ge.Code)
		after = graphCodes[ge.Code].after
	}
	reason := ge.reason()
	if ge.FBTraceID != "" {
		reason += " (fbtrace_id " + sanitize(ge.FBTraceID, "") + ")"
	}
	return &provider.Error{Kind: ClassifySubcode(httpStatus, ge.Code, ge.Subcode), Code: code, Reason: reason, After: after, Err: ge}
}

// maxReason keeps a Reason to one readable line in a status record.
const maxReason = 400

// sanitize makes s safe for a Reason, a span or a log (provider.Sanitize).
func sanitize(s, secret string) string { return provider.Sanitize(s, maxReason, secret) }
