package white

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/herald-notify/herald/internal/provider"
)

// Submission is the Cloud API's answer to a template creation: Meta's id of the template,
// its status (PENDING while in review) and its category.
type Submission struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Category string `json:"category"`
}

// SubmitTemplate submits a template for Meta's review: POST
// {base}/{version}/{WABA_ID}/message_templates with body, a JSON object with name, language,
// category, components and, optionally, parameter_format (the Cloud API's creation format).
// The verdict comes later, by a message_template_status_update webhook. Errors are
// *provider.Error, the Graph error's message included (a name taken, a malformed component).
func (c *Client) SubmitTemplate(ctx context.Context, body []byte) (Submission, error) {
	cctx, cancel := context.WithTimeoutCause(ctx, c.timeout, errClientTimeout)
	defer cancel()
	u, _, _ := strings.Cut(c.listURL, "?")
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Submission{}, &provider.Error{Kind: provider.Sender, Code: "bad_config", Reason: "build request: " + c.sanitize(err.Error())}
	}
	req.Header["Authorization"] = []string{c.auth}
	req.Header["Content-Type"] = []string{"application/json"}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Submission{}, fmt.Errorf("white: submit template: %w", c.transportError(ctx, cctx, err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return Submission{}, fmt.Errorf("white: submit template: %w", c.transportError(ctx, cctx, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Submission{}, fmt.Errorf("white: submit template: %w", c.statusError(resp, data, ""))
	}
	var s Submission
	if err := json.Unmarshal(data, &s); err != nil || s.ID == "" {
		return Submission{}, fmt.Errorf("white: submit template: %w", &provider.Error{
			Kind: provider.Retry, Code: "bad_response", Reason: "undecodable answer: " + c.snippet(data)})
	}
	return s, nil
}
