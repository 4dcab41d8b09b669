package templates

import (
	"errors"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/testutil"
)

// TestApprovedVersionIsImmutable: an operator's change to an approved template becomes a new,
// pending version; workers keep sending the approved one until Meta approves the change; a
// rejection keeps the approved one; a pause stops the template.
func TestApprovedVersionIsImmutable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newKV(t)
	v1 := sample(t, "order_ready")
	if _, err := Put(ctx, kv, "", v1); err != nil {
		t.Fatal(err)
	}
	logger, _ := newLogger()
	c := NewCatalogue(kv, logger)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Proposing the same content changes nothing.
	same, err := Propose(ctx, kv, "", sample(t, "order_ready"))
	if err != nil || same.Version != 1 || same.Status != StatusApproved {
		t.Fatalf("Propose(same) = v%d %s, %v", same.Version, same.Status, err)
	}
	changed := sample(t, "order_ready")
	changed.Components[0].Text = "Заказ {{order}} ждёт вас по адресу {{address}} до {{until}}."
	v2, err := Propose(ctx, kv, "", changed)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.Status != StatusPending || v2.Approved == nil || v2.Approved.Version != 1 {
		t.Fatalf("changed approved template stored as v%d %s (approved kept: %v)", v2.Version, v2.Status, v2.Approved != nil)
	}
	lookup := func() *Definition {
		t.Helper()
		var d *Definition
		testutil.Eventually(t, 5*time.Second, func() bool {
			cur, err := c.Definition("", "order_ready", "ru")
			if err != nil || cur.Version < v2.Version {
				return false
			}
			d, err = c.Lookup("", "order_ready", "ru")
			return err == nil || errors.Is(err, ErrNotApproved)
		}, "catalogue sees v2")
		return d
	}
	if d := lookup(); d == nil || d.Version != 1 || d.Components[0].Text != v1.Components[0].Text {
		t.Fatalf("while v2 is pending workers must send v1, got %+v", d)
	}
	// Rejected: v1 stays in use.
	if _, err := SetStatus(ctx, kv, "", Review{Name: "order_ready", Language: "ru", Status: StatusRejected}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		cur, _ := c.Definition("", "order_ready", "ru")
		return cur != nil && cur.Status == StatusRejected
	}, "rejection seen")
	if d, err := c.Lookup("", "order_ready", "ru"); err != nil || d.Version != 1 {
		t.Fatalf("after the rejection Lookup = %v, %v; want v1", d, err)
	}
	// Approved: v2 is sent.
	if _, err := SetStatus(ctx, kv, "", Review{Name: "order_ready", Language: "ru", Status: StatusApproved}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		d, err := c.Lookup("", "order_ready", "ru")
		return err == nil && d.Version == 2
	}, "v2 in use once approved")
	// Paused: nothing is sent on WhatsApp, no older version either.
	if _, err := SetStatus(ctx, kv, "", Review{Name: "order_ready", Language: "ru", Status: StatusPaused}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		_, err := c.Lookup("", "order_ready", "ru")
		return errors.Is(err, ErrNotApproved)
	}, "paused template not sent")
}
