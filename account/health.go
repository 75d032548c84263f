package account

import (
	"slices"
	"time"
)

// FindingKind is a kind of risk the API Keys tab points out (SPEC §7).
type FindingKind string

// The findings of key health, in the order they are shown.
const (
	FindingLeaked       FindingKind = "leaked"        // reported leaked by a secret scanner
	FindingManyIPs      FindingKind = "many_ips"      // seen from more than ManyIPs addresses in a day, any address allowed
	FindingUnrestricted FindingKind = "unrestricted"  // every scope and no IP restriction
	FindingNeverExpires FindingKind = "never_expires" // no expiry
	FindingIdle         FindingKind = "idle"          // not used for IdleAfter
)

// Thresholds of key health.
const (
	IdleAfter = 30 * 24 * time.Hour
	// ManyIPs is how many client addresses in one day are too many.
	ManyIPs = 5
	// ManyIPsWithin is how far back the addresses of a day count.
	ManyIPsWithin = 7 * 24 * time.Hour
)

// Finding is one risk and the keys that have it.
type Finding struct {
	Kind FindingKind
	Keys []APIKey
}

// Health is what needs attention among a user's keys. A key reported
// leaked (leaks: the reports not yet dealt with) is named whatever its
// state, since a scanner deactivated it and its owner still has to replace
// it; otherwise only keys that work are judged (a deactivated or expired
// key risks nothing). ipsPerDay is the most client addresses each key was
// seen from in one day lately.
func Health(keys []APIKey, ipsPerDay map[int64]int, leaks []LeakReport, now time.Time) []Finding {
	found := map[FindingKind][]APIKey{}
	leaked := make(map[int64]bool, len(leaks))
	for _, l := range leaks {
		leaked[l.Key.ID] = true
	}
	for _, k := range keys {
		if leaked[k.ID] {
			found[FindingLeaked] = append(found[FindingLeaked], k)
		}
		if !k.Works(now) {
			continue
		}
		// Once the owner limits where the key may be used from, the
		// addresses it was seen from have been dealt with.
		if ipsPerDay[k.ID] > ManyIPs && len(k.Policy.AllowedIPs) == 0 {
			found[FindingManyIPs] = append(found[FindingManyIPs], k)
		}
		if len(k.Policy.AllowedIPs) == 0 && slices.Equal(k.Policy.Scopes, AllScopes) {
			found[FindingUnrestricted] = append(found[FindingUnrestricted], k)
		}
		if k.ExpiresAt.IsZero() && !k.Rotated() {
			found[FindingNeverExpires] = append(found[FindingNeverExpires], k)
		}
		since := k.LastUsedAt
		if since.IsZero() {
			since = k.CreatedAt
		}
		if now.Sub(since) >= IdleAfter {
			found[FindingIdle] = append(found[FindingIdle], k)
		}
	}
	var out []Finding
	for _, kind := range []FindingKind{FindingLeaked, FindingManyIPs, FindingUnrestricted, FindingNeverExpires, FindingIdle} {
		if len(found[kind]) > 0 {
			out = append(out, Finding{Kind: kind, Keys: found[kind]})
		}
	}
	return out
}
