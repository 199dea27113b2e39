// SPDX-License-Identifier: Apache-2.0

package logcode

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const importPath = "github.com/keychest/keychest-lined/internal/logcode"

// codeLike is what a log code looks like.
var codeLike = regexp.MustCompile(`\b[A-Z]{3,4}[0-9]{4}\b`)

// constants parses this package: the value of each constant by name.
func constants(t *testing.T) map[string]string {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{}
	for _, f := range pkgs["logcode"].Files {
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, spec := range g.Specs {
					addConstants(t, values, spec.(*ast.ValueSpec))
				}
			}
		}
	}
	return values
}

// addConstants adds the string constants of spec to values, and fails
// the test when two name the same code.
func addConstants(t *testing.T, values map[string]string, spec *ast.ValueSpec) {
	for i, name := range spec.Names {
		v, _ := strconv.Unquote(spec.Values[i].(*ast.BasicLit).Value)
		for other, w := range values {
			if w == v {
				t.Errorf("%s and %s are both %s", other, name.Name, v)
			}
		}
		values[name.Name] = v
	}
}

// documented is every code in the tables of docs/log-codes.md.
func documented(t *testing.T) []string {
	t.Helper()
	text, err := os.ReadFile("../../docs/log-codes.md")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z]{3,4}[0-9]{4})` \\|").FindAllSubmatch(text, -1) {
		codes = append(codes, string(m[1]))
	}
	return codes
}

// uses walks every Go file of the repository outside this package: the
// constants it names, and the code-like string literals it still holds.
func uses(t *testing.T) (named map[string]bool, literals []string) {
	t.Helper()
	named = map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "../.." || path == "../../internal/logcode") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		local := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == strconv.Quote(importPath) {
				local = "logcode"
				if imp.Name != nil {
					local = imp.Name.Name
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && local != "" && x.Name == local {
					named[n.Sel.Name] = true
				}
			case *ast.BasicLit:
				if n.Kind == token.STRING && codeLike.MatchString(n.Value) {
					literals = append(literals, fset.Position(n.Pos()).String()+": "+n.Value)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return named, literals
}

// The codes the Go code uses are exactly the codes docs/log-codes.md lists,
// each named by a constant of this package and by no string literal.
func TestCodesMatchTheDocs(t *testing.T) {
	values := constants(t)
	docs := documented(t)
	named, literals := uses(t)
	for _, l := range literals {
		t.Errorf("a log code as a literal, not a constant of logcode: %s", l)
	}
	var used []string
	for name := range named {
		if v, ok := values[name]; ok { // not CheckEntries
			used = append(used, v)
		}
	}
	for name, v := range values {
		if !named[name] {
			t.Errorf("%s (%s) is used nowhere", name, v)
		}
	}
	for _, c := range used {
		if !slices.Contains(docs, c) {
			t.Errorf("%s is used in Go but missing from docs/log-codes.md", c)
		}
	}
	for _, c := range docs {
		if !slices.Contains(used, c) {
			t.Errorf("%s is in docs/log-codes.md but used nowhere in Go", c)
		}
	}
	if len(docs) < 10 {
		t.Fatalf("only %d codes parsed from docs/log-codes.md", len(docs))
	}
}

func TestCheckEntries(t *testing.T) {
	good := `{"code":"SRV0011","event_time":"2026-11-23T13:00:00.123456789Z","message":"stopped"}` + "\n"
	if seen, err := CheckEntries([]byte(good + good)); err != nil || seen[Stopped] != 2 {
		t.Fatalf("good entries: %v, %v", seen, err)
	}
	for _, bad := range []string{`{"code":"SRV0011"}`, `{"event_time":"2026-11-23T13:00:00Z"}`,
		`{"code":"SRV0011","event_time":"yesterday"}`, `stopped`} {
		if _, err := CheckEntries([]byte(good + bad + "\n")); err == nil {
			t.Errorf("%s passed", bad)
		}
	}
}
