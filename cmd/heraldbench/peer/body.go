package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// template is what the peer knows of an approved template: the names of its body
// parameters in the order of its text, and the indexes of its URL buttons. A team without
// Herald's catalogue keeps this next to the code.
type template struct {
	body       []string
	urlButtons []string
}

// templates are the templates the benchmark sends (Herald's sample order_ready).
var templates = map[string]template{
	"order_ready": {body: []string{"order", "address", "until"}, urlButtons: []string{"0"}},
}

// Cloud API request body (POST /<phone_number_id>/messages), in the field order of Meta's
// examples, as Herald writes it.
type (
	message struct {
		MessagingProduct string      `json:"messaging_product"`
		RecipientType    string      `json:"recipient_type"`
		To               string      `json:"to"`
		Type             string      `json:"type"`
		Template         tmplPayload `json:"template"`
		BizOpaque        string      `json:"biz_opaque_callback_data,omitempty"`
	}
	tmplPayload struct {
		Name     string `json:"name"`
		Language struct {
			Code string `json:"code"`
		} `json:"language"`
		Components []component `json:"components,omitempty"`
	}
	component struct {
		Type       string      `json:"type"`
		SubType    string      `json:"sub_type,omitempty"`
		Index      string      `json:"index,omitempty"`
		Parameters []parameter `json:"parameters"`
	}
	parameter struct {
		Type          string `json:"type"`
		ParameterName string `json:"parameter_name,omitempty"`
		Text          string `json:"text"`
	}
)

// Body is the Cloud API request body of job j: its template with named body parameters and
// URL button parameters; biz_opaque_callback_data carries the job's "<tenant>/<id>", so the
// simulator's log names the job. An unknown template or a missing parameter is an error naming it.
func Body(j Job) ([]byte, error) {
	t, ok := templates[j.Template]
	if !ok {
		return nil, fmt.Errorf("template: unknown template %q", j.Template)
	}
	to := strings.TrimPrefix(j.To, "+")
	if to == "" || strings.Trim(to, "0123456789") != "" {
		// The number itself stays out of the error: errors are logged.
		return nil, fmt.Errorf("to: not an E.164 number (%d characters)", len(j.To))
	}
	ref := j.ID
	if j.Tenant != "" {
		ref = j.Tenant + "/" + j.ID
	}
	m := message{MessagingProduct: "whatsapp", RecipientType: "individual", To: to, Type: "template", BizOpaque: ref}
	m.Template.Name, m.Template.Language.Code = j.Template, j.Language
	if len(t.body) > 0 {
		c := component{Type: "body"}
		for _, name := range t.body {
			v, ok := j.Params[name]
			if !ok {
				return nil, fmt.Errorf("params.%s: missing", name)
			}
			c.Parameters = append(c.Parameters, parameter{Type: "text", ParameterName: name, Text: v})
		}
		m.Template.Components = append(m.Template.Components, c)
	}
	for _, idx := range t.urlButtons {
		v, ok := j.Buttons[idx]
		if !ok {
			return nil, fmt.Errorf("buttons.%s: missing", idx)
		}
		m.Template.Components = append(m.Template.Components,
			component{Type: "button", SubType: "url", Index: idx, Parameters: []parameter{{Type: "text", Text: v}}})
	}
	return json.Marshal(m)
}
