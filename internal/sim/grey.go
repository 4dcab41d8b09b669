package sim

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// GREEN-API limits.
const maxGreyText = 20000

type greyRequest struct {
	ChatID   string `json:"chatId"`
	Message  string `json:"message"`
	URLFile  string `json:"urlFile"`
	FileName string `json:"fileName"`
	Caption  string `json:"caption"`
}

// greyError answers in the simulator's approximation of GREEN-API's error body.
func greyError(w http.ResponseWriter, status int, description string) {
	body, _ := json.Marshal(struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	}{status, description})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// serveGrey is a GREEN-API style gateway: POST /waInstance{id}/sendMessage/{token} and
// /waInstance{id}/sendFileByUrl/{token}, GET /waInstance{id}/getStateInstance/{token}.
func (s *Sim) serveGrey(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/waInstance")
	instance, rest, _ := strings.Cut(rest, "/")
	method, token, _ := strings.Cut(rest, "/")
	c := counters{channel: &s.counts[chanGrey]}
	served := s.servesInstance(instance)
	if served {
		c.sender = s.instances.get(instance)
	}
	want := http.MethodPost
	switch method {
	case "sendMessage", "sendFileByUrl":
	case "getStateInstance":
		want = http.MethodGet
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != want {
		c.reject()
		w.Header().Set("Allow", want)
		greyError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if tok := s.greyTokenOf(instance); !served || (tok != "" && subtle.ConstantTimeCompare([]byte(token), []byte(tok)) != 1) {
		c.reject()
		greyError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if method == "getStateInstance" {
		s.sleepLatency(r.Context())
		writeJSON(w, http.StatusOK, struct {
			StateInstance string `json:"stateInstance"`
		}{s.GreyState(instance)})
		return
	}
	at := time.Now()
	body, err := readBody(r)
	if err != nil {
		c.reject()
		greyError(w, http.StatusBadRequest, "Validation failed. Details: "+err.Error())
		return
	}
	var req greyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		c.reject()
		greyError(w, http.StatusBadRequest, "Validation failed. Details: the body is not a JSON object")
		return
	}
	m := Message{Channel: channelNames[chanGrey], Instance: instance, Body: body, At: at}
	if p := parseGrey(method, &req, &m); p != "" {
		c.reject()
		greyError(w, http.StatusBadRequest, "Validation failed. Details: "+p)
		return
	}

	// An instance that cannot send answers the way GREEN-API does (its common errors table);
	// a yellowCard instance accepts and queues, and reports yellowCard instead of sent.
	state := s.GreyState(instance)
	if refusal := greyRefusal(state); refusal != "" {
		s.recordFailure(&m, c, 0, http.StatusBadRequest)
		s.sleepLatency(r.Context())
		greyError(w, http.StatusBadRequest, refusal)
		return
	}

	rule := s.match(chanGrey, instance, m.To)
	if rule != nil && !rule.Async {
		status := rule.HTTPStatus
		if status == 0 {
			status = http.StatusInternalServerError
			if rule.Code >= 400 && rule.Code <= 599 { // GREEN-API codes are HTTP statuses (466: quota)
				status = rule.Code
			}
		}
		s.recordFailure(&m, c, rule.Code, status)
		s.sleepLatency(r.Context())
		if rule.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(rule.RetryAfter))
		}
		greyError(w, status, "Simulated failure")
		return
	}
	failCode := s.recordAccepted(&m, c, rule, "", http.StatusOK)
	s.sleepLatency(r.Context())
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"idMessage":"` + m.MessageID + `"}`))

	if s.cfg.GreyWebhookURL != "" {
		steps := s.steps.white[boolIndex(failCode != 0)]
		switch {
		case state == GreyYellowCard:
			steps = greyYellowCardSteps
		case s.greyNoAccount[m.To]:
			steps = greyNoAccountSteps
		}
		s.enqueue(&event{
			kind: kindGrey, steps: steps, code: failCode,
			msgID: m.MessageID, to: m.To, instance: instance,
		})
	}
}

// Report sequences of grey sends that never reach the recipient.
var (
	greyNoAccountSteps  = []step{{status: "noAccount"}}
	greyYellowCardSteps = []step{{status: "yellowCard"}}
)

// greyRefusal is GREEN-API's answer to a send while the instance is in state, or "" when the
// instance accepts sends.
func greyRefusal(state string) string {
	switch state {
	case GreyAuthorized, GreyYellowCard:
		return ""
	case GreyStarting:
		return "instance in starting process try later"
	}
	return "instance is starting or not authorized"
}

func parseGrey(method string, req *greyRequest, m *Message) string {
	user, ok := strings.CutSuffix(req.ChatID, "@c.us")
	switch {
	case req.ChatID == "":
		return "'chatId' is required"
	case !ok || digitsOf(user) != user || len(user) < 5:
		return "'chatId' must be a personal chat id like 79001234567@c.us"
	}
	m.To = user
	if method == "sendMessage" {
		switch {
		case req.Message == "":
			return "'message' is required"
		case utf8.RuneCountInString(req.Message) > maxGreyText:
			return "'message' length must be less than or equal to 20000 characters long"
		}
		m.Type, m.Text = "text", req.Message
		return ""
	}
	switch {
	case req.URLFile == "":
		return "'urlFile' is required"
	case req.FileName == "":
		return "'fileName' is required"
	}
	m.Type, m.Text = mediaType(req.FileName), req.Caption
	return ""
}

// mediaType guesses the Message type of a file from its name.
func mediaType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".jpg", ".jpeg", ".png", ".webp", ".gif":
		return "image"
	case ".mp4", ".3gp", ".mov":
		return "video"
	}
	return "document"
}

// greyStatus is a GREEN-API outgoingMessageStatus notification.
func (s *Sim) greyStatus(ev *event, status string, now time.Time) []byte {
	id, _ := strconv.ParseInt(ev.instance, 10, 64)
	type instanceData struct {
		IDInstance   int64  `json:"idInstance"`
		Wid          string `json:"wid"`
		TypeInstance string `json:"typeInstance"`
	}
	n := struct {
		TypeWebhook  string       `json:"typeWebhook"`
		ChatID       string       `json:"chatId"`
		InstanceData instanceData `json:"instanceData"`
		Timestamp    int64        `json:"timestamp"`
		IDMessage    string       `json:"idMessage"`
		Status       string       `json:"status"`
		Description  string       `json:"description,omitempty"`
		SendByAPI    bool         `json:"sendByApi"`
	}{
		TypeWebhook:  "outgoingMessageStatus",
		ChatID:       ev.to + "@c.us",
		InstanceData: instanceData{IDInstance: id, Wid: s.greyWidOf(ev.instance) + "@c.us", TypeInstance: "whatsapp"},
		Timestamp:    now.Unix(),
		IDMessage:    ev.msgID,
		Status:       status,
		SendByAPI:    true,
	}
	switch status {
	case "failed":
		n.Description = CodeInfo(ev.code).Title
	case "noAccount":
		n.Description = "The recipient's phone number does not have a WhatsApp account"
	case "yellowCard":
		n.Description = "Sending is suspended on the instance for spam activity"
	}
	body, _ := json.Marshal(n)
	return body
}
