package sim

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ErrorInfo describes a Cloud API error code as Meta documents it.
type ErrorInfo struct {
	Code int
	// Title is the code's title, also the "(#code) title" message of a Graph error.
	Title string
	// Details is the error_data.details text.
	Details string
	// HTTPStatus is the status Meta answers the code with.
	HTTPStatus int
}

// errorCodes are the codes Herald's classification cares about, with Meta's titles and
// statuses (the Cloud API error code reference: most codes, the throughput and pair rate
// limits included, answer 400).
var errorCodes = map[int]ErrorInfo{
	0:      {0, "AuthException", "We were unable to authenticate the app user.", http.StatusUnauthorized},
	1:      {1, "API Unknown", "Invalid request or possible server error.", http.StatusBadRequest},
	2:      {2, "API Service", "Temporary due to downtime or due to being overloaded.", http.StatusServiceUnavailable},
	4:      {4, "API Too Many Calls", "The app has reached its API call rate limit.", http.StatusBadRequest},
	10:     {10, "Permission Denied", "Permission is either not granted or has been removed.", http.StatusForbidden},
	100:    {100, "Invalid parameter", "The request included one or more unsupported or misspelled parameters.", http.StatusBadRequest},
	190:    {190, "Access token has expired", "Your access token has expired.", http.StatusUnauthorized},
	200:    {200, "API Permission", "Permission is either not granted or has been removed.", http.StatusForbidden},
	368:    {368, "Temporarily blocked for policies violations", "The WhatsApp Business Account associated with the app has been restricted or disabled for violating a platform policy.", http.StatusForbidden},
	80007:  {80007, "Rate limit issues", "The WhatsApp Business Account has reached its rate limit.", http.StatusBadRequest},
	130429: {130429, "Rate limit hit", "Cloud API message throughput has been reached.", http.StatusBadRequest},
	130472: {130472, "User's number is part of an experiment", "Failed to send message because this user's phone number is part of an experiment", http.StatusBadRequest},
	131000: {131000, "Something went wrong", "Message failed to send due to an unknown error.", http.StatusInternalServerError},
	131005: {131005, "Access denied", "Permission is either not granted or has been removed.", http.StatusForbidden},
	131008: {131008, "Required parameter is missing", "The request is missing a required parameter.", http.StatusBadRequest},
	131009: {131009, "Parameter value is not valid", "One or more parameter values are invalid.", http.StatusBadRequest},
	131016: {131016, "Service unavailable", "A service is temporarily unavailable.", http.StatusServiceUnavailable},
	131021: {131021, "Recipient cannot be sender", "Sender and recipient phone number is the same.", http.StatusBadRequest},
	131026: {131026, "Message undeliverable", "Unable to deliver message. Reasons can include: the recipient phone number is not a WhatsApp phone number; the recipient has not accepted the new Terms of Service; the recipient is using an old WhatsApp version.", http.StatusBadRequest},
	131031: {131031, "Account has been locked", "The WhatsApp Business Account associated with the app has been restricted or disabled for violating a platform policy.", http.StatusForbidden},
	131042: {131042, "Business eligibility payment issue", "There was an error related to your payment method.", http.StatusBadRequest},
	131047: {131047, "Re-engagement message", "Message failed to send because more than 24 hours have passed since the customer last replied to this number.", http.StatusBadRequest},
	131049: {131049, "This message was not delivered to maintain healthy ecosystem engagement.", "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.", http.StatusBadRequest},
	131050: {131050, "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.", "The recipient has stopped marketing messages from your business.", http.StatusBadRequest},
	131051: {131051, "Unsupported message type", "Unsupported message type.", http.StatusBadRequest},
	131052: {131052, "Media download error", "Unable to download the media sent by the user.", http.StatusBadRequest},
	131053: {131053, "Media upload error", "Unable to upload the media used in the message.", http.StatusBadRequest},
	131056: {131056, "(Business Account, Consumer Account) pair rate limit hit", "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.", http.StatusBadRequest},
	131057: {131057, "Account in maintenance mode", "Business Account is in maintenance mode.", http.StatusInternalServerError},
	132000: {132000, "Number of parameters does not match the expected number of params", "The number of variable parameter values included in the request did not match the number of variable parameters defined in the template.", http.StatusBadRequest},
	132001: {132001, "Template does not exist", "The template does not exist in the specified language or the template has not been approved.", http.StatusNotFound},
	133010: {133010, "Phone number not registered", "The phone number is not registered on the WhatsApp Business Platform.", http.StatusBadRequest},
}

// CodeInfo returns what Meta documents for a Cloud API error code; an unknown code gets a
// generic title and status 400.
func CodeInfo(code int) ErrorInfo {
	if e, ok := errorCodes[code]; ok {
		return e
	}
	return ErrorInfo{Code: code, Title: "Simulated error", Details: "Error injected by the Herald simulator.", HTTPStatus: http.StatusBadRequest}
}

// graphError is the "error" object of a Graph API error body.
type graphError struct {
	Message      string          `json:"message"`
	Type         string          `json:"type"`
	Code         int             `json:"code"`
	ErrorSubcode int             `json:"error_subcode,omitempty"`
	ErrorData    *graphErrorData `json:"error_data,omitempty"`
	FBTraceID    string          `json:"fbtrace_id"`
}

type graphErrorData struct {
	MessagingProduct string `json:"messaging_product"`
	Details          string `json:"details"`
}

func codeError(code int, details string) graphError {
	info := CodeInfo(code)
	if details == "" {
		details = info.Details
	}
	return graphError{
		Message:   "(#" + strconv.Itoa(code) + ") " + info.Title,
		Type:      "OAuthException",
		Code:      code,
		ErrorData: &graphErrorData{MessagingProduct: "whatsapp", Details: details},
	}
}

// invalidParam is the 400 code 100 answer to a malformed request, naming the problem.
func invalidParam(problem string) graphError {
	return graphError{
		Message:   "(#100) " + problem,
		Type:      "OAuthException",
		Code:      100,
		ErrorData: &graphErrorData{MessagingProduct: "whatsapp", Details: problem},
	}
}

// unsupported is Graph's answer to an object id it does not know (see the
// send_text_handles_error_response fixture).
func unsupported(method, id string) graphError {
	return graphError{
		Message: "Unsupported " + method + " request. Object with ID '" + id + "' does not exist, " +
			"cannot be loaded due to missing permissions, or does not support this operation. " +
			"Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
		Type:         "GraphMethodException",
		Code:         100,
		ErrorSubcode: 33,
	}
}

var badToken = graphError{
	Message: "Invalid OAuth access token - Cannot parse access token",
	Type:    "OAuthException",
	Code:    190,
}

func (s *Sim) writeGraphError(w http.ResponseWriter, status int, e graphError) {
	if e.FBTraceID == "" {
		e.FBTraceID = s.nextID("A")
	}
	body, _ := json.Marshal(struct {
		Error graphError `json:"error"`
	}{e})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token" "`+e.Message+`"`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// requestToken is the Bearer token of a request (or Graph's access_token query parameter).
func requestToken(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		tok = r.URL.Query().Get("access_token")
	}
	return tok
}

// authorized checks the request's token against want ("": any token).
func authorized(r *http.Request, want string) bool {
	return want == "" || subtle.ConstantTimeCompare([]byte(requestToken(r)), []byte(want)) == 1
}

// sendRequest is the part of a Cloud API send the simulator reads.
type sendRequest struct {
	MessagingProduct      *string         `json:"messaging_product"`
	RecipientType         string          `json:"recipient_type"`
	To                    json.RawMessage `json:"to"`
	Type                  string          `json:"type"`
	BizOpaqueCallbackData string          `json:"biz_opaque_callback_data"`
	Template              *struct {
		Name     string `json:"name"`
		Language *struct {
			Code   string `json:"code"`
			Policy string `json:"policy"`
		} `json:"language"`
		Components json.RawMessage `json:"components"`
	} `json:"template"`
	Text *struct {
		Body       *string `json:"body"`
		PreviewURL bool    `json:"preview_url"`
	} `json:"text"`
	Image    *mediaObject `json:"image"`
	Document *mediaObject `json:"document"`
	Video    *mediaObject `json:"video"`
}

type mediaObject struct {
	ID       string `json:"id"`
	Link     string `json:"link"`
	Caption  string `json:"caption"`
	Filename string `json:"filename"`
}

// Limits the Cloud API enforces on a send.
const (
	maxTextBody    = 4096
	maxCaption     = 1024
	maxOpaqueData  = 512
	maxTemplateLen = 512
)

// parseSend validates a send the way the Cloud API does and fills m; it returns the
// problem for a 400 code 100 answer, or "" and the recipient as the caller wrote it.
func parseSend(body []byte, m *Message) (input, problem string) {
	var req sendRequest
	if err := json.Unmarshal(body, &req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return "", "Param " + te.Field + " must be " + jsonKind(te.Type.Kind().String())
		}
		return "", "Invalid JSON in the request body: " + err.Error()
	}
	switch {
	case req.MessagingProduct == nil:
		return "", "The parameter messaging_product is required."
	case *req.MessagingProduct != "whatsapp":
		return "", "Param messaging_product must be 'whatsapp'."
	case req.RecipientType != "" && req.RecipientType != "individual":
		return "", "Param recipient_type must be 'individual'."
	case len(req.BizOpaqueCallbackData) > maxOpaqueData:
		return "", "Param biz_opaque_callback_data must be at most 512 characters long."
	}
	input, problem = parseTo(req.To)
	if problem != "" {
		return "", problem
	}
	m.To = digitsOf(input)
	m.Tenant, m.JobID = splitRef(req.BizOpaqueCallbackData)
	if req.Type == "" {
		req.Type = "text" // the Cloud API's default type
	}
	m.Type = req.Type
	switch req.Type {
	case "template":
		t := req.Template
		switch {
		case t == nil:
			return "", "The parameter template is required."
		case t.Name == "":
			return "", "The parameter template['name'] is required."
		case len(t.Name) > maxTemplateLen:
			return "", "Param template['name'] must be at most 512 characters long."
		case t.Language == nil:
			return "", "The parameter template['language'] is required."
		case t.Language.Code == "":
			return "", "The parameter template['language']['code'] is required."
		case len(t.Components) > 0 && !isJSONArray(t.Components):
			return "", "Param template['components'] must be an array."
		}
		m.Template, m.Language = t.Name, t.Language.Code
	case "text":
		switch {
		case req.Text == nil:
			return "", "The parameter text is required."
		case req.Text.Body == nil || *req.Text.Body == "":
			return "", "The parameter text['body'] is required."
		case utf8.RuneCountInString(*req.Text.Body) > maxTextBody:
			return "", "Param text['body'] must be at most 4096 characters long."
		}
		m.Text = *req.Text.Body
	case "image", "document", "video":
		obj := req.Image
		switch req.Type {
		case "document":
			obj = req.Document
		case "video":
			obj = req.Video
		}
		if p := checkMedia(req.Type, obj); p != "" {
			return "", p
		}
		m.Text = obj.Caption
	default:
		return "", "Param type must be one of {template, text, image, document, video}; got '" + req.Type + "'."
	}
	return input, ""
}

func checkMedia(kind string, obj *mediaObject) string {
	switch {
	case obj == nil:
		return "The parameter " + kind + " is required."
	case obj.ID == "" && obj.Link == "":
		return "Param " + kind + " must contain either 'id' or 'link'."
	case obj.ID != "" && obj.Link != "":
		return "Param " + kind + " must contain only one of 'id' and 'link'."
	case utf8.RuneCountInString(obj.Caption) > maxCaption:
		return "Param " + kind + "['caption'] must be at most 1024 characters long."
	}
	if obj.Link != "" {
		u, err := url.Parse(obj.Link)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "Param " + kind + "['link'] must be a valid http or https URL."
		}
	}
	return ""
}

// parseTo accepts "to" as a JSON string or number (the fixtures send both).
func parseTo(raw json.RawMessage) (input, problem string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", "The parameter to is required."
	}
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &input); err != nil {
			return "", "Param to must be a string."
		}
	} else {
		for _, c := range raw {
			if c < '0' || c > '9' {
				return "", "Param to must be a phone number."
			}
		}
		input = string(raw)
	}
	d := digitsOf(input)
	if len(d) < 5 || len(d) > 15 {
		return "", "Param to must be a phone number of 5 to 15 digits."
	}
	return input, ""
}

func isJSONArray(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '['
}

func jsonKind(goKind string) string {
	switch goKind {
	case "struct", "map", "ptr":
		return "an object"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "bool":
		return "a boolean"
	}
	return "a " + goKind
}

// jsonContentType is shared by every success answer: net/http only reads it, and assigning
// it saves the allocation of Header.Set on the hot path.
var jsonContentType = []string{"application/json; charset=UTF-8"}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// readBody reads a request body whole, in one allocation when the length is known.
func readBody(r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n > 0 && n <= maxBodyBytes {
		b := make([]byte, n)
		_, err := io.ReadFull(r.Body, b)
		return b, err
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err == nil && len(b) > maxBodyBytes {
		err = errors.New("request body larger than 1 MiB")
	}
	return b, err
}

func (s *Sim) serveSend(w http.ResponseWriter, r *http.Request, phoneID string) {
	c := counters{channel: &s.counts[chanWhite]}
	served := s.servesNumber(phoneID)
	if served {
		c.sender = s.numbers.get(phoneID)
	}
	if r.Method != http.MethodPost {
		c.reject()
		s.writeGraphError(w, http.StatusBadRequest, unsupported(strings.ToLower(r.Method), phoneID+"/messages"))
		return
	}
	if !authorized(r, s.tokenOf(phoneID)) {
		c.reject()
		s.writeGraphError(w, http.StatusUnauthorized, badToken)
		return
	}
	if !served {
		c.reject()
		s.writeGraphError(w, http.StatusBadRequest, unsupported("post", phoneID))
		return
	}
	at := time.Now()
	body, err := readBody(r)
	if err != nil {
		c.reject()
		s.writeGraphError(w, http.StatusBadRequest, invalidParam("Could not read the request body: "+err.Error()))
		return
	}
	m := Message{Channel: channelNames[chanWhite], PhoneNumberID: phoneID, Body: body, At: at}
	input, problem := parseSend(body, &m)
	if problem != "" {
		c.reject()
		s.writeGraphError(w, http.StatusBadRequest, invalidParam(problem))
		return
	}

	rule := s.match(chanWhite, phoneID, m.To)
	if rule != nil && !rule.Async {
		status := rule.HTTPStatus
		if status == 0 {
			status = CodeInfo(rule.Code).HTTPStatus
		}
		s.recordFailure(&m, c, rule.Code, status)
		s.sleepLatency(r.Context())
		if rule.Code == 0 {
			http.Error(w, http.StatusText(status), status)
			return
		}
		s.writeGraphError(w, status, codeError(rule.Code, ""))
		return
	}

	failCode := s.recordAccepted(&m, c, rule, "wamid.", http.StatusOK)
	s.sleepLatency(r.Context())

	bp := bufPool.Get().(*[]byte)
	b := append((*bp)[:0], `{"messaging_product":"whatsapp","contacts":[{"input":"`...)
	b = append(b, input...) // parseTo admits only digits, '+', ' ', '-', '(' and ')': no escaping needed
	b = append(b, `","wa_id":"`...)
	b = append(b, m.To...)
	b = append(b, `"}],"messages":[{"id":"`...)
	b = append(b, m.MessageID...)
	b = append(b, `","message_status":"accepted"}]}`...)
	w.Header()["Content-Type"] = jsonContentType
	_, _ = w.Write(b)
	*bp = b
	bufPool.Put(bp)

	if s.cfg.WebhookURL != "" {
		category := "service"
		if m.Type == "template" {
			category = "utility"
		}
		s.enqueue(&event{
			kind: kindWhite, steps: s.steps.white[boolIndex(failCode != 0)], code: failCode,
			msgID: m.MessageID, to: m.To, jobID: m.ref(), phoneID: phoneID, category: category,
		})
	}
}

// asyncCode is the code of an Async rule's failed status; a rule without one reports the
// commonest asynchronous failure.
func asyncCode(code int) int {
	if code == 0 {
		return 131026
	}
	return code
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// serveTemplates lists cfg.Templates with Graph's cursor pagination.
func (s *Sim) serveTemplates(w http.ResponseWriter, r *http.Request, wabaID string) {
	if r.Method == http.MethodPost {
		s.createTemplate(w, r, wabaID)
		return
	}
	if r.Method != http.MethodGet {
		s.writeGraphError(w, http.StatusBadRequest, unsupported(strings.ToLower(r.Method), wabaID+"/message_templates"))
		return
	}
	if !s.wabaAllowed(w, r, wabaID) {
		return
	}
	q := r.URL.Query()
	limit := defaultPageLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			s.writeGraphError(w, http.StatusBadRequest, invalidParam("Param limit must be a positive integer."))
			return
		}
		limit = n
	}
	listed := s.templateList()
	total := len(listed)
	start, end := 0, min(limit, total)
	switch {
	case q.Get("after") != "":
		i, ok := decodeCursor(q.Get("after"))
		if !ok {
			s.writeGraphError(w, http.StatusBadRequest, invalidParam("Param after is not a valid cursor."))
			return
		}
		start = min(i+1, total)
		end = min(start+limit, total)
	case q.Get("before") != "":
		i, ok := decodeCursor(q.Get("before"))
		if !ok {
			s.writeGraphError(w, http.StatusBadRequest, invalidParam("Param before is not a valid cursor."))
			return
		}
		end = min(i, total)
		start = max(end-limit, 0)
	}
	s.sleepLatency(r.Context())

	type cursors struct {
		Before string `json:"before"`
		After  string `json:"after"`
	}
	type paging struct {
		Cursors  cursors `json:"cursors"`
		Next     string  `json:"next,omitempty"`
		Previous string  `json:"previous,omitempty"`
	}
	page := struct {
		Data   []json.RawMessage `json:"data"`
		Paging *paging           `json:"paging,omitempty"`
	}{Data: listed[start:end]}
	if page.Data == nil {
		page.Data = []json.RawMessage{}
	}
	if end > start {
		p := &paging{Cursors: cursors{Before: encodeCursor(start), After: encodeCursor(end - 1)}}
		if end < total {
			p.Next = pageURL(r, "after", p.Cursors.After, limit)
		}
		if start > 0 {
			p.Previous = pageURL(r, "before", p.Cursors.Before, limit)
		}
		page.Paging = p
	}
	body, err := json.Marshal(page)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_, _ = w.Write(body)
}

// Cursors are opaque to clients; the simulator's encode an index like Graph's base64 ones.
func encodeCursor(i int) string {
	return base64.RawURLEncoding.EncodeToString(strconv.AppendInt(nil, int64(i), 10))
}

func decodeCursor(c string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	i, err := strconv.Atoi(string(b))
	return i, err == nil && i >= 0
}

// pageURL is the absolute URL of a neighbouring page, keeping the request's other parameters.
func pageURL(r *http.Request, dir, cursor string, limit int) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	q := r.URL.Query()
	q.Del("after")
	q.Del("before")
	q.Del("access_token") // never echo a token into a URL
	q.Set(dir, cursor)
	q.Set("limit", strconv.Itoa(limit))
	u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
	return u.String()
}
