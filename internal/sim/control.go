package sim

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// serveControl is the control API under /sim/: recorded messages (filtered by channel,
// phone_number_id, instance, to), rules, grey instance states and inbound messages, quality
// and account update webhooks, and stats.
func (s *Sim) serveControl(w http.ResponseWriter, r *http.Request) {
	switch p := strings.TrimSuffix(r.URL.Path, "/"); p {
	case "/sim/messages":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, filterMessages(s.Messages(), r.URL.Query()))
		case http.MethodDelete:
			s.Reset()
			w.WriteHeader(http.StatusNoContent)
		default:
			methodNotAllowed(w, "GET, DELETE")
		}
	case "/sim/rules":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, s.Rules())
		case http.MethodPost:
			var rule Rule
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rule); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "decoding the rule: " + err.Error()})
				return
			}
			if err := s.addRule(rule); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			w.WriteHeader(http.StatusCreated)
		case http.MethodDelete:
			s.ClearRules()
			w.WriteHeader(http.StatusNoContent)
		default:
			methodNotAllowed(w, "GET, POST, DELETE")
		}
	case "/sim/grey/state":
		s.serveGreyState(w, r)
	case "/sim/grey/incoming":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		var in GreyInbound
		if !decodeControl(w, r, &in) {
			return
		}
		id, err := s.GreyIncoming(in)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"idMessage": id})
	case "/sim/quality", "/sim/account":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		var err error
		if p == "/sim/quality" {
			var q QualityUpdate
			if !decodeControl(w, r, &q) {
				return
			}
			err = s.QualityUpdate(q)
		} else {
			var a AccountUpdate
			if !decodeControl(w, r, &a) {
				return
			}
			err = s.AccountUpdate(a)
		}
		switch {
		case errors.Is(err, ErrQueueFull):
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		case err != nil:
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	case "/sim/stats":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())
	default:
		http.NotFound(w, r)
	}
}

// filterMessages keeps the messages matching the query's channel, phone_number_id, instance
// and to (each optional).
func filterMessages(msgs []Message, q url.Values) []Message {
	ch, phoneID, inst, to := q.Get("channel"), q.Get("phone_number_id"), q.Get("instance"), digitsOf(q.Get("to"))
	if ch == "" && phoneID == "" && inst == "" && to == "" {
		return msgs
	}
	kept := msgs[:0]
	for _, m := range msgs {
		if (ch == "" || m.Channel == ch) && (phoneID == "" || m.PhoneNumberID == phoneID) &&
			(inst == "" || m.Instance == inst) && (to == "" || m.To == to) {
			kept = append(kept, m)
		}
	}
	return kept
}

// greyStateBody is the body of POST /sim/grey/state and the answer of GET.
type greyStateBody struct {
	Instance string `json:"instance"`
	State    string `json:"state"`
}

// serveGreyState reads (GET ?instance=) or sets (POST {"instance","state"}) a grey
// instance's state.
func (s *Sim) serveGreyState(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		inst := r.URL.Query().Get("instance")
		if inst == "" {
			inst = s.cfg.GreyInstanceID
		}
		if inst != "" && !s.servesInstance(inst) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "instance " + strconv.Quote(inst) + " is not one the simulator serves"})
			return
		}
		writeJSON(w, http.StatusOK, greyStateBody{Instance: inst, State: s.GreyState(inst)})
	case http.MethodPost:
		var b greyStateBody
		if !decodeControl(w, r, &b) {
			return
		}
		if err := s.SetGreyState(b.Instance, b.State); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w, "GET, POST")
	}
}

// decodeControl decodes a control request body strictly into v, answering 400 when it
// cannot.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "decoding the body: " + err.Error()})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
}
