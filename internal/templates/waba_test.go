package templates

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-notify/herald/internal/testutil"
)

// TestApprovedIn: without reviews per WABA the definition's Status decides for every WABA;
// with them, "" is "approved in at least one" and a WABA needs its own approval.
func TestApprovedIn(t *testing.T) {
	t.Parallel()
	split := map[string]WABAReview{"A": {Status: StatusApproved}, "B": {Status: StatusPending}}
	cases := []struct {
		name   string
		status string
		wabas  map[string]WABAReview
		waba   string
		want   bool
	}{
		{"no WABAs, approved, any WABA", StatusApproved, nil, "", true},
		{"no WABAs, approved, a named WABA", StatusApproved, nil, "A", true},
		{"no WABAs, pending", StatusPending, nil, "A", false},
		{"no WABAs, no status", "", nil, "", false},
		{"approved in A, asked in A", StatusApproved, split, "A", true},
		{"pending in B, asked in B", StatusApproved, split, "B", false},
		{"never reviewed in C", StatusApproved, split, "C", false},
		{"approved in one, any WABA", StatusApproved, split, "", true},
		{"reviews decide over Status", StatusApproved, map[string]WABAReview{"B": {Status: StatusPending}}, "", false},
		{"paused in A", StatusApproved, map[string]WABAReview{"A": {Status: StatusPaused}}, "A", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := &Definition{Name: "greet", Language: "en", Status: c.status, WABAs: c.wabas}
			if got := d.ApprovedIn(c.waba); got != c.want {
				t.Errorf("ApprovedIn(%q) = %v, want %v", c.waba, got, c.want)
			}
		})
	}
}

// Texts of the two versions the lookup tests tell apart.
const (
	textV1 = "Hello {{1}}."
	textV2 = "Hello again {{1}}."
)

// listed is a definition as WABA's listing gives it.
func listed(t *testing.T, text, status, id string) *Definition {
	t.Helper()
	return mustParse(t, fmt.Sprintf(`{"id":%q,"name":"greet","language":"en","status":%q,"category":"UTILITY",
		"components":[{"type":"BODY","text":%q,"example":{"body_text":[["Ann"]]}}]}`, id, status, text))
}

// step changes tenant's catalogue as Meta, an operator or a sync would.
type step func(ctx context.Context, t *testing.T, kv jetstream.KeyValue, tenant string)

// syncOf records WABA waba's listing of greet with text in status.
func syncOf(waba, text, status string) step {
	return func(ctx context.Context, t *testing.T, kv jetstream.KeyValue, tenant string) {
		t.Helper()
		if _, _, err := Sync(ctx, kv, tenant, waba, listed(t, text, status, "id-"+waba)); err != nil {
			t.Fatal(err)
		}
	}
}

// reviewOf records a template webhook of WABA waba.
func reviewOf(waba, status string) step {
	return func(ctx context.Context, t *testing.T, kv jetstream.KeyValue, tenant string) {
		t.Helper()
		if _, err := SetStatus(ctx, kv, tenant, Review{WABA: waba, TemplateID: "id-" + waba, Name: "greet", Language: "en", Status: status}); err != nil {
			t.Fatal(err)
		}
	}
}

// proposeText registers an operator's text (pending).
func proposeText(text string) step {
	return func(ctx context.Context, t *testing.T, kv jetstream.KeyValue, tenant string) {
		t.Helper()
		if _, err := Propose(ctx, kv, tenant, listed(t, text, StatusApproved, "")); err != nil {
			t.Fatal(err)
		}
	}
}

// putText stores a definition with one status for every WABA (a sample, the env config).
func putText(text, status string) step {
	return func(ctx context.Context, t *testing.T, kv jetstream.KeyValue, tenant string) {
		t.Helper()
		if _, err := Put(ctx, kv, tenant, listed(t, text, status, "")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLookupIn: a template resolves in the WABA of the sender: approved there, or the last
// version approved there while a newer one waits; ErrNotApproved otherwise, naming the WABA.
// Lookup ("" WABA) keeps its meaning: approved in at least one WABA.
func TestLookupIn(t *testing.T) {
	t.Parallel()
	kv := newKV(t)
	logger, _ := newLogger()
	c := NewCatalogue(kv, logger)
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		steps []step
		// want is the text LookupIn sends per WABA; "!..." is an ErrNotApproved mentioning
		// the rest.
		want     map[string]string
		approved []string // ApprovedWABAs
	}{
		{"approved in A, pending in B",
			[]step{syncOf("A", textV1, StatusApproved), syncOf("B", textV1, StatusPending)},
			map[string]string{"A": textV1, "B": "!greet.en is PENDING in WABA B", "C": "!no review in WABA C (approved in: A)", "": textV1},
			[]string{"A"}},
		{"no WABAs: Status decides, approved",
			[]step{putText(textV1, StatusApproved)},
			map[string]string{"A": textV1, "B": textV1, "": textV1}, nil},
		{"no WABAs: Status decides, pending",
			[]step{proposeText(textV1)},
			map[string]string{"A": "!greet.en is PENDING", "": "!greet.en is PENDING"}, nil},
		{"a newer version approved in A only: B keeps the approved one",
			[]step{syncOf("A", textV1, StatusApproved), syncOf("B", textV1, StatusApproved), proposeText(textV2), reviewOf("A", StatusApproved)},
			map[string]string{"A": textV2, "B": textV1, "C": "!no review in WABA C", "": textV2},
			[]string{"A", "B"}},
		{"a newer version pending everywhere: the approved one per WABA",
			[]step{syncOf("A", textV1, StatusApproved), syncOf("B", textV1, StatusPending), proposeText(textV2)},
			map[string]string{"A": textV1, "B": "!greet.en is PENDING", "": textV1},
			[]string{"A"}},
		{"a pause in A stops both versions there only",
			[]step{syncOf("A", textV1, StatusApproved), syncOf("B", textV1, StatusApproved), proposeText(textV2), reviewOf("A", StatusPaused)},
			map[string]string{"A": "!greet.en is PAUSED in WABA A", "B": textV1, "": textV1},
			[]string{"B"}},
		{"a WABA lists a new text pending: its approved one stays in use",
			[]step{syncOf("A", textV1, StatusApproved), syncOf("A", textV2, StatusPending)},
			map[string]string{"A": textV1, "": textV1},
			[]string{"A"}},
		{"the new text approved in A, B still lists the old one",
			[]step{syncOf("A", textV1, StatusApproved), syncOf("B", textV1, StatusApproved), syncOf("A", textV2, StatusApproved), syncOf("B", textV1, StatusApproved)},
			map[string]string{"A": textV2, "B": textV1, "": textV2},
			[]string{"A", "B"}},
		{"rejected in B: B keeps the approved one, A never reviewed the new text",
			[]step{syncOf("A", textV1, StatusApproved), syncOf("B", textV1, StatusApproved), syncOf("B", textV2, StatusRejected)},
			map[string]string{"A": textV1, "B": textV1, "": textV1},
			[]string{"A", "B"}},
		{"approved everywhere by Status, then a pause in A",
			[]step{putText(textV1, StatusApproved), reviewOf("A", StatusPaused)},
			map[string]string{"A": "!greet.en is PAUSED in WABA A", "B": "!no review in WABA B", "": "!greet.en is PAUSED"}, nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			tenant := fmt.Sprintf("t%d", i)
			for _, s := range tc.steps {
				s(ctx, t, kv, tenant)
			}
			stored, err := Get(ctx, kv, tenant, "greet", "en")
			if err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, wait, func() bool {
				d, err := c.Definition(tenant, "greet", "en")
				return err == nil && d.Version == stored.Version && d.UpdatedAt.Equal(stored.UpdatedAt)
			}, "the catalogue sees the last change")
			for waba, want := range tc.want {
				d, err := c.LookupIn(tenant, "greet", "en", waba)
				if mention, ok := strings.CutPrefix(want, "!"); ok {
					if !errors.Is(err, ErrNotApproved) || !strings.Contains(err.Error(), mention) {
						t.Errorf("LookupIn(%q) = %v, %v; want ErrNotApproved mentioning %q", waba, d, err, mention)
					}
					continue
				}
				if err != nil || d.Components[0].Text != want {
					t.Errorf("LookupIn(%q) = %v, %v; want the text %q", waba, d, err, want)
				}
			}
			// Lookup is LookupIn in any WABA.
			d1, err1 := c.Lookup(tenant, "greet", "en")
			d2, err2 := c.LookupIn(tenant, "greet", "en", "")
			if d1 != d2 || fmt.Sprint(err1) != fmt.Sprint(err2) {
				t.Errorf("Lookup = %v, %v; LookupIn(\"\") = %v, %v", d1, err1, d2, err2)
			}
			if got := c.ApprovedWABAs(tenant, "greet", "en"); !slices.Equal(got, tc.approved) {
				t.Errorf("ApprovedWABAs = %v, want %v", got, tc.approved)
			}
		})
	}
}

// TestSyncMergesWABAs: a WABA's listing records its review without losing the other
// WABAs'; the same listing again writes nothing; a listing with an invalid tenant or no
// WABA is refused naming it.
func TestSyncMergesWABAs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	steps := []struct {
		waba, status string
		changed      bool
		want         map[string]string // WABA → status stored
	}{
		{"A", StatusApproved, true, map[string]string{"A": StatusApproved}},
		{"B", StatusPending, true, map[string]string{"A": StatusApproved, "B": StatusPending}},
		{"B", StatusPending, false, map[string]string{"A": StatusApproved, "B": StatusPending}},
		{"A", StatusPaused, true, map[string]string{"A": StatusPaused, "B": StatusPending}},
		{"B", StatusApproved, true, map[string]string{"A": StatusPaused, "B": StatusApproved}},
	}
	for i, s := range steps {
		_, changed, err := Sync(ctx, kv, "shop", s.waba, listed(t, textV1, s.status, "id-"+s.waba))
		if err != nil || changed != s.changed {
			t.Fatalf("step %d: Sync(%s, %s) changed %v, %v; want changed %v", i, s.waba, s.status, changed, err, s.changed)
		}
		d, err := Get(ctx, kv, "shop", "greet", "en")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for w, r := range d.WABAs {
			got[w] = r.Status
			if r.ID != "id-"+w || r.Category != CategoryUtility || r.UpdatedAt.IsZero() {
				t.Errorf("step %d: review of %s = %+v, want its id, category and time", i, w, r)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(s.want) || d.Version != 1 {
			t.Errorf("step %d: stored v%d with reviews %v, want v1 with %v", i, d.Version, got, s.want)
		}
	}
	if d, _ := Get(ctx, kv, "shop", "greet", "en"); d.Status != StatusApproved {
		t.Errorf("Status %s, want APPROVED (approved in B)", d.Status)
	}
	bad := []struct {
		tenant, waba, mention string
	}{
		{"Bad Tenant", "A", "tenant"},
		{"shop", "", "WABA"},
	}
	for _, b := range bad {
		if _, _, err := Sync(ctx, kv, b.tenant, b.waba, listed(t, textV1, StatusApproved, "x")); !errors.Is(err, ErrInvalidDefinition) || !strings.Contains(err.Error(), b.mention) {
			t.Errorf("Sync(%q, %q) = %v, want ErrInvalidDefinition naming %s", b.tenant, b.waba, err, b.mention)
		}
	}
}

// TestSetStatusPerWABAIDs: a review names the template's id in its own WABA: another id
// there is another template; a WABA not recorded yet has its own id, which the other WABAs'
// ids do not contradict.
func TestSetStatusPerWABAIDs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	if _, _, err := Sync(ctx, kv, "shop", "A", listed(t, textV1, StatusPending, "id-A")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, waba, id string
		want           error
	}{
		{"another template in A", "A", "id-other", ErrOtherTemplate},
		{"the template in A", "A", "id-A", nil},
		{"its copy in B, first heard of", "B", "id-B", nil},
		{"another template in B, once B is known", "B", "id-other", ErrOtherTemplate},
	}
	for _, c := range cases { // in order: each builds on the last
		d, err := SetStatus(ctx, kv, "shop", Review{WABA: c.waba, TemplateID: c.id, Name: "greet", Language: "en", Status: StatusApproved, Category: "marketing"})
		if !errors.Is(err, c.want) || c.want == nil && (d.WABAs[c.waba].Status != StatusApproved || d.WABAs[c.waba].Category != CategoryMarketing) {
			t.Errorf("%s: SetStatus = %+v, %v; want %v", c.name, d, err, c.want)
		}
	}
}
