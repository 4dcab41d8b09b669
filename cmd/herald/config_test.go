package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Literal secrets, so the test needs no environment (t.Setenv forbids t.Parallel).
	good := write("good.yaml", `
portfolios:
  shop-portfolio: {daily_unique: 10000}
senders:
  - {id: shop-msk, kind: white, phone_number_id: "1122334455667", portfolio: shop-portfolio, token: EAAG-secret-1, app_secret: app-secret-2}
  - {id: shop-grey-1, kind: grey, base_url: "https://api.green-api.com", instance_id: "1101000001", token: grey-secret-3,
     webhook_token: grey-webhook-secret-4, mps: 0.2, daily_max: 300, warmup: {start: 20, days: 10}}
  - {id: sms-main, kind: sms, driver: kannel, url: "http://kannel:13013/cgi-bin/sendsms", user: herald, password: kannel-secret-5, from: SHOP}
tenants:
  shop: {api_keys: [api-key-secret-6], channels: [white, grey, sms], senders: [shop-msk, shop-grey-1, sms-main], quiet_hours: "21:00-09:00"}
`)
	secrets := []string{"EAAG-secret-1", "app-secret-2", "grey-secret-3", "grey-webhook-secret-4", "kannel-secret-5", "api-key-secret-6"}
	bad := write("bad.yaml", `
senders:
  - {id: shop-msk, kind: white, phone_number_id: "1122334455667", token: EAAG-secret-1, app_secret: app-secret-2, mps: 0}
tenants:
  bank: {channels: [white], senders: [bank-main], api_keys: [api-key-secret-6]}
`)
	unset := write("unset.yaml", `
senders:
  - {id: w, kind: white, phone_number_id: "1", token: "${HERALD_TEST_SURELY_UNSET_TOKEN}", app_secret: s}
tenants:
  t: {channels: [white], senders: [w]}
`)
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // lines or fragments stdout must hold
		stderr     string
		exactLines bool
	}{
		{name: "valid", args: []string{"check", good}, code: exitOK, stdout: []string{
			good + ": valid: 1 tenant, 3 senders, 1 portfolio",
			"TENANT", "shop    white,grey,sms  3 (white 1, grey 1, sms 1)  1         21:00-09:00",
			"SENDER", "shop-msk     white  1122334455667", "10000 unique (portfolio)", "shop-portfolio",
			"shop-grey-1  grey   1101000001", "0.2", "20→300 over 10 days",
			"sms-main     sms    kannel kannel:13013 from SHOP",
			"PORTFOLIO       DAILY UNIQUE  NUMBERS",
		}},
		{name: "invalid", args: []string{"check", bad}, code: exitUsage, exactLines: true, stdout: []string{
			"senders[0].mps: must be greater than 0",
			`tenants.bank.senders[0]: no sender "bank-main" in senders`,
		}, stderr: "herald config: " + bad + ": 2 problems"},
		{name: "unset variable", args: []string{"check", unset}, code: exitUsage, exactLines: true, stdout: []string{
			"senders[0].token: ${HERALD_TEST_SURELY_UNSET_TOKEN}: the environment variable HERALD_TEST_SURELY_UNSET_TOKEN is not set (or empty)",
		}},
		{name: "unset variable allowed", args: []string{"check", "-allow-unset", unset}, code: exitOK, stdout: []string{
			"valid: 1 tenant, 1 sender, 0 portfolios", "unset (placeholders were checked): HERALD_TEST_SURELY_UNSET_TOKEN",
		}},
		{name: "missing file", args: []string{"check", filepath.Join(dir, "none.yaml")}, code: exitUsage, stderr: "no such file"},
		{name: "two files", args: []string{"check", good, bad}, code: exitUsage, stderr: "need exactly one FILE"},
		{name: "no file", args: []string{"check"}, code: exitUsage, stderr: "usage: herald config check"},
		{name: "help", args: []string{"-h"}, code: exitOK, stdout: []string{"usage: herald config check"}},
		{name: "check help", args: []string{"check", "-h"}, code: exitOK, stdout: []string{"usage: herald config check"}},
		{name: "no subcommand", args: nil, code: exitUsage, stderr: "need a subcommand"},
		{name: "unknown subcommand", args: []string{"show"}, code: exitUsage, stderr: `unknown subcommand "show"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			code := run(append([]string{"config"}, tt.args...), &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.code, out.String(), errb.String())
			}
			if tt.exactLines {
				if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(tt.stdout, "\n") {
					t.Errorf("stdout lines\n%s\nwant\n%s", out.String(), strings.Join(tt.stdout, "\n"))
				}
			}
			for _, want := range tt.stdout {
				if !strings.Contains(out.String(), want) {
					t.Errorf("stdout does not contain %q:\n%s", want, out.String())
				}
			}
			if !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tt.stderr)
			}
			for _, s := range secrets {
				if strings.Contains(out.String()+errb.String(), s) {
					t.Errorf("the output shows the secret %q:\n%s%s", s, out.String(), errb.String())
				}
			}
		})
	}
}
