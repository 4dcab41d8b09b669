package templates

import "errors"

// Sentinel errors. Every error this package returns for a job wraps one of them with a detail
// naming the template, parameter or button at fault, so callers test with errors.Is and log
// err.Error().
var (
	// ErrUnknownTemplate: no template of that name exists in any language.
	ErrUnknownTemplate = errors.New("unknown template")
	// ErrUnknownLanguage: the template exists, but not in the requested language; the detail
	// lists the languages it does exist in.
	ErrUnknownLanguage = errors.New("template not available in this language")
	// ErrNotApproved: the template exists but its status is not APPROVED (PENDING, REJECTED,
	// PAUSED, DISABLED, ...); the detail names the status.
	ErrNotApproved = errors.New("template not approved")
	// ErrMissingParam: a variable of the header or body has no (or an empty) value in the
	// job's params.
	ErrMissingParam = errors.New("missing template parameter")
	// ErrExtraParam: the job gives a parameter or a button value the template has no place
	// for. Rejected rather than dropped: it is almost always a typo in a variable name.
	ErrExtraParam = errors.New("unexpected template parameter")
	// ErrTooLong: the rendered body is over 1,024 characters or the rendered header over 60.
	ErrTooLong = errors.New("rendered template too long")
	// ErrMissingMedia: the template has an image, video or document header and the job has
	// no media, or media of another type.
	ErrMissingMedia = errors.New("template media header needs media")
	// ErrMissingButton: a URL button with a variable (or a copy-code button) has no value in
	// the job's buttons.
	ErrMissingButton = errors.New("missing template button parameter")

	// ErrInvalidParam: a header or body parameter holds a newline, a tab or more than four
	// consecutive spaces, which the Cloud API refuses (error 132018). Only RenderWhite
	// returns it, and it is permanent for the white channel only: the same text can go by
	// grey or SMS, so the worker should fall back rather than fail the job.
	ErrInvalidParam = errors.New("template parameter not allowed by WhatsApp")
	// ErrUnsupported: the template uses a feature the job format cannot fill (a LOCATION or
	// PRODUCT header, a multi-product, single-product or one-time-password button, a
	// CAROUSEL or LIMITED_TIME_OFFER component). Only
	// RenderWhite returns it, and like ErrInvalidParam it is permanent for the white channel
	// only.
	ErrUnsupported = errors.New("template feature not supported")

	// ErrOtherTemplate: a review from Meta names another template id than the one the
	// definition records (another tenant's template of the same name, say): SetStatus
	// changes nothing.
	ErrOtherTemplate = errors.New("review of another Meta template")

	// ErrInvalidDefinition: a template definition is malformed (no name, no body, variables
	// that do not match its parameter_format, ...). ParseDefinition, Validate and Put
	// return it.
	ErrInvalidDefinition = errors.New("invalid template definition")
)

// permanent are the errors that make a job undeliverable on every channel.
var permanent = []error{
	ErrUnknownTemplate, ErrUnknownLanguage, ErrNotApproved, ErrMissingParam, ErrExtraParam,
	ErrTooLong, ErrMissingMedia, ErrMissingButton,
}

// IsPermanent reports whether err means the job can never be sent as it is, on any channel:
// an unknown or unapproved template, or params, buttons or media that do not fit it. The
// worker dead-letters such a job instead of retrying it. ErrInvalidParam and ErrUnsupported
// are not permanent for the job: they rule out the white channel only.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	for _, p := range permanent {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}
