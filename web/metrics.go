package web

import "time"

// Metrics is what the HTTP layer reports for monitoring (SPEC §8);
// metrics.Metrics is the real one, and Config.Metrics nil reports nothing.
// Every value it is given comes from a fixed set: a method, a route
// template (c.Path(), "" when no route matched), a status, an error code.
type Metrics interface {
	// Request counts a request once it is answered.
	Request(method, route string, status int)
	// KeyVerified counts an API request's key check: "accepted", or the
	// error code that refused it.
	KeyVerified(result string)
	// Rendered records a render: "ok" or the error code it ended in, and
	// how long the renderer took.
	Rendered(outcome string, took time.Duration)
	// CreditsSpent counts the credits a successful render was charged.
	CreditsSpent(n int64)
}

// noMetrics reports nothing, when no one monitors.
type noMetrics struct{}

func (noMetrics) Request(string, string, int)    {}
func (noMetrics) KeyVerified(string)             {}
func (noMetrics) Rendered(string, time.Duration) {}
func (noMetrics) CreditsSpent(int64)             {}

// keyAccepted is the verification result of a key that its state,
// policy and the endpoint's scope let through.
const keyAccepted = "accepted"

// keyVerification is what an API request's key check counts as: refused
// by the key's state or policy (checkErr), or by the endpoint's scope
// (requireScope marked the request), or accepted. A scope_not_allowed of
// the handler itself (a key that can't grant a scope) is not the check's.
func keyVerification(checkErr error, scopeRefused bool) string {
	switch {
	case checkErr != nil:
		return classify(checkErr).Code
	case scopeRefused:
		return codeScopeNotAllowed
	}
	return keyAccepted
}
