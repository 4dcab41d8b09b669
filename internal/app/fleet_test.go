package app_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/app"
	"github.com/herald-notify/herald/internal/config"
)

// TestAPIRefusesABadFleetFile: herald api reads HERALD_CONFIG_FILE at start; a file it cannot
// use stops it with an error naming the file and the reason, before anything is connected.
func TestAPIRefusesABadFleetFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const tenant = "senders:\n  - {id: s1, kind: sms, driver: nats}\ntenants:\n  shop: {api_keys: [shop-key-0001], channels: [sms], senders: [s1]}\n"
	tests := []struct {
		name, path, apiKeys string
		reason              string
	}{
		{"missing", filepath.Join(dir, "nope.yaml"), "", "no such file"},
		{"not YAML", write("bad.yaml", "senders: [\n"), "", "HERALD_CONFIG_FILE"},
		{"invalid sender", write("invalid.yaml", "senders:\n  - {id: Bad_Id, kind: white}\n"), "", "senders[0]"},
		{"a key of two tenants", write("keys.yaml", tenant), "bank:shop-key-0001", "tenants.shop.api_keys[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Defaults()
			cfg.ConfigFile, cfg.APIKeys = tt.path, tt.apiKeys
			err := app.Run(context.Background(), &cfg, slog.New(slog.DiscardHandler), nil, nil, nil, app.Parts{API: true})
			if err == nil {
				t.Fatal("started")
			}
			if msg := err.Error(); !strings.Contains(msg, tt.path) || !strings.Contains(msg, tt.reason) {
				t.Errorf("error %q: want the path %s and %q", msg, tt.path, tt.reason)
			}
		})
	}
	cfg := config.Defaults()
	cfg.ConfigFile = write("good.yaml", tenant)
	if f, fromFile, err := app.LoadFleet(&cfg); err != nil || !fromFile || len(f.Senders) != 1 {
		t.Errorf("a good file: %v %v %v", f, fromFile, err)
	}
	cfg.ConfigFile = ""
	if f, fromFile, err := app.LoadFleet(&cfg); err != nil || fromFile || f.Tenants["default"].Channels == nil {
		t.Errorf("no file: %v %v %v", f, fromFile, err)
	}
}
