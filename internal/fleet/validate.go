package fleet

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/herald-notify/herald/internal/quiet"
)

// Validate checks every rule of the fleet and reports every broken one at once, as
// [Errors]. [Parse] calls it; call it on a Fleet built by hand or by [FromEnv] before sending
// with it.
func (f *Fleet) Validate() error {
	v := validator{l: &list{}}
	v.fleet(f)
	return v.l.err()
}

// validator checks a fleet. skip holds the paths the decoder already reported (a value of
// the wrong type is not also "required"); env the paths of values read from the environment,
// which are never quoted.
type validator struct {
	l    *list
	skip map[string]bool
	env  map[string]string
}

func (v *validator) add(path, format string, args ...any) {
	if v.skip[path] {
		return
	}
	v.l.add(path, fmt.Sprintf(format, args...))
}

// show quotes a value for a message; one that came from the environment is shown as the file
// writes it (${NAME}), never expanded.
func (v *validator) show(path, value string) string {
	if raw, ok := v.env[path]; ok {
		return raw
	}
	return strconv.Quote(value)
}

// fields that belong to each kind (and SMS driver); any other field set on a sender is an
// error, so a grey setting on a white sender is not silently ignored.
var (
	commonFields = []string{"id", "kind", "mps", "pair_interval"}
	kindFields   = map[string][]string{
		KindWhite: {"phone_number_id", "waba_id", "portfolio", "token", "app_secret", "verify_token",
			"base_url", "api_version", "daily_unique", "display_phone_number"},
		KindGrey: {"base_url", "instance_id", "token", "webhook_token", "daily_max", "warmup", "jitter"},
		KindSMS:  {"driver"},
	}
	driverFields = map[string][]string{
		DriverKannel: {"url", "user", "password", "from"},
		DriverSMPP:   {"addr", "system_id", "password", "from"},
		DriverNATS:   {"subject", "from"},
	}
)

func (v *validator) fleet(f *Fleet) {
	if len(f.Senders) == 0 && !v.skip["senders"] {
		v.add("senders", "must list at least one sender")
	}
	for _, name := range sortedKeys(f.Portfolios) {
		p := "portfolios." + name
		if name != "" && !validName(name) {
			p = join("portfolios", name)
			v.add(p, "a portfolio name must be 1 to 63 of a-z, 0-9 and -")
		}
		if f.Portfolios[name].DailyUnique < 0 {
			v.add(p+".daily_unique", "must not be negative (0 means unlimited)")
		}
	}
	ids := map[string]int{}
	phones := map[string]int{}
	instances := map[string]int{}
	for i := range f.Senders {
		v.sender(f, i, ids, phones, instances)
	}
	if len(f.Tenants) == 0 && !v.skip["tenants"] {
		v.add("tenants", "must define at least one tenant")
	}
	keys := map[string]string{} // API key → where it first appears
	for _, name := range sortedKeys(f.Tenants) {
		v.tenant(f, name, keys)
	}
}

func (v *validator) sender(f *Fleet, i int, ids, phones, instances map[string]int) {
	s := &f.Senders[i]
	at := func(field string) string { return fmt.Sprintf("senders[%d].%s", i, field) }
	switch {
	case s.ID == "":
		v.add(at("id"), "required")
	case !validName(s.ID):
		v.add(at("id"), "must be 1 to 63 of a-z, 0-9 and -")
	default:
		if j, dup := ids[s.ID]; dup {
			v.add(at("id"), "%s is already the id of senders[%d]", v.show(at("id"), s.ID), j)
		} else {
			ids[s.ID] = i
		}
	}
	if !v.checkKind(s, at) {
		return
	}
	v.foreignFields(s, at)
	if s.MPS < 0 || s.MPS == 0 && s.Kind != KindSMS || math.IsNaN(s.MPS) || math.IsInf(s.MPS, 0) {
		v.add(at("mps"), "must be greater than 0")
	}
	if s.PairInterval != nil && *s.PairInterval < 0 {
		v.add(at("pair_interval"), "must not be negative")
	}
	switch s.Kind {
	case KindWhite:
		v.white(f, s, i, at, phones)
	case KindGrey:
		v.grey(s, i, at, instances)
	case KindSMS:
		v.sms(s, at)
	}
}

// checkKind reports a missing or unknown kind (or SMS driver); false stops the checks of the
// sender, which all depend on its kind.
func (v *validator) checkKind(s *Sender, at func(string) string) bool {
	switch s.Kind {
	case KindWhite, KindGrey, KindSMS:
	case "":
		v.add(at("kind"), "required (white, grey or sms)")
		return false
	default:
		v.add(at("kind"), "must be white, grey or sms, not %s", v.show(at("kind"), s.Kind))
		return false
	}
	if s.Kind != KindSMS {
		return true
	}
	switch s.Driver {
	case DriverKannel, DriverSMPP, DriverNATS:
	case "":
		v.add(at("driver"), "required for an sms sender (kannel, smpp or nats)")
	default:
		v.add(at("driver"), "must be kannel, smpp or nats, not %s", v.show(at("driver"), s.Driver))
	}
	return true
}

// foreignFields reports fields set that do not belong to the sender's kind or driver.
func (v *validator) foreignFields(s *Sender, at func(string) string) {
	allowed := map[string]bool{}
	for _, f := range commonFields {
		allowed[f] = true
	}
	for _, f := range kindFields[s.Kind] {
		allowed[f] = true
	}
	drivers := []string{s.Driver}
	if s.Kind == KindSMS && driverFields[s.Driver] == nil {
		// The driver is missing or unknown (reported): its fields cannot be told apart.
		drivers = []string{DriverKannel, DriverSMPP, DriverNATS}
	}
	for _, d := range drivers {
		for _, f := range driverFields[d] {
			allowed[f] = true
		}
	}
	what := "a " + s.Kind + " sender"
	switch {
	case s.Kind == KindSMS && driverFields[s.Driver] != nil:
		what = "an sms sender with driver " + s.Driver
	case s.Kind == KindSMS:
		what = "an sms sender"
	}
	for _, fv := range setFields(s) {
		if !allowed[fv] {
			v.add(at(fv), "not a field of %s", what)
		}
	}
}

// setFields lists the yaml keys of the non-zero fields of s, in declaration order; the
// defaults the decoder fills belong to their kind, so they never show up as foreign.
func setFields(s *Sender) []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(s.BaseURL != "", "base_url")
	add(s.Token != "", "token")
	add(s.PhoneNumberID != "", "phone_number_id")
	add(s.WABAID != "", "waba_id")
	add(s.Portfolio != "", "portfolio")
	add(s.AppSecret != "", "app_secret")
	add(s.VerifyToken != "", "verify_token")
	add(s.APIVersion != "", "api_version")
	add(s.DailyUnique != 0, "daily_unique")
	add(s.DisplayPhoneNumber != "", "display_phone_number")
	add(s.InstanceID != "", "instance_id")
	add(s.WebhookToken != "", "webhook_token")
	add(s.DailyMax != 0, "daily_max")
	add(s.Warmup != nil, "warmup")
	add(s.Jitter != 0, "jitter")
	add(s.Driver != "", "driver")
	add(s.URL != "", "url")
	add(s.User != "", "user")
	add(s.Password != "", "password")
	add(s.From != "", "from")
	add(s.Addr != "", "addr")
	add(s.SystemID != "", "system_id")
	add(s.Subject != "", "subject")
	return out
}

func (v *validator) white(f *Fleet, s *Sender, i int, at func(string) string, phones map[string]int) {
	switch {
	case s.PhoneNumberID == "":
		v.add(at("phone_number_id"), "required for a white sender (the Cloud API phone number id)")
	case !digits(s.PhoneNumberID):
		v.add(at("phone_number_id"), "must be digits only (the Cloud API phone number id, not the phone number)")
	default:
		if j, dup := phones[s.PhoneNumberID]; dup {
			v.add(at("phone_number_id"), "already the phone_number_id of senders[%d] (%s)", j, f.Senders[j].ID)
		} else {
			phones[s.PhoneNumberID] = i
		}
	}
	if s.WABAID != "" && !digits(s.WABAID) {
		v.add(at("waba_id"), "must be digits only")
	}
	v.secret(at("token"), s.Token, true, 0)
	v.secret(at("app_secret"), s.AppSecret, true, 0)
	v.secret(at("verify_token"), s.VerifyToken, false, 0)
	v.httpURL(at("base_url"), s.BaseURL, true)
	if !apiVersion(s.APIVersion) {
		v.add(at("api_version"), "must be a Graph API version like v21.0")
	}
	if s.DailyUnique < 0 {
		v.add(at("daily_unique"), "must not be negative (0 means no limit of its own)")
	}
	if s.Portfolio != "" {
		if _, ok := f.Portfolios[s.Portfolio]; !ok {
			v.add(at("portfolio"), "no portfolio %s in portfolios", v.show(at("portfolio"), s.Portfolio))
		}
	}
	if d := strings.TrimPrefix(s.DisplayPhoneNumber, "+"); s.DisplayPhoneNumber != "" && (!digits(d) || len(d) < 5 || len(d) > 15) {
		v.add(at("display_phone_number"), "must be the number's 5 to 15 digits, as Meta's webhooks show it")
	}
}

func (v *validator) grey(s *Sender, i int, at func(string) string, instances map[string]int) {
	if s.BaseURL == "" {
		v.add(at("base_url"), "required for a grey sender (or set HERALD_GREY_BASE_URL)")
	} else {
		v.httpURL(at("base_url"), s.BaseURL, false)
	}
	switch {
	case s.InstanceID == "":
		v.add(at("instance_id"), "required for a grey sender")
	case !digits(s.InstanceID):
		v.add(at("instance_id"), "must be digits only (GREEN-API's idInstance)")
	default:
		if j, dup := instances[s.InstanceID]; dup {
			v.add(at("instance_id"), "already the instance_id of senders[%d]", j)
		} else {
			instances[s.InstanceID] = i
		}
	}
	v.secret(at("token"), s.Token, true, 0)
	v.secret(at("webhook_token"), s.WebhookToken, true, MinWebhookTokenLen)
	if s.DailyMax < 0 {
		v.add(at("daily_max"), "must not be negative (0 means no cap)")
	}
	if w := s.Warmup; w != nil {
		if s.DailyMax <= 0 {
			v.add(at("warmup"), "needs daily_max, the cap it ramps up to")
		}
		switch {
		case w.Start < 1:
			v.add(at("warmup.start"), "must be at least 1")
		case s.DailyMax > 0 && w.Start > s.DailyMax:
			v.add(at("warmup.start"), "must not be above daily_max (%d)", s.DailyMax)
		}
		if w.Days < 1 {
			v.add(at("warmup.days"), "must be at least 1")
		}
	}
	if s.Jitter < 0 || s.Jitter > 1 {
		v.add(at("jitter"), "must be between 0 and 1")
	}
}

func (v *validator) sms(s *Sender, at func(string) string) {
	switch s.Driver {
	case DriverKannel:
		if s.URL == "" {
			v.add(at("url"), "required for the kannel driver (its sendsms URL)")
		} else {
			v.httpURL(at("url"), s.URL, false)
		}
		v.password(at("password"), s.Password)
	case DriverSMPP:
		if s.Addr == "" {
			v.add(at("addr"), "required for the smpp driver (host:port of the SMSC)")
		} else if host, port, err := net.SplitHostPort(s.Addr); err != nil || host == "" || port == "" {
			v.add(at("addr"), "must be host:port")
		}
		switch {
		case s.SystemID == "":
			v.add(at("system_id"), "required for the smpp driver")
		case len(s.SystemID) > 15:
			v.add(at("system_id"), "must be at most 15 characters (SMPP 3.4)")
		}
		v.password(at("password"), s.Password)
	case DriverNATS:
		if !natsSubject(s.Subject) {
			v.add(at("subject"), "must be a NATS subject: dot-separated tokens, no spaces or wildcards")
		}
	}
}

func (v *validator) tenant(f *Fleet, name string, keys map[string]string) {
	t := f.Tenants[name]
	p := join("tenants", name)
	if !validName(name) {
		v.add(p, "a tenant name must be 1 to 63 of a-z, 0-9 and -")
	}
	for i, k := range t.APIKeys {
		kp := fmt.Sprintf("%s.api_keys[%d]", p, i)
		if len(k) < MinAPIKeyLen {
			v.add(kp, "must be at least %d characters", MinAPIKeyLen)
			continue
		}
		if hasSpace(string(k)) {
			v.add(kp, "must not contain spaces, tabs or line breaks")
			continue
		}
		if first, dup := keys[string(k)]; dup {
			v.add(kp, "the same key as %s: a key names one tenant", first)
			continue
		}
		keys[string(k)] = kp
	}
	if len(t.Channels) == 0 {
		v.add(p+".channels", "must list at least one of white, grey, sms")
	}
	seenCh := map[string]bool{}
	for i, ch := range t.Channels {
		cp := fmt.Sprintf("%s.channels[%d]", p, i)
		switch {
		case ch != KindWhite && ch != KindGrey && ch != KindSMS:
			v.add(cp, "must be white, grey or sms, not %s", v.show(cp, ch))
		case seenCh[ch]:
			v.add(cp, "%s is listed twice", ch)
		}
		seenCh[ch] = true
	}
	if len(t.Senders) == 0 {
		v.add(p+".senders", "must list at least one sender id")
	}
	kinds := map[string]bool{}
	seenS := map[string]bool{}
	unknown := false
	for i, id := range t.Senders {
		sp := fmt.Sprintf("%s.senders[%d]", p, i)
		s, ok := f.SenderByID(id)
		switch {
		case !ok:
			v.add(sp, "no sender %s in senders", v.show(sp, id))
			unknown = true
		case seenS[id]:
			v.add(sp, "%s is listed twice", v.show(sp, id))
		default:
			kinds[s.Kind] = true
		}
		seenS[id] = true
	}
	for i, ch := range t.Channels {
		// An unknown sender may be the missing kind: its error is the one to fix first.
		if (ch == KindWhite || ch == KindGrey || ch == KindSMS) && !kinds[ch] && len(t.Senders) > 0 && !unknown {
			v.add(fmt.Sprintf("%s.channels[%d]", p, i), "no %s sender in %s.senders", ch, p)
		}
	}
	if t.QuietHours != "" {
		if _, err := quiet.Parse(t.QuietHours); err != nil {
			v.add(p+".quiet_hours", "must be HH:MM-HH:MM (21:00-09:00) or off")
		}
	}
}

// secret checks a credential without ever quoting it.
func (v *validator) secret(path string, s Secret, required bool, minLen int) {
	switch {
	case s == "" && required:
		v.add(path, "required")
	case s == "":
	case hasSpace(string(s)):
		v.add(path, "must not contain spaces, tabs or line breaks (a stray newline from a secret file?)")
	case len(s) < minLen:
		v.add(path, "must be at least %d characters, so it cannot be guessed", minLen)
	}
}

// password checks an SMS password, which may hold spaces, without ever quoting it.
func (v *validator) password(path string, s Secret) {
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 {
			v.add(path, "must not contain tabs or line breaks (a stray newline from a secret file?)")
			return
		}
	}
}

func (v *validator) httpURL(path, s string, required bool) {
	if s == "" {
		if required {
			v.add(path, "required")
		}
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(path, "must be an absolute http(s) URL")
		return
	}
	if u.User != nil {
		v.add(path, "must not carry credentials (user and password have fields of their own)")
	}
}

// validName: ^[a-z0-9-]{1,63}$, the shape of sender, portfolio and tenant names. Names are
// segments of Redis keys and NATS subjects (herald.hold.deadline.<tenant>.<id>), so they
// carry no dot, colon or slash.
func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func hasSpace(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == 0x85 || r == 0xa0 || r == 0x2028 || r == 0x2029 {
			return true
		}
	}
	return false
}

// apiVersion accepts Graph versions: v21.0.
func apiVersion(s string) bool {
	rest, ok := strings.CutPrefix(s, "v")
	if !ok {
		return false
	}
	major, minor, ok := strings.Cut(rest, ".")
	return ok && digits(major) && digits(minor)
}

func natsSubject(s string) bool {
	if s == "" {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n*>") {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
