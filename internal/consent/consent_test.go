package consent_test

import (
	"log/slog"
	"testing"

	"github.com/herald-notify/herald/internal/consent"
	"github.com/herald-notify/herald/internal/status"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/testutil"
)

func TestWordsMatch(t *testing.T) {
	t.Parallel()
	w := consent.NewWords(nil, nil)
	cases := []struct{ text, want string }{
		{"STOP", consent.Stop},
		{"stop", consent.Stop},
		{"  Стоп! ", consent.Stop},
		{"ОТПИСАТЬСЯ", consent.Stop},
		{"отписка.", consent.Stop},
		{"START", consent.Start},
		{"старт", consent.Start},
		{"не стоп", ""},
		{"stop sending me the wrong size", ""},
		{"Когда будет заказ?", ""},
		{"", ""},
		{"!!!", ""},
	}
	for _, c := range cases {
		if got := w.Match(c.text); got != c.want {
			t.Errorf("Match(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	custom := consent.NewWords([]string{"хватит"}, []string{"снова"})
	if custom.Match("Хватит") != consent.Stop || custom.Match("STOP") != "" || custom.Match("снова") != consent.Start {
		t.Error("configured words do not replace the defaults")
	}
}

func TestRecordAndRebuild(t *testing.T) {
	t.Parallel()
	ns := testutil.StartNATS(t)
	_, js := ns.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	rdb := testutil.StartRedis(t).Client(t)
	ctx := t.Context()
	evs := []consent.Event{
		{Phone: "+79001230001", Action: consent.Stop, Source: "inbound:white", Ref: "wamid.1"},
		{Phone: "+79001230002", Action: consent.Stop, Source: "operator"},
		{Phone: "+79001230001", Action: consent.Start, Source: "inbound:white", Ref: "wamid.2"},
		{Phone: "+79001230003", Action: consent.Stop, Source: "inbound:grey", Ref: "g1"},
		{Phone: "+79001230003", Action: consent.Stop, Source: "inbound:grey", Ref: "g1"}, // webhook retried
	}
	for _, ev := range evs {
		if err := consent.Record(ctx, js, rdb, ev); err != nil {
			t.Fatalf("Record(%+v): %v", ev, err)
		}
	}
	want := map[string]bool{"+79001230001": false, "+79001230002": true, "+79001230003": true}
	check := func(stage string) {
		t.Helper()
		for p, w := range want {
			got, err := consent.Suppressed(ctx, rdb, p)
			if err != nil || got != w {
				t.Errorf("%s: Suppressed(%s) = %v, %v; want %v", stage, p, got, err, w)
			}
		}
	}
	check("after Record")
	s, _ := js.Stream(ctx, streams.OptOutStream)
	if info, _ := s.Info(ctx); info.State.Msgs != 4 {
		t.Errorf("opt-out stream holds %d events, want 4 (the retried webhook deduplicated)", info.State.Msgs)
	}
	if n, err := consent.Rebuild(ctx, js, rdb, slog.Default()); err != nil || n != -1 {
		t.Fatalf("Rebuild of a non-empty set = %d, %v; want -1 (left alone)", n, err)
	}
	// Redis loses its data: the set comes back from the stream.
	if err := rdb.Del(ctx, status.KeySuppressed).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := consent.Rebuild(ctx, js, rdb, slog.Default())
	if err != nil || n != 2 {
		t.Fatalf("Rebuild = %d, %v; want 2", n, err)
	}
	check("after Rebuild")

	for _, bad := range []consent.Event{{Phone: "79001", Action: consent.Stop}, {Phone: "+79001230009", Action: "pause"}} {
		if err := consent.Record(ctx, js, rdb, bad); err == nil {
			t.Errorf("Record(%+v) accepted an invalid event", bad)
		}
	}
}
