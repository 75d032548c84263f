package apikey

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// gitleaksModule is the gitleaks the rule test runs, built from its Go
// module.
const gitleaksModule = "github.com/zricethezav/gitleaks/v8@v8.30.1"

// TestScannerRulesAreTheDocs: the rule files are what
// docs/secret-scanning.md shows, and they match keys with Pattern.
func TestScannerRulesAreTheDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/secret-scanning.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"gitleaks.toml", "trufflehog.yaml"} {
		rules, err := os.ReadFile(filepath.Join("../docs/secret-scanning", f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), string(rules)) {
			t.Errorf("docs/secret-scanning.md doesn't show docs/secret-scanning/%s as it is", f)
		}
		if !strings.Contains(string(rules), `\b(`+Pattern+`)\b`) {
			t.Errorf("%s doesn't match keys with %s", f, Pattern)
		}
	}
	if !strings.Contains(string(doc), Pattern) {
		t.Error("the doc doesn't give the key's regular expression")
	}
}

// TestPatternFindsKeys: Pattern, as the rules use it, finds a key, and
// only a whole one.
func TestPatternFindsKeys(t *testing.T) {
	re := regexp.MustCompile(`\b(` + Pattern + `)\b`)
	key, _ := Generate()
	for text, want := range map[string]string{
		"PEEKSHOT_API_KEY=" + key:              key,
		`{"key": "` + key + `"}`:               key,
		"x-api-key: " + key + "\n":             key,
		"PEEKSHOT_API_KEY=" + key + "0":        "", // longer: not a key
		"PEEKSHOT_API_KEY=" + key[:41]:         "", // shorter
		"mypsk_" + key[4:]:                     "", // inside a word
		"PEEKSHOT_API_KEY=" + "pss_" + key[4:]: "",
	} {
		if got := re.FindStringSubmatch(text); want == "" && got != nil || want != "" && (got == nil || got[1] != want) {
			t.Errorf("%q: found %q, want %q", text, got, want)
		}
	}
}

// TestGitleaksFindsKeys runs the real gitleaks with the documented rules
// over a file holding a fresh key: it reports the key. A string of the
// key's shape with a wrong checksum is reported too, as the doc says (a
// regular expression can't check a CRC), and Valid tells it apart.
func TestGitleaksFindsKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gitleaks from its module; runs without -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH, so gitleaks can't be built: put Go on PATH to run this test")
	}
	rules, err := filepath.Abs("../docs/secret-scanning/gitleaks.toml")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// Fetched once into the module cache (the Go module proxy, or a cache
	// filled beforehand): without it, the test can't run, and says how.
	dl := exec.CommandContext(ctx, gobin, "mod", "download", gitleaksModule)
	dl.Dir, dl.Env = work, env
	if out, err := dl.CombinedOutput(); err != nil {
		t.Skipf("gitleaks can't be had (%v: %s). To run this test, let `go mod download %s` reach the Go module proxy (GOPROXY), or fill the module cache with it beforehand.",
			err, strings.TrimSpace(string(out)), gitleaksModule)
	}
	key, _ := Generate()
	bad := key[:Len-1] + string(alphabet[(strings.IndexByte(alphabet, key[Len-1])+1)%62])
	if Valid(bad) {
		t.Fatal("the changed key still checks out")
	}
	src := filepath.Join(work, "scan")
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	content := "# deploy settings\nPEEKSHOT_API_KEY=" + key + "\nOLD_KEY=" + bad + "\nNOT_A_KEY=psk_tooShort123\n"
	if err := os.WriteFile(filepath.Join(src, "app.env"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(work, "report.json")
	run := exec.CommandContext(ctx, gobin, "run", gitleaksModule, "dir", src,
		"--config", rules, "--report-format", "json", "--report-path", report, "--no-banner", "--exit-code", "0", "--log-level", "error")
	run.Dir, run.Env = work, env
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("gitleaks: %v\n%s", err, out)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var findings []struct {
		RuleID string `json:"RuleID"`
		Secret string `json:"Secret"`
		Line   int    `json:"StartLine"`
	}
	if err := json.Unmarshal(data, &findings); err != nil {
		t.Fatalf("report: %v\n%s", err, data)
	}
	found := map[string]bool{}
	for _, f := range findings {
		if f.RuleID == "peekshot-api-key" {
			found[f.Secret] = true
		}
	}
	if !found[key] {
		t.Fatalf("gitleaks didn't find the key; findings: %s", data)
	}
	if !found[bad] {
		t.Fatalf("the documented behaviour is that a wrong checksum is reported too; findings: %s", data)
	}
	if len(found) != 2 {
		t.Fatalf("gitleaks found %d PeekShot keys, want the 2 of the right shape: %s", len(found), data)
	}
}
