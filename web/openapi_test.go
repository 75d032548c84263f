package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestOpenAPIDocument: the document the server publishes is OpenAPI 3.1
// and valid against the specification's own schema.
func TestOpenAPIDocument(t *testing.T) {
	c := mustContract(t)
	if v := c.doc.GetSpecInfo().Version; !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi %q, want 3.1.x", v)
	}
	if ok, errs := c.v.ValidateDocument(); !ok {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document:\n%s", strings.Join(describeValidation("document", errs), "\n"))
	}
	e := newTestEnv(t)
	r := e.apiCall(http.MethodGet, "/api/v1/openapi.json", "", "")
	expectStatus(t, r, http.StatusOK)
	if r.body != string(openAPIDocument) || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/openapi.json: %s, not the embedded document", r.Header.Get("Content-Type"))
	}
}

// TestOpenAPIRoutes: every /api/v1 route the server has is in the
// document, with its method, and the document has no route the server
// lacks.
func TestOpenAPIRoutes(t *testing.T) {
	e := newTestEnv(t)
	served := map[string]bool{}
	for _, r := range e.srv.echo.Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/") || r.Method == echo.RouteNotFound {
			continue
		}
		served[r.Method+" "+openAPIPath(r.Path)] = true
	}
	documented := map[string]bool{}
	for path, item := range mustContract(t).model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	if len(served) == 0 || len(documented) == 0 {
		t.Fatalf("served %d routes, documented %d: the walk found nothing", len(served), len(documented))
	}
	for _, r := range sortedKeys(served) {
		if !documented[r] {
			t.Errorf("%s is served but not in web/openapi/openapi.json: document it (body, responses, headers, error codes)", r)
		}
	}
	for _, r := range sortedKeys(documented) {
		if !served[r] {
			t.Errorf("web/openapi/openapi.json documents %s, which the server lacks", r)
		}
	}
}

// openAPIPath writes an Echo path as OpenAPI does: /keys/:id is /keys/{id}.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestOpenAPIContractCheck: the check every test server runs does fail on
// what the document doesn't say: an undocumented member, status, error
// code or missing header, and a request the document refuses that was
// accepted. (It is what keeps the document and the server together.)
func TestOpenAPIContractCheck(t *testing.T) {
	c := mustContract(t)
	me := `{"email":"a@example.com","credits":3,"key":{"id":1,"label":"","masked":"psk_abcd…wxyz"}}`
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		respBody                 string
		header                   map[string]string
		want                     string // in the complaint; "" for none
	}{
		{"Valid", "GET", "/api/v1/me", "", 200, me, map[string]string{"Cache-Control": "no-store"}, ""},
		{"UndocumentedMember", "GET", "/api/v1/me", "", 200, strings.Replace(me, `"credits":3`, `"credits":3,"plan":"pro"`, 1), map[string]string{"Cache-Control": "no-store"}, "plan"},
		{"MissingHeader", "GET", "/api/v1/me", "", 200, me, nil, "Cache-Control"},
		{"UndocumentedStatus", "GET", "/api/v1/me", "", 418, `{"error":{"code":"teapot","message":"x"}}`, nil, "418"},
		{"UndocumentedCode", "GET", "/api/v1/me", "", 401, `{"error":{"code":"nope","message":"x"}}`, nil, "code"},
		{"AcceptedInvalidRequest", "POST", "/api/v1/screenshots", `{"url":"https://example.com","width":5}`, 200, "\x89PNG", map[string]string{
			"Content-Type": "image/png", "Cache-Control": "no-store", "X-Credits-Remaining": "1", "X-Image-Width": "5", "X-Image-Height": "720", "X-Render-Ms": "3",
		}, "accepted a request the document refuses"},
		{"RefusedInvalidRequest", "POST", "/api/v1/screenshots", `{"url":"https://example.com","width":5}`, 400, `{"error":{"code":"invalid_request","message":"width must be between 100 and 3840."}}`, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if w.Header().Get("Content-Type") == "" {
					w.Header().Set("Content-Type", "application/json")
				}
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.respBody))
			})
			var complaints []string
			checked := c.checking(func(format string, args ...any) { complaints = append(complaints, fmt.Sprintf(format, args...)) }, h)
			req := httptest.NewRequest(tt.method, "http://peekshot.test"+tt.path, strings.NewReader(tt.body))
			req.Header.Set("x-api-key", "psk_0000000000000000000000000000000000000000")
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			checked.ServeHTTP(httptest.NewRecorder(), req)
			got := strings.Join(complaints, "\n")
			switch {
			case tt.want == "" && got != "":
				t.Fatalf("complaint about a documented exchange:\n%s", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Fatalf("want a complaint mentioning %q, got %q", tt.want, got)
			}
		})
	}
}

// TestOpenAPIExamplesAreTrue: each example in the document passes its own
// schema, so the reference shows nothing the API would refuse.
func TestOpenAPIExamplesAreTrue(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Examples []json.RawMessage `json:"examples"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	c := mustContract(t)
	n := 0
	for name, s := range doc.Components.Schemas {
		for i, ex := range s.Examples {
			n++
			if ok, errs := c.validateAgainst(name, ex); !ok {
				t.Errorf("example %d of %s fails its schema: %s", i, name, strings.Join(errs, "; "))
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d examples found", n)
	}
}
