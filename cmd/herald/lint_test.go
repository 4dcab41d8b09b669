package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTemplatesLintExitStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	clean := write("clean.json", `{"name":"order_ready","language":"ru","category":"UTILITY","components":[{"type":"BODY","text":"Ваш заказ номер {{1}} находится в точке выдачи по адресу {{2}}. Срок хранения до {{3}} включительно.","example":{"body_text":[["123","ул. Ленина, 1","21.02"]]}}]}`)
	promo := write("promo.json", `{"name":"sale","language":"ru","category":"UTILITY","components":[{"type":"BODY","text":"Акция! Скидки до 70% на прошлогоднюю коллекцию одежды. Ждем вас в наших магазинах."}]}`)
	survey := write("survey.json", `{"name":"poll","language":"ru","category":"UTILITY","components":[{"type":"BODY","text":"Добрый день. Предлагаем пройти анкетирование и ответить на несколько вопросов. Это займет не более 5 минут."}]}`)
	notTemplate := write("x.json", `[1,2,3]`)
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"clean", []string{clean}, exitOK, ""},
		{"promotion in utility", []string{promo}, exitFailure, "promo_in_utility"},
		{"survey", []string{survey}, exitFailure, "survey"},
		{"json output", []string{"-output", "json", promo}, exitFailure, `"code": "percent_off"`},
		{"missing file", []string{filepath.Join(dir, "none.json")}, exitUsage, ""},
		{"not a template", []string{notTemplate}, exitUsage, ""},
		{"no file", nil, exitUsage, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			code := run(append([]string{"templates", "lint"}, c.args...), &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, c.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), c.out) {
				t.Fatalf("stdout %q does not contain %q", out.String(), c.out)
			}
			if len(c.args) > 0 && c.args[0] == "-output" {
				var fs []map[string]any
				if err := json.Unmarshal(out.Bytes(), &fs); err != nil || len(fs) == 0 {
					t.Fatalf("-output json is not a JSON list of findings: %v", err)
				}
			}
		})
	}
}
