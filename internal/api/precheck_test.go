package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/harness"
	"github.com/herald-notify/herald/internal/job"
)

// TestPrecheck: a template job that can never be sent is refused up front, 400 naming the
// field at fault, by POST /v1/notifications and per item by the batch endpoint, and nothing
// is queued for it; one that fits the tenant's catalogue is accepted.
func TestPrecheck(t *testing.T) {
	t.Parallel()
	h := harness.Start(t, harness.Options{NoWorker: true})
	with := func(id string, change func(map[string]any)) map[string]any {
		j := orderJob(id, "+79001234001")
		change(j)
		return j
	}
	tests := []struct {
		name  string
		job   map[string]any
		field string // "" accepted
		want  string
	}{
		{"fits", orderJob("pre-ok", "+79001234001"), "", ""},
		{"unknown template", with("pre-1", func(j map[string]any) { j["template"] = "no_such" }), "template",
			"no_such: not in tenant " + harness.Tenant + "'s catalogue"},
		{"unknown language", with("pre-2", func(j map[string]any) { j["language"] = "en" }), "language", `has no "en" version`},
		{"missing param", with("pre-3", func(j map[string]any) { delete(j["params"].(map[string]string), "until") }), "params", `"until"`},
		{"extra param", with("pre-4", func(j map[string]any) { j["params"].(map[string]string)["city"] = "Москва" }), "params", `"city"`},
		{"missing button", with("pre-5", func(j map[string]any) { delete(j, "buttons") }), "buttons", "button 0"},
		{"button with no place", with("pre-6", func(j map[string]any) { j["buttons"] = map[string]string{"0": "1", "3": "x"} }), "buttons", `"3"`},
	}
	type answer struct {
		ID     string           `json:"id"`
		Error  string           `json:"error"`
		Fields []job.FieldError `json:"fields"`
	}
	check := func(t *testing.T, a answer, field, want string) {
		t.Helper()
		if field == "" {
			if a.Error != "" {
				t.Fatalf("refused: %+v", a)
			}
			return
		}
		if len(a.Fields) != 1 || a.Fields[0].Field != field || !strings.Contains(a.Fields[0].Reason, want) {
			t.Fatalf("answer %+v, want field %s saying %q", a, field, want)
		}
	}
	var batch []map[string]any
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out := postJob(t, h, mustJSON(t, tc.job))
			if wantCode := map[bool]int{true: http.StatusAccepted, false: http.StatusBadRequest}[tc.field == ""]; code != wantCode {
				t.Fatalf("got %d %s, want %d", code, out, wantCode)
			}
			check(t, decode[answer](t, out), tc.field, tc.want)
			if rec := h.Record(tc.job["id"].(string)); (rec != nil) != (tc.field == "") {
				t.Fatalf("record %+v: a refused job must have none, an accepted one must", rec)
			}
		})
		b := map[string]any{}
		for k, v := range tc.job {
			b[k] = v
		}
		b["id"] = "batch-" + tc.job["id"].(string)
		batch = append(batch, b)
	}
	t.Run("batch", func(t *testing.T) {
		t.Parallel()
		code, out := call(t, http.MethodPost, h.APIURL+"/v1/notifications/batch", harness.APIKey, mustJSON(t, map[string]any{"notifications": batch}), nil)
		if code != http.StatusOK {
			t.Fatalf("got %d %s", code, out)
		}
		var got struct {
			Accepted, Rejected int
			Results            []answer
		}
		if err := json.Unmarshal(out, &got); err != nil || len(got.Results) != len(tests) {
			t.Fatalf("answer %s: %v", out, err)
		}
		if got.Accepted != 1 || got.Rejected != len(tests)-1 {
			t.Errorf("accepted %d, rejected %d; want 1 and %d", got.Accepted, got.Rejected, len(tests)-1)
		}
		for i, tc := range tests {
			check(t, got.Results[i], tc.field, tc.want)
		}
	})
}
