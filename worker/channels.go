package worker

import (
	"context"
	"strings"

	"github.com/herald-notify/herald/internal/grey"
	"github.com/herald-notify/herald/internal/job"
	"github.com/herald-notify/herald/internal/provider"
	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/templates"
	"github.com/herald-notify/herald/internal/white"
)

// WhiteClient is the Cloud API adapter's send call.
type WhiteClient interface {
	Send(ctx context.Context, m WhiteMessage) (Result, error)
}

var _ WhiteClient = (*white.Client)(nil)

// SMSClient is an SMS driver's send call.
type SMSClient interface {
	Send(ctx context.Context, m SMSMessage) (Result, error)
}

var _ SMSClient = (*sms.Kannel)(nil)

// White renders jobs for the Cloud API: template components, or free-form text and media
// inside the 24-hour window.
type White struct{ Client WhiteClient }

var _ Sender = White{}

// Send renders m and sends it through the Cloud API.
func (s White) Send(ctx context.Context, m Message) (Result, error) {
	j := m.Job
	wm := white.Message{JobID: j.Ref(), To: j.To}
	if m.Template != nil {
		t, err := m.Template.RenderWhite(input(j))
		if err != nil {
			return Result{}, renderError(err)
		}
		wm.Template = t
	} else {
		if !m.WindowOpen {
			return Result{}, &provider.Error{Kind: provider.Channel, Code: "window_closed",
				Reason: "free-form text goes over WhatsApp only inside the 24-hour customer-service window"}
		}
		wm.Text = j.Text
		if j.Media != nil {
			wm.Media = j.Media
			if wm.Media.Caption == "" && j.Text != "" {
				mm := *j.Media
				mm.Caption = j.Text
				wm.Media = &mm
			}
			wm.Text = ""
		}
	}
	return s.Client.Send(ctx, wm)
}

// Breaker is the grey client's circuit breaker state (closed for a client without one): a
// pool leaves an instance alone while it is open.
func (s Grey) Breaker() BreakerState {
	if b, ok := s.Client.(interface{ Breaker() grey.BreakerState }); ok {
		return b.Breaker()
	}
	return grey.BreakerClosed
}

// GreyClient is the grey gateway adapter's send call.
type GreyClient interface {
	Send(ctx context.Context, m GreyMessage) (Result, error)
}

var _ GreyClient = (*grey.Client)(nil)

// Grey renders jobs as plain text for the grey gateway: the template's text (no approval
// needed there), or the job's text; media goes by URL with the text as its caption.
type Grey struct{ Client GreyClient }

var _ Sender = Grey{}

// Send renders m and sends it through the grey gateway.
func (s Grey) Send(ctx context.Context, m Message) (Result, error) {
	j := m.Job
	gm := grey.Message{JobID: j.Ref(), To: j.To, Media: j.Media}
	if m.Template != nil {
		t, err := m.Template.RenderText(input(j))
		if err != nil {
			return Result{}, renderError(err)
		}
		gm.Text = t
	} else {
		gm.Text = j.Text
	}
	return s.Client.Send(ctx, gm)
}

// SMS renders jobs as plain text for an SMS driver: sms_text when the job has one, else the
// rendered template (or the job's text), with the media URL appended.
type SMS struct{ Client SMSClient }

var _ Sender = SMS{}

// Send renders m and sends it as SMS.
func (s SMS) Send(ctx context.Context, m Message) (Result, error) {
	text, err := PlainText(m)
	if err != nil {
		return Result{}, err
	}
	return s.Client.Send(ctx, sms.Message{JobID: m.Job.Ref(), To: m.Job.To, Text: text})
}

// PlainText is a job's text for grey and SMS.
func PlainText(m Message) (string, error) {
	j := m.Job
	var text string
	switch {
	case j.SMSText != "":
		return j.SMSText, nil
	case m.Template != nil:
		t, err := m.Template.RenderText(input(j))
		if err != nil {
			return "", renderError(err)
		}
		text = t
	default:
		text = j.Text
	}
	if j.Media != nil && !strings.Contains(text, j.Media.URL) {
		text = strings.TrimRight(text, "\n") + "\n" + j.Media.URL
	}
	return text, nil
}

func input(j *job.Job) templates.Input {
	return templates.Input{Params: j.Params, Media: j.Media, Buttons: j.Buttons}
}

// renderError: a job that does not fit its template can never be sent anywhere; what only
// WhatsApp refuses (a parameter with a newline, an unsupported component) falls back.
func renderError(err error) error {
	kind := provider.Channel
	if templates.IsPermanent(err) {
		kind = provider.Job
	}
	return &provider.Error{Kind: kind, Code: "template", Reason: err.Error(), Err: err}
}
