package web

import (
	"errors"
	"net/http"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

// policyInput reads a key's policy fields from a form.
func policyInput(r *http.Request) account.PolicyInput {
	_ = r.ParseForm()
	f := r.PostForm
	return account.PolicyInput{
		Expires:        f.Get("expires"),
		ExpiresDate:    f.Get("expires_date"),
		Scopes:         f["scopes"],
		ScopesGiven:    f.Get("scopes_given") != "",
		AllowedIPs:     f.Get("allowed_ips"),
		AllowedTargets: f.Get("allowed_targets"),
		RateLimit:      f.Get("rate_limit"),
		MonthlyBudget:  f.Get("monthly_budget"),
	}
}

// parsePolicy checks a form's policy. current is the expiry of the key
// being edited, kept when the form says so ("keep"); nil for a new key.
func (s *Server) parsePolicy(in account.PolicyInput, current *account.Expiry) (account.Policy, account.Expiry, templates.FieldErrors) {
	keep := current != nil && (in.Expires == "keep" || in.Expires == "")
	if keep {
		in.Expires = "never"
	}
	p, x, err := in.Parse(s.cfg.Now(), s.cfg.RateLimit)
	var pe account.PolicyErrors
	if errors.As(err, &pe) {
		if keep {
			delete(pe, "expires")
			delete(pe, "expires_date")
			if len(pe) == 0 {
				err = nil
			}
		}
		if err != nil {
			return account.Policy{}, account.Expiry{}, templates.FieldErrors(pe)
		}
		// Only the expiry was wrong, and it is kept: parse the rest again.
		in.Expires, in.ExpiresDate = "never", ""
		p, _, _ = in.Parse(s.cfg.Now(), s.cfg.RateLimit)
	}
	if keep {
		x = *current
	}
	return p, x, nil
}

// policyForm shows a form's policy again, as typed, with what was wrong.
func (s *Server) policyForm(in account.PolicyInput, errs templates.FieldErrors, editing bool, current account.Expiry) templates.PolicyForm {
	f := templates.PolicyForm{
		Expires: in.Expires, ExpiresDate: displayable(in.ExpiresDate),
		AllowedIPs: displayable(in.AllowedIPs), AllowedTargets: displayable(in.AllowedTargets),
		RateLimit: displayable(in.RateLimit), MonthlyBudget: displayable(in.MonthlyBudget),
		Errors: errs, RateMax: s.cfg.RateLimit, Editing: editing, Current: current.At, Today: s.cfg.Now(),
	}
	if in.ScopesGiven {
		f.Scopes = []account.Scope{}
		for _, sc := range in.Scopes {
			f.Scopes = append(f.Scopes, account.Scope(sc))
		}
	}
	return f
}
