package sqlstore

import (
	"database/sql"
	"net/netip"
	"strings"
	"time"

	"github.com/peekshot/peekshot/account"
)

// policyColumns are a key's policy as stored: scopes by commas, lists one
// item a line, NULL numbers for none.
const policyColumns = `scopes, allowed_ips, allowed_targets, rate_limit, monthly_budget`

// policyRow is a policy as its columns hold it.
type policyRow struct {
	scopes, ips, targets string
	rate, budget         sql.NullInt64
}

// appendDest appends the row's scan destinations, in policyColumns' order.
func (r *policyRow) appendDest(dest []any) []any {
	return append(dest, &r.scopes, &r.ips, &r.targets, &r.rate, &r.budget)
}

func (r policyRow) policy() account.Policy {
	var p account.Policy
	if r.scopes != "" {
		p.Scopes = make([]account.Scope, 0, strings.Count(r.scopes, ",")+1)
		for s := range strings.SplitSeq(r.scopes, ",") {
			if s != "" {
				p.Scopes = append(p.Scopes, account.Scope(s))
			}
		}
	}
	for line := range strings.SplitSeq(r.ips, "\n") {
		if line == "" {
			continue // ParsePrefix would make an error of it
		}
		if pre, err := netip.ParsePrefix(line); err == nil {
			p.AllowedIPs = append(p.AllowedIPs, pre)
		}
	}
	for line := range strings.SplitSeq(r.targets, "\n") {
		if line != "" {
			p.AllowedTargets = append(p.AllowedTargets, line)
		}
	}
	p.RateLimit, p.MonthlyBudget = int(r.rate.Int64), r.budget.Int64
	return p
}

// policyArgs are a policy's column values, in policyColumns' order.
func policyArgs(p account.Policy) []any {
	scopes := make([]string, len(p.Scopes))
	for i, s := range p.Scopes {
		scopes[i] = string(s)
	}
	ips := make([]string, len(p.AllowedIPs))
	for i, pre := range p.AllowedIPs {
		ips[i] = pre.String()
	}
	return []any{strings.Join(scopes, ","), strings.Join(ips, "\n"), strings.Join(p.AllowedTargets, "\n"),
		nullID(int64(p.RateLimit)), nullID(p.MonthlyBudget)}
}

// lifetimeArg is an expiry's lifetime as its column holds it.
func lifetimeArg(x account.Expiry) sql.NullInt64 { return nullID(int64(x.Lifetime / time.Second)) }
