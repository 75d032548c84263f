package web

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/paths"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// The API contract: every test server (newTestEnv) holds each /api/v1
// request it answers, and its answer, to the OpenAPI document the server
// publishes (openapi/openapi.json), through libopenapi-validator. So every
// API test, present and future, checks the document without asking to: a
// response the document doesn't describe (an undocumented status, code,
// field or header) fails the test that got it, and so does a request the
// document refuses that the server accepted.

// contract is the document, parsed once for every test.
var contract = sync.OnceValues(func() (*apiContract, error) {
	doc, err := libopenapi.NewDocument(openAPIDocument)
	if err != nil {
		return nil, fmt.Errorf("parse openapi.json: %w", err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("build the OpenAPI 3 model of openapi.json: %w", err)
	}
	opts := []config.Option{config.WithFormatAssertions(), config.WithContentAssertions()}
	v, errs := validator.NewValidator(doc, opts...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("validator of openapi.json: %v", errs)
	}
	return &apiContract{doc: doc, model: &model.Model, v: v, opts: config.NewValidationOptions(opts...)}, nil
})

type apiContract struct {
	doc   libopenapi.Document
	model *v3.Document
	v     validator.Validator
	opts  *config.ValidationOptions
}

// mustContract is the contract, or the test stops.
func mustContract(t testing.TB) *apiContract {
	t.Helper()
	c, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// maxCaptured bounds what the check keeps of a body: past the API's own
// limit, so a body the server refuses as too large is still seen as such.
const maxCaptured = maxAPIBody + 64<<10

// checkContract wraps the test server's handler: each /api/v1 exchange is
// validated once answered, and what is wrong fails t (from the server's
// goroutine, hence Errorf), naming the request and the problem.
func checkContract(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	return mustContract(t).checking(t.Errorf, h)
}

// checking is h, with each /api/v1 exchange validated and what is wrong
// told to errorf.
func (c *apiContract) checking(errorf func(format string, args ...any), h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/v1/") {
			h.ServeHTTP(w, r)
			return
		}
		var sent bytes.Buffer
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = teeBody{ReadCloser: r.Body, to: &capped{buf: &sent, max: maxCaptured}}
		}
		rec := &recordedResponse{ResponseWriter: w, body: capped{buf: &bytes.Buffer{}, max: maxCaptured}}
		h.ServeHTTP(rec, r)
		if problems := c.check(r, sent.Bytes(), rec); len(problems) > 0 {
			errorf("OpenAPI contract: %s %s answered %d:\n  %s", r.Method, r.URL.Path, rec.status(), strings.Join(problems, "\n  "))
		}
	})
}

// check validates one exchange; it says nothing of a route the document
// lacks (TestOpenAPIRoutes fails on that).
func (c *apiContract) check(r *http.Request, body []byte, rec *recordedResponse) []string {
	req := r.Clone(r.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	item, _, pathValue := paths.FindPath(req, c.model, c.opts)
	if item == nil || item.GetOperations().GetOrZero(strings.ToLower(r.Method)) == nil || rec.status() == http.StatusMethodNotAllowed {
		return nil // no operation ran: the router answered (405 for a route documented, not yet served)
	}
	var problems []string
	res := &http.Response{
		StatusCode: rec.status(), Header: rec.sentHeader, Request: req,
		Body: io.NopCloser(bytes.NewReader(rec.body.buf.Bytes())), ContentLength: int64(rec.body.buf.Len()),
	}
	if res.Header == nil {
		res.Header = rec.Header()
	}
	if ok, errs := c.v.ValidateHttpResponse(req, res); !ok {
		problems = append(problems, describeValidation("response", errs)...)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := c.v.ValidateHttpRequestWithPathItem(req, item, pathValue); !ok && rec.status() < 400 {
		problems = append(problems, fmt.Sprintf("the server accepted a request the document refuses (the document or the server is wrong): %s",
			strings.Join(describeValidation("request", errs), "; ")))
	}
	return problems
}

// describeValidation turns the validator's findings into lines.
func describeValidation(what string, errs []*verrors.ValidationError) []string {
	var out []string
	for _, e := range errs {
		line := what + ": " + e.Message
		if e.Reason != "" && e.Reason != e.Message {
			line += " (" + e.Reason + ")"
		}
		for _, s := range e.SchemaValidationErrors {
			where := s.FieldPath
			if where == "" {
				where = s.KeywordLocation
			}
			line += "; " + where + ": " + s.Reason
		}
		out = append(out, line)
	}
	return out
}

// teeBody copies what the server reads of a request body.
type teeBody struct {
	io.ReadCloser
	to io.Writer
}

func (b teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		_, _ = b.to.Write(p[:n])
	}
	return n, err
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf *bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// recordedResponse passes a response on while keeping its status, its
// headers as sent and its body.
type recordedResponse struct {
	http.ResponseWriter
	code       int
	sentHeader http.Header
	body       capped
}

func (r *recordedResponse) WriteHeader(code int) {
	if r.code == 0 {
		r.code, r.sentHeader = code, r.Header().Clone()
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recordedResponse) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.WriteHeader(http.StatusOK)
	}
	_, _ = r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

func (r *recordedResponse) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recordedResponse) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recordedResponse) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// validateAgainst checks payload against the component schema name.
func (c *apiContract) validateAgainst(name string, payload []byte) (bool, []string) {
	proxy := c.model.Components.Schemas.GetOrZero(name)
	if proxy == nil {
		return false, []string{"no schema " + name}
	}
	s, err := proxy.BuildSchema()
	if err != nil {
		return false, []string{err.Error()}
	}
	ok, errs := schema_validation.NewSchemaValidator(config.WithFormatAssertions()).ValidateSchemaBytes(s, payload)
	return ok, describeValidation(name, errs)
}
