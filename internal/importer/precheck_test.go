package importer_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/herald-notify/herald/internal/importer"
	"github.com/herald-notify/herald/internal/streams"
	"github.com/herald-notify/herald/internal/templates"
)

// TestCheckTemplate: with a catalogue, an import whose template can never be sent (unknown
// to the tenant, in no such language, a parameter or button without its column, a mapping
// the template has no place for) is refused as a usage error naming what is wrong, with
// nothing queued and no reject file; a fitting one is queued.
func TestCheckTemplate(t *testing.T) {
	t.Parallel()
	js := setup(t)
	kv, err := js.KeyValue(t.Context(), streams.TemplatesKV)
	if err != nil {
		t.Fatal(err)
	}
	if err := templates.PutSamples(t.Context(), kv, "shop"); err != nil {
		t.Fatal(err)
	}
	cat := importer.KVCatalogue{KV: kv}
	const csv = "phone,name,sum,till,order,point\n+79001230001,Анна,350,30.11.2026,1001,ул. Ленина 1\n"
	bonus := map[string]string{"name": "name", "amount": "sum", "date": "till"}
	cases := []struct {
		name     string
		tenant   string
		template string
		language string
		maps     map[string]string
		buttons  map[string]string
		want     string // in the error; "" queues
	}{
		{"fits", "shop", "bonus_expiring", "", bonus, nil, ""},
		{"no such template", "shop", "no_such", "", bonus, nil, "--template no_such: not in tenant shop's catalogue"},
		{"another tenant template", "other", "bonus_expiring", "", bonus, nil, "not in tenant other's catalogue"},
		{"no such language", "shop", "bonus_expiring", "en", bonus, nil, `has no "en" version; it exists in ru`},
		{"missing --map", "shop", "bonus_expiring", "", map[string]string{"name": "name"}, nil, `"amount", "date"`},
		{"--map with no place", "shop", "bonus_expiring", "", map[string]string{"name": "name", "amount": "sum", "date": "till", "city": "point"}, nil, `"city"`},
		{"missing --button", "shop", "order_ready", "", map[string]string{"order": "order", "address": "point", "until": "till"}, nil, "--button"},
		{"button fits", "shop", "order_ready", "", map[string]string{"order": "order", "address": "point", "until": "till"}, map[string]string{"0": "order"}, ""},
		{"button with no place", "shop", "bonus_expiring", "", bonus, map[string]string{"0": "order"}, "no button that takes a value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := writeFile(t, "base.csv", csv)
			sum, err := importer.Run(t.Context(), js, importer.Options{File: file, Campaign: "c-" + strings.ReplaceAll(tc.name, " ", "-"),
				Template: tc.template, Language: tc.language, Tenant: tc.tenant, Map: tc.maps, Buttons: tc.buttons,
				Jobs: jobOpts, Catalogue: cat})
			if tc.want == "" {
				if err != nil || sum.Queued != 1 {
					t.Fatalf("Run: %v, %d queued; want 1 queued", err, sum.Queued)
				}
				return
			}
			if !errors.Is(err, importer.ErrUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v; want a usage error saying %q", err, tc.want)
			}
			if sum.Queued != 0 || sum.Rows != 0 {
				t.Fatalf("summary %+v: rows read or queued", sum)
			}
			if _, err := os.Stat(file + ".rejects.csv"); !os.IsNotExist(err) {
				t.Fatalf("reject file left behind: %v", err)
			}
		})
	}
}
