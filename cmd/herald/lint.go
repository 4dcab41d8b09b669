package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/herald-notify/herald/internal/lint"
)

// lintFailed means the linter found an error-severity finding (exit status 1).
type lintFailed struct{ n int }

func (e lintFailed) Error() string {
	return fmt.Sprintf("%d finding(s) predict a rejection", e.n)
}

const lintUsage = `usage: herald templates lint [-output text|json] FILE.json...

Checks template definitions (Cloud API format) for what Meta rejects: structure (lengths,
variables, examples, buttons) and policy (promotion in a UTILITY template, surveys, threats,
insults, industries never approved), in Russian and English.

Exit status: 0 no error finding (warnings allowed), 1 an error finding, 2 a file cannot be
read or is not a template.

Examples:
  herald templates lint order_ready.json
  herald templates lint -output json templates/*.json | jq '.[] | select(.severity=="error")'
`

// templatesLint lints files and prints the findings.
func templatesLint(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("templates lint", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), lintUsage) }
	output := fs.String("output", "text", "text or json")
	files, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError{"name at least one FILE.json (herald templates lint -h)"}
	}
	if *output != "text" && *output != "json" {
		return usageError{"-output: must be text or json, not " + *output}
	}
	type fileFindings struct {
		File     string         `json:"file"`
		Findings []lint.Finding `json:"findings"`
	}
	var all []fileFindings
	errs := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return usageError{err.Error()}
		}
		found, err := lint.LintJSON(data)
		if err != nil {
			return usageError{file + ": " + err.Error()}
		}
		if found == nil {
			found = []lint.Finding{}
		}
		errs += lint.Errors(found)
		all = append(all, fileFindings{File: file, Findings: found})
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		var err error
		if len(all) == 1 {
			err = enc.Encode(all[0].Findings)
		} else {
			err = enc.Encode(all)
		}
		if err != nil {
			return err
		}
	} else {
		for _, ff := range all {
			lint.Format(stdout, ff.File, ff.Findings)
		}
	}
	if errs > 0 {
		return lintFailed{errs}
	}
	return nil
}
