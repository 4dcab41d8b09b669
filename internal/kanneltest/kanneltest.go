// Package kanneltest starts a real Kannel SMS gateway for tests: bearerbox and smsbox
// processes (Debian package kannel) on free loopback ports, with a generated kannel.conf in
// the test's temporary directory, a sendsms-user, and one SMPP connection to an SMSC the test
// controls (an in-process SMPP server that records each submit_sm and sends the delivery
// receipt the test asks for). Kannel then turns those receipts into dlr-url callbacks, so a
// test sees the whole way of an SMS: sendsms, SMPP, receipt, delivery report.
package kanneltest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/benchenv"
	"github.com/herald-notify/herald/internal/testutil"
)

// Credentials of the generated configuration.
const (
	User          = "herald"
	Password      = "sendsms-secret"
	AdminPassword = "admin-secret"
	// DefaultSender is the sendsms-user's default-sender, used when a request has no from.
	DefaultSender = "Herald"
	// SMSCID is the smsc-id of the SMPP connection.
	SMSCID = "testsmsc"
	// MaxMessages is the sendsms-user's max-messages: the longest SMS, in parts.
	MaxMessages = 10

	smppUser     = "kannel"
	smppPassword = "smpp-pw"
	startTimeout = 20 * time.Second
)

// Options configure Start; the zero value is a gateway whose SMSC delivers everything.
type Options struct {
	// Receipt picks the delivery receipt the SMSC sends for a submit_sm that asked for one:
	// a stat such as "DELIVRD", "UNDELIV", "REJECTD" or "EXPIRED", or "" for no receipt.
	// Nil means "DELIVRD" for every message. It runs on the SMPP connection's goroutine.
	Receipt func(Submit) string
}

// Kannel is a running gateway.
type Kannel struct {
	// SendSMSURL is smsbox's sendsms endpoint, http://127.0.0.1:<port>/cgi-bin/sendsms.
	SendSMSURL string
	// User and Password are the sendsms-user's credentials.
	User, Password string
	// AdminURL is bearerbox's admin HTTP interface (status.txt etc.), password AdminPassword.
	AdminURL string
	// Dir holds kannel.conf and the logs.
	Dir string

	smsc *smsc
}

// Submits returns, in order, every submit_sm that reached the SMSC so far (one per part of
// a long message).
func (k *Kannel) Submits() []Submit { return k.smsc.snapshot() }

// Start starts Kannel for the test and stops it, by pid, when the test ends. It fails the
// test, printing Kannel's logs, when bearerbox or smsbox is missing or the gateway does not
// come up with its SMSC bound; the logs are printed too when the test fails later.
func Start(tb testing.TB, opts Options) *Kannel {
	tb.Helper()
	bearerbox, smsbox := findBinary(tb, "bearerbox"), findBinary(tb, "smsbox")
	if opts.Receipt == nil {
		opts.Receipt = func(Submit) string { return "DELIVRD" }
	}
	dir := tb.TempDir()
	sc := newSMSC(smppUser, smppPassword, opts.Receipt)
	tb.Cleanup(sc.srv.Close)

	ports, err := benchenv.FreePorts(3)
	if err != nil {
		tb.Fatalf("kanneltest: free port: %v", err)
	}
	adminPort, boxPort, sendsmsPort := ports[0], ports[1], ports[2]
	smscHost, smscPort, err := net.SplitHostPort(sc.srv.Addr())
	if err != nil {
		tb.Fatalf("kanneltest: SMSC address: %v", err)
	}
	conf := filepath.Join(dir, "kannel.conf")
	if err := os.WriteFile(conf, []byte(config(dir, adminPort, boxPort, sendsmsPort, smscHost, smscPort)), 0o600); err != nil {
		tb.Fatalf("kanneltest: %v", err)
	}
	k := &Kannel{
		SendSMSURL: fmt.Sprintf("http://127.0.0.1:%d/cgi-bin/sendsms", sendsmsPort),
		User:       User,
		Password:   Password,
		AdminURL:   fmt.Sprintf("http://127.0.0.1:%d", adminPort),
		Dir:        dir,
		smsc:       sc,
	}
	logs := []string{"access.log", "bearerbox.out", "smsbox.out", "smsbox.log", "bearerbox.log"}
	tb.Cleanup(func() {
		if tb.Failed() {
			printLogs(tb, dir, logs)
		}
	})

	bb := start(tb, bearerbox, conf, filepath.Join(dir, "bearerbox.out"))
	// smsbox gives up when bearerbox does not answer, so it starts once the box port is open.
	testutil.Eventually(tb, startTimeout, func() bool { return exited(bb) || listening(boxPort) },
		"kanneltest: bearerbox did not open its smsbox port %d", boxPort)
	mustRun(tb, bb)
	sb := start(tb, smsbox, conf, filepath.Join(dir, "smsbox.out"))

	testutil.Eventually(tb, startTimeout, func() bool {
		if exited(bb) || exited(sb) {
			return true
		}
		return k.ready() && listening(sendsmsPort)
	}, "kanneltest: Kannel not ready (SMSC %s online, smsbox connected, sendsms port %d open); see the logs below", SMSCID, sendsmsPort)
	mustRun(tb, bb)
	mustRun(tb, sb)
	return k
}

// findBinary finds a Kannel program on the PATH or in /usr/sbin, where Debian installs it (and
// which a non-root PATH lacks).
func findBinary(tb testing.TB, name string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	tb.Fatalf("kanneltest: %s not found: run `make test`, which installs it (apt-get install kannel)", name)
	return ""
}

// config is the kannel.conf: everything on loopback, logs in dir (bearerbox at debug level,
// which dumps every PDU), delivery reports in memory, one SMPP transceiver to the test SMSC.
func config(dir string, adminPort, boxPort, sendsmsPort int, smscHost, smscPort string) string {
	q := strconv.Quote
	return fmt.Sprintf(`group = core
admin-port = %d
admin-interface = "127.0.0.1"
admin-password = %s
admin-allow-ip = "127.0.0.1"
smsbox-port = %d
smsbox-interface = "127.0.0.1"
box-allow-ip = "127.0.0.1"
log-file = %s
log-level = 0
access-log = %s
dlr-storage = internal

group = smsbox
bearerbox-host = "127.0.0.1"
bearerbox-port = %d
sendsms-port = %d
sendsms-interface = "127.0.0.1"
log-file = %s
log-level = 1

group = sendsms-user
username = %s
password = %s
default-sender = %s
max-messages = %d
concatenation = true

group = sms-service
keyword = default
text = "unexpected MO message"

group = smsc
smsc = smpp
smsc-id = %s
host = %s
port = %s
transceiver-mode = true
smsc-username = %s
smsc-password = %s
system-type = ""
source-addr-autodetect = true
reconnect-delay = 1
`,
		adminPort, q(AdminPassword), boxPort, q(filepath.Join(dir, "bearerbox.log")), q(filepath.Join(dir, "access.log")),
		boxPort, sendsmsPort, q(filepath.Join(dir, "smsbox.log")),
		q(User), q(Password), q(DefaultSender), MaxMessages,
		q(SMSCID), q(smscHost), smscPort, q(smppUser), q(smppPassword))
}

// start runs bin with conf, its own output to out, and registers its stop: SIGKILL to its
// pid (nothing of Kannel's state outlives the test, so a graceful shutdown buys nothing).
// benchenv also kills it if the test binary dies first.
func start(tb testing.TB, bin, conf, out string) *benchenv.Proc {
	tb.Helper()
	p, err := benchenv.Launch(benchenv.Spec{Name: filepath.Base(bin), Bin: bin, Args: []string{conf}, Log: out})
	if err != nil {
		tb.Fatalf("kanneltest: %v", err)
	}
	tb.Cleanup(p.Kill)
	return p
}

func exited(p *benchenv.Proc) bool {
	done, _ := p.Exited()
	return done
}

func mustRun(tb testing.TB, p *benchenv.Proc) {
	tb.Helper()
	if done, err := p.Exited(); done {
		tb.Fatalf("kanneltest: %s exited during start-up (%v); see the logs below", p.Name, err)
	}
}

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// ready reads bearerbox's status.txt: ready when the SMSC line says "(online ...)" and an
// smsbox is connected. The box connection matters: smsbox opens its sendsms port before it
// has loaded its sendsms-users, and crashes on a request that comes in between.
func (k *Kannel) ready() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(k.AdminURL + "/status.txt?password=" + AdminPassword)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return false
	}
	var smsc, box bool
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		smsc = smsc || strings.HasPrefix(line, SMSCID+"[") && strings.Contains(line, "(online")
		box = box || strings.HasPrefix(line, "smsbox:") && strings.Contains(line, "on-line")
	}
	return smsc && box
}

// printLogs writes the tail of each of Kannel's logs to the test output.
func printLogs(tb testing.TB, dir string, names []string) {
	tb.Helper()
	const tail = 16 << 10
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		if len(b) > tail {
			b = b[len(b)-tail:]
		}
		tb.Logf("kanneltest: ---- %s ----\n%s", n, b)
	}
}
