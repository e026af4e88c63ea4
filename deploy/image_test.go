package deploy_test

import (
	"debug/elf"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// imageInstr is one Dockerfile instruction, continuation lines joined.
type imageInstr struct {
	line int
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// imageStage is one FROM and the instructions under it.
type imageStage struct {
	from  string // image reference, ARGs expanded
	name  string // AS name, if any
	instr []imageInstr
}

// imageParse reads the repository's Dockerfile: comments and blank lines
// dropped, backslash continuations joined, global ARG defaults expanded in
// FROM lines. It is a subset of the Dockerfile grammar, enough for ours;
// a construct it does not know fails the test rather than passing it.
func imageParse(t *testing.T) (args map[string]string, stages []imageStage) {
	t.Helper()
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	args = map[string]string{}
	var instrs []imageInstr
	var cur strings.Builder
	start := 0
	for i, l := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(l)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, rest, _ := strings.Cut(cur.String(), " ")
		instrs = append(instrs, imageInstr{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(rest)})
		cur.Reset()
	}
	if cur.Len() != 0 {
		t.Fatal("Dockerfile ends in a line continuation")
	}
	known := []string{"ARG", "FROM", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "ENTRYPOINT", "CMD", "ENV", "LABEL", "HEALTHCHECK"}
	expand := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
	for _, in := range instrs {
		if !slices.Contains(known, in.cmd) {
			t.Fatalf("Dockerfile:%d: instruction %s is not one this lint knows (ADD is refused: use COPY)", in.line, in.cmd)
		}
		switch {
		case in.cmd == "ARG" && len(stages) == 0:
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			st := imageStage{from: expand.ReplaceAllStringFunc(f[0], func(m string) string {
				return args[expand.FindStringSubmatch(m)[1]]
			})}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			} else if len(f) != 1 {
				t.Fatalf("Dockerfile:%d: FROM %s: want IMAGE [AS NAME]", in.line, in.args)
			}
			stages = append(stages, st)
		case len(stages) == 0:
			t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
		default:
			stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
		}
	}
	return args, stages
}

// imageExecForm decodes an exec-form (JSON array) ENTRYPOINT or CMD; shell
// form would need a shell the distroless image does not have.
func imageExecForm(t *testing.T, in imageInstr) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil {
		t.Fatalf("Dockerfile:%d: %s is not in exec form (a JSON array): %v", in.line, in.cmd, err)
	}
	return argv
}

func imageFind(st imageStage, cmd string) []imageInstr {
	var out []imageInstr
	for _, in := range st.instr {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func TestImageDockerfile(t *testing.T) {
	args, stages := imageParse(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages: want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	t.Run("base images pinned", func(t *testing.T) {
		for _, st := range stages {
			_, tag, ok := strings.Cut(path.Base(st.from), ":")
			if !ok || tag == "" || tag == "latest" || strings.Contains(st.from, "$") {
				t.Errorf("FROM %s: pin the image by a tag other than latest", st.from)
			}
		}
		if !strings.HasPrefix(build.from, "golang:") {
			t.Errorf("build stage FROM %s, want golang:", build.from)
		}
		goMod, err := os.ReadFile("../go.mod")
		if err != nil {
			t.Fatal(err)
		}
		want := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(goMod)
		if want == nil || args["GO_VERSION"] != string(want[1]) {
			t.Errorf("ARG GO_VERSION=%s, want the go.mod go version %s", args["GO_VERSION"], want[1])
		}
	})

	t.Run("runtime is distroless nonroot", func(t *testing.T) {
		if final.from != "gcr.io/distroless/static-debian12:nonroot" {
			t.Errorf("final FROM %s, want gcr.io/distroless/static-debian12:nonroot", final.from)
		}
		users := imageFind(final, "USER")
		if len(users) == 0 {
			t.Fatal("final stage sets no USER")
		}
		u := users[len(users)-1].args
		if u != "nonroot" && u != "65532" && u != "65532:65532" && u != "nonroot:nonroot" {
			t.Errorf("USER %s, want nonroot or 65532", u)
		}
		if len(imageFind(final, "RUN")) > 0 {
			t.Error("final stage has RUN: the distroless image has no shell")
		}
		for _, c := range imageFind(final, "COPY") {
			if !strings.HasPrefix(c.args, "--from=") {
				t.Errorf("Dockerfile:%d: COPY %s into the runtime image: the bundles are embedded in the binary, copy only from the build stage", c.line, c.args)
			}
		}
	})

	t.Run("entrypoint and ports", func(t *testing.T) {
		eps, cmds := imageFind(final, "ENTRYPOINT"), imageFind(final, "CMD")
		if len(eps) != 1 || len(cmds) != 1 {
			t.Fatalf("%d ENTRYPOINT and %d CMD in the final stage, want one each", len(eps), len(cmds))
		}
		if ep := imageExecForm(t, eps[0]); !slices.Equal(ep, []string{"/pdp"}) {
			t.Errorf("ENTRYPOINT %q, want [/pdp]", ep)
		}
		wantCmd := []string{"serve", "--grpc-addr", "0.0.0.0:9191", "--http-addr", "0.0.0.0:8181"}
		if cmd := imageExecForm(t, cmds[0]); !slices.Equal(cmd, wantCmd) {
			t.Errorf("CMD %q, want %q", cmd, wantCmd)
		}
		var ports []string
		for _, e := range imageFind(final, "EXPOSE") {
			ports = append(ports, strings.Fields(e.args)...)
		}
		slices.Sort(ports)
		if !slices.Equal(ports, []string{"8181", "9191"}) {
			t.Errorf("EXPOSE %v, want 8181 and 9191", ports)
		}
		for _, h := range imageFind(final, "HEALTHCHECK") {
			if !strings.Contains(h.args, "[") {
				t.Errorf("Dockerfile:%d: HEALTHCHECK in shell form: there is no shell", h.line)
			}
		}
	})

	t.Run("static, stripped, versioned build", func(t *testing.T) {
		var goBuild string
		for _, r := range imageFind(build, "RUN") {
			if strings.Contains(r.args, "go build") {
				goBuild = r.args
			}
			if regexp.MustCompile(`(^|[;&|]\s*)cd\s`).MatchString(r.args) {
				t.Errorf("Dockerfile:%d: cd in RUN: use WORKDIR", r.line)
			}
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "./cmd/pdp"} {
			if !strings.Contains(goBuild, want) {
				t.Errorf("go build step %q lacks %s", goBuild, want)
			}
		}
		m := regexp.MustCompile(`-X ([\w./-]+)\.(\w+)=`).FindStringSubmatch(goBuild)
		if m == nil {
			t.Fatalf("go build step %q sets no version with -X", goBuild)
		}
		if m[1] != "github.com/verdictpdp/verdict/internal/app" || !imageHasVar(t, "../internal/app", m[2]) {
			t.Errorf("-X %s.%s: no such string variable; the linker would ignore it", m[1], m[2])
		}
		for _, w := range imageFind(build, "WORKDIR") {
			if !strings.HasPrefix(w.args, "/") {
				t.Errorf("Dockerfile:%d: WORKDIR %s is relative", w.line, w.args)
			}
		}
	})

	t.Run("build context keeps the embedded bundles", func(t *testing.T) {
		raw, err := os.ReadFile("../.dockerignore")
		if err != nil {
			t.Fatal(err)
		}
		var patterns []string
		for _, l := range strings.Split(string(raw), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				if strings.HasPrefix(l, "!") {
					t.Fatalf(".dockerignore: exception %s: this lint does not read them", l)
				}
				patterns = append(patterns, l)
			}
		}
		// Every file the embed patterns and the build read must stay in.
		need := []string{"go.mod", "go.sum", "embed.go", "cmd/pdp/main.go", "bundles/default/data.json", "policies/.manifest"}
		for _, dir := range []string{"../policies", "../internal", "../proto", "../cmd"} {
			err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && !strings.HasSuffix(p, "_test.go") {
					need = append(need, strings.TrimPrefix(filepath.ToSlash(p), "../"))
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range need {
			if _, err := os.Stat("../" + f); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			if p := imageIgnored(patterns, f); p != "" {
				t.Errorf(".dockerignore pattern %q drops %s, which the build needs", p, f)
			}
		}
		// And the heavy or private parts stay out.
		for _, f := range []string{".git/HEAD", "bin/pdp", "testdata/x", "internal/app/app_test.go"} {
			if imageIgnored(patterns, f) == "" {
				t.Errorf(".dockerignore keeps %s in the build context", f)
			}
		}
	})
}

// imageIgnored returns the .dockerignore pattern that excludes file, or "".
// Patterns match the path or one of its parent directories; a leading **/
// matches at any depth.
func imageIgnored(patterns []string, file string) string {
	parts := strings.Split(file, "/")
	for _, p := range patterns {
		pat := strings.TrimPrefix(p, "**/")
		for i := range parts {
			for j := i + 1; j <= len(parts); j++ {
				if i > 0 && pat == p {
					break // anchored at the root
				}
				if ok, _ := path.Match(pat, strings.Join(parts[i:j], "/")); ok {
					return p
				}
			}
		}
	}
	return ""
}

// imageHasVar reports whether the package in dir declares a package-level
// string variable varName (what -ldflags -X can set).
func imageHasVar(t *testing.T, dir, varName string) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if n.Name != varName {
						continue
					}
					if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "string" {
						return true
					}
					if vs.Type == nil && i < len(vs.Values) {
						if bl, ok := vs.Values[i].(*ast.BasicLit); ok && bl.Kind == token.STRING {
							return true
						}
					}
				}
			}
		}
	}
	return false
}

// TestImageStaticBinary builds pdp as the Dockerfile does and checks that
// the result runs on an image with no libc: no program interpreter and no
// shared libraries.
func TestImageStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary: skipped with -short")
	}
	out := filepath.Join(t.TempDir(), "pdp")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X github.com/verdictpdp/verdict/internal/app.Version=image-test", "-o", out, "./cmd/pdp")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a program interpreter (PT_INTERP): it is dynamically linked")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("the binary has a dynamic section (PT_DYNAMIC)")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("DT_NEEDED %v: the binary needs shared libraries", libs)
	}
	v, err := exec.Command(out, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(v), "pdp image-test ") {
		t.Errorf("pdp version = %q: the -X version did not reach the binary", v)
	}
}
