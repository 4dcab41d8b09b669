package worker_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The public packages must work from another module, which cannot import anything under
// internal/: every type their exported API reaches must be nameable through them. These tests
// hold worker and producer to that (issue 12); examples/external proves it by compiling.

// publicPackages are the packages another module imports.
var publicPackages = []string{
	"github.com/herald-notify/herald/worker",
	"github.com/herald-notify/herald/producer",
}

// rewritten are the files of the worker being rewritten by hand (and split into new files):
// the source check marks them, so that what it lists for them is the to-do of that rewrite.
var rewritten = []string{"worker.go", "hold.go", "pace.go"}

// isInternal tells whether an import path is one another module cannot import.
func isInternal(path string) bool { return strings.Contains(path, "/internal/") }

// apiPackage is one public package type-checked from its source.
type apiPackage struct {
	pkg   *types.Package
	files []*ast.File
	info  *types.Info
}

// loadAPI type-checks the public packages from source (positions and uses for the source
// check), importing their dependencies from the export data `go list -export` builds: the
// standard library only, and exactly the types the compiler sees.
func loadAPI(t *testing.T) (*token.FileSet, []apiPackage) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		// make test runs under the go command, so CI always has it: a skip would hide the check.
		t.Fatalf("go tool not found: %v", err)
	}
	args := append([]string{"list", "-e", "-export", "-deps", "-json=ImportPath,Export,Dir,GoFiles,Error"}, publicPackages...)
	cmd := exec.Command(goTool, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	type listed struct {
		ImportPath, Export, Dir string
		GoFiles                 []string
		Error                   *struct{ Err string }
	}
	exports := map[string]string{}
	sources := map[string]listed{}
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		exports[p.ImportPath] = p.Export
		if slices.Contains(publicPackages, p.ImportPath) {
			sources[p.ImportPath] = p
		}
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %s (does it compile?)", path)
		}
		return os.Open(f)
	})
	var pkgs []apiPackage
	for _, path := range publicPackages {
		p, ok := sources[path]
		if !ok {
			t.Fatalf("go list did not list %s", path)
		}
		if p.Error != nil {
			t.Fatalf("%s: %s", path, p.Error.Err)
		}
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			files = append(files, f)
		}
		info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
		var errs []string
		conf := types.Config{Importer: imp, Error: func(err error) { errs = append(errs, err.Error()) }}
		pkg, _ := conf.Check(path, fset, files, info)
		if len(errs) > 0 {
			t.Fatalf("%s does not type-check:\n\t%s", path, strings.Join(errs, "\n\t"))
		}
		pkgs = append(pkgs, apiPackage{pkg: pkg, files: files, info: info})
	}
	return fset, pkgs
}

// TestExportedAPINamesNoInternalType walks every exported identifier of worker and producer
// (functions, methods, struct fields, interface methods, type parameters) through every type
// it reaches, into the fields and methods of internal types too, and fails for each named
// type declared under internal/ that the package does not re-export with an alias: another
// module could hold such a value but never name its type. go/types resolves an alias to the
// type it names, so the rule is that the package exports an alias for every internal type
// reached, not that none is reached.
func TestExportedAPINamesNoInternalType(t *testing.T) {
	_, pkgs := loadAPI(t)
	for _, p := range pkgs {
		w := newAPIWalker(p.pkg)
		for _, name := range p.pkg.Scope().Names() {
			obj := p.pkg.Scope().Lookup(name)
			if !obj.Exported() {
				continue
			}
			w.walk(obj.Type(), p.pkg.Name()+"."+name)
		}
		for _, m := range w.report() {
			t.Error(m)
		}
	}
}

// apiWalker walks the types one package's API reaches.
type apiWalker struct {
	pkg *types.Package
	// aliased maps each type the package re-exports to its alias.
	aliased map[*types.TypeName]string
	seen    map[*types.TypeName]bool
	// missing maps each internal type without an alias to the paths that reach it.
	missing map[*types.TypeName][]string
}

func newAPIWalker(pkg *types.Package) *apiWalker {
	w := &apiWalker{pkg: pkg, aliased: map[*types.TypeName]string{}, seen: map[*types.TypeName]bool{},
		missing: map[*types.TypeName][]string{}}
	for _, name := range pkg.Scope().Names() {
		tn, ok := pkg.Scope().Lookup(name).(*types.TypeName)
		if !ok || !tn.Exported() || !tn.IsAlias() {
			continue
		}
		if n, ok := types.Unalias(tn.Type()).(*types.Named); ok {
			w.aliased[n.Origin().Obj()] = name
		}
	}
	return w
}

func (w *apiWalker) walk(t types.Type, where string) {
	switch t := t.(type) {
	case *types.Alias:
		w.walk(types.Unalias(t), where)
	case *types.Named:
		for i := range t.TypeArgs().Len() {
			w.walk(t.TypeArgs().At(i), where)
		}
		origin := t.Origin()
		obj := origin.Obj()
		if obj.Pkg() == nil { // error, comparable
			return
		}
		internal := isInternal(obj.Pkg().Path())
		if internal {
			if _, ok := w.aliased[obj]; !ok {
				w.missing[obj] = append(w.missing[obj], where)
			}
		} else if obj.Pkg() != w.pkg {
			return // a public package's types are its own business
		}
		if w.seen[obj] {
			return
		}
		w.seen[obj] = true
		// A type of the package itself is named by its own name, whatever reached it first.
		name := w.pkg.Name() + "." + obj.Name()
		if internal {
			name = where + " → " + obj.Pkg().Name() + "." + obj.Name()
		}
		for i := range origin.TypeParams().Len() {
			w.walk(origin.TypeParams().At(i).Constraint(), name)
		}
		w.walk(origin.Underlying(), name)
		for i := range origin.NumMethods() {
			if m := origin.Method(i); m.Exported() {
				w.walk(m.Type(), name+"."+m.Name())
			}
		}
	case *types.Pointer:
		w.walk(t.Elem(), where)
	case *types.Slice:
		w.walk(t.Elem(), where)
	case *types.Array:
		w.walk(t.Elem(), where)
	case *types.Chan:
		w.walk(t.Elem(), where)
	case *types.Map:
		w.walk(t.Key(), where)
		w.walk(t.Elem(), where)
	case *types.Signature:
		for i := range t.TypeParams().Len() {
			w.walk(t.TypeParams().At(i).Constraint(), where)
		}
		w.walk(t.Params(), where)
		w.walk(t.Results(), where)
	case *types.Tuple:
		for i := range t.Len() {
			w.walk(t.At(i).Type(), where)
		}
	case *types.Struct:
		for i := range t.NumFields() {
			// Embedded fields promote their exported members, whatever their own name.
			if f := t.Field(i); f.Exported() || f.Embedded() {
				w.walk(f.Type(), where+"."+f.Name())
			}
		}
	case *types.Interface:
		for i := range t.NumMethods() {
			if m := t.Method(i); m.Exported() {
				w.walk(m.Type(), where+"."+m.Name())
			}
		}
		for i := range t.NumEmbeddeds() {
			w.walk(t.EmbeddedType(i), where)
		}
	case *types.Union:
		for i := range t.Len() {
			w.walk(t.Term(i).Type(), where)
		}
	case *types.TypeParam:
		w.walk(t.Constraint(), where)
	}
}

// report is one message per internal type without an alias, naming what reaches it.
func (w *apiWalker) report() []string {
	var msgs []string
	for obj, via := range w.missing {
		slices.Sort(via)
		via = slices.Compact(via)
		more := ""
		if len(via) > 5 {
			more = fmt.Sprintf("\n\t\t(and %d more)", len(via)-5)
			via = via[:5]
		}
		msgs = append(msgs, fmt.Sprintf("%s.%s (%s) has no exported alias in package %s; reached from:\n\t\t%s%s",
			obj.Pkg().Name(), obj.Name(), obj.Pkg().Path(), w.pkg.Name(), strings.Join(via, "\n\t\t"), more))
	}
	slices.Sort(msgs)
	return msgs
}

// TestExportedSignaturesSpellNoInternalPackage reads the source: an exported declaration of
// worker or producer (a function's or method's signature, a type's exported fields and
// methods, a variable's or constant's declared type) must spell the public names, so that
// the documentation another module reads shows types it can name. An alias is exempt: it
// is the re-export itself (types.go). It reports each file apart, naming every declaration.
func TestExportedSignaturesSpellNoInternalPackage(t *testing.T) {
	fset, pkgs := loadAPI(t)
	for _, p := range pkgs {
		for _, f := range p.files {
			file := filepath.Base(fset.Position(f.Pos()).Filename)
			var lines []string
			for _, hit := range internalSpellings(p, f) {
				lines = append(lines, fmt.Sprintf("%s:%d: %s.%s spells %s",
					file, fset.Position(hit.pos).Line, p.pkg.Name(), hit.decl, hit.spelled))
			}
			if len(lines) == 0 {
				continue
			}
			note := ""
			if p.pkg.Name() == "worker" && slices.Contains(rewritten, file) {
				note = " (being rewritten)"
			}
			t.Errorf("%s/%s%s: exported declarations spell an internal package; use the aliases of worker/types.go:\n\t%s",
				p.pkg.Name(), file, note, strings.Join(lines, "\n\t"))
		}
	}
}

type spelling struct {
	pos     token.Pos
	decl    string // the exported declaration (and member) that spells it
	spelled string // pkg.Name as written
}

// internalSpellings lists the internal qualified identifiers in f's exported signatures.
func internalSpellings(p apiPackage, f *ast.File) []spelling {
	var hits []spelling
	check := func(decl string, n ast.Node) {
		if n == nil {
			return
		}
		ast.Inspect(n, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok {
				if pn, ok := p.info.Uses[x].(*types.PkgName); ok && isInternal(pn.Imported().Path()) {
					hits = append(hits, spelling{pos: sel.Pos(), decl: decl, spelled: x.Name + "." + sel.Sel.Name})
				}
			}
			return true
		})
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			name := d.Name.Name
			if d.Recv != nil {
				recv := receiverName(d.Recv.List[0].Type)
				if !ast.IsExported(recv) {
					continue // a method of an unexported type: reached only through the type walk
				}
				name = recv + "." + name
			}
			check(name, d.Type)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() || s.Assign.IsValid() {
						continue
					}
					if s.TypeParams != nil {
						check(s.Name.Name, s.TypeParams)
					}
					checkType(s.Name.Name, s.Type, check)
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() && s.Type != nil {
							check(n.Name, s.Type)
						}
					}
				}
			}
		}
	}
	return hits
}

// checkType checks what of a declared type another module sees: a struct's exported and
// embedded fields, an interface's exported methods and embedded types, anything else whole.
func checkType(name string, e ast.Expr, check func(string, ast.Node)) {
	switch e := e.(type) {
	case *ast.StructType:
		for _, f := range e.Fields.List {
			if len(f.Names) == 0 {
				check(name, f.Type)
			}
			for _, n := range f.Names {
				if n.IsExported() {
					check(name+"."+n.Name, f.Type)
				}
			}
		}
	case *ast.InterfaceType:
		for _, m := range e.Methods.List {
			if len(m.Names) == 0 {
				check(name, m.Type)
			}
			for _, n := range m.Names {
				if n.IsExported() {
					check(name+"."+n.Name, m.Type)
				}
			}
		}
	default:
		check(name, e)
	}
}

// receiverName is the base type name of a method receiver.
func receiverName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}
