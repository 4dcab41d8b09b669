package config_test

import (
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/config"
)

// TestLoadForReportsEverythingAtOnce: a worker or API started with a bare or broken
// environment names every missing and invalid variable in one error, not one per attempt.
// (Not parallel: the cases set process environment variables.)
func TestLoadForReportsEverythingAtOnce(t *testing.T) {
	cases := []struct {
		name    string
		role    config.Role
		env     map[string]string
		want    []string
		notWant []string
	}{
		{
			name: "bare worker",
			role: config.Role{Worker: true},
			want: []string{"HERALD_NATS_URL", "HERALD_REDIS_URL", "HERALD_WHITE_PHONE_NUMBER_ID", "HERALD_WHITE_TOKEN", "HERALD_SMS_URL", "HERALD_SMS_DLR_SECRET"},
		},
		{
			name:    "bare api",
			role:    config.Role{API: true},
			want:    []string{"HERALD_NATS_URL", "HERALD_REDIS_URL", "HERALD_SMS_DLR_SECRET"},
			notWant: []string{"HERALD_WHITE_TOKEN"},
		},
		{
			name: "unparsable values, invalid values and missing ones together",
			role: config.Role{Worker: true},
			env: map[string]string{"HERALD_WHITE_MPS": "fast", "HERALD_WORKER_CONCURRENCY": "many", "HERALD_LOG_LEVEL": "loud",
				"HERALD_NATS_URL": "nats://127.0.0.1:4222"},
			want:    []string{`HERALD_WHITE_MPS: "fast" is not a valid float64`, `HERALD_WORKER_CONCURRENCY: "many"`, "HERALD_LOG_LEVEL", "HERALD_REDIS_URL", "HERALD_WHITE_TOKEN"},
			notWant: []string{"HERALD_WHITE_MPS: must be positive", "HERALD_NATS_URL", "HERALD_GREY_MPS"},
		},
		{
			name: "dev needs nothing",
			role: config.Role{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := config.LoadFor(tc.role)
			if len(tc.want) == 0 {
				if err != nil || c == nil {
					t.Fatalf("LoadFor(%+v) = %v, %v; want a config", tc.role, c, err)
				}
				return
			}
			if err == nil || c != nil {
				t.Fatalf("LoadFor(%+v) = %v, %v; want only an error", tc.role, c, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error says %q:\n%v", w, err)
				}
			}
		})
	}
}
