package account

import (
	"testing"
	"time"
)

func TestHealthNamesLeakedKeysWhateverTheirState(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	expires := now.Add(30 * 24 * time.Hour)
	leaked := APIKey{ID: 1, Active: false, CreatedAt: now, ExpiresAt: expires, Policy: DefaultPolicy()}
	off := APIKey{ID: 2, Active: false, CreatedAt: now, ExpiresAt: expires, Policy: DefaultPolicy()}
	fine := APIKey{ID: 3, Active: true, CreatedAt: now, ExpiresAt: expires, Policy: DefaultPolicy()}
	found := Health([]APIKey{leaked, off, fine}, nil, []LeakReport{{Key: leaked, ReportedAt: now}}, now)
	if len(found) != 1 || found[0].Kind != FindingLeaked || len(found[0].Keys) != 1 || found[0].Keys[0].ID != 1 {
		t.Fatalf("findings %+v, want only the leaked key", found)
	}
	if found := Health([]APIKey{leaked, off, fine}, nil, nil, now); len(found) != 0 {
		t.Fatalf("findings %+v without a report", found)
	}
	// It comes first: it is the one thing that can't wait.
	never := APIKey{ID: 4, Active: true, CreatedAt: now, Policy: DefaultPolicy()}
	found = Health([]APIKey{never, leaked}, nil, []LeakReport{{Key: leaked}}, now)
	if len(found) != 2 || found[0].Kind != FindingLeaked || found[1].Kind != FindingNeverExpires {
		t.Fatalf("findings %+v", found)
	}
}
